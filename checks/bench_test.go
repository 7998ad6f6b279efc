package checks

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/sshdconfig"
	"github.com/aadsshlogin/handler/sysroot"
)

var benchMeminfo = []byte(`MemTotal:        4005236 kB
MemFree:          221340 kB
MemAvailable:    2903420 kB
Buffers:          160532 kB
Cached:          2415072 kB
SwapCached:            0 kB
Active:          1480220 kB
Inactive:        1897348 kB
`)

func BenchmarkMemTotal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := memTotal(benchMeminfo); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSSHDConfig is Debian's default sshd_config plus an Include with a
// Match block, the shape the pre-flight check reads on most images.
const benchSSHDConfig = `Include /etc/ssh/sshd_config.d/*.conf
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem	sftp	/usr/lib/openssh/sftp-server
`

const benchSSHDDropIn = `PasswordAuthentication no
PubkeyAuthentication yes
Match Group admins
	AllowTcpForwarding yes
`

func benchSSHDRoot(b *testing.B) sysroot.Root {
	dir := b.TempDir()
	files := map[string]string{
		"etc/ssh/sshd_config":                 benchSSHDConfig,
		"etc/ssh/sshd_config.d/50-cloud.conf": benchSSHDDropIn,
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return sysroot.Root(dir)
}

// BenchmarkSSHDWarnings reads sshd_config with its Includes and asks a
// (fake) sshd for its version, as install does before changing anything
// when no OpenSSH package tells the version.
func BenchmarkSSHDWarnings(b *testing.B) {
	root := benchSSHDRoot(b)
	run := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"sshd -V": {Result: cmdrun.Result{Stderr: []byte("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024\n")}},
	}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		SSHDWarnings(ctx, run, root, "")
		run.Calls = run.Calls[:0]
	}
}

func BenchmarkParseSSHDConfig(b *testing.B) {
	root := benchSSHDRoot(b)
	data := []byte(benchSSHDConfig)
	b.ReportAllocs()
	for b.Loop() {
		configWarnings(sshdconfig.Parse(root, data).Directives)
	}
}

func BenchmarkParseOpenSSHVersion(b *testing.B) {
	out := strings.Repeat("usage: sshd [-46DdeGiqTt] [-C connection_spec]\n", 3) + "OpenSSH_8.9p1 Ubuntu-3ubuntu0.10, OpenSSL 3.0.2 15 Mar 2022\n"
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := ParseOpenSSHVersion(out); !ok {
			b.Fatal("not parsed")
		}
	}
}
