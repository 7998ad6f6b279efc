package checks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
)

// writeRoot creates files (target path -> content) under a temporary root.
func writeRoot(t *testing.T, files map[string]string) sysroot.Root {
	t.Helper()
	root := sysroot.Root(t.TempDir())
	for p, content := range files {
		host := root.Path(p)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(host, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func failureCode(t *testing.T, err error) (failure.Code, string) {
	t.Helper()
	var fe *failure.Error
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want *failure.Error", err)
	}
	return fe.Code, fe.Msg
}

const meminfo1GiB = `MemTotal:         945612 kB
MemFree:          301220 kB
MemAvailable:     640000 kB
`

func TestMemory(t *testing.T) {
	root := writeRoot(t, map[string]string{"/proc/meminfo": meminfo1GiB})
	if err := Memory(root, DefaultMinMemory); err != nil {
		t.Errorf("1 GiB VM refused: %v", err)
	}

	root = writeRoot(t, map[string]string{"/proc/meminfo": "MemTotal:  524288 kB\nMemFree: 1 kB\n"})
	code, msg := failureCode(t, Memory(root, DefaultMinMemory))
	if code != failure.NotEnoughMemory || !strings.Contains(msg, "512 MiB") || !strings.Contains(msg, "1 GB") {
		t.Errorf("got %s %q", code.Name(), msg)
	}

	for name, files := range map[string]map[string]string{
		"missing":    {},
		"no line":    {"/proc/meminfo": "MemFree: 1 kB\n"},
		"bad number": {"/proc/meminfo": "MemTotal: lots kB\n"},
	} {
		err := Memory(writeRoot(t, files), DefaultMinMemory)
		if err == nil || failure.CodeOf(err) != failure.Internal {
			t.Errorf("%s: got %v, want a plain error", name, err)
		}
	}
}

func TestDiskSpace(t *testing.T) {
	root := writeRoot(t, map[string]string{"/var/lib/dpkg/status": ""})
	paths := []string{"/var/cache/apt", "/var/lib/aadsshlogin-handler/backup", "/var/lib/dpkg"}
	if err := DiskSpace(root, paths, 1); err != nil {
		t.Fatalf("1 byte needed: %v", err)
	}
	code, msg := failureCode(t, DiskSpace(root, paths, 1<<60))
	if code != failure.NotEnoughDisk {
		t.Errorf("code %s", code.Name())
	}
	for _, want := range []string{"are free on /", "/var/cache/apt, /var/lib/aadsshlogin-handler/backup, /var/lib/dpkg", "free at least"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[uint64]string{12 << 20: "12 MiB", 200 << 20: "200 MiB", 512: "0 KiB", 20 << 30: "20.0 GiB"} {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

type fakeQuerier map[string]string

func (f fakeQuerier) Installed(_ context.Context, names ...string) (map[string]string, error) {
	if v, ok := f["error"]; ok {
		return nil, errors.New(v)
	}
	out := map[string]string{}
	for _, n := range names {
		if v, ok := f[n]; ok {
			out[n] = v
		}
	}
	return out, nil
}

func TestPreflightObsolete(t *testing.T) {
	ctx := context.Background()
	pre, err := QueryPreflight(ctx, fakeQuerier{"aadsshlogin": "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pre.Obsolete("apt"); err != nil {
		t.Fatalf("clean machine: %v", err)
	}
	wants := map[string]string{
		"apt":    "dpkg --purge --force-remove-reinstreq aadlogin",
		"dnf":    "sudo dnf erase aadlogin aadlogin-selinux",
		"yum":    "sudo yum erase aadlogin aadlogin-selinux",
		"tdnf":   "sudo tdnf erase aadlogin aadlogin-selinux",
		"zypper": "sudo zypper remove aadlogin aadlogin-selinux",
		"":       "with its package manager",
	}
	pre, err = QueryPreflight(ctx, fakeQuerier{"aadlogin": "1.0.016050002", "aadlogin-selinux": "1.0.016050002"})
	if err != nil {
		t.Fatal(err)
	}
	for kind, want := range wants {
		err := pre.Obsolete(distro.PackageManager(kind))
		code, msg := failureCode(t, err)
		if code != failure.ObsoleteExtension || !strings.Contains(msg, want) ||
			!strings.Contains(msg, "az vm extension delete") || !strings.Contains(msg, "aadlogin 1.0.016050002") {
			t.Errorf("%s: %s %q", kind, code.Name(), msg)
		}
		if kind != "apt" && kind != "" && !strings.Contains(msg, "rpm -e --noscripts") {
			t.Errorf("%s: no forced removal: %q", kind, msg)
		}
		if len(msg) > 900 {
			t.Errorf("%s: message is %d characters", kind, len(msg))
		}
	}
	_, err = QueryPreflight(ctx, fakeQuerier{"error": "dpkg-query broke"})
	if err == nil || failure.CodeOf(err) != failure.Internal {
		t.Errorf("querier error: %v", err)
	}
}

// TestPreflightOpenSSH: the query that looks for the obsolete packages
// also finds the OpenSSH server's version, under either package name.
func TestPreflightOpenSSH(t *testing.T) {
	ctx := context.Background()
	for q, want := range map[string]string{
		"openssh-server": "1:9.2p1-2+deb12u3", // Debian, Ubuntu, RHEL, SLES 15
		"openssh":        "7.2p2-81.1",        // SLES 12: sshd is in openssh
		"":               "",                  // no package: sshd is asked
	} {
		fq := fakeQuerier{"openssh-client": "1:9.2p1-2+deb12u3"}
		if q != "" {
			fq[q] = want
		}
		pre, err := QueryPreflight(ctx, fq)
		if err != nil {
			t.Fatal(err)
		}
		if got := pre.OpenSSHVersion(); got != want {
			t.Errorf("%s: OpenSSHVersion() = %q, want %q", q, got, want)
		}
	}
}

func TestIsArc(t *testing.T) {
	if IsArc(writeRoot(t, nil)) {
		t.Error("empty root is Arc")
	}
	if !IsArc(writeRoot(t, map[string]string{"/opt/azcmagent/bin/himds": "#!"})) {
		t.Error("himds present but not Arc")
	}
}
