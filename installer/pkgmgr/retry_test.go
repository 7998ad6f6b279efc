package pkgmgr

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/throttle"
)

// recording reads a file of testdata/throttle/ (real apt, dnf and zypper
// output against a repository answering 429 or 503, recorded by
// test/e2e's TestRecordThrottledOutput) without its two comment lines, and
// the exit code the header names.
func recording(t *testing.T, name string) cmdrun.Result {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "throttle", name))
	if err != nil {
		t.Fatal(err)
	}
	head, body := "", string(b)
	for strings.HasPrefix(body, "# ") {
		line, rest, _ := strings.Cut(body, "\n")
		head += line + "\n"
		body = rest
	}
	exit := 0
	if _, after, ok := strings.Cut(head, "# exit "); ok {
		for _, c := range after {
			if c < '0' || c > '9' {
				break
			}
			exit = exit*10 + int(c-'0')
		}
	}
	return cmdrun.Result{Stdout: []byte(body), ExitCode: exit}
}

// Every recording is a download failure (exit 20) the decorator recognises
// as a 429 or a 503, through the same classification the back ends use.
func TestThrottledRecordingsAreRecognised(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "throttle", "*.txt"))
	if err != nil || len(files) < 12 {
		t.Fatalf("recordings: %v %v", files, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			res := recording(t, name)
			want := 429
			if strings.Contains(name, "-503") {
				want = 503
			}
			var err error
			if strings.Contains(name, "-install-") {
				err = opFailure("install", "tool", []string{"aadsshlogin"}, res, "tool install aadsshlogin")
			} else {
				err = refreshFailure("'packages-microsoft-com-prod'", "tool", res, "tool refresh")
			}
			if failure.CodeOf(err) != failure.RepositoryUnreachable {
				t.Fatalf("classified as %s: %v", failure.CodeOf(err).Name(), failure.MessageOf(err))
			}
			code, ok := throttledStatus(err)
			if !ok || code != want {
				t.Errorf("throttledStatus = %d %v, want %d", code, ok, want)
			}
		})
	}
}

// Other failures are never retried: other HTTP answers, locks, DNS,
// signatures, dependency problems.
func TestOtherFailuresAreNotThrottled(t *testing.T) {
	for _, name := range []string{"apt-update-403.txt", "apt-update-404.txt", "apt-update-resolve.txt", "apt-update-nopubkey.txt",
		"dnf-makecache-resolve.txt", "dnf-makecache-skipped.txt", "zypper-refresh-resolve.txt", "apt-install-lock.txt",
		"apt-install-depends.txt", "dnf-install-depends.txt", "apt-install-fetch404.txt"} {
		res := cmdrun.Result{Stdout: []byte(fixture(t, name)), ExitCode: 100}
		err := opFailure("install", "tool", []string{"aadsshlogin"}, res, "tool install")
		if code, ok := throttledStatus(err); ok {
			t.Errorf("%s taken for HTTP %d", name, code)
		}
	}
}

// flaky is a Manager whose network operations fail with the given errors
// first, then succeed.
type flaky struct {
	Manager
	errs  []error
	calls int
}

func (f *flaky) next() error {
	f.calls++
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	if len(f.errs) > 1 || f.errs[0] != forever {
		f.errs = f.errs[1:]
	}
	return err
}

var forever = failure.New(failure.RepositoryUnreachable, nil, "placeholder")

func (f *flaky) Kind() Kind                                      { return Apt }
func (f *flaky) Refresh(context.Context, string, string) error   { return f.next() }
func (f *flaky) Install(context.Context, ...Package) error       { return f.next() }
func (f *flaky) Available(context.Context, string) (bool, error) { return true, f.next() }
func (f *flaky) Reinstall(context.Context, ...string) error      { return f.next() }
func (f *flaky) Installed(context.Context, ...string) (map[string]string, error) {
	f.calls++
	return nil, nil
}

