package imds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/clock"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/httpclient"
)

// fakeIMDS behaves like IMDS on the paths we use: it rejects requests
// without "Metadata: true" as the real service does, and answers token
// requests from a script (the last entry repeats).
type fakeIMDS struct {
	t       *testing.T
	mu      sync.Mutex
	script  []func(w http.ResponseWriter)
	calls   atomic.Int32
	queries []string
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Metadata") != "true" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"bad_request","error_description":"Required metadata header not specified"}`)
		return
	}
	if strings.HasPrefix(r.RequestURI, "http") {
		f.t.Errorf("request arrived in proxy form: %s", r.RequestURI)
	}
	i := int(f.calls.Add(1)) - 1
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.Path+"?"+r.URL.RawQuery)
	step := f.script[min(i, len(f.script)-1)]
	f.mu.Unlock()
	step(w)
}

func status(code int, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

const (
	tokenBody    = `{"access_token":"eyJ0eXAi.secret.token","expires_in":"3599","token_type":"Bearer"}`
	notFoundBody = `{"error":"invalid_request","error_description":"Identity not found"}`
)

// fakeClock advances only when the client sleeps, so windows are exact and
// tests do not wait.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

func newTest(t *testing.T, steps ...func(http.ResponseWriter)) (*Client, *fakeIMDS) {
	t.Helper()
	f := &fakeIMDS{t: t, script: steps}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := New(nil)
	c.BaseURL = srv.URL
	c.HTTP = httpclient.New(httpclient.Options{
		RequestTimeout: 200 * time.Millisecond, RetryMax: 1,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond,
	})
	clk := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.Now, c.Sleep = clk.Now, clk.Sleep
	return c, f
}

func wantCode(t *testing.T, err error, code failure.Code, contains string) {
	t.Helper()
	var fe *failure.Error
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want *failure.Error %s", err, code.Name())
	}
	if fe.Code != code {
		t.Errorf("code %s, want %s (%v)", fe.Code.Name(), code.Name(), err)
	}
	if !strings.Contains(fe.Msg, contains) {
		t.Errorf("message %q does not contain %q", fe.Msg, contains)
	}
	if strings.Contains(err.Error(), "secret.token") {
		t.Errorf("token leaked: %v", err)
	}
}

func TestAzEnvironment(t *testing.T) {
	c, f := newTest(t, status(200, "AzureUSGovernmentCloud\n"))
	env, err := c.AzEnvironment(context.Background())
	if err != nil || env != "AzureUSGovernmentCloud" {
		t.Fatalf("got %q, %v", env, err)
	}
	want := "/metadata/instance/compute/azEnvironment?api-version=2021-02-01&format=text"
	if f.queries[0] != want {
		t.Errorf("query %s, want %s", f.queries[0], want)
	}
}

func TestAzEnvironmentFailure(t *testing.T) {
	c, _ := newTest(t, status(500, "oops"))
	_, err := c.AzEnvironment(context.Background())
	wantCode(t, err, failure.MetadataUnreachable, "HTTP 500")
}

func TestIdentityOK(t *testing.T) {
	c, f := newTest(t, status(200, tokenBody))
	if err := c.CheckIdentity(context.Background(), time.Minute, time.Second); err != nil {
		t.Fatal(err)
	}
	want := "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + SignInResource
	if f.queries[0] != want {
		t.Errorf("query %s, want %s", f.queries[0], want)
	}
}

func TestIdentityNotFoundAfterWindow(t *testing.T) {
	c, f := newTest(t, status(400, notFoundBody))
	err := c.CheckIdentity(context.Background(), 50*time.Millisecond, 5*time.Millisecond)
	wantCode(t, err, failure.NoManagedIdentity, "az vm identity assign")
	if got := failure.CodeOf(err); got != 22 {
		t.Errorf("exit code %d", got)
	}
	// First answer at t=0, then every 5ms until 50ms have passed: 11 calls.
	if n := f.calls.Load(); n != 11 {
		t.Errorf("%d calls, want 11", n)
	}
}

func TestIdentityNotFoundPlainText(t *testing.T) {
	c, _ := newTest(t, status(400, "Identity not found"))
	err := c.CheckIdentity(context.Background(), 0, time.Millisecond)
	wantCode(t, err, failure.NoManagedIdentity, "system-assigned managed identity")
}

func TestIdentityAppearsAfterAWhile(t *testing.T) {
	c, f := newTest(t, status(400, notFoundBody), status(400, notFoundBody), status(400, notFoundBody), status(200, tokenBody))
	if err := c.CheckIdentity(context.Background(), time.Minute, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := f.calls.Load(); n != 4 {
		t.Errorf("%d calls, want 4", n)
	}
}

func TestIdentityOtherAnswersAreNotNoIdentity(t *testing.T) {
	cases := []struct {
		name string
		step func(http.ResponseWriter)
		how  string
	}{
		{"404", status(404, "not here"), "(HTTP 404)"},
		{"500", status(500, "boom"), "(HTTP 500)"},
		{"garbage 200", status(200, "<html>captive portal</html>"), "unexpected answer"},
		{"200 without token", status(200, `{"access_token":""}`), "unexpected answer"},
		{"other 400", status(400, `{"error":"invalid_resource"}`), "unexpected answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, f := newTest(t, tc.step)
			err := c.CheckIdentity(context.Background(), 30*time.Millisecond, 10*time.Millisecond)
			wantCode(t, err, failure.MetadataUnreachable, tc.how)
			if f.calls.Load() < 4 {
				t.Errorf("only %d calls: the window was not used", f.calls.Load())
			}
		})
	}
}

