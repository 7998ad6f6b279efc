package distro

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/installer/keys"
	"github.com/aadsshlogin/handler/sysroot"
)

func TestParseOSRelease(t *testing.T) {
	data := `# comment
NAME="Ubuntu"
VERSION="22.04.4 LTS (Jammy Jellyfish)"

ID=Ubuntu
ID_LIKE='debian  Other'
PRETTY_NAME="Ubuntu \"22.04.4\" LTS \$x \\ \` + "`" + ` end"
VERSION_ID="22.04"
UBUNTU_CODENAME=jammy
not a line
BAD-KEY=1
UNTERMINATED="abc
`
	osr, err := ParseOSRelease([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := OSRelease{ID: "ubuntu", IDLike: []string{"debian", "other"}, VersionID: "22.04", Codename: "jammy",
		PrettyName: "Ubuntu \"22.04.4\" LTS $x \\ ` end"}
	if !reflect.DeepEqual(osr, want) {
		t.Fatalf("got %+v\nwant %+v", osr, want)
	}
}

func TestParseOSReleaseCodenamePreference(t *testing.T) {
	osr, err := ParseOSRelease([]byte("ID=ubuntu\r\nVERSION_CODENAME=noble\r\nUBUNTU_CODENAME=other\r\n"))
	if err != nil || osr.Codename != "noble" {
		t.Fatalf("got %+v, %v", osr, err)
	}
}

func TestParseOSReleaseEmpty(t *testing.T) {
	for _, in := range []string{"", "\n# only a comment\n", "garbage without equals", "\x00\xff"} {
		if _, err := ParseOSRelease([]byte(in)); err == nil {
			t.Errorf("%q: expected an error", in)
		}
	}
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte("ID=\"rhel\"\nVERSION_ID='8.9'\n"))
	f.Add([]byte("A=\"\\"))
	f.Add([]byte("A='"))
	f.Fuzz(func(t *testing.T, data []byte) {
		osr, err := ParseOSRelease(data)
		if err == nil && osr.ID != strings.ToLower(osr.ID) {
			t.Fatalf("ID not lower case: %q", osr.ID)
		}
		_, _ = Resolve(osr, "amd64")
	})
}

func writeFile(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDetect(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]string
		id, ver string
		source  string
	}{
		{"etc", map[string]string{"/etc/os-release": "ID=debian\nVERSION_ID=12\n", "/usr/lib/os-release": "ID=other\n"}, "debian", "12", "/etc/os-release"},
		{"usrlib", map[string]string{"/usr/lib/os-release": "ID=sles\nVERSION_ID=\"15.5\"\n"}, "sles", "15.5", "/usr/lib/os-release"},
		{"broken etc falls through", map[string]string{"/etc/os-release": "junk", "/usr/lib/os-release": "ID=rhel\nVERSION_ID=9.4\n"}, "rhel", "9.4", "/usr/lib/os-release"},
		{"centos-release", map[string]string{"/etc/centos-release": "CentOS Linux release 7.9.2009 (Core)\n"}, "centos", "7.9", "/etc/centos-release"},
		{"redhat-release", map[string]string{"/etc/redhat-release": "Red Hat Enterprise Linux Server release 7.6 (Maipo)\n"}, "rhel", "7.6", "/etc/redhat-release"},
		{"redhat-release centos", map[string]string{"/etc/redhat-release": "CentOS Linux release 8.5.2111\n"}, "centos", "8.5", "/etc/redhat-release"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for p, content := range c.files {
				writeFile(t, root, p, content)
			}
			osr, err := Detect(sysroot.Root(root))
			if err != nil {
				t.Fatal(err)
			}
			if osr.ID != c.id || osr.VersionID != c.ver || osr.Source != c.source {
				t.Fatalf("got %+v", osr)
			}
		})
	}
}

