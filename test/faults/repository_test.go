package faults

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

const pmcHost = "packages.microsoft.com"

// TestRepository: the repository misbehaves. Every refusal leaves the
// machine as it was; the next run, with the fault gone, succeeds.
func TestRepository(t *testing.T) {
	// refused injects the fault with inject, expects exit code with a
	// message containing want, then removes it with heal and recovers.
	refused := func(code int, inject, heal func(f *fx), want ...string) func(t *testing.T, f *fx) {
		return func(t *testing.T, f *fx) {
			if inject != nil {
				inject(f)
			}
			before := f.Root.Snapshot(t)
			res, exit := f.apply(0, f.pinnedFor(), agentsim.Install)
			st := f.wantRefused(res, exit, 0, code, before, want...)
			if code == 20 && substatus(st, "NetworkDiagnosis") == "" {
				t.Errorf("no NetworkDiagnosis substatus for a download failure: %+v", st.Substatus)
			}
			if heal != nil {
				heal(f)
			}
			f.recover(1)
		}
	}
	// undone is refused for a failure after the key and the repository
	// file were written: the handler's log shows the rollback removing
	// each of them (and the key it imported into the rpm database), and
	// the status says every change was undone.
	undone := func(code int, inject, heal func(f *fx), want ...string) func(t *testing.T, f *fx) {
		return func(t *testing.T, f *fx) {
			inject(f)
			before := f.Root.Snapshot(t)
			res, exit := f.apply(0, f.pinnedFor(), agentsim.Install)
			f.wantRefused(res, exit, 0, code, before, want...)
			log := f.Root.ReadFile("/var/log/azure/" + harness.HandlerName + "/handler.log")
			steps := []string{"remove " + f.repoFile(), "remove " + f.keyring()}
			if !f.deb() {
				steps = append(steps, "remove imported key "+f.Fx.KeyFingerprint)
			}
			for _, step := range steps {
				if !strings.Contains(log, step) || !strings.Contains(log, "rolled back") {
					t.Errorf("the handler log does not show the rollback step %q: the change was not made, or not undone", step)
				}
			}
			if st := f.Status(f.h, 0); !strings.Contains(st.Message, "every change of this run was undone") {
				t.Errorf("the status does not say the changes were undone: %q", st.Message)
			}
			heal(f)
			f.recover(1)
		}
	}
	rule := func(prefix string, code int) (func(f *fx), func(f *fx)) {
		return func(f *fx) { f.Net.Repo.SetRule(prefix, code) }, func(f *fx) { f.Net.Repo.SetRule(prefix, 0) }
	}
	opts := func(o sandbox.RepoOptions) (func(f *fx), func(f *fx)) {
		return func(f *fx) { f.Net.Repo.SetOptions(o) }, func(f *fx) { f.Net.Repo.SetOptions(sandbox.RepoOptions{}) }
	}
	in404, out404 := rule("/repos/", 404)
	in403, out403 := rule("/repos/", 403)
	in500, out500 := rule("/repos/", 500)
	inRPM404, outRPM404 := rule("/rhel/", 404)
	inTrunc, outTrunc := opts(sandbox.RepoOptions{TruncatePackages: true})
	inCorrupt, outCorrupt := opts(sandbox.RepoOptions{CorruptPackages: true})
	inCert, outCert := opts(sandbox.RepoOptions{UseWrongCert: true})

	runCases(t, []faultCase{
		{
			Name:   "unreachable",
			Fault:  "packages.microsoft.com resolves to an address where nothing listens (connection refused)",
			Expect: "exit 20 naming the host and the reason, NetworkDiagnosis substatus, machine unchanged",
			Run:    refused(20, unreachable, reachable, pmcHost, "connection refused"),
		},
		{
			Name:   "http-404",
			Fault:  "the repository folder (/repos/...) answers 404; the key downloads fine",
			Expect: "key and repository file written, apt-get update fails, exit 20, everything rolled back",
			Run:    undone(20, in404, out404, "404"),
		},
		{
			Name:   "http-403",
			Fault:  "the repository folder answers 403",
			Expect: "exit 20 naming the answer, everything rolled back",
			Run:    refused(20, in403, out403, "403"),
		},
		{
			Name:   "http-500",
			Fault:  "the repository folder answers 500 (retried by apt)",
			Expect: "exit 20 naming the answer, everything rolled back",
			Run:    refused(20, in500, out500, "500"),
		},
		{
			Name: "http-404-rhel-9.4", Distro: "rhel-9.4",
			Fault:  "the repository folder (/rhel/9/prod/) answers 404 to dnf",
			Expect: "exit 20, key removed from the rpm database again, machine unchanged",
			Run:    undone(20, inRPM404, outRPM404, "404"),
		},
		{
			Name:   "slow",
			Fault:  "every answer of the repository is delayed by 2 s",
			Expect: "install succeeds (exit 0), only slower",
			Run: func(t *testing.T, f *fx) {
				f.Net.Repo.SetOptions(sandbox.RepoOptions{Delay: 2 * time.Second})
				res, exit := f.apply(0, f.pinned(), agentsim.Enable)
				if exit != 0 {
					t.Fatalf("slow repository: %v", res)
				}
				f.wantHealthy(0)
				f.Net.Repo.SetOptions(sandbox.RepoOptions{})
				f.recover(1)
			},
		},
		{
			Name:   "truncated-package",
			Fault:  ".deb files are served cut in half",
			Expect: "apt refuses the download (size mismatch), exit 20, nothing installed, machine unchanged",
			Run:    refused(20, inTrunc, outTrunc, "aadsshlogin"),
		},
		{
			Name:   "corrupted-package",
			Fault:  ".deb files are served with 64 flipped bytes",
			Expect: "apt refuses the download (hash mismatch), exit 20, nothing installed, machine unchanged",
			Run:    refused(20, inCorrupt, outCorrupt, "aadsshlogin"),
		},
		{
			Name: "corrupted-package-rhel-9.4", Distro: "rhel-9.4",
			Fault:  ".rpm files are served with 64 flipped bytes",
			Expect: "dnf refuses the download (checksum mismatch), exit 20 saying the package could not be downloaded, nothing installed, machine unchanged",
			Run:    refused(20, inCorrupt, outCorrupt, "aadsshlogin", "could not be downloaded"),
		},
		{
			Name:   "bad-repository-signature",
			Fault:  "the key served is the pinned one, but the repository metadata is signed by another key",
			Expect: "apt refuses the repository (signature), exit 25, everything rolled back",
			Run: refused(25, otherSigner, func(f *fx) {
				// apt keeps the refused InRelease in lists/partial and asks
				// for the rest with a Range request next time; the fake
				// server drops If-Range (it always answers "in full"), so
				// apt would get the stale file back. A real server honours
				// If-Range: drop apt's partial download, as its own next
				// successful fetch would.
				partial, _ := filepath.Glob(f.Root.Path("/var/lib/apt/lists/partial/packages.microsoft.com_*"))
				for _, p := range partial {
					_ = os.Remove(p)
				}
				f.Net.Repo.SetOptions(sandbox.RepoOptions{})
			}, "signature"),
		},
		{
			Name:   "unpinned-key",
			Fault:  "settings pin another fingerprint than the key the repository serves",
			Expect: "exit 25 naming both fingerprints, nothing written",
			Run: func(t *testing.T, f *fx) {
				const other = "0123456789ABCDEF0123456789ABCDEF01234567"
				before := f.Root.Snapshot(t)
				res, exit := f.apply(0, map[string]any{"signingKeyFingerprints": []string{other}}, agentsim.Install)
				f.wantRefused(res, exit, 0, 25, before, other, f.Fx.KeyFingerprint)
				f.recover(1)
			},
		},
		{
			Name:   "tls-certificate-untrusted",
			Fault:  "the repository presents a certificate chain from an unknown CA",
			Expect: "exit 20 naming the certificate problem, nothing written",
			Run:    refused(20, inCert, outCert, "certificate"),
		},
	})
}

