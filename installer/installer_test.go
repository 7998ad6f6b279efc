package installer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/installer/keys"
	"github.com/aadsshlogin/handler/installer/pkgmgr"
	"github.com/aadsshlogin/handler/installer/repo"
	"github.com/aadsshlogin/handler/sysroot"
)

const (
	msFP     = "BC528686B50D79E339D3721CEB3E94ADBE1229CF"
	ms2025FP = "AA86F75E427A19DD33346403EE4D7792F748182B"
)

// fakeManager is an in-memory package manager: Install "runs the package's
// scripts" by wiring NSS and PAM in the root, ImportKey trusts the keys of
// the file, and any step can be made to fail.
type fakeManager struct {
	kind    pkgmgr.Kind
	root    sysroot.Root
	mu      sync.Mutex
	calls   []string
	pkgs    map[string]string // installed name -> version
	trusted map[string]string // fingerprint -> entry
	fail    map[string]error  // method name -> error
}

func newFakeManager(kind pkgmgr.Kind, root sysroot.Root) *fakeManager {
	return &fakeManager{kind: kind, root: root, pkgs: map[string]string{}, trusted: map[string]string{}, fail: map[string]error{}}
}

func (m *fakeManager) record(call string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, call)
	name, _, _ := strings.Cut(call, " ")
	return m.fail[name]
}

