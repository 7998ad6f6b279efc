package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/fixtures"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// TestNoManagedIdentity: IMDS answers "Identity not found" for the whole
// window (2 minutes: a new identity takes a while to appear) → exit 22, the
// fix in the message, nothing changed.
func TestNoManagedIdentity(t *testing.T) {
	t.Parallel() // waits out the identity window
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "ubuntu-22.04", sandbox.NetworkOptions{IMDS: sandbox.IMDSOptions{Identity: sandbox.IdentityMissing}})
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		before := w.Baseline()
		res, err := w.Apply(h, 0, w.Pinned())
		if err == nil || lastExit(t, res, agentsim.Install) != 22 {
			t.Fatalf("want exit 22, got %v (%v)", verbs(res), err)
		}
		st := w.WantStatus(h, 0, "error", 22)
		if !strings.Contains(st.Message, "az vm identity assign") || !strings.Contains(st.Message, "az vmss identity assign") {
			t.Errorf("message lacks the fix: %q", st.Message)
		}
		if n := w.Net.IMDS.TokenRequests(); n < 3 {
			t.Errorf("identity asked only %d times: the handler must keep asking within the window", n)
		}
		for _, r := range w.Net.IMDS.Requests() {
			if r.Metadata != "true" || r.Proxied {
				t.Errorf("IMDS request without Metadata header or through a proxy: %+v", r)
			}
		}
		if len(w.Net.Repo.Requests()) != 0 {
			t.Errorf("the repository was contacted before the identity check passed: %v", w.Net.Repo.Requests())
		}
		w.WantUnchangedSince(before)
	})
}

// TestIdentityAppearsDuringWindow: a newly assigned identity shows up after
// a few answers of "Identity not found" → success.
func TestIdentityAppearsDuringWindow(t *testing.T) {
	t.Parallel()
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "rhel-9.4", sandbox.NetworkOptions{IMDS: sandbox.IMDSOptions{Identity: sandbox.IdentityAfter, IdentityAfterCalls: 2}})
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		w.WantStatus(h, 0, "success", 0)
		if n := w.Net.IMDS.TokenRequests(); n < 3 {
			t.Errorf("identity asked %d times, want at least 3", n)
		}
	})
}

// TestObsoleteExtension: aadlogin (AADLoginForLinux) installed → exit 23
// with the removal steps, nothing changed.
func TestObsoleteExtension(t *testing.T) {
	for _, distro := range []string{"debian-12", "rhel-9.4"} {
		t.Run(distro, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, distro, sandbox.NetworkOptions{})
				if w.Root.Spec.Family == "deb" {
					w.Root.InstallLocalPackage(t, w.Fx.Deb("aadlogin", w.Fx.Versions.AADLogin))
				} else {
					w.Root.InstallLocalPackage(t, w.Fx.RPM("aadlogin", w.Fx.Versions.AADLogin))
				}
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				before := w.Baseline()
				res, err := w.Apply(h, 0, w.Pinned())
				if err == nil || lastExit(t, res, agentsim.Install) != 23 {
					t.Fatalf("want exit 23, got %v", verbs(res))
				}
				st := w.WantStatus(h, 0, "error", 23)
				for _, want := range []string{"AADLoginForLinux", "aadlogin"} {
					if !strings.Contains(st.Message, want) {
						t.Errorf("message lacks %q: %q", want, st.Message)
					}
				}
				w.WantUnchangedSince(before)
				if w.Requests() != 0 {
					t.Errorf("reached out although the check fails first")
				}
			})
		})
	}
}

