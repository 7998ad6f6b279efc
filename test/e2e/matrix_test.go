package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/installer/keys"
	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// matrixCase is one row of the support table: what the handler must write
// and install on that distribution.
type matrixCase struct {
	distro   string
	repoFile string // "" = the image's own repository is reused
	repoURL  string // must appear in repoFile
	pinned   bool   // SUSE before 15.6: aadsshlogin pinned to 1.0.027980001
	prepare  func(w *world)
	// fallback: the distro's own folder is missing (404/403) or empty.
	note string
}

var matrix = []matrixCase{
	{distro: "ubuntu-16.04", repoFile: aptList, repoURL: pmc + "/repos/microsoft-ubuntu-xenial-prod xenial main"},
	{distro: "ubuntu-22.04", repoFile: aptList, repoURL: pmc + "/repos/microsoft-ubuntu-jammy-prod jammy main"},
	{distro: "ubuntu-24.04", repoFile: aptList, repoURL: pmc + "/repos/microsoft-ubuntu-noble-prod noble main"},
	{distro: "debian-9", repoFile: aptList, repoURL: pmc + "/repos/microsoft-debian-stretch-prod stretch main"},
	{distro: "debian-12", repoFile: aptList, repoURL: pmc + "/repos/microsoft-debian-bookworm-prod bookworm main"},
	{distro: "debian-11-real", repoFile: aptList, repoURL: pmc + "/repos/microsoft-debian-bullseye-prod bullseye main",
		note: "a real Debian 11 root: its own apt 2.2, dpkg and OpenSSH 8.4"},
	{distro: "debian-12-real", repoFile: aptList, repoURL: pmc + "/repos/microsoft-debian-bookworm-prod bookworm main",
		note: "a real Debian 12 root: its own apt 2.6, dpkg and OpenSSH 9.2"},
	{distro: "rhel-7.9", repoFile: yumRepo, repoURL: pmc + "/rhel/7/prod/"},
	{distro: "rhel-8.10", repoFile: yumRepo, repoURL: pmc + "/rhel/8/prod/"},
	{distro: "rhel-9.4", repoFile: yumRepo, repoURL: pmc + "/rhel/9/prod/"},
	{distro: "almalinux-9.4", repoFile: yumRepo, repoURL: pmc + "/almalinux/9/prod/"},
	{distro: "rocky-9.4", repoFile: yumRepo, repoURL: pmc + "/rhel/9/prod/", note: "empty /rocky/9/prod falls back to RHEL"},
	{distro: "ol-8.10", repoFile: yumRepo, repoURL: pmc + "/rhel/8/prod/", note: "/ol/ answers 403, falls back to RHEL"},
	{distro: "sles-12.5", repoFile: zypRepo, repoURL: pmc + "/sles/12/prod/", pinned: true},
	{distro: "sles-15.5", repoFile: zypRepo, repoURL: pmc + "/sles/15/prod/", pinned: true},
	{distro: "sles-15.6", repoFile: zypRepo, repoURL: pmc + "/sles/15/prod/"},
	{distro: "opensuse-leap-15.5", repoFile: zypRepo, repoURL: pmc + "/opensuse/15/prod/", pinned: true},
	{distro: "opensuse-leap-15.6", repoFile: zypRepo, repoURL: pmc + "/opensuse/15/prod/"},
	{distro: "mariner-2.0", repoFile: yumRepo, repoURL: pmc + "/cbl-mariner/2.0/prod/extras/x86_64"},
	{distro: "azurelinux-3.0", repoFile: "", prepare: func(w *world) { w.Root.AddDistroRepo(w.T) },
		note: "the image's own azurelinux-official-ms-non-oss repository is reused"},
	{distro: "azurelinux-3.0", repoFile: yumRepo, repoURL: pmc + "/azurelinux/3.0/prod/ms-non-oss/x86_64",
		note: "without the image's repository, ms-non-oss is configured"},
}

// TestSupportedDistributions installs through the agent simulator and the
// built zip on every row of the support table, and checks the repository
// file, the key, the installed package and version, the status and the
// exit codes.
func TestSupportedDistributions(t *testing.T) {
	for _, c := range matrix {
		name := c.distro
		if c.repoFile == "" {
			name += "-image-repository"
		}
		t.Run(name, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, c.distro, sandbox.NetworkOptions{})
				if c.prepare != nil {
					c.prepare(w)
				}
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				res := w.MustApply(h, 0, w.Pinned())
				if got := lastExit(t, res, agentsim.Install); got != 0 {
					t.Fatalf("install exit %d", got)
				}
				st := w.WantStatus(h, 0, "success", 0)
				if !strings.Contains(st.Message, "aadsshlogin") {
					t.Errorf("status message does not name the package: %q", st.Message)
				}

				want := w.Fx.Versions.New
				if c.pinned {
					want = w.Fx.Versions.SUSEPinned
				}
				if got := w.Installed("aadsshlogin"); got != want {
					t.Errorf("aadsshlogin version %q, want %q", got, want)
				}
				if !w.Wired() {
					t.Errorf("sshd/NSS not wired after install")
				}

				if c.repoFile == "" {
					for _, f := range []string{aptList, yumRepo, zypRepo} {
						if w.Root.Exists(f) {
							t.Errorf("%s written although the image's repository should be reused", f)
						}
					}
					return
				}
				repo := w.Root.ReadFile(c.repoFile)
				if !strings.Contains(repo, c.repoURL) {
					t.Errorf("%s does not contain %q:\n%s", c.repoFile, c.repoURL, repo)
				}
				if !strings.HasPrefix(repo, "# Managed by the AADSSHLoginForLinux VM extension") {
					t.Errorf("%s lacks the managed-by header:\n%s", c.repoFile, repo)
				}
				if w.Root.Spec.Family == "deb" {
					if !strings.Contains(repo, "signed-by=/etc/apt/keyrings/microsoft-aadsshlogin.gpg") {
						t.Errorf("apt source is not bound to our keyring:\n%s", repo)
					}
					key := w.Root.ReadFile(harness.AptKeyring)
					if k, err := keys.Trust([]byte(key), "keyring", []string{w.Fx.KeyFingerprint}); err != nil || len(k.Fingerprints) != 1 {
						t.Errorf("the keyring does not hold exactly the pinned key: %v", err)
					}
				} else {
					for _, want := range []string{"gpgcheck=1", "repo_gpgcheck=1", "gpgkey=file:///etc/pki/rpm-gpg/microsoft-aadsshlogin.asc"} {
						if !strings.Contains(repo, want) {
							t.Errorf("%s lacks %q:\n%s", c.repoFile, want, repo)
						}
					}
					id := strings.ToLower(w.Fx.KeyFingerprint[len(w.Fx.KeyFingerprint)-8:])
					if _, _, code := w.Root.Exec(t.Context(), nil, "rpm", "-q", "gpg-pubkey-"+id); code != 0 {
						t.Errorf("key %s not imported into the rpm database", id)
					}
				}
			})
		})
	}
}

