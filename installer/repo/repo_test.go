package repo

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/sysroot"
)

// Set AADSSH_UPDATE_GOLDEN=1 to rewrite testdata/golden after reviewing a
// deliberate change.
const updateEnv = "AADSSH_UPDATE_GOLDEN"

func platform(t *testing.T, id, version, codename, arch string) distro.Platform {
	t.Helper()
	p, err := distro.Resolve(distro.OSRelease{ID: id, VersionID: version, Codename: codename}, arch)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildGolden(t *testing.T) {
	type dist struct {
		name, id, version, codename, arch string
		flavor                            string // "" = the platform's
	}
	dists := []dist{
		{"ubuntu-16.04-amd64", "ubuntu", "16.04", "xenial", "amd64", ""},
		{"ubuntu-18.04-amd64", "ubuntu", "18.04", "bionic", "amd64", ""},
		{"ubuntu-18.04-arm64", "ubuntu", "18.04", "bionic", "arm64", ""},
		{"ubuntu-22.04-amd64", "ubuntu", "22.04", "jammy", "amd64", ""},
		{"ubuntu-24.04-arm64", "ubuntu", "24.04", "noble", "arm64", ""},
		{"debian-9-amd64", "debian", "9", "stretch", "amd64", ""},
		{"debian-12-amd64", "debian", "12", "bookworm", "amd64", ""},
		{"rhel-7.9-amd64", "rhel", "7.9", "", "amd64", ""},
		{"rhel-8.10-amd64", "rhel", "8.10", "", "amd64", ""},
		{"rhel-9.4-arm64", "rhel", "9.4", "", "arm64", ""},
		{"centos-7-amd64", "centos", "7", "", "amd64", ""},
		{"centos-8-amd64-fallback", "centos", "8", "", "amd64", "rhel"},
		{"almalinux-9.4-amd64", "almalinux", "9.4", "", "amd64", ""},
		{"rocky-9.3-amd64-fallback", "rocky", "9.3", "", "amd64", "rhel"},
		{"ol-8.10-amd64-fallback", "ol", "8.10", "", "amd64", "rhel"},
		{"sles-12.5-amd64", "sles", "12.5", "", "amd64", ""},
		{"sles-15.5-amd64", "sles", "15.5", "", "amd64", ""},
		{"sles-15.6-arm64", "sles", "15.6", "", "arm64", ""},
		{"opensuse-leap-15.5-amd64", "opensuse-leap", "15.5", "", "amd64", ""},
		{"opensuse-42.3-amd64-fallback", "opensuse", "42.3", "", "amd64", "sles"},
		{"mariner-2.0-amd64", "mariner", "2.0", "", "amd64", ""},
		{"azurelinux-3.0-arm64", "azurelinux", "3.0", "", "arm64", ""},
	}
	clouds := []struct {
		name string
		loc  Location
	}{
		{"public", Location{Base: DefaultBase}},
		{"usnat", Location{Base: "https://repodepot.azure.eaglex.ic.gov", Prefix: "/microsoft"}},
		{"mirror", Location{Base: "https://mirror.example.com/pmc"}},
	}
	update := os.Getenv(updateEnv) == "1"
	for _, d := range dists {
		for _, c := range clouds {
			name := d.name + "." + c.name
			t.Run(name, func(t *testing.T) {
				p := platform(t, d.id, d.version, d.codename, d.arch)
				flavor := d.flavor
				if flavor == "" {
					flavor = p.Flavor
				}
				def, err := Build(p, c.loc, flavor)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(def.Content, []byte(Header+"\n")) {
					t.Fatal("content does not start with the header")
				}
				if !bytes.Contains(def.Content, []byte(def.RepoURL)) || !bytes.Contains(def.Content, []byte(def.KeyringPath)) {
					t.Fatal("content does not reference RepoURL and KeyringPath")
				}
				if !strings.HasPrefix(def.RepoURL, c.loc.Base+c.loc.Prefix+"/") {
					t.Fatalf("RepoURL %s not under the location", def.RepoURL)
				}
				switch p.PackageManager {
				case distro.Apt:
					if def.Path != AptListPath || def.KeyringPath != AptKeyringPath || def.RepoID != "" {
						t.Fatalf("apt paths: %+v", def)
					}
				case distro.Zypper:
					if def.Path != ZypperRepoPath || def.KeyringPath != RPMKeyPath || def.RepoID != RepoID {
						t.Fatalf("zypper paths: %+v", def)
					}
				default:
					if def.Path != YumRepoPath || def.KeyringPath != RPMKeyPath || def.RepoID != RepoID {
						t.Fatalf("rpm paths: %+v", def)
					}
				}
				got := "# Path: " + def.Path + "\n# RepoURL: " + def.RepoURL + "\n" + string(def.Content)
				golden := filepath.Join("testdata", "golden", name)
				if update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with %s=1 to create)", err, updateEnv)
				}
				if got != string(want) {
					t.Fatalf("content differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
				}
			})
		}
	}
}

