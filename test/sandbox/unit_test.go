package sandbox

import (
	"regexp"
	"strings"
	"testing"
	"time"
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

func TestRateLimitFixedWindow(t *testing.T) {
	l := &RateLimit{Limit: 3, Window: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := l.take(t0.Add(time.Duration(i) * time.Second)); !ok {
			t.Fatalf("request %d refused within the limit", i+1)
		}
	}
	ok, after := l.take(t0.Add(2500 * time.Millisecond))
	if ok || after != 8 {
		t.Errorf("4th request: ok=%v Retry-After=%d, want refused with 8 (7.5 s left, rounded up)", ok, after)
	}
	// The next window starts at t0+10s, whatever time the request comes.
	if ok, _ := l.take(t0.Add(23 * time.Second)); !ok {
		t.Error("first request of a later window refused")
	}
	l.take(t0.Add(24 * time.Second))
	l.take(t0.Add(25 * time.Second))
	if ok, after := l.take(t0.Add(29500 * time.Millisecond)); ok || after != 1 {
		t.Errorf("over the limit 0.5 s before the window ends: ok=%v Retry-After=%d", ok, after)
	}
	if l.Served() != 6 || l.Limited() != 2 {
		t.Errorf("served %d limited %d, want 6 and 2", l.Served(), l.Limited())
	}
}

func TestBurstCountsMatchingRequests(t *testing.T) {
	b := &Burst{Match: []string{"/keys/"}, Status: 429, Count: 2}
	if b.take("/repos/x/InRelease") {
		t.Error("a path that does not match was answered")
	}
	if !b.take("/keys/microsoft.asc") || !b.take("/keys/microsoft.asc") || b.take("/keys/microsoft.asc") {
		t.Error("burst of 2 did not answer exactly the first 2 matching requests")
	}
	forever := &Burst{Status: 503, Count: -1}
	for range 100 {
		if !forever.take("/any") {
			t.Fatal("a never-ending burst let a request through")
		}
	}
	if forever.Answered() != 100 {
		t.Errorf("answered %d", forever.Answered())
	}
}