func TestDetectNothing(t *testing.T) {
	_, err := Detect(sysroot.Root(t.TempDir()))
	var fe *failure.Error
	if !errors.As(err, &fe) || fe.Code != failure.Unsupported {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(fe.Msg, "/etc/os-release") || !strings.Contains(fe.Msg, LearnMoreURL) {
		t.Fatalf("message: %s", fe.Msg)
	}
}

func TestResolveSupported(t *testing.T) {
	cases := []struct {
		osr  OSRelease
		arch string
		want Platform
	}{
		{OSRelease{ID: "ubuntu", VersionID: "16.04", Codename: "xenial"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyDebian, PackageManager: Apt, Flavor: "ubuntu", Major: "16", Codename: "xenial", SELinuxPolicyPackage: "selinux-policy-default", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "ubuntu", VersionID: "18.04"}, "arm64",
			Platform{Arch: "arm64", Family: FamilyDebian, PackageManager: Apt, Flavor: "ubuntu", Major: "18", Codename: "bionic", SELinuxPolicyPackage: "selinux-policy-default", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "ubuntu", VersionID: "23.10", Codename: "mantic"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyDebian, PackageManager: Apt, Flavor: "ubuntu", Major: "23", Codename: "mantic", SELinuxPolicyPackage: "selinux-policy-default", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "ubuntu", VersionID: "24.04"}, "x86_64",
			Platform{Arch: "amd64", Family: FamilyDebian, PackageManager: Apt, Flavor: "ubuntu", Major: "24", Codename: "noble", SELinuxPolicyPackage: "selinux-policy-default", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "debian", VersionID: "9"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyDebian, PackageManager: Apt, Flavor: "debian", Major: "9", Codename: "stretch", SELinuxPolicyPackage: "selinux-policy-default", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "debian", VersionID: "12", Codename: "bookworm"}, "arm64",
			Platform{Arch: "arm64", Family: FamilyDebian, PackageManager: Apt, Flavor: "debian", Major: "12", Codename: "bookworm", SELinuxPolicyPackage: "selinux-policy-default", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "rhel", VersionID: "7.4"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Yum, Flavor: "rhel", Major: "7", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "rhel", VersionID: "8.10"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "rhel", Major: "8", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "rhel", VersionID: "9.0"}, "arm64",
			Platform{Arch: "arm64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "rhel", Major: "9", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "centos", VersionID: "7"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Yum, Flavor: "centos", FallbackFlavor: "rhel", Major: "7", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "centos", VersionID: "8"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "centos", FallbackFlavor: "rhel", Major: "8", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "almalinux", VersionID: "9.4"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "almalinux", FallbackFlavor: "rhel", Major: "9", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "rocky", VersionID: "8.9"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "rocky", FallbackFlavor: "rhel", Major: "8", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "ol", VersionID: "8.10"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "ol", FallbackFlavor: "rhel", Major: "8", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "sles", VersionID: "12.5"}, "amd64",
			Platform{Arch: "amd64", Family: FamilySUSE, PackageManager: Zypper, Flavor: "sles", Major: "12", SELinuxPolicyPackage: "selinux-policy-minimum", PinnedVersion: "1.0.027980001", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "sles_sap", VersionID: "15.5"}, "amd64",
			Platform{Arch: "amd64", Family: FamilySUSE, PackageManager: Zypper, Flavor: "sles", Major: "15", SELinuxPolicyPackage: "selinux-policy-targeted", PinnedVersion: "1.0.027980001", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "sles", VersionID: "15-SP6"}, "amd64",
			Platform{Arch: "amd64", Family: FamilySUSE, PackageManager: Zypper, Flavor: "sles", Major: "15", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "opensuse-leap", VersionID: "15.6"}, "amd64",
			Platform{Arch: "amd64", Family: FamilySUSE, PackageManager: Zypper, Flavor: "opensuse", FallbackFlavor: "sles", Major: "15", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "opensuse", VersionID: "42.3"}, "amd64",
			Platform{Arch: "amd64", Family: FamilySUSE, PackageManager: Zypper, Flavor: "opensuse", FallbackFlavor: "sles", Major: "42", SELinuxPolicyPackage: "selinux-policy-minimum", PinnedVersion: "1.0.027980001", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "mariner", VersionID: "2.0"}, "arm64",
			Platform{Arch: "arm64", Family: FamilyMariner, PackageManager: Tdnf, Flavor: "cbl-mariner", Major: "2.0", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		{OSRelease{ID: "azurelinux", VersionID: "3.0"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyAzureLinux, PackageManager: Tdnf, Flavor: "azurelinux", Major: "3.0", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft.asc"}},
		// RHEL 10 and its rebuilds: PMC's 2025 key; the rebuilds are not in
		// Microsoft's published table.
		{OSRelease{ID: "rhel", VersionID: "10.1"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "rhel", Major: "10", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft-2025.asc"}},
		{OSRelease{ID: "rhel", VersionID: "10.0"}, "arm64",
			Platform{Arch: "arm64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "rhel", Major: "10", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft-2025.asc"}},
		{OSRelease{ID: "almalinux", VersionID: "10.0"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "almalinux", FallbackFlavor: "rhel", Major: "10", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft-2025.asc", Listing: RebuildNotListed}},
		{OSRelease{ID: "rocky", VersionID: "10.1"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "rocky", FallbackFlavor: "rhel", Major: "10", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft-2025.asc", Listing: RebuildNotListed}},
		{OSRelease{ID: "ol", VersionID: "10.0"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "ol", FallbackFlavor: "rhel", Major: "10", SELinuxPolicyPackage: "selinux-policy-targeted", KeyFile: "microsoft-2025.asc", Listing: RebuildNotListed}},
		// Releases newer than the table: the newest range's package
		// manager, no pin, no known key (every published key is tried).
		{OSRelease{ID: "debian", VersionID: "13", Codename: "trixie"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyDebian, PackageManager: Apt, Flavor: "debian", Major: "13", Codename: "trixie", SELinuxPolicyPackage: "selinux-policy-default", Listing: Newer}},
		{OSRelease{ID: "debian", VersionID: "14"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyDebian, PackageManager: Apt, Flavor: "debian", Major: "14", Codename: "forky", SELinuxPolicyPackage: "selinux-policy-default", Listing: Newer}},
		{OSRelease{ID: "ubuntu", VersionID: "25.10", Codename: "questing"}, "arm64",
			Platform{Arch: "arm64", Family: FamilyDebian, PackageManager: Apt, Flavor: "ubuntu", Major: "25", Codename: "questing", SELinuxPolicyPackage: "selinux-policy-default", Listing: Newer}},
		{OSRelease{ID: "ubuntu", VersionID: "26.04"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyDebian, PackageManager: Apt, Flavor: "ubuntu", Major: "26", Codename: "resolute", SELinuxPolicyPackage: "selinux-policy-default", Listing: Newer}},
		{OSRelease{ID: "rhel", VersionID: "11.0"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyRHEL, PackageManager: Dnf, Flavor: "rhel", Major: "11", SELinuxPolicyPackage: "selinux-policy-targeted", Listing: Newer}},
		{OSRelease{ID: "sles", VersionID: "16.0"}, "amd64",
			Platform{Arch: "amd64", Family: FamilySUSE, PackageManager: Zypper, Flavor: "sles", Major: "16", SELinuxPolicyPackage: "selinux-policy-targeted", Listing: Newer}},
		{OSRelease{ID: "opensuse-leap", VersionID: "16.0"}, "amd64",
			Platform{Arch: "amd64", Family: FamilySUSE, PackageManager: Zypper, Flavor: "opensuse", FallbackFlavor: "sles", Major: "16", SELinuxPolicyPackage: "selinux-policy-targeted", Listing: Newer}},
		{OSRelease{ID: "azurelinux", VersionID: "3.1"}, "amd64",
			Platform{Arch: "amd64", Family: FamilyAzureLinux, PackageManager: Tdnf, Flavor: "azurelinux", Major: "3.1", SELinuxPolicyPackage: "selinux-policy-targeted", Listing: Newer}},
	}
	for _, c := range cases {
		t.Run(c.osr.ID+"-"+c.osr.VersionID+"-"+c.arch, func(t *testing.T) {
			got, err := Resolve(c.osr, c.arch)
			if err != nil {
				t.Fatal(err)
			}
			c.want.OS = c.osr
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestResolveUnsupported(t *testing.T) {
	cases := []struct {
		osr  OSRelease
		arch string
		want string
	}{
		{OSRelease{ID: "fedora", VersionID: "39", PrettyName: "Fedora Linux 39 (Workstation Edition)"}, "amd64",
			"Unsupported Linux distribution: detected Fedora Linux 39 (Workstation Edition) (ID=fedora, VERSION_ID=39). Supported: Ubuntu 16.04–24.04; Debian 9–12; RHEL 7.4–7.9, 8.3+, 9.x, 10.x;"},
		{OSRelease{ID: "fedora", VersionID: "43"}, "amd64", "and newer releases of these distributions once packages.microsoft.com offers aadsshlogin"},
		{OSRelease{ID: "ubuntu", VersionID: "14.04"}, "amd64", "detected ubuntu 14.04 (ID=ubuntu, VERSION_ID=14.04)"},
		// Newer than the table, but apt needs the codename.
		{OSRelease{ID: "ubuntu", VersionID: "24.10"}, "amd64", "VERSION_ID=24.10"},
		{OSRelease{ID: "ubuntu", VersionID: "23.04"}, "amd64", "codename"},
		{OSRelease{ID: "debian", VersionID: "15"}, "amd64", "codename"},
		{OSRelease{ID: "debian"}, "amd64", "ID=debian"},
		{OSRelease{ID: "rhel", VersionID: "7.3"}, "amd64", "VERSION_ID=7.3"},
		{OSRelease{ID: "rhel", VersionID: "8.2"}, "amd64", "VERSION_ID=8.2"},
		{OSRelease{ID: "rhel", VersionID: "6.10"}, "amd64", "VERSION_ID=6.10"},
		// CentOS Linux ended with 8: CentOS Stream is not a newer CentOS.
		{OSRelease{ID: "centos", VersionID: "9"}, "amd64", "VERSION_ID=9"},
		{OSRelease{ID: "sles", VersionID: "11.4"}, "amd64", "VERSION_ID=11.4"},
		// Leap 42.x came before 15: 42.2 is old, not newer than 15.
		{OSRelease{ID: "opensuse-leap", VersionID: "42.2"}, "amd64", "VERSION_ID=42.2"},
		{OSRelease{ID: "opensuse-tumbleweed", VersionID: "20240101"}, "amd64", "opensuse-tumbleweed"},
		{OSRelease{ID: "mariner", VersionID: "1.0"}, "amd64", "VERSION_ID=1.0"},
		{OSRelease{ID: "flatcar", VersionID: "3815.2.0"}, "amd64", "flatcar"},
		{OSRelease{}, "amd64", "an unknown distribution"},
		{OSRelease{ID: "ubuntu", VersionID: "22.04"}, "ppc64le", "Unsupported processor architecture: detected \"ppc64le\""},
		{OSRelease{ID: "ubuntu", VersionID: "22.04", Codename: "jam my"}, "amd64", "codename"},
	}
	for _, c := range cases {
		_, err := Resolve(c.osr, c.arch)
		var fe *failure.Error
		if !errors.As(err, &fe) || fe.Code != failure.Unsupported {
			t.Errorf("%+v: got %v", c.osr, err)
			continue
		}
		if !strings.Contains(fe.Msg, c.want) || !strings.HasSuffix(fe.Msg, "Learn more at "+LearnMoreURL) {
			t.Errorf("%+v: message %q lacks %q", c.osr, fe.Msg, c.want)
		}
	}
}

func TestRPMArch(t *testing.T) {
	if (Platform{Arch: "amd64"}).RPMArch() != "x86_64" || (Platform{Arch: "arm64"}).RPMArch() != "aarch64" {
		t.Fatal("wrong rpm arch")
	}
}

func TestSupportMatrixIsACopy(t *testing.T) {
	m := SupportMatrix()
	m[0].IDs[0] = "changed"
	m[0].Releases[0].From = "1.0"
	if SupportMatrix()[0].IDs[0] != "ubuntu" || SupportMatrix()[0].Releases[0].From != "16.04" {
		t.Fatal("SupportMatrix shares state")
	}
	for _, row := range m {
		if row.Name == "" || len(row.IDs) == 0 || row.Versions == "" || row.Flavor == "" || len(row.Releases) == 0 {
			t.Errorf("incomplete row %+v", row)
		}
		for _, rel := range row.Releases {
			if _, _, ok := parseVersion(rel.From); !ok || rel.PackageManager == "" {
				t.Errorf("bad release %+v in %s", rel, row.Name)
			}
		}
	}
}

// TestKeyFilesArePublished: every key the table names is one that
// packages.microsoft.com publishes (installer/keys), so a release can never
// ask for a key the handler does not know the fingerprint of.
func TestKeyFilesArePublished(t *testing.T) {
	for _, row := range SupportMatrix() {
		for _, rel := range row.Releases {
			f := rel.KeyFile
			if f == "" {
				f = defaultKeyFile
			}
			if !keys.IsPublishedFile(f) {
				t.Errorf("%s %s–%s names key %q, which installer/keys does not list", row.Name, rel.From, rel.To, f)
			}
		}
	}
}