func (m *fakeManager) called(prefix string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.ContainsFunc(m.calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

func (m *fakeManager) Kind() pkgmgr.Kind { return m.kind }
func (m *fakeManager) Installed(_ context.Context, names ...string) (map[string]string, error) {
	if err := m.record("Installed " + strings.Join(names, " ")); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for _, n := range names {
		if v, ok := m.pkgs[n]; ok {
			out[n] = v
		}
	}
	return out, nil
}
func (m *fakeManager) Refresh(_ context.Context, repoID, file string) error {
	return m.record("Refresh " + repoID + " " + file)
}
func (m *fakeManager) Available(context.Context, string) (bool, error) {
	return true, m.record("Available")
}
func (m *fakeManager) Install(_ context.Context, pkgs ...pkgmgr.Package) error {
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	if err := m.record("Install " + strings.Join(names, " ")); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range pkgs {
		m.pkgs[p.Name] = "1.0.031620001"
	}
	wire(m.root)
	return nil
}
func (m *fakeManager) Reinstall(context.Context, ...string) error { return m.record("Reinstall") }
func (m *fakeManager) Remove(_ context.Context, names ...string) error {
	if err := m.record("Remove " + strings.Join(names, " ")); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		delete(m.pkgs, n)
	}
	return nil
}
func (m *fakeManager) Repair(context.Context) error { return m.record("Repair") }
func (m *fakeManager) ImportKey(_ context.Context, path string) error {
	if err := m.record("ImportKey " + path); err != nil {
		return err
	}
	data, err := m.root.ReadFile(path)
	if err != nil {
		return err
	}
	fps, err := keys.FingerprintsOf(data)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, fp := range fps {
		m.trusted[fp] = "gpg-pubkey-" + strings.ToLower(fp[32:])
	}
	return nil
}
func (m *fakeManager) RemoveKey(_ context.Context, fp string) error {
	if err := m.record("RemoveKey " + fp); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.trusted, fp)
	return nil
}
func (m *fakeManager) TrustedKeys(context.Context) (map[string]string, error) {
	if err := m.record("TrustedKeys"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for k, v := range m.trusted {
		out[k] = v
	}
	return out, nil
}

// wire does what aadsshlogin's scripts do to NSS and PAM (sshd is answered
// by the fake runner's sshd -T).
func wire(root sysroot.Root) {
	_ = root.WriteFileAtomic("/etc/nsswitch.conf", []byte("passwd: files aad\ngroup: files aad\n"), 0o644)
	_ = os.MkdirAll(root.Path("/etc/pam.d"), 0o755)
	_ = root.WriteFileAtomic("/etc/pam.d/sshd", []byte("account required pam_aad.so\n"), 0o644)
	_ = root.WriteFileAtomic("/usr/sbin/aad_certhandler", []byte("#!/bin/sh\n"), 0o755)
}

// fakePMC serves Microsoft's real public keys and an rpm repository for
// RHEL 10 and an empty apt repository for Debian 13.
func fakePMC(t *testing.T) (*httptest.Server, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var reqs []string
	files := map[string][]byte{}
	for _, f := range []string{"microsoft.asc", "microsoft-2025.asc"} {
		data, err := os.ReadFile("keys/testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		files["/keys/"+f] = data
	}
	files["/repos/microsoft-debian-trixie-prod/dists/trixie/main/binary-amd64/Packages"] = []byte("Package: powershell\n\n")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.URL.Path)
		mu.Unlock()
		if body, ok := files[r.URL.Path]; ok {
			w.Write(body)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &reqs
}

func testConfig(t *testing.T, p distro.Platform, srv *httptest.Server) (Config, *fakeManager, sysroot.Root) {
	t.Helper()
	root := sysroot.Root(t.TempDir())
	for _, d := range []string{"/etc/yum.repos.d", "/etc/apt/sources.list.d", "/etc/apt/keyrings", "/etc/pki/rpm-gpg"} {
		if err := os.MkdirAll(root.Path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	kind := pkgmgr.Kind(p.PackageManager)
	m := newFakeManager(kind, root)
	log := logrus.New()
	log.SetOutput(io.Discard)
	runner := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"sshd -T": {Result: cmdrun.Result{Stdout: []byte("authorizedkeyscommand /usr/sbin/aad_certhandler %u %k\n")}},
	}}
	hc := retryablehttp.NewClient()
	hc.Logger, hc.RetryMax, hc.HTTPClient = nil, 0, srv.Client()
	return Config{
		Root: root, Runner: runner, Log: log, HTTP: hc, Packages: m,
		Locks: pkgmgr.Locks{Root: root, Log: log}, Services: pkgmgr.Services{Runner: runner, Root: root, Log: log},
		Platform: p, Location: repo.Location{Base: srv.URL}, Pins: keys.MicrosoftFingerprints(),
		HandlerVersion: "1.0.0.1",
	}, m, root
}

func platform(t *testing.T, id, version, codename string) distro.Platform {
	t.Helper()
	p, err := distro.Resolve(distro.OSRelease{ID: id, VersionID: version, Codename: codename, PrettyName: id + " " + version}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInstallRHEL10: the repository's own key only (the 2025 one) is
// downloaded, written, imported and recorded; the repository file points
// at rhel/10/prod with that key file.
func TestInstallRHEL10(t *testing.T) {
	srv, reqs := fakePMC(t)
	c, m, root := testConfig(t, platform(t, "rhel", "10.1", ""), srv)
	res, err := Install(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*reqs, []string{"/keys/microsoft-2025.asc"}) {
		t.Errorf("requests %v, want only the 2025 key", *reqs)
	}
	repoFile, _ := root.ReadFile(repo.YumRepoPath)
	if !strings.Contains(string(repoFile), "baseurl="+srv.URL+"/rhel/10/prod/") || !strings.HasPrefix(string(repoFile), repo.Header) {
		t.Errorf("repository file:\n%s", repoFile)
	}
	key, _ := root.ReadFile(repo.RPMKeyPath)
	if fps, err := keys.FingerprintsOf(key); err != nil || !slices.Equal(fps, []string{ms2025FP}) {
		t.Errorf("key file holds %v %v", fps, err)
	}
	st, err := LoadState(root)
	if err != nil || st == nil || !slices.Equal(st.ImportedKeys, []string{ms2025FP}) || st.Packages[PackageName] == "" {
		t.Fatalf("state %+v %v", st, err)
	}
	if res.KeyFP != ms2025FP || res.Packages[PackageName] == "" {
		t.Errorf("result %+v", res)
	}
	if !m.called("Refresh " + repo.RepoID) {
		t.Errorf("calls %v", m.calls)
	}
}

// TestInstallRollsBackEverything: a failing package install undoes the
// key import, the key file and the repository file, and puts a user's own
// repository file of the same name back.
func TestInstallRollsBackEverything(t *testing.T) {
	srv, _ := fakePMC(t)
	c, m, root := testConfig(t, platform(t, "rhel", "9.4", ""), srv)
	users := []byte("[my-own]\nbaseurl=https://example.test/\n")
	if err := root.WriteFileAtomic(repo.YumRepoPath, users, 0o600); err != nil {
		t.Fatal(err)
	}
	m.fail["Install"] = failure.New(failure.PackageManagerFailed, nil, "boom")
	_, err := Install(context.Background(), c)
	if failure.CodeOf(err) != failure.PackageManagerFailed || !strings.Contains(failure.MessageOf(err), "every change of this run was undone") {
		t.Fatalf("err %v", err)
	}
	if got, _ := root.ReadFile(repo.YumRepoPath); string(got) != string(users) {
		t.Errorf("the user's repository file was not put back: %q", got)
	}
	if root.Exists(repo.RPMKeyPath) {
		t.Error("key file left behind")
	}
	if len(m.trusted) != 0 || !m.called("RemoveKey "+msFP) {
		t.Errorf("imported key not removed: %v (calls %v)", m.trusted, m.calls)
	}
	if _, ok := m.pkgs[PackageName]; ok || !m.called("Remove "+PackageName) {
		t.Errorf("package not removed: %v", m.calls)
	}
	if st, _ := LoadState(root); st != nil {
		t.Errorf("state saved after a failure: %+v", st)
	}
}

// TestInstallLeavesKeysItDidNotImport: a key the rpm database already
// trusts is neither imported again, nor recorded, nor removed on rollback.
func TestInstallLeavesKeysItDidNotImport(t *testing.T) {
	srv, _ := fakePMC(t)
	c, m, _ := testConfig(t, platform(t, "rhel", "9.4", ""), srv)
	m.trusted[msFP] = "gpg-pubkey-be1229cf-5631588c"
	m.fail["Refresh"] = failure.New(failure.RepositoryUnreachable, nil, "down")
	if _, err := Install(context.Background(), c); failure.CodeOf(err) != failure.RepositoryUnreachable {
		t.Fatalf("err %v", err)
	}
	if m.called("ImportKey") || m.called("RemoveKey") {
		t.Errorf("calls %v: the administrator's key was touched", m.calls)
	}
	if _, ok := m.trusted[msFP]; !ok {
		t.Error("the administrator's key is gone")
	}
}

// TestInstallImportFailureRemovesWhatCameIn: an import cut short may have
// brought in some keys: every key the run set out to import is removed.
func TestInstallImportFailureRemovesWhatCameIn(t *testing.T) {
	srv, _ := fakePMC(t)
	c, m, _ := testConfig(t, platform(t, "rhel", "10.1", ""), srv)
	c.CustomPins, c.Pins = true, []string{msFP, ms2025FP}
	m.fail["ImportKey"] = errors.New("rpm killed")
	if _, err := Install(context.Background(), c); err == nil {
		t.Fatal("install succeeded")
	}
	for _, fp := range []string{msFP, ms2025FP} {
		if !m.called("RemoveKey " + fp) {
			t.Errorf("rollback did not remove %s: %v", fp, m.calls)
		}
	}
}

// TestInstallNewerReleaseWithoutPackage: Debian 13 is newer than the
// table; its repository lists no aadsshlogin, so the install stops with 51
// before any file is written or any package command runs.
func TestInstallNewerReleaseWithoutPackage(t *testing.T) {
	srv, reqs := fakePMC(t)
	c, m, root := testConfig(t, platform(t, "debian", "13", "trixie"), srv)
	_, err := Install(context.Background(), c)
	if failure.CodeOf(err) != failure.Unsupported || !strings.Contains(failure.MessageOf(err), "has no aadsshlogin package") {
		t.Fatalf("err %v", err)
	}
	for _, p := range []string{repo.AptListPath, repo.AptKeyringPath} {
		if root.Exists(p) {
			t.Errorf("%s written", p)
		}
	}
	if m.called("Refresh") || m.called("Install aad") || m.called("ImportKey") {
		t.Errorf("package commands ran: %v", m.calls)
	}
	for _, r := range *reqs {
		if strings.HasPrefix(r, "/keys/") {
			t.Errorf("a key was downloaded for a release that is refused: %v", *reqs)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(string(root), StateDir)); len(entries) != 0 {
		t.Errorf("state written: %v", entries)
	}
}

// TestKeySource: which key files are asked for.
func TestKeySource(t *testing.T) {
	cases := []struct {
		p        distro.Platform
		custom   bool
		files    []string
		required bool
	}{
		{distro.Platform{KeyFile: "microsoft.asc"}, false, []string{"microsoft.asc"}, true},
		{distro.Platform{KeyFile: "microsoft-2025.asc"}, false, []string{"microsoft-2025.asc"}, true},
		{distro.Platform{KeyFile: "microsoft.asc"}, true, []string{"microsoft.asc", "microsoft-2025.asc"}, false},
		{distro.Platform{KeyFile: "microsoft-2025.asc"}, true, []string{"microsoft-2025.asc", "microsoft.asc"}, false},
		{distro.Platform{Listing: distro.Newer}, false, []string{"microsoft-2025.asc", "microsoft.asc"}, false},
	}
	for _, c := range cases {
		got := Config{Platform: c.p, CustomPins: c.custom, Location: repo.Location{Base: "https://b"}}.keySource()
		if !slices.Equal(got.Files, c.files) || got.AllRequired != c.required || got.Base != "https://b" {
			t.Errorf("%+v custom=%v: %+v", c.p, c.custom, got)
		}
	}
}

// TestUninstallRestoresUsersFileOnlyOverOurs: uninstall puts the user's
// file back over our repository file, but a file the user wrote after the
// install (not ours) stays as it is.
func TestUninstallRestoresUsersFileOnlyOverOurs(t *testing.T) {
	for _, c := range []struct {
		name, current, want string
	}{
		{"ours is replaced by the user's", repo.Header + "\n[packages-microsoft-com-prod]\n", "users\n"},
		{"the user's newer file stays", "[mine-since]\n", "[mine-since]\n"},
		{"a deleted file comes back", "", "users\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := fakePMC(t)
			cfg, _, root := testConfig(t, platform(t, "rhel", "9.4", ""), srv)
			backup := StateDir + "/backup/etc__yum.repos.d__microsoft-prod.repo"
			os.MkdirAll(root.Path(StateDir+"/backup"), 0o700)
			root.WriteFileAtomic(backup, []byte("users\n"), 0o600)
			if c.current != "" {
				root.WriteFileAtomic(repo.YumRepoPath, []byte(c.current), 0o644)
			}
			st := &State{RepoFile: repo.YumRepoPath, Backups: map[string]string{repo.YumRepoPath: backup}}
			if _, err := Uninstall(context.Background(), cfg, st); err != nil {
				t.Fatal(err)
			}
			if got, _ := root.ReadFile(repo.YumRepoPath); string(got) != c.want {
				t.Errorf("after uninstall %q, want %q", got, c.want)
			}
		})
	}
}

// TestInstallRecordsWhatTheAdministratorHad: aadsshlogin installed before
// any extension ran (no version marker) is recorded as the
// administrator's; after an extension ran (marker found), it is not.
func TestInstallRecordsWhatTheAdministratorHad(t *testing.T) {
	for _, markerFound := range []bool{false, true} {
		srv, _ := fakePMC(t)
		c, m, root := testConfig(t, platform(t, "rhel", "9.4", ""), srv)
		c.MarkerFound = markerFound
		m.pkgs[PackageName] = "1.0.030000001"
		wire(root)
		if _, err := Install(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		st, _ := LoadState(root)
		if got := slices.Contains(st.Preinstalled, PackageName); got == markerFound {
			t.Errorf("marker found %v: preinstalled %v", markerFound, st.Preinstalled)
		}
	}
}

// TestUninstallKeepsWhatIsNotOurs: a package the administrator had before
// the extension stays, and so does an imported key that another enabled
// repository definition (here Microsoft's dotnet repository) names; a key
// only a disabled definition names is removed.
func TestUninstallKeepsWhatIsNotOurs(t *testing.T) {
	srv, _ := fakePMC(t)
	cfg, m, root := testConfig(t, platform(t, "rhel", "10.1", ""), srv)
	m.pkgs[PackageName] = "1.0.031620001"
	m.pkgs[SELinuxPackageName] = "1.0.031620001"
	m.trusted[msFP], m.trusted[ms2025FP] = "a", "b"
	root.WriteFileAtomic("/etc/yum.repos.d/dotnet.repo", []byte("[packages-microsoft-com-dotnet]\nbaseurl=https://packages.microsoft.com/rhel/10/prod/\ngpgcheck=1\ngpgkey=https://packages.microsoft.com/keys/microsoft-2025.asc\n"), 0o644)
	root.WriteFileAtomic("/etc/yum.repos.d/old.repo", []byte("[old]\nenabled=0\ngpgkey=https://packages.microsoft.com/keys/microsoft.asc\n"), 0o644)
	st := &State{Preinstalled: []string{PackageName}, ImportedKeys: []string{msFP, ms2025FP}}
	done, err := Uninstall(context.Background(), cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.pkgs[PackageName]; !ok || !slices.Contains(m.calls, "Remove "+SELinuxPackageName) {
		t.Errorf("the administrator's aadsshlogin was removed: %v", m.calls)
	}
	if _, ok := m.pkgs[SELinuxPackageName]; ok {
		t.Errorf("aadsshlogin-selinux (ours) was not removed: %v", m.calls)
	}
	if _, ok := m.trusted[ms2025FP]; !ok || m.called("RemoveKey "+ms2025FP) {
		t.Errorf("the key dotnet.repo uses was removed: %v", m.calls)
	}
	if _, ok := m.trusted[msFP]; ok {
		t.Errorf("the key only a disabled repository names was kept")
	}
	joined := strings.Join(done.Kept, " ")
	if !strings.Contains(joined, "aadsshlogin stays installed") || !strings.Contains(joined, ms2025FP) || !strings.Contains(joined, "dotnet.repo [packages-microsoft-com-dotnet]") {
		t.Errorf("kept: %q", done.Kept)
	}
	if slices.Contains(done.Removed, PackageName) || !slices.Contains(done.Removed, SELinuxPackageName) {
		t.Errorf("removed %v", done.Removed)
	}
}

func TestGPGKeys(t *testing.T) {
	got := gpgKeys([]byte(`# comment
[a]
gpgkey=file:///etc/pki/rpm-gpg/A https://x/keys/microsoft.asc,
  file:///etc/pki/rpm-gpg/B
name=a
[b]
enabled = no
gpgkey=file:///k
[c]
GPGKEY = https://packages.microsoft.com/keys/microsoft-2025.asc
`))
	want := map[string][]string{
		"a": {"file:///etc/pki/rpm-gpg/A", "https://x/keys/microsoft.asc", "file:///etc/pki/rpm-gpg/B"},
		"c": {"https://packages.microsoft.com/keys/microsoft-2025.asc"},
	}
	if len(got) != len(want) || !slices.Equal(got["a"], want["a"]) || !slices.Equal(got["c"], want["c"]) {
		t.Fatalf("got %v", got)
	}
}
