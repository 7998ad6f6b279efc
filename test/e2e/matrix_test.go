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
	// unlisted: outside Microsoft's published table (a rebuild it does not
	// name, or a release newer than the table): a warning substatus.
	unlisted bool
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
	{distro: "debian-13-real", repoFile: aptList, repoURL: pmc + "/repos/microsoft-debian-trixie-prod trixie main", unlisted: true,
		note: "a real Debian 13 root: apt 3.0 with sqv, dpkg 1.22 and OpenSSH 10; newer than the table"},
	// Newer than the table: installed because the release's own repository
	// (signed with the second key) offers aadsshlogin.
	{distro: "debian-13", repoFile: aptList, repoURL: pmc + "/repos/microsoft-debian-trixie-prod trixie main", unlisted: true},
	{distro: "ubuntu-25.10", repoFile: aptList, repoURL: pmc + "/repos/microsoft-ubuntu-questing-prod questing main", unlisted: true},
	{distro: "rhel-7.9", repoFile: yumRepo, repoURL: pmc + "/rhel/7/prod/"},
	{distro: "rhel-8.10", repoFile: yumRepo, repoURL: pmc + "/rhel/8/prod/"},
	{distro: "rhel-9.4", repoFile: yumRepo, repoURL: pmc + "/rhel/9/prod/"},
	{distro: "almalinux-9.4", repoFile: yumRepo, repoURL: pmc + "/almalinux/9/prod/"},
	{distro: "rocky-9.4", repoFile: yumRepo, repoURL: pmc + "/rhel/9/prod/", note: "empty /rocky/9/prod falls back to RHEL"},
	{distro: "ol-8.10", repoFile: yumRepo, repoURL: pmc + "/rhel/8/prod/", note: "/ol/ answers 403, falls back to RHEL"},
	// RHEL 10 and its rebuilds: repositories signed with the second key.
	{distro: "rhel-10.1", repoFile: yumRepo, repoURL: pmc + "/rhel/10/prod/"},
	{distro: "almalinux-10.0", repoFile: yumRepo, repoURL: pmc + "/almalinux/10/prod/", unlisted: true},
	{distro: "rocky-10.0", repoFile: yumRepo, repoURL: pmc + "/rhel/10/prod/", unlisted: true, note: "empty /rocky/10/prod falls back to RHEL"},
	{distro: "ol-10.0", repoFile: yumRepo, repoURL: pmc + "/rhel/10/prod/", unlisted: true, note: "/ol/ answers 403, falls back to RHEL"},
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
				rel, hasRel := st.Find("Release")
				switch {
				case c.unlisted && (!hasRel || rel.Status != "warning" || !strings.Contains(rel.Message, "published support table")):
					t.Errorf("no warning that the release is outside Microsoft's table: %+v", st)
				case !c.unlisted && hasRel:
					t.Errorf("a listed release got the Release warning: %+v", rel)
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
					// Both pinned keys are served, so both are trusted.
					key := w.Root.ReadFile(harness.AptKeyring)
					fps, err := keys.FingerprintsOf([]byte(key))
					slices.Sort(fps)
					if want := slices.Sorted(slices.Values(w.PinnedFingerprints())); err != nil || !slices.Equal(fps, want) {
						t.Errorf("the keyring holds %v (%v), want exactly the pinned keys %v", fps, err, w.PinnedFingerprints())
					}
				} else {
					for _, want := range []string{"gpgcheck=1", "repo_gpgcheck=1", "gpgkey=file:///etc/pki/rpm-gpg/microsoft-aadsshlogin.asc"} {
						if !strings.Contains(repo, want) {
							t.Errorf("%s lacks %q:\n%s", c.repoFile, want, repo)
						}
					}
					for _, fp := range w.PinnedFingerprints() {
						if !w.RPMTrusts(fp) {
							t.Errorf("key %s not imported into the rpm database", fp)
						}
					}
				}
			})
		})
	}
}