// fakeTime is a clock that the sleeper advances: no test sleeps.
type fakeTime struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeTime) Now() time.Time { return c.now }
func (c *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	if dl, ok := ctx.Deadline(); ok && c.now.After(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

func throttledErr(t *testing.T, name string) error {
	t.Helper()
	return refreshFailure("x", "apt-get", recording(t, name), "apt-get update")
}

func TestWithRetryWaitsThenSucceeds(t *testing.T) {
	clk := &fakeTime{now: time.Unix(1e9, 0)}
	waits := &throttle.Log{}
	m := &flaky{errs: []error{throttledErr(t, "apt-update-429.txt"), throttledErr(t, "apt-update-503.txt")}}
	r := WithRetry(m, RetryPolicy{Now: clk.Now, Sleep: clk.Sleep, Jitter: func(n int64) int64 { return n - 1 }, Waits: waits})
	ctx, cancel := context.WithDeadline(context.Background(), clk.now.Add(15*time.Minute))
	defer cancel()
	if err := r.Refresh(ctx, "", "/etc/apt/sources.list.d/microsoft-prod.list"); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if m.calls != 3 {
		t.Errorf("%d runs, want 3", m.calls)
	}
	// Equal jitter with the largest draw: the whole ceiling, 10 s then 20 s.
	if len(clk.sleeps) != 2 || clk.sleeps[0] != 10*time.Second || clk.sleeps[1] != 20*time.Second {
		t.Errorf("sleeps %v, want [10s 20s]", clk.sleeps)
	}
	ws := waits.Waits()
	if len(ws) != 2 || ws[0].Status != 429 || ws[1].Status != 503 {
		t.Errorf("recorded waits %+v", ws)
	}
	// Operations without network pass straight through.
	if _, err := r.Installed(ctx, "aadsshlogin"); err != nil || m.calls != 4 {
		t.Errorf("Installed: %v, calls %d", err, m.calls)
	}
}

func TestWithRetryJitterStaysWithinBounds(t *testing.T) {
	clk := &fakeTime{now: time.Unix(1e9, 0)}
	m := &flaky{errs: []error{throttledErr(t, "apt-update-429.txt"), forever}}
	forever.Err = throttledErr(t, "apt-update-429.txt")
	r := WithRetry(m, RetryPolicy{Now: clk.Now, Sleep: clk.Sleep})
	ctx, cancel := context.WithDeadline(context.Background(), clk.now.Add(time.Hour))
	defer cancel()
	err := r.Install(ctx, Package{Name: "aadsshlogin"})
	if m.calls != DefaultRetryAttempts {
		t.Errorf("%d runs of a never-ending 429, want the bound %d", m.calls, DefaultRetryAttempts)
	}
	var total time.Duration
	for i, d := range clk.sleeps {
		ceiling := min(DefaultRetryBase<<i, DefaultRetryMax)
		if d < ceiling/2 || d > ceiling {
			t.Errorf("wait %d: %s outside [%s, %s]", i+1, d, ceiling/2, ceiling)
		}
		total += d
	}
	if total > 270*time.Second {
		t.Errorf("waited %s in all, more than the documented 270 s", total)
	}
	wantFailure(t, err, failure.RepositoryUnreachable, "Could not install aadsshlogin with apt",
		"https://packages.microsoft.com/repos/microsoft-debian-bookworm-prod/dists/bookworm/InRelease",
		"HTTP 429 Too Many Requests", "waited 5 times", "after 6 attempts", "4,000 requests per 5 minutes")
}

func TestWithRetryStopsAtTheBudget(t *testing.T) {
	clk := &fakeTime{now: time.Unix(1e9, 0)}
	forever.Err = throttledErr(t, "apt-update-503.txt")
	m := &flaky{errs: []error{forever}}
	r := WithRetry(m, RetryPolicy{Now: clk.Now, Sleep: clk.Sleep, Jitter: func(n int64) int64 { return n - 1 }})
	// 70 s left: waits of 10 s and 20 s fit (with 30 s in reserve), 40 s
	// does not.
	deadline := clk.now.Add(70 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err := r.Refresh(ctx, "", "")
	if m.calls != 3 || len(clk.sleeps) != 2 {
		t.Errorf("%d runs and sleeps %v, want 3 runs and 2 sleeps", m.calls, clk.sleeps)
	}
	if clk.now.After(deadline) {
		t.Errorf("waited past the deadline")
	}
	wantFailure(t, err, failure.RepositoryUnreachable, "HTTP 503 Service Unavailable", "waited 2 times (30 s in all)", "time budget ran out")
}

func TestWithRetryDoesNotRetryOtherFailures(t *testing.T) {
	clk := &fakeTime{now: time.Unix(1e9, 0)}
	res := cmdrun.Result{Stdout: []byte(fixture(t, "apt-update-403.txt")), ExitCode: 100}
	m := &flaky{errs: []error{refreshFailure("x", "apt-get", res, "apt-get update")}}
	r := WithRetry(m, RetryPolicy{Now: clk.Now, Sleep: clk.Sleep})
	err := r.Refresh(context.Background(), "", "")
	if m.calls != 1 || len(clk.sleeps) != 0 {
		t.Errorf("a 403 was retried: %d runs, sleeps %v", m.calls, clk.sleeps)
	}
	wantFailure(t, err, failure.RepositoryUnreachable, "403  Forbidden")
}

// TestRetryKeepsCapabilities: the retry decorator hides no optional
// capability of the back end it wraps (the version hold needs them), and
// ignoring our repository's excludes reaches through it.
func TestRetryKeepsCapabilities(t *testing.T) {
	z := newManager(t, Zypper, &cmdrun.Fake{})
	if _, ok := As[PackageLocker](WithRetry(z, RetryPolicy{})); !ok {
		t.Error("zypper's locks are hidden by WithRetry")
	}
	d := newManager(t, Dnf, &cmdrun.Fake{})
	if _, ok := As[VersionLister](WithRetry(d, RetryPolicy{})); !ok {
		t.Error("dnf's version list is hidden by WithRetry")
	}
	f := &cmdrun.Fake{}
	m := IgnoringRepoExcludes(WithRetry(newManager(t, Dnf, f), RetryPolicy{}), "packages-microsoft-com-prod")
	if err := m.Install(context.Background(), Package{Name: "aadsshlogin", Version: "1.0.030000001"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(f.Lines(), "\n"), "--disableexcludes=packages-microsoft-com-prod") {
		t.Errorf("the retried dnf does not ignore our excludes: %q", f.Lines())
	}
}