// TestClouds: the repository host follows IMDS azEnvironment
// (case-insensitively); the air-gapped clouds use their own hosts with the
// /microsoft prefix for repositories (not for the key).
func TestClouds(t *testing.T) {
	cases := []struct {
		env, host, prefix string
		warn              bool
	}{
		{"AzureUSGovernmentCloud", "packages.microsoft.com", "", false},
		{"azurechinacloud", "packages.microsoft.com", "", false},
		{"USNat", "repodepot.azure.eaglex.ic.gov", "/microsoft", false},
		{"ussec", "repodepot.azure.microsoft.scloud", "/microsoft", false},
		{"SomeFutureCloud", "packages.microsoft.com", "", true},
	}
	for _, c := range cases {
		t.Run(c.env, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				opts := sandbox.NetworkOptions{IMDS: sandbox.IMDSOptions{AzEnvironment: c.env}}
				if c.prefix != "" {
					// The air-gapped hosts serve repositories below /microsoft
					// and the key at /keys/microsoft.asc.
					web := t.TempDir()
					set := fixtures.Get(t)
					if err := os.Symlink(set.RepoDir, filepath.Join(web, "microsoft")); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink(filepath.Join(set.RepoDir, "keys"), filepath.Join(web, "keys")); err != nil {
						t.Fatal(err)
					}
					opts.Repo.HostDirs = map[string]string{c.host: web}
				}
				w := newWorld(t, "debian-12", opts)
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				w.MustApply(h, 0, w.Pinned())
				st := w.WantStatus(h, 0, "success", 0)
				want := "https://" + c.host + c.prefix + "/repos/microsoft-debian-bookworm-prod bookworm main"
				if list := w.Root.ReadFile(aptList); !strings.Contains(list, want) {
					t.Errorf("repository for %s: want %q in\n%s", c.env, want, list)
				}
				hosts := map[string]bool{}
				for _, r := range w.Net.Repo.Log() {
					hosts[r.Host] = true
				}
				if !hosts[c.host] || len(hosts) != 1 {
					t.Errorf("requests went to %v, want only %s", hosts, c.host)
				}
				warned := false
				for _, s := range st.Substatus {
					if s.Status == "warning" && strings.Contains(s.Message, c.env) {
						warned = true
					}
				}
				if warned != c.warn {
					t.Errorf("warning substatus for %s = %v, want %v (%+v)", c.env, warned, c.warn, st.Substatus)
				}
			})
		})
	}
}

// TestArcServer: on an Azure Arc-enabled server there is no Azure IMDS to
// ask; the handler must not wait for it.
func TestArcServer(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "ubuntu-22.04", sandbox.NetworkOptions{IMDS: sandbox.IMDSOptions{Down: true}})
		w.Root.WriteFile("/opt/azcmagent/bin/himds", "#!/bin/sh\n", 0o755)
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		st := w.WantStatus(h, 0, "success", 0)
		if !strings.Contains(jsonString(st.Substatus), "Arc") {
			t.Errorf("status does not say it treated the machine as Arc: %+v", st.Substatus)
		}
	})
}

// TestSSHDWarnings: AllowGroups outside a Match block would break Entra
// users' first login: the install succeeds with a warning substatus that
// names the fix.
func TestSSHDWarnings(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-12", sandbox.NetworkOptions{})
		cfg := w.Root.ReadFile("/etc/ssh/sshd_config")
		w.Root.WriteFile("/etc/ssh/sshd_config", "AllowGroups admins\n"+cfg, 0o644)
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		st := w.WantStatus(h, 0, "success", 0)
		found := false
		for _, s := range st.Substatus {
			if s.Status == "warning" && strings.Contains(s.Message, "AllowGroups") && strings.Contains(s.Message, "Match") {
				found = true
			}
		}
		if !found {
			t.Errorf("no AllowGroups warning in %+v", st.Substatus)
		}
		if !strings.HasPrefix(w.Root.ReadFile("/etc/ssh/sshd_config"), "AllowGroups admins\n") {
			t.Error("the user's sshd_config lines were not kept")
		}
	})
}

