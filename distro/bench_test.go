package distro

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/aadsshlogin/handler/sysroot"
)

var benchOSRelease = []byte(`PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
`)

func BenchmarkParseOSRelease(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseOSRelease(benchOSRelease); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolve(b *testing.B) {
	osr, err := ParseOSRelease(benchOSRelease)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Resolve(osr, "amd64"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDetect reads /etc/os-release from a root on disk, as install does.
func BenchmarkDetect(b *testing.B) {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/os-release"), benchOSRelease, 0o644); err != nil {
		b.Fatal(err)
	}
	root := sysroot.Root(dir)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Detect(root); err != nil {
			b.Fatal(err)
		}
	}
}