// TestUnsupportedDistributions: exit 51 naming what was detected, and the
// machine is left exactly as it was.
func TestUnsupportedDistributions(t *testing.T) {
	for _, distro := range []string{"fedora-40", "ubuntu-14.04"} {
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
	for _, distro := range []string{"ubuntu-22.04", "rhel-9.4", "rhel-10.1"} {
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
				// RHEL 10's repository is signed with the second key: only
				// that one is asked for.
				served, file, other := w.Fx.KeyFingerprint, "/keys/microsoft.asc", "/keys/microsoft-2025.asc"
				if distro == "rhel-10.1" {
					served, file, other = w.Fx.Key2025Fingerprint, other, file
				}
				if !strings.Contains(st.Message, served) || !strings.Contains(st.Message, "BC528686B50D79E339D3721CEB3E94ADBE1229CF") ||
					!strings.Contains(st.Message, "AA86F75E427A19DD33346403EE4D7792F748182B") {
					t.Errorf("message should name the served key's fingerprint and both pinned ones: %q", st.Message)
				}
				if reqs := w.Net.Repo.Requests(); !slices.Contains(reqs, file) || slices.Contains(reqs, other) {
					t.Errorf("requests %v: want %s and not %s", reqs, file, other)
				}
				w.WantUnchangedSince(before)
				if w.Installed("aadsshlogin") != "" {
					t.Error("aadsshlogin installed anyway")
				}
			})
		})
	}
}

// TestNewerReleaseWithoutPackageRefused: a release newer than the table
// whose repository is missing (SLES 16 here) or has no aadsshlogin (Ubuntu
// 26.04 here) is refused with 51, naming the release and the repository
// asked, and nothing is left behind: no repository file, no key, no
// package, no marker. Only the repository's package list was asked for.
func TestNewerReleaseWithoutPackageRefused(t *testing.T) {
	cases := []struct {
		distro, asked, why string
	}{
		{"ubuntu-26.04", "/repos/microsoft-ubuntu-resolute-prod/dists/resolute/main/binary-amd64/Packages.gz", "has no aadsshlogin package"},
		{"sles-16.0", "/sles/16/prod/repodata/repomd.xml", "answered HTTP 404"},
	}
	for _, c := range cases {
		t.Run(c.distro, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, c.distro, sandbox.NetworkOptions{})
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				before := w.Baseline()
				res, err := w.Apply(h, 0, w.Pinned())
				if err == nil {
					t.Fatal("install succeeded without a repository that offers aadsshlogin")
				}
				if got := lastExit(t, res, agentsim.Install); got != 51 {
					t.Fatalf("install exit %d, want 51", got)
				}
				st := w.WantStatus(h, 0, "error", 51)
				name := w.Root.Spec.Field("PRETTY_NAME")
				if !strings.Contains(st.Message, name) || !strings.Contains(st.Message, pmc+strings.TrimSuffix(c.asked, "repodata/repomd.xml")) ||
					!strings.Contains(st.Message, c.why) || !strings.Contains(st.Message, "Nothing was changed") {
					t.Errorf("message should name %q, the repository asked (%s) and why (%s): %q", name, c.asked, c.why, st.Message)
				}
				w.WantUnchangedSince(before)
				for _, p := range []string{aptList, yumRepo, zypRepo, harness.AptKeyring, "/etc/pki/rpm-gpg/microsoft-aadsshlogin.asc"} {
					if w.Root.Exists(p) {
						t.Errorf("%s left behind", p)
					}
				}
				for _, fp := range w.PinnedFingerprints() {
					if w.Root.Spec.Family == "rpm" && w.RPMTrusts(fp) {
						t.Errorf("key %s left in the rpm database", fp)
					}
				}
				var keyRequests []string
				asked := false
				for _, r := range w.Net.Repo.Requests() {
					if strings.HasPrefix(r, "/keys/") {
						keyRequests = append(keyRequests, r)
					}
					asked = asked || r == c.asked
				}
				if !asked || len(keyRequests) != 0 {
					t.Errorf("requests %v: want %s asked and no key downloaded", w.Net.Repo.Requests(), c.asked)
				}
			})
		})
	}
}