func TestIdentitySlow(t *testing.T) {
	c, _ := newTest(t, func(w http.ResponseWriter) { time.Sleep(400 * time.Millisecond) })
	start := time.Now()
	err := c.CheckIdentity(context.Background(), 0, time.Millisecond)
	wantCode(t, err, failure.MetadataUnreachable, "timed out")
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
}

func TestIdentityConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ := newTest(t, status(200, tokenBody))
	c.BaseURL = "http://" + addr
	err = c.CheckIdentity(context.Background(), 20*time.Millisecond, 10*time.Millisecond)
	wantCode(t, err, failure.MetadataUnreachable, "connection refused")
}

// TestIdentityCallerEndsMidAttemptKeepsLastAnswer: when the caller's
// context ends while a request is in flight, that cut-short attempt says
// nothing about IMDS; the answer before it decides the failure. The fake
// ends the caller's context itself, from inside the second request, so the
// test does not depend on how fast a loaded machine answers the first one.
func TestIdentityCallerEndsMidAttemptKeepsLastAnswer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answers  int // requests answered before the caller's context ends
		first    func(http.ResponseWriter)
		code     failure.Code
		contains string
	}{
		{"no identity, then cut", 1, status(400, notFoundBody), failure.NoManagedIdentity, "no system-assigned"},
		{"503, then cut", 1, status(503, ""), failure.MetadataUnreachable, "HTTP 503"},
		{"cut before any answer", 0, nil, failure.MetadataUnreachable, "did not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if int(calls.Add(1)) <= tc.answers {
					tc.first(w)
					return
				}
				cancel() // the caller's deadline falls during this attempt
				<-r.Context().Done()
			}))
			defer srv.Close()
			c := New(nil)
			c.BaseURL = srv.URL
			c.HTTP = httpclient.New(httpclient.Options{
				RequestTimeout: time.Minute, RetryMax: 1,
				RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond,
			})
			c.Now, c.Sleep = time.Now, clock.Sleep
			wantCode(t, c.CheckIdentity(ctx, time.Hour, time.Millisecond), tc.code, tc.contains)
			if got := calls.Load(); got != int32(tc.answers)+1 {
				t.Errorf("%d requests, want %d: the loop must stop when the caller's context ends", got, tc.answers+1)
			}
		})
	}
}

func TestMetadataHeaderRequired(t *testing.T) {
	c, f := newTest(t, status(200, tokenBody))
	// The fake rejects a request without the header, like IMDS...
	resp, err := http.Get(c.BaseURL + "/metadata/identity/oauth2/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || f.calls.Load() != 0 {
		t.Fatalf("fake accepted a request without Metadata: true")
	}
	// ...and the client passes, so it sends it.
	if err := c.CheckIdentity(context.Background(), 0, time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestNeverProxied(t *testing.T) {
	var proxyHits atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxyHits.Add(1)
		status(200, tokenBody)(w)
	}))
	defer proxy.Close()
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	f := &fakeIMDS{t: t, script: []func(http.ResponseWriter){status(200, tokenBody)}}
	imdsSrv := httptest.NewServer(f)
	defer imdsSrv.Close()

	// New reads the environment with the proxy set, as in production. Go
	// never proxies loopback addresses, so the fake is addressed by a
	// non-loopback name that only our dialer knows; any other dial (e.g. to
	// the proxy) fails and is recorded. Nothing leaves loopback.
	c := New(nil)
	c.BaseURL = "http://imds.test"
	var stray []string
	var mu sync.Mutex
	tr := c.HTTP.HTTPClient.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "imds.test:80" {
			return net.Dial("tcp", imdsSrv.Listener.Addr().String())
		}
		mu.Lock()
		stray = append(stray, addr)
		mu.Unlock()
		return nil, fmt.Errorf("test dialer: refusing %s", addr)
	}
	if err := c.CheckIdentity(context.Background(), 0, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != 1 || proxyHits.Load() != 0 || len(stray) != 0 {
		t.Errorf("imds calls %d, proxy hits %d, stray dials %v", f.calls.Load(), proxyHits.Load(), stray)
	}
}

// TestRedirectsNotFollowed: IMDS never redirects; an answer that does is
// an unexpected answer (24), and the target never sees the Metadata header
// or the token request, even with a client that would follow redirects.
func TestRedirectsNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		status(200, tokenBody)(w)
	}))
	defer target.Close()
	redirect := func(w http.ResponseWriter) {
		w.Header().Set("Location", target.URL+"/metadata/identity/oauth2/token")
		w.WriteHeader(http.StatusTemporaryRedirect)
	}
	c, _ := newTest(t, redirect)
	// A client that follows redirects to plain http anywhere, as a caller
	// might pass one in.
	c.HTTP.HTTPClient.CheckRedirect = func(*http.Request, []*http.Request) error { return nil }
	err := c.CheckIdentity(context.Background(), 0, time.Millisecond)
	wantCode(t, err, failure.MetadataUnreachable, "HTTP 307")
	if _, err := c.AzEnvironment(context.Background()); err == nil {
		t.Error("AzEnvironment accepted a redirect")
	}
	if elsewhere.Load() != 0 {
		t.Errorf("the redirect target was asked %d times", elsewhere.Load())
	}
	if New(nil).HTTP.HTTPClient.CheckRedirect == nil {
		t.Error("the production client has no redirect policy")
	}
}

// TestAnswerWordsNetworkErrorsLikeHTTPClient: IMDS failures are worded by
// httpclient.Reason, like every other network error.
func TestAnswerWordsNetworkErrorsLikeHTTPClient(t *testing.T) {
	for _, err := range []error{
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)},
		errors.New("something odd"),
		context.DeadlineExceeded,
	} {
		a := &answer{err: err}
		if got, want := a.how(), httpclient.Reason(err); got != want {
			t.Errorf("%v: %q, want %q", err, got, want)
		}
	}
}