func TestBuildSpotChecks(t *testing.T) {
	pub := Location{Base: DefaultBase}
	def, err := Build(platform(t, "ubuntu", "18.04", "bionic", "arm64"), pub, "ubuntu")
	if err != nil {
		t.Fatal(err)
	}
	wantLine := "deb [arch=arm64 signed-by=/etc/apt/keyrings/microsoft-aadsshlogin.gpg] https://packages.microsoft.com/repos/microsoft-ubuntu-bionic-multiarch-prod bionic main\n"
	if string(def.Content) != Header+"\n"+wantLine {
		t.Fatalf("got %q", def.Content)
	}
	def, err = Build(platform(t, "rhel", "9.4", "", "amd64"), Location{Base: "https://repodepot.azure.microsoft.scloud", Prefix: "/microsoft"}, "rhel")
	if err != nil {
		t.Fatal(err)
	}
	want := Header + `
[packages-microsoft-com-prod]
name=packages-microsoft-com-prod
baseurl=https://repodepot.azure.microsoft.scloud/microsoft/rhel/9/prod/
enabled=1
gpgcheck=1
repo_gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/microsoft-aadsshlogin.asc
sslverify=1
`
	if string(def.Content) != want {
		t.Fatalf("got %s", def.Content)
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	p := platform(t, "rhel", "9.4", "", "amd64")
	for _, c := range []struct {
		loc    Location
		flavor string
	}{
		{Location{Base: "https://x\n[evil]"}, "rhel"},
		{Location{Base: DefaultBase, Prefix: "/a b"}, "rhel"},
		{Location{Base: DefaultBase}, ""},
		{Location{Base: DefaultBase}, "../etc"},
	} {
		if _, err := Build(p, c.loc, c.flavor); err == nil {
			t.Errorf("%+v %q: expected an error", c.loc, c.flavor)
		}
	}
	if _, err := Build(distro.Platform{PackageManager: "pacman", Family: "arch"}, Location{Base: DefaultBase}, "arch"); err == nil {
		t.Error("unknown package manager accepted")
	}
}

// TestBuildRefusesHostileLocations: a base or prefix with a character that
// means something in a repository file never reaches one, for every back
// end's file (apt .list, dnf/yum/tdnf .repo, zypper .repo), whether it
// comes from the settings (which refuse it first) or from anywhere else.
func TestBuildRefusesHostileLocations(t *testing.T) {
	platforms := map[string]distro.Platform{
		"apt":    platform(t, "ubuntu", "22.04", "jammy", "amd64"),
		"dnf":    platform(t, "rhel", "9.4", "", "amd64"),
		"yum":    platform(t, "rhel", "7.9", "", "amd64"),
		"tdnf":   platform(t, "azurelinux", "3.0", "", "amd64"),
		"zypper": platform(t, "sles", "15.6", "", "amd64"),
	}
	hostile := []Location{
		{Base: "https://m.example/pmc,file:///var/tmp/r"},
		{Base: "https://m.example/pmc,http://evil.example/pmc"},
		{Base: "https://m.example/pmc file:///var/tmp/r"},
		{Base: "https://m.example/pmc\tfile:///var/tmp/r"},
		{Base: "https://m.example/pmc\n[evil]\nbaseurl=file:///var/tmp/r"},
		{Base: "https://m.example/pmc\rgpgcheck=0"},
		{Base: "https://m.example/$releasever"},
		{Base: "https://m.example/${x}"},
		{Base: "https://m.example/pmc%2Cfile:///var/tmp/r"},
		{Base: "https://m.example/pmc]"},
		{Base: "[trusted=yes] https://m.example/pmc"},
		{Base: "https://m.example/pmc#"},
		{Base: "https://m.example/pmc;x"},
		{Base: "https://m.example/pmc?x=1"},
		{Base: "https://user@m.example/pmc"},
		{Base: "https://m.example/p:mc"},
		{Base: "http://m.example/pmc"},
		{Base: "file:///var/tmp/r"},
		{Base: "https://"},
		{Base: "https:///pmc"},
		{Base: ""},
		{Base: DefaultBase, Prefix: "/microsoft,file:///var/tmp/r"},
		{Base: DefaultBase, Prefix: "/$basearch"},
		{Base: DefaultBase, Prefix: "/a b"},
		{Base: DefaultBase, Prefix: "microsoft"},
		{Base: DefaultBase, Prefix: "/a:b"},
	}
	for kind, p := range platforms {
		for _, loc := range hostile {
			def, err := Build(p, loc, p.Flavor)
			if err == nil {
				t.Errorf("%s: Build accepted %q %q:\n%s", kind, loc.Base, loc.Prefix, def.Content)
			}
		}
		// What a mirror's URL needs is accepted, and the file names it on
		// exactly one line.
		loc := Location{Base: "https://Mirror-1.example.com:8443/a_b/c.d/~e"}
		def, err := Build(p, loc, p.Flavor)
		if err != nil {
			t.Errorf("%s: %v", kind, err)
			continue
		}
		if n := strings.Count(string(def.Content), loc.Base); n != 1 {
			t.Errorf("%s: base appears %d times:\n%s", kind, n, def.Content)
		}
	}
}

func writeRepo(t *testing.T, root, name, content string) {
	t.Helper()
	dir := filepath.Join(root, "etc/yum.repos.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindReusable(t *testing.T) {
	az := platform(t, "azurelinux", "3.0", "", "amd64")
	mariner := platform(t, "mariner", "2.0", "", "arm64")
	rhel := platform(t, "rhel", "9.4", "", "amd64")

	root := t.TempDir()
	writeRepo(t, root, "azurelinux-official-base.repo", "[azurelinux-official-base]\nname=base\nbaseurl=https://packages.microsoft.com/azurelinux/$releasever/prod/base/$basearch\nenabled=1\n")
	writeRepo(t, root, "azurelinux-ms-non-oss.repo", `# shipped by the image
[azurelinux-official-ms-non-oss]
name=Azure Linux Official Microsoft Non-OSS $releasever $basearch
baseurl=https://packages.microsoft.com/azurelinux/$releasever/prod/ms-non-oss/$basearch
gpgkey=file:///usr/share/distribution-gpg-keys/azure-linux/MICROSOFT-RPM-GPG-KEY
gpgcheck=1
repo_gpgcheck=1
enabled = 1
`)
	r := sysroot.Root(root)
	if id, ok := FindReusable(r, az); !ok || id != "azurelinux-official-ms-non-oss" {
		t.Fatalf("azurelinux: %q %v", id, ok)
	}
	if _, ok := FindReusable(r, mariner); ok {
		t.Fatal("mariner found a repository that is not there")
	}
	if _, ok := FindReusable(r, rhel); ok {
		t.Fatal("rhel never reuses")
	}
	def, err := Build(mariner, Location{Base: DefaultBase}, mariner.Flavor)
	if err != nil || def.Reuse || !strings.Contains(string(def.Content), "baseurl=https://packages.microsoft.com/cbl-mariner/2.0/prod/extras/aarch64\n") {
		t.Fatalf("mariner without its repository: %+v %v", def, err)
	}

	// Disabled, and the section id only as a value elsewhere.
	root2 := t.TempDir()
	writeRepo(t, root2, "mariner-official-extras.repo", "[mariner-official-extras]\nname=x\nenabled=0\n[other]\nenabled=1\n")
	if _, ok := FindReusable(sysroot.Root(root2), mariner); ok {
		t.Fatal("disabled repository reused")
	}
	writeRepo(t, root2, "z.repo", "[mariner-official-extras]\nname=x\nbaseurl=https://packages.microsoft.com/cbl-mariner/2.0/prod/extras/$basearch\n")
	if id, ok := FindReusable(sysroot.Root(root2), mariner); !ok || id != "mariner-official-extras" {
		t.Fatal("enabled (by default) repository not found")
	}
	if _, ok := FindReusable(sysroot.Root(t.TempDir()), az); ok {
		t.Fatal("found in an empty root")
	}
}

func TestSectionEnabled(t *testing.T) {
	cases := map[string]bool{
		"[a]\n":                    true,
		"[a]\nenabled=1\n":         true,
		"[a]\nenabled=False\n":     false,
		"[ a ]\nenabled=no\n[b]\n": false,
		"[b]\nenabled=1\n":         false,
		";[a]\n#[a]\n":             false,
		"[a]\nenabled=0\n[a2]\n":   false,
	}
	for in, want := range cases {
		if got := sectionEnabled([]byte(in), "a"); got != want {
			t.Errorf("%q: got %v", in, got)
		}
	}
}
