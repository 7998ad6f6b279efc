package sandbox

import (
	"regexp"
	"strings"
	"testing"
)

func TestRunPattern(t *testing.T) {
	for name, want := range map[string]string{
		"TestA":                `^TestA$`,
		"TestA/inner_case_(x)": `^TestA$/^inner_case_\(x\)$`,
	} {
		got := runPattern(name)
		if got != want {
			t.Errorf("runPattern(%q) = %q, want %q", name, got, want)
		}
		for _, part := range strings.Split(got, "/") {
			if _, err := regexp.Compile(part); err != nil {
				t.Errorf("pattern %q: %v", part, err)
			}
		}
	}
}

func TestMirrorParsing(t *testing.T) {
	one := "# comment\ndeb-src http://src.example/debian bookworm main\n" +
		"deb [arch=amd64 signed-by=/x.gpg] http://mirror.example/debian/ bookworm main contrib\n"
	if got := mirrorFromOneLine(one); got != "http://mirror.example/debian" {
		t.Errorf("one-line: %q", got)
	}
	deb822 := "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n" +
		"Types: deb deb-src\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
	if got := mirrorFromDeb822(deb822); got != "http://m.example/debian" {
		t.Errorf("deb822: %q", got)
	}
	if got := mirrorFromDeb822("Types: deb\nURIs: http://m.example/debian\nSuites: bookworm\nEnabled: no\n"); got != "" {
		t.Errorf("disabled stanza used: %q", got)
	}
}

func TestDistros(t *testing.T) {
	for name, d := range Distros {
		if d.Name != name {
			t.Errorf("%s: Name %q", name, d.Name)
		}
		if d.Field("ID") == "" || d.Field("VERSION_ID") == "" || d.Field("PRETTY_NAME") == "" || d.Field("NAME") == "" {
			t.Errorf("%s: incomplete os-release:\n%s", name, d.OSRelease)
		}
		switch d.Family {
		case "deb":
			if d.Manager != "apt" {
				t.Errorf("%s: manager %q", name, d.Manager)
			}
			if d.Field("VERSION_CODENAME") == "" && name != "ubuntu-14.04" {
				t.Errorf("%s: no VERSION_CODENAME", name)
			}
		case "rpm":
			if d.ReleaseVer == "" {
				t.Errorf("%s: no ReleaseVer", name)
			}
		default:
			t.Errorf("%s: family %q", name, d.Family)
		}
	}
	if got := Distros["ubuntu-14.04"].Field("VERSION_CODENAME"); got != "" {
		t.Errorf("ubuntu-14.04 must lack VERSION_CODENAME, has %q", got)
	}
	if got := Distros["sles-12.5"].Field("VERSION_ID"); got != "12.5" {
		t.Errorf("sles-12.5 VERSION_ID %q", got)
	}
}

func TestRealDistros(t *testing.T) {
	keys := map[string]string{LookAlikeImage.Key(): "look-alike"}
	for _, c := range []struct{ name, suite, version string }{
		{"debian-11-real", "bullseye", "11"}, {"debian-12-real", "bookworm", "12"}, {"debian-13-real", "trixie", "13"},
	} {
		d, ok := Distros[c.name]
		if !ok {
			t.Fatalf("no %s", c.name)
		}
		if d.Suite != c.suite || d.Field("VERSION_CODENAME") != c.suite || d.Field("VERSION_ID") != c.version || d.Manager != "apt" {
			t.Errorf("%s: suite %q, os-release %q", c.name, d.Suite, d.OSRelease)
		}
		if len(d.ReleaseFiles) != 0 {
			t.Errorf("%s: a real root keeps its own identity files, spec has %v", c.name, d.ReleaseFiles)
		}
		k := RealImage(d.Suite).Key()
		if other, dup := keys[k]; dup {
			t.Errorf("%s shares the image key %s with %s", c.name, k, other)
		}
		keys[k] = c.name
	}
	for name, d := range Distros {
		if d.Suite != "" && !strings.HasSuffix(name, "-real") {
			t.Errorf("%s is a real root but not named -real", name)
		}
	}
}