// pinnedFor: the pinned settings (a method so refused can stay generic).
func (f *fx) pinnedFor() map[string]any { return f.pinned() }

// unreachable points packages.microsoft.com at 127.0.0.2, where nothing
// listens; reachable undoes it.
func unreachable(f *fx) {
	hosts := f.Root.ReadFile("/etc/hosts")
	f.Root.WriteFile("/etc/hosts.faults-orig", hosts, 0o644)
	var out []string
	for _, l := range strings.Split(hosts, "\n") {
		fields := strings.Fields(l)
		if len(fields) == 2 && fields[1] == pmcHost {
			l = "127.0.0.2\t" + pmcHost
		}
		out = append(out, l)
	}
	f.Root.WriteFile("/etc/hosts", strings.Join(out, "\n"), 0o644)
}

func reachable(f *fx) {
	f.Root.WriteFile("/etc/hosts", f.Root.ReadFile("/etc/hosts.faults-orig"), 0o644)
	f.Root.Remove("/etc/hosts.faults-orig")
}

// otherSigner serves, for packages.microsoft.com, the tree signed by the
// other key, but with keys/microsoft.asc being the pinned fixture key: the
// key passes the pin check, the repository's signature does not verify.
func otherSigner(f *fx) {
	dir := filepath.Join(f.t.TempDir(), "web")
	src := f.Fx.RepoDirOtherKey
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		return os.Symlink(p, dst)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	key := filepath.Join(dir, "keys", "microsoft.asc")
	if err := os.Remove(key); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(key, f.Fx.KeyArmored, 0o644); err != nil {
		f.t.Fatal(err)
	}
	f.Net.Repo.SetOptions(sandbox.RepoOptions{HostDirs: map[string]string{pmcHost: dir}})
}