// TestUnsupportedDistributions: exit 51 naming what was detected, and the
// machine is left exactly as it was.
func TestUnsupportedDistributions(t *testing.T) {
	for _, distro := range []string{"fedora-40", "ubuntu-14.04", "debian-13"} {
		t.Run(distro, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, distro, sandbox.NetworkOptions{})
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				before := w.Baseline()
				res, err := w.Apply(h, 0, w.Pinned())
				if err == nil {
					t.Fatal("install succeeded on an unsupported distribution")
				}
				if got := lastExit(t, res, agentsim.Install); got != 51 {
					t.Fatalf("install exit %d, want 51", got)
				}
				st := w.WantStatus(h, 0, "error", 51)
				want := w.Root.Spec.Field("VERSION_ID")
				if !strings.Contains(st.Message, want) || !strings.Contains(st.Message, "Supported") {
					t.Errorf("message should name the detected version %q and the supported list: %q", want, st.Message)
				}
				w.WantUnchangedSince(before)
				if len(w.Net.Repo.Requests()) != 0 || w.Net.IMDS.TokenRequests() != 0 {
					t.Errorf("an unsupported distribution still reached out: repo %v, imds tokens %d", w.Net.Repo.Requests(), w.Net.IMDS.TokenRequests())
				}
			})
		})
	}
}

// TestDefaultKeyIsPinned: with no settings the handler talks to
// packages.microsoft.com (here the fake) and trusts only Microsoft's
// fingerprint, so the fixture key must be refused and nothing changed.
func TestDefaultKeyIsPinned(t *testing.T) {
	for _, distro := range []string{"ubuntu-22.04", "rhel-9.4"} {
		t.Run(distro, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, distro, sandbox.NetworkOptions{})
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				before := w.Baseline()
				res, err := w.Apply(h, 0, nil)
				if err == nil {
					t.Fatal("install trusted a key whose fingerprint is not pinned")
				}
				if got := lastExit(t, res, agentsim.Install); got != 25 {
					t.Fatalf("install exit %d, want 25", got)
				}
				st := w.WantStatus(h, 0, "error", 25)
				if !strings.Contains(st.Message, w.Fx.KeyFingerprint) || !strings.Contains(st.Message, "BC528686B50D79E339D3721CEB3E94ADBE1229CF") {
					t.Errorf("message should name the key's fingerprint and the pinned one: %q", st.Message)
				}
				if !slices.Contains(w.Net.Repo.Requests(), "/keys/microsoft.asc") {
					t.Errorf("the default key URL was not used: %v", w.Net.Repo.Requests())
				}
				w.WantUnchangedSince(before)
				if w.Installed("aadsshlogin") != "" {
					t.Error("aadsshlogin installed anyway")
				}
			})
		})
	}
}

// TestDebian13RealRootBeforeTrixieSupport pins today's behaviour on a real
// Debian 13 root (apt 3.0, sqv, OpenSSH 10): Debian 13 is newer than the
// support table, so the handler refuses with 51, names Debian 13 and
// changes nothing. Change this test when the handler learns to install on a
// release newer than the table from repos/microsoft-debian-trixie-prod.
func TestDebian13RealRootBeforeTrixieSupport(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-13-real", sandbox.NetworkOptions{})
		if got := w.Root.ReadFile("/etc/debian_version"); !strings.HasPrefix(got, "13.") {
			t.Fatalf("not a real Debian 13 root: /etc/debian_version %q", got)
		}
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		before := w.Baseline()
		res, err := w.Apply(h, 0, w.Pinned())
		if err == nil {
			t.Fatal("install succeeded on Debian 13")
		}
		if got := lastExit(t, res, agentsim.Install); got != 51 {
			t.Fatalf("install exit %d, want 51", got)
		}
		st := w.WantStatus(h, 0, "error", 51)
		if !strings.Contains(st.Message, "Debian") || !strings.Contains(st.Message, "13") || !strings.Contains(st.Message, "Supported") {
			t.Errorf("message should name Debian 13 and the supported list: %q", st.Message)
		}
		w.WantUnchangedSince(before)
		if w.Installed("aadsshlogin") != "" {
			t.Error("aadsshlogin installed on Debian 13")
		}
	})
}