// TestSSHDWarningsOnFailure: the sshd warnings run beside the install and
// join the status at the end, also when the install fails: a repository
// answering 503 ends in exit 20 with the network diagnosis and the
// AllowGroups warning, on an rpm look-alike whose OpenSSH version comes
// from sshd -V (no openssh-server rpm).
func TestSSHDWarningsOnFailure(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "rhel-9.4", sandbox.NetworkOptions{Repo: sandbox.RepoOptions{Status: map[string]int{"/": 503}}})
		cfg := w.Root.ReadFile("/etc/ssh/sshd_config")
		w.Root.WriteFile("/etc/ssh/sshd_config", "AllowGroups admins\n"+cfg, 0o644)
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		res, err := w.Apply(h, 0, w.Pinned())
		if err == nil || lastExit(t, res, agentsim.Install) != 20 {
			t.Fatalf("want exit 20, got %v", verbs(res))
		}
		st := w.WantStatus(h, 0, "error", 20)
		if s, ok := st.Find("SSHDGroupRestriction"); !ok || s.Status != "warning" {
			t.Errorf("no AllowGroups warning in the failed run's status: %+v", st.Substatus)
		}
	})
}

// TestOldOpenSSHWarning: the OpenSSH version comes from the package
// database (the query that looks for the obsolete packages): a machine
// whose openssh-server package is 7.4 gets the certificate-signature
// warning with the client-side fix, and the install still succeeds.
func TestOldOpenSSHWarning(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-12", sandbox.NetworkOptions{})
		// Make dpkg's record of OpenSSH say 7.4 (Debian 9's); the sshd
		// binary itself stays the image's. Every package built from
		// openssh carries the version, and they depend on each other
		// with "(= version)", so all of it changes together, or apt
		// finds the dependencies broken; libc6 2.36 "Breaks: openssh-server
		// (<< 1:8.1p1-5)", so that relation goes too.
		status := w.Root.ReadFile("/var/lib/dpkg/status")
		status = regexp.MustCompile(`, openssh-server \(<< [^)]*\)`).ReplaceAllString(status, "")
		m := regexp.MustCompile(`(?m)^Package: openssh-server\n(?:[^\n]+\n)*?Version: ([^\n]+)`).FindStringSubmatch(status)
		if m == nil {
			t.Fatal("openssh-server not in the image's dpkg status")
		}
		w.Root.WriteFile("/var/lib/dpkg/status", strings.ReplaceAll(status, m[1], "1:7.4p1-10+deb9u7"), 0o644)
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		st := w.WantStatus(h, 0, "success", 0)
		if s, ok := st.Find("OpenSSHVersion"); !ok || s.Status != "warning" || !strings.Contains(s.Message, "OpenSSH 7.4") ||
			!strings.Contains(s.Message, "PubkeyAcceptedKeyTypes=+ssh-rsa-cert-v01@openssh.com") {
			t.Errorf("no OpenSSH 7.4 warning in %+v", st.Substatus)
		}
	})
}

// TestVerificationFailsOnLocallyEditedPAM: pam-auth-update refuses to
// touch locally modified /etc/pam.d/common-* files, so the package cannot
// wire PAM: exit 21 naming PAM and the cause, and the run is undone.
func TestVerificationFailsOnLocallyEditedPAM(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-12", sandbox.NetworkOptions{})
		// An edit inside the block pam-auth-update manages (not just a
		// comment at the end) makes it refuse.
		acct := w.Root.ReadFile("/etc/pam.d/common-account")
		const primary = "# here are the per-package modules (the \"Primary\" block)\n"
		if !strings.Contains(acct, primary) {
			t.Fatalf("unexpected common-account:\n%s", acct)
		}
		w.Root.WriteFile("/etc/pam.d/common-account", strings.Replace(acct, primary, primary+"account\trequired\tpam_permit.so\n", 1), 0o644)
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		before := w.Baseline()
		res, err := w.Apply(h, 0, w.Pinned())
		if err == nil || lastExit(t, res, agentsim.Install) != 21 {
			t.Fatalf("want exit 21, got %v", verbs(res))
		}
		st := w.WantStatus(h, 0, "error", 21)
		if !strings.Contains(st.Message, "PAM") || !strings.Contains(st.Message, "pam-auth-update") {
			t.Errorf("message should name PAM and pam-auth-update: %q", st.Message)
		}
		if !strings.Contains(st.Message, "undone") {
			t.Errorf("message should say the changes were undone: %q", st.Message)
		}
		if v := w.Installed("aadsshlogin"); v != "" {
			t.Errorf("aadsshlogin %s left installed after a failed verification", v)
		}
		w.WantUnchangedSince(before)
	})
}

