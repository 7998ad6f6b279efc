package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/handler/agent"
	"github.com/aadsshlogin/handler/httpclient"
	"github.com/aadsshlogin/handler/imds"
	"github.com/aadsshlogin/handler/sysroot"
	"github.com/aadsshlogin/handler/version"
)

const testVersion = "1.0.3000.1"

// fakeAgent lays out what the agent would have created: a handler dir with
// HandlerEnvironment.json, config and status folders, a log folder.
type fakeAgent struct {
	dir, handlerDir, logDir string
	root                    sysroot.Root
	env                     map[string]string
	stdout, stderr          bytes.Buffer
}

func newFakeAgent(t testing.TB) *fakeAgent {
	t.Helper()
	dir := t.TempDir()
	a := &fakeAgent{
		dir:        dir,
		handlerDir: filepath.Join(dir, "lib", agent.HandlerName+"-"+testVersion),
		logDir:     filepath.Join(dir, "log"),
		root:       sysroot.Root(filepath.Join(dir, "root")),
		env:        map[string]string{"ConfigSequenceNumber": "3"},
	}
	for _, d := range []string{a.handlerDir + "/config", a.handlerDir + "/status", a.handlerDir + "/bin", a.logDir + "/events", string(a.root) + "/run"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	henv := []map[string]any{{"name": agent.HandlerName, "version": 1.0, "handlerEnvironment": map[string]string{
		"logFolder": a.logDir, "configFolder": a.handlerDir + "/config", "statusFolder": a.handlerDir + "/status",
		"heartbeatFile": a.handlerDir + "/heartbeat.log", "eventsFolder": a.logDir + "/events",
	}}}
	data, _ := json.Marshal(henv)
	a.write(t, a.handlerDir+"/HandlerEnvironment.json", string(data))
	return a
}

func (a *fakeAgent) write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (a *fakeAgent) settings(t testing.TB, seq int, public string) {
	t.Helper()
	a.write(t, filepath.Join(a.handlerDir, "config", itoa(seq)+".settings"),
		`{"runtimeSettings":[{"handlerSettings":{"publicSettings":`+public+`,"protectedSettings":null,"protectedSettingsCertThumbprint":null}}]}`)
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func (a *fakeAgent) options(args ...string) Options {
	return Options{
		Version: testVersion,
		Args:    append([]string{"aadsshlogin-handler"}, args...),
		Getenv:  func(k string) string { return a.env[k] },
		Stdout:  &a.stdout,
		Stderr:  &a.stderr,
		ExeDir:  a.handlerDir + "/bin",
		Root:    a.root,
		Runner:  &cmdrun.Fake{},
	}
}

func (a *fakeAgent) status(t *testing.T, seq int) *agent.Report {
	t.Helper()
	rep, err := agent.ReadStatus(a.handlerDir+"/status", seq)
	if err != nil {
		t.Fatalf("status %d: %v", seq, err)
	}
	return rep
}

func TestUnknownVerbAndVersion(t *testing.T) {
	a := newFakeAgent(t)
	if code := Main(a.options("frobnicate")); code != failure.UnknownVerb {
		t.Errorf("unknown verb: code %d", code)
	}
	if !strings.Contains(a.stderr.String(), "frobnicate") {
		t.Errorf("stderr: %q", a.stderr.String())
	}
	if code := Main(a.options()); code != failure.UnknownVerb {
		t.Errorf("no verb: code %d", code)
	}
	if code := Main(a.options("version")); code != failure.OK || strings.TrimSpace(a.stdout.String()) != testVersion {
		t.Errorf("version: code %d, %q", code, a.stdout.String())
	}
}

func TestMissingHandlerEnvironment(t *testing.T) {
	a := newFakeAgent(t)
	os.Remove(a.handlerDir + "/HandlerEnvironment.json")
	if code := Main(a.options("install")); code != failure.BadEnvironment {
		t.Fatalf("code %d", code)
	}
	if !strings.Contains(a.stderr.String(), "HandlerEnvironment.json") {
		t.Errorf("stderr should name the file: %q", a.stderr.String())
	}
	// The status folder next to the binary's parent is known: the error is
	// reported there for the agent too.
	if rep := a.status(t, 3); rep.Status != agent.Error || rep.Code != int(failure.BadEnvironment) {
		t.Errorf("status %+v", rep)
	}
}

func TestMalformedHandlerEnvironment(t *testing.T) {
	a := newFakeAgent(t)
	a.write(t, a.handlerDir+"/HandlerEnvironment.json", `[{"handlerEnvironment": {"statusFolder": 7}}]`)
	if code := Main(a.options("enable")); code != failure.BadEnvironment {
		t.Fatalf("code %d", code)
	}
}

func TestBadSequenceNumber(t *testing.T) {
	a := newFakeAgent(t)
	a.env["ConfigSequenceNumber"] = "seven"
	if code := Main(a.options("enable")); code != failure.BadEnvironment {
		t.Fatalf("code %d", code)
	}
	if rep := a.status(t, 0); rep.Code != int(failure.BadEnvironment) {
		t.Errorf("status %+v", rep)
	}
}

func TestBadSettings(t *testing.T) {
	a := newFakeAgent(t)
	a.settings(t, 3, `{"repositoryUrl": "ftp://mirror.example.test"}`)
	if code := Main(a.options("install")); code != failure.BadSettings {
		t.Fatalf("code %d: %s", code, a.stderr.String())
	}
	rep := a.status(t, 3)
	if rep.Status != agent.Error || !strings.Contains(rep.Message, "repositoryUrl") {
		t.Errorf("status %+v", rep)
	}
	// The decisive sentence is the last thing on stderr.
	if !strings.Contains(a.stderr.String(), "exit code 53") {
		t.Errorf("stderr %q", a.stderr.String())
	}
}

// rootFiles lists the files under the fake machine's root.
func rootFiles(t *testing.T, root sysroot.Root) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(string(root), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(p, string(root)))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDisableChangesNothing(t *testing.T) {
	a := newFakeAgent(t)
	a.write(t, a.root.Path("/etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n")
	before := rootFiles(t, a.root)
	opts := a.options("disable")
	fake := &cmdrun.Fake{}
	opts.Runner = fake
	if code := Main(opts); code != failure.OK {
		t.Fatalf("code %d: %s", code, a.stderr.String())
	}
	if rep := a.status(t, 3); rep.Status != agent.Success || rep.Operation != "Disable" {
		t.Errorf("status %+v", rep)
	}
	if len(fake.Calls) != 0 {
		t.Errorf("disable ran commands: %v", fake.Lines())
	}
	// Only the handler lock (in /run, cleared at boot) may appear.
	after := rootFiles(t, a.root)
	if want := append(before, HandlerLockPath); !slices.Equal(after, want) {
		t.Errorf("files on the machine changed:\nbefore %v\nafter  %v", before, after)
	}
}

// lockProbe is the handler's stdout in TestReportWrittenUnderTheLock: when
// the handler prints its last line (after the status, mrseq and event),
// it records whether another writer could take the handler lock and what
// that writer would find.
type lockProbe struct {
	t        *testing.T
	a        *fakeAgent
	lockFree bool
	status   *agent.Report
	events   int
	probed   bool
}

func (p *lockProbe) Write(b []byte) (int, error) {
	if !strings.Contains(string(b), "succeeded") {
		return len(b), nil
	}
	p.probed = true
	f, err := os.OpenFile(p.a.root.Path(HandlerLockPath), os.O_RDWR, 0)
	if err != nil {
		p.t.Errorf("opening the lock: %v", err)
		return len(b), nil
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		p.lockFree = true
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	}
	p.status, _ = agent.ReadStatus(p.a.handlerDir+"/status", 3)
	entries, _ := os.ReadDir(p.a.logDir + "/events")
	p.events = len(entries)
	return len(b), nil
}

// TestReportWrittenUnderTheLock: the final status and the event are on
// disk before the handler lock is released, so the next operation (a
// second writer waiting for the lock) finds them complete, and never
// writes them at the same time.
func TestReportWrittenUnderTheLock(t *testing.T) {
	a := newFakeAgent(t)
	probe := &lockProbe{t: t, a: a}
	opts := a.options("disable")
	opts.Stdout = probe
	if code := Main(opts); code != failure.OK {
		t.Fatalf("code %d: %s", code, a.stderr.String())
	}
	if !probe.probed {
		t.Fatal("the summary line was not printed")
	}
	if probe.lockFree {
		t.Error("the handler lock was released before the run's report was complete")
	}
	if probe.status == nil || probe.status.Status != agent.Success || probe.events != 1 {
		t.Errorf("at the end of the run: status %+v, %d event(s)", probe.status, probe.events)
	}
	// And released afterwards.
	unlock, err := agent.Lock(context.Background(), a.root.Path(HandlerLockPath), "test", time.Millisecond)
	if err != nil {
		t.Fatalf("the lock is still held after Main returned: %v", err)
	}
	_ = unlock()
}

// TestLogNamesArchitecture: the log says which of the zip's binaries ran
// (by default the one built for runtime.GOARCH).
func TestLogNamesArchitecture(t *testing.T) {
	for _, arch := range []string{"", "arm64"} {
		a := newFakeAgent(t)
		o := a.options("disable")
		o.Arch = arch
		if code := Main(o); code != failure.OK {
			t.Fatalf("code %d: %s", code, a.stderr.String())
		}
		want := arch
		if want == "" {
			want = runtime.GOARCH
		}
		raw, err := os.ReadFile(filepath.Join(a.logDir, "handler.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), "msg=started arch="+want+" ") {
			t.Errorf("log does not name %s on its start line:\n%s", want, raw)
		}
	}
}

func TestUninstallDuringUpdateKeepsPackages(t *testing.T) {
	a := newFakeAgent(t)
	if err := writeMarker(a.root, "1.0.3000.2"); err != nil {
		t.Fatal(err)
	}
	opts := a.options("uninstall")
	fake := &cmdrun.Fake{}
	opts.Runner = fake
	if code := Main(opts); code != failure.OK {
		t.Fatalf("code %d", code)
	}
	if len(fake.Calls) != 0 {
		t.Errorf("the old version's uninstall ran commands: %v", fake.Lines())
	}
	if m, _ := readMarker(a.root); m != "1.0.3000.2" {
		t.Errorf("marker changed to %q", m)
	}
}

func TestDowngradeHandsMarkerToTarget(t *testing.T) {
	a := newFakeAgent(t)
	a.env["VERSION"] = "1.0.2385.1"
	a.env["AZURE_GUEST_AGENT_UPDATING_FROM_VERSION"] = "1.0.2385.1"
	if code := Main(a.options("update")); code != failure.OK {
		t.Fatalf("code %d: %s", code, a.stderr.String())
	}
	if m, _ := readMarker(a.root); m != "1.0.2385.1" {
		t.Errorf("marker %q, want the target version", m)
	}
}

// shiftClock makes Main believe the verb started long ago, so that only
// `left` of its working budget remains: how tests reach the end of a 900 s
// budget in seconds.
func shiftClock(v Verb, left time.Duration) func() time.Time {
	shift := AgentTimeout(v) - workMargin - left
	return func() time.Time { return time.Now().Add(-shift) }
}

func TestHandlerLockHeldForTheWholeBudget(t *testing.T) {
	a := newFakeAgent(t)
	lock := a.root.Path(HandlerLockPath)
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	f.WriteString("4242 1.0.3000.2 install seq 3\n")
	opts := a.options("enable")
	opts.Now = shiftClock(Enable, 1500*time.Millisecond)
	if code := Main(opts); code != failure.HandlerBusy {
		t.Fatalf("code %d: %s", code, a.stderr.String())
	}
	if !strings.Contains(a.stderr.String(), "4242") {
		t.Errorf("message should name the holder: %q", a.stderr.String())
	}
}

// recordingTransport answers every request with 404 and records its URL:
// the downloads of a unit test go nowhere.
type recordingTransport struct {
	mu   sync.Mutex
	urls []string
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.urls = append(rt.urls, req.URL.String())
	rt.mu.Unlock()
	return &http.Response{StatusCode: http.StatusNotFound, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
}

// TestPackageManagerLockHeldForTheWholeBudget runs a whole install against
// a fake machine (temporary root, fake commands, an httptest IMDS, an HTTP
// client that answers every download itself) whose dpkg frontend lock is
// held by this process: exit 26 naming the holder, and nothing written to
// the machine. The key download, which runs beside the lock wait, goes
// through the client given in Options.HTTP.
func TestPackageManagerLockHeldForTheWholeBudget(t *testing.T) {
	a := newFakeAgent(t)
	a.write(t, a.root.Path("/etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
	a.write(t, a.root.Path("/proc/meminfo"), "MemTotal:        8000000 kB\n")
	a.settings(t, 3, `{}`)
	lockPath := a.root.Path("/var/lib/dpkg/lock-frontend")
	a.write(t, lockPath, "")
	f, err := os.OpenFile(lockPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// dpkg takes an fcntl write lock; a lock held by this test process is
	// seen by the handler's check the same way (it runs in-process here, so
	// use an OFD lock, which is per open file, not per process).
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/token") {
			w.Write([]byte(`{"access_token":"x","token_type":"Bearer"}`))
			return
		}
		w.Write([]byte("AzurePublicCloud"))
	}))
	defer srv.Close()
	opts := a.options("install")
	opts.IMDS = &imds.Client{BaseURL: srv.URL, HTTP: httpclient.New(httpclient.Options{RetryMax: 1})}
	downloads := &recordingTransport{}
	opts.HTTP = httpclient.New(httpclient.Options{RetryMax: -1})
	opts.HTTP.HTTPClient.Transport = downloads
	opts.Runner = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"dpkg-query": {Result: cmdrun.Result{ExitCode: 1, Stderr: []byte("dpkg-query: no packages found matching aadlogin\n")}},
	}}
	opts.Now = shiftClock(Install, 3*time.Second)
	code := Main(opts)
	if code != failure.PackageManagerLocked {
		t.Fatalf("code %d (%s): %s", code, code.Name(), a.stderr.String())
	}
	rep := a.status(t, 3)
	if !strings.Contains(rep.Message, "lock-frontend") {
		t.Errorf("message should name the lock: %q", rep.Message)
	}
	for _, p := range []string{"/etc/apt/sources.list.d/microsoft-prod.list", "/etc/apt/keyrings/microsoft-aadsshlogin.gpg", "/var/lib/aadsshlogin-handler/state.json", MarkerPath} {
		if a.root.Exists(p) {
			t.Errorf("%s written although the install could not start", p)
		}
	}
	downloads.mu.Lock()
	defer downloads.mu.Unlock()
	if !slices.Contains(downloads.urls, "https://packages.microsoft.com/keys/microsoft.asc") {
		t.Errorf("the key download did not use Options.HTTP: %v", downloads.urls)
	}
}

// TestWithoutHTTPClientNothingIsDownloaded: a handler given no HTTP client
// has none built for it: every download fails with errNoHTTPClient.
func TestWithoutHTTPClientNothingIsDownloaded(t *testing.T) {
	r := &run{log: logrus.NewEntry(logrus.New())}
	resp, err := r.httpClient().Get("https://packages.microsoft.com/keys/microsoft.asc")
	if resp != nil || !errors.Is(err, errNoHTTPClient) {
		t.Fatalf("got %v, %v; want errNoHTTPClient", resp, err)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.0.2385.1", "1.0.3000.1", -1},
		{"1.0.3000.1", "1.0.3000.1", 0},
		{"1.0.10", "1.0.9", 1},
		{"1.0", "1.0.0.0", 0},
		{"2", "1.99.99", 1},
	} {
		if got := version.Compare(c.a, c.b); got != c.want {
			t.Errorf("compare(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestMarkerIsOneWord(t *testing.T) {
	root := sysroot.Root(t.TempDir())
	if err := writeMarker(root, testVersion); err != nil {
		t.Fatal(err)
	}
	data, _ := root.ReadFile(MarkerPath)
	if string(data) != testVersion+"\n" {
		t.Errorf("marker %q", data)
	}
	if m, err := readMarker(sysroot.Root(t.TempDir())); m != "" || err != nil {
		t.Errorf("missing marker: %q %v", m, err)
	}
}

// TestTimeBudgetExceeded: a command still running when the verb's budget
// ends is stopped, and the verb reports 31 instead of hanging until the
// agent kills it.
func TestTimeBudgetExceeded(t *testing.T) {
	a := newFakeAgent(t)
	a.write(t, a.root.Path("/etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n")
	a.write(t, a.root.Path("/proc/meminfo"), "MemTotal:        8000000 kB\n")
	a.settings(t, 3, `{}`)
	opts := a.options("install")
	opts.Runner = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"dpkg-query": {Delay: time.Hour},
	}}
	opts.Now = shiftClock(Install, time.Second)
	if code := Main(opts); code != failure.TimeBudgetExceeded {
		t.Fatalf("code %d (%s): %s", code, code.Name(), a.stderr.String())
	}
	if rep := a.status(t, 3); rep.Status != agent.Error || rep.Code != int(failure.TimeBudgetExceeded) || !strings.Contains(rep.Message, "did not finish") {
		t.Errorf("status %+v", rep)
	}
}

// TestProtectedSettingsNeedNoCertificate: protected settings whose
// certificate the agent did not store do not fail a run that does not use
// them (no setting of ours is protected): the install gets past the
// settings to the memory check, and openssl never runs.
func TestProtectedSettingsNeedNoCertificate(t *testing.T) {
	a := newFakeAgent(t)
	a.write(t, a.root.Path("/etc/os-release"), "ID=ubuntu\nVERSION_ID=\"22.04\"\nVERSION_CODENAME=jammy\n")
	a.write(t, a.root.Path("/proc/meminfo"), "MemTotal:         400000 kB\n")
	a.write(t, filepath.Join(a.handlerDir, "config", "3.settings"),
		`{"runtimeSettings":[{"handlerSettings":{"publicSettings":{},"protectedSettings":"MIIBsQYJKoZIhvcNAQcDoIIBojCCAZ4CAQA=","protectedSettingsCertThumbprint":"0123456789ABCDEF0123456789ABCDEF01234567"}}]}`)
	opts := a.options("install")
	fake := &cmdrun.Fake{}
	opts.Runner = fake
	if code := Main(opts); code != failure.NotEnoughMemory {
		t.Fatalf("code %d (%s): %s", code, code.Name(), a.stderr.String())
	}
	if len(fake.Calls) != 0 {
		t.Errorf("commands ran: %v", fake.Lines())
	}
}

// TestNotEnoughMemory: below the threshold the install is refused with the
// numbers before anything else happens.
func TestNotEnoughMemory(t *testing.T) {
	a := newFakeAgent(t)
	a.write(t, a.root.Path("/etc/os-release"), "ID=ubuntu\nVERSION_ID=\"22.04\"\nVERSION_CODENAME=jammy\n")
	a.write(t, a.root.Path("/proc/meminfo"), "MemTotal:         400000 kB\n")
	a.settings(t, 3, `{}`)
	opts := a.options("install")
	fake := &cmdrun.Fake{}
	opts.Runner = fake
	if code := Main(opts); code != failure.NotEnoughMemory {
		t.Fatalf("code %d: %s", code, a.stderr.String())
	}
	if len(fake.Calls) != 0 {
		t.Errorf("commands ran before the memory check: %v", fake.Lines())
	}
}
