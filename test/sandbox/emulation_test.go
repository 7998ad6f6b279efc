package sandbox

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Entries as /proc/sys/fs/binfmt_misc shows them after Debian's
// qemu-user-static registered them.
const (
	binfmtAArch64 = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	binfmtARM = "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: PF\noffset 0\n" +
		"magic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
)

func TestCanRunChecksBinfmt(t *testing.T) {
	cases := []struct {
		name    string
		status  string            // "" = binfmt_misc not mounted
		entries map[string]string // name -> content
		want    string            // "" = usable, else part of the error
	}{
		{"registered", "enabled", map[string]string{"qemu-aarch64": binfmtAArch64, "qemu-arm": binfmtARM}, ""},
		{"not mounted", "", nil, "not mounted"},
		{"binfmt_misc disabled", "disabled", map[string]string{"qemu-aarch64": binfmtAArch64}, "disabled"},
		{"nothing for aarch64", "enabled", map[string]string{"qemu-arm": binfmtARM}, "qemu-user-static not installed or not registered"},
		{"handler disabled", "enabled", map[string]string{"qemu-aarch64": strings.Replace(binfmtAArch64, "enabled", "disabled", 1)}, "qemu-aarch64 is disabled"},
		{"no F flag", "enabled", map[string]string{"qemu-aarch64": strings.Replace(binfmtAArch64, "flags: PF", "flags: P", 1)}, "lacks the F flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.status != "" {
				if err := os.WriteFile(filepath.Join(dir, "status"), []byte(c.status+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "register"), nil, 0o200); err != nil {
					t.Fatal(err)
				}
			}
			for name, content := range c.entries {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := canRunWith(dir, "arm64")
			switch {
			case c.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("error %v, want one saying %q", err, c.want)
			case c.want != "" && !strings.Contains(err.Error(), "qemu-user-static"):
				t.Errorf("error does not say what to install: %v", err)
			}
		})
	}
	if err := CanRun(runtime.GOARCH); err != nil {
		t.Errorf("the host's own architecture: %v", err)
	}
	if err := CanRun("mips"); err == nil {
		t.Error("an unknown architecture was accepted")
	}
}

func TestELFArch(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ELFArch(exe); err != nil || got != runtime.GOARCH {
		t.Errorf("ELFArch(test binary) = %q, %v; want %s", got, err, runtime.GOARCH)
	}
	if _, err := ELFArch("emulation_test.go"); err == nil {
		t.Error("a Go source file was taken for a program")
	}
	if UnameMachine("arm64") != "aarch64" || UnameMachine("amd64") != "x86_64" {
		t.Error("uname machine names")
	}
}

// TestImageSpecs: each architecture has its own cache entry and mmdebstrap
// is told which one to build.
func TestImageSpecs(t *testing.T) {
	host, arm := HostImage(), ImageSpec{Arch: "arm64"}
	if host.Arch != runtime.GOARCH {
		t.Errorf("HostImage().Arch = %q", host.Arch)
	}
	if runtime.GOARCH != "arm64" && (host.Key() == arm.Key() || host.Dir() == arm.Dir()) {
		t.Errorf("amd64 and arm64 images share the cache entry %s", host.Dir())
	}
	if !slices.Contains(arm.args(), "--arch=arm64") {
		t.Errorf("mmdebstrap options %v lack --arch=arm64", arm.args())
	}
	if runtime.GOARCH != "arm64" && !slices.Contains(arm.buildTools(), "arch-test") {
		t.Errorf("building a foreign image needs arch-test (mmdebstrap refuses without it): %v", arm.buildTools())
	}
	if slices.Contains(host.buildTools(), "arch-test") {
		t.Errorf("the host image does not need arch-test: %v", host.buildTools())
	}
	// One spec type and one key scheme for suites and architectures: the
	// zero fields are the look-alike image's, the arch is always in the
	// key, and a real root of another architecture is another entry.
	if arm.Key() != LookAlikeImage.On("arm64").Key() {
		t.Error("ImageSpec{Arch: arm64} is not the arm64 look-alike image")
	}
	if (ImageSpec{}).Key() != host.Key() || LookAlikeImage.Key() != host.Key() {
		t.Error("the zero ImageSpec and LookAlikeImage are not the host's look-alike image")
	}
	if !slices.Contains(host.args(), "--arch="+runtime.GOARCH) {
		t.Errorf("mmdebstrap options %v lack --arch=%s", host.args(), runtime.GOARCH)
	}
	real, realArm := RealImage("trixie"), RealImage("trixie").On("arm64")
	if real.Key() == host.Key() || real.Key() == realArm.Key() || realArm.Key() == arm.Key() {
		t.Error("real roots share a cache entry with another image")
	}
	if real.String() != "trixie/"+runtime.GOARCH || arm.String() != ImageSuite+"/arm64" {
		t.Errorf("image names %q, %q", real, arm)
	}
}