// TestNotEnoughMemory: the docs say the install fails below 1 GB; the
// handler refuses first, with the numbers, and changes nothing.
func TestNotEnoughMemory(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-12", sandbox.NetworkOptions{})
		fake := filepath.Join(t.TempDir(), "meminfo")
		if err := os.WriteFile(fake, []byte("MemTotal:         524288 kB\nMemFree:          100000 kB\n"), 0o444); err != nil {
			t.Fatal(err)
		}
		// Private mount namespace: the bind mount hides the root's
		// /proc/meminfo for this test only.
		if err := unix.Mount(fake, w.Root.Path("/proc/meminfo"), "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind-mounting a small meminfo: %v", err)
		}
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		before := w.Baseline()
		res, err := w.Apply(h, 0, w.Pinned())
		if err == nil || lastExit(t, res, agentsim.Install) != 28 {
			t.Fatalf("want exit 28, got %v", verbs(res))
		}
		st := w.WantStatus(h, 0, "error", 28)
		if !strings.Contains(st.Message, "512 MiB") {
			t.Errorf("message should give the numbers: %q", st.Message)
		}
		w.WantUnchangedSince(before)
	})
}

// TestNotEnoughDisk: too little free space where packages go.
func TestNotEnoughDisk(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "rhel-9.4", sandbox.NetworkOptions{})
		if err := unix.Mount("tmpfs", w.Root.Path("/var/cache"), "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mounting a tiny /var/cache: %v", err)
		}
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		before := w.Baseline()
		res, err := w.Apply(h, 0, w.Pinned())
		if err == nil || lastExit(t, res, agentsim.Install) != 29 {
			t.Fatalf("want exit 29, got %v", verbs(res))
		}
		st := w.WantStatus(h, 0, "error", 29)
		if !strings.Contains(st.Message, "/var/cache") {
			t.Errorf("message should name the file system: %q", st.Message)
		}
		w.WantUnchangedSince(before)
	})
}

// TestRepositoryWithoutPackage: the repository for this distribution exists
// but offers no aadsshlogin (as packages.microsoft.com does for a new
// release before the package is published): exit 51 saying so, undone.
func TestRepositoryWithoutPackage(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		set := fixtures.Get(t)
		web := t.TempDir()
		if err := os.MkdirAll(filepath.Join(web, "sles/15"), 0o755); err != nil {
			t.Fatal(err)
		}
		// An empty but valid, signed repository stands in for sles/15/prod.
		if err := os.Symlink(filepath.Join(set.RepoDir, "rocky/9/prod"), filepath.Join(web, "sles/15/prod")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(set.RepoDir, "keys"), filepath.Join(web, "keys")); err != nil {
			t.Fatal(err)
		}
		w := newWorld(t, "sles-15.6", sandbox.NetworkOptions{Repo: sandbox.RepoOptions{HostDirs: map[string]string{"mirror.example.test": web}}})
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		before := w.Baseline()
		res, err := w.Apply(h, 0, map[string]any{"repositoryUrl": "https://mirror.example.test", "signingKeyFingerprints": []string{w.Fx.KeyFingerprint}})
		if err == nil || lastExit(t, res, agentsim.Install) != 51 {
			t.Fatalf("want exit 51, got %v", verbs(res))
		}
		st := w.WantStatus(h, 0, "error", 51)
		if !strings.Contains(st.Message, "offers no aadsshlogin") || !strings.Contains(st.Message, "https://mirror.example.test/sles/15/prod/") {
			t.Errorf("message: %q", st.Message)
		}
		w.WantUnchangedSince(before)
	})
}
