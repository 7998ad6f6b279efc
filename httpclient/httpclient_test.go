package httpclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/throttle"
)

func fast(o Options) Options {
	o.RetryWaitMin = time.Millisecond
	o.RetryWaitMax = 5 * time.Millisecond
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 2 * time.Second
	}
	return o
}

func countingServer(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(statuses) {
			i = len(statuses) - 1
		}
		w.WriteHeader(statuses[i])
		_, _ = io.WriteString(w, "body")
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetriesTransientThenSucceeds(t *testing.T) {
	for _, first := range []int{408, 429, 500, 502, 503, 504} {
		srv, n := countingServer(t, first, first, 200)
		c := New(fast(Options{RetryMax: 4}))
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatalf("%d: %v", first, err)
		}
		Drain(resp.Body)
		if resp.StatusCode != 200 || n.Load() != 3 {
			t.Errorf("%d: status %d after %d calls, want 200 after 3", first, resp.StatusCode, n.Load())
		}
	}
}

func TestNoRetryOnOther4xx(t *testing.T) {
	for _, st := range []int{400, 401, 403, 404, 501} {
		srv, n := countingServer(t, st)
		c := New(fast(Options{RetryMax: 4}))
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatalf("%d: %v", st, err)
		}
		Drain(resp.Body)
		if resp.StatusCode != st || n.Load() != 1 {
			t.Errorf("%d: status %d after %d calls, want 1 call", st, resp.StatusCode, n.Load())
		}
	}
}

func TestExhaustedRetriesReturnLastStatus(t *testing.T) {
	srv, n := countingServer(t, 503)
	c := New(fast(Options{RetryMax: 2}))
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("want the last response, got error %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || string(b) != "body" {
		t.Errorf("got %d %q, want 503 with its body", resp.StatusCode, b)
	}
	if n.Load() != 3 {
		t.Errorf("%d attempts, want 3 (1 + RetryMax)", n.Load())
	}
}

func TestConnectionRefusedIsInspectable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := New(fast(Options{RetryMax: 2}))
	_, err = c.Get("http://" + addr + "/x?secret=abc")
	var re *RetryError
	if !errors.As(err, &re) || re.Attempts != 3 {
		t.Fatalf("got %v, want *RetryError after 3 attempts", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("cause not inspectable: %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("query string leaked into error: %v", err)
	}
}

func TestPerAttemptTimeout(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer srv.Close()
	c := New(fast(Options{RetryMax: 1, RequestTimeout: 50 * time.Millisecond}))
	start := time.Now()
	_, err := c.Get(srv.URL)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("got %v, want a timeout", err)
	}
	// Unbounded, the two attempts would take 4s; the margin is for load.
	if n.Load() != 2 || time.Since(start) > 3*time.Second {
		t.Errorf("%d attempts in %s", n.Load(), time.Since(start))
	}
}

func TestContextCancelStops(t *testing.T) {
	srv, n := countingServer(t, 500)
	c := New(Options{RetryMax: 10, RetryWaitMin: time.Second, RetryWaitMax: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := newReq(ctx, srv.URL)
	_, err := c.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want deadline exceeded", err)
	}
	if n.Load() > 2 {
		t.Errorf("%d attempts after cancel", n.Load())
	}
}

func TestBackoffFullJitterAndRetryAfter(t *testing.T) {
	p := policy{now: time.Now, jitter: rand.N[int64]}
	for attempt := range 10 {
		for range 50 {
			d := p.backoff(10*time.Millisecond, 80*time.Millisecond, attempt, nil)
			ceiling := min(10*time.Millisecond<<attempt, 80*time.Millisecond)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: %s outside [0,%s]", attempt, d, ceiling)
			}
		}
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if d, ok := retryAfter(now.Add(5*time.Second).Format(http.TimeFormat), now); !ok || d != 5*time.Second {
		t.Errorf("date form: %s %v", d, ok)
	}
	if _, ok := retryAfter("soon", now); ok {
		t.Error("garbage Retry-After accepted")
	}
	if _, ok := retryAfter("-3", now); ok {
		t.Error("negative Retry-After accepted")
	}
	if d, ok := retryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now); !ok || d != 0 {
		t.Errorf("date in the past: %s %v", d, ok)
	}
}

// throttled builds a 429/503 answer to a request whose context ends at
// deadline (zero: no deadline).
func throttled(t *testing.T, code int, retryAfter string, deadline time.Time) *http.Response {
	t.Helper()
	ctx := context.Background()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		t.Cleanup(cancel)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://packages.microsoft.com/keys/microsoft.asc?sig=secret", nil)
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return &http.Response{StatusCode: code, Header: h, Request: req}
}

// The clock and the random source are injected: no test sleeps.
func TestRetryAfterHonouredInFullWithinTheBudget(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	maxJitter := func(n int64) int64 { return n - 1 }
	waits := &throttle.Log{}
	p := policy{now: clock, jitter: maxJitter, waits: waits}

	// Seconds form, longer than RetryWaitMax: honoured in full (retrying
	// earlier would only meet the limit again), plus up to a quarter.
	if d := p.backoff(time.Millisecond, 10*time.Second, 0, throttled(t, 429, "40", time.Time{})); d != 50*time.Second {
		t.Errorf("Retry-After 40 with the largest jitter: waited %s, want 40 s + 10 s", d)
	}
	noJitter := policy{now: clock, jitter: func(int64) int64 { return 0 }, waits: waits}
	if d := noJitter.backoff(time.Millisecond, 10*time.Second, 0, throttled(t, 503, now.Add(7*time.Second).UTC().Format(http.TimeFormat), time.Time{})); d < 6*time.Second || d > 7*time.Second {
		t.Errorf("Retry-After as a date 7 s ahead: waited %s", d)
	}
	// Capped by the remaining budget.
	if d := p.backoff(time.Millisecond, 10*time.Second, 0, throttled(t, 429, "40", now.Add(42*time.Second))); d != 42*time.Second {
		t.Errorf("Retry-After 40 + jitter with 42 s left: waited %s, want 42 s", d)
	}
	// Without Retry-After: capped too.
	if d := p.backoff(time.Second, 8*time.Second, 5, throttled(t, 503, "", now.Add(3*time.Second))); d != 3*time.Second {
		t.Errorf("backoff with 3 s left: %s", d)
	}
	ws := waits.Waits()
	if len(ws) != 4 || ws[0].Status != 429 || ws[1].Status != 503 || ws[0].Delay != 50*time.Second {
		t.Fatalf("recorded waits %+v", ws)
	}
	if strings.Contains(ws[0].Source, "secret") || !strings.Contains(ws[0].Source, "/keys/microsoft.asc") {
		t.Errorf("wait source %q", ws[0].Source)
	}
	// 500 is retried but is not a rate limit: not recorded.
	p.backoff(time.Millisecond, time.Second, 0, throttled(t, 500, "", time.Time{}))
	if n, _ := waits.Total(); n != 4 {
		t.Errorf("a 500 was recorded as a rate-limit wait")
	}
}

func TestRetryAfterPastTheBudgetStopsAtOnce(t *testing.T) {
	now := time.Now()
	p := policy{now: func() time.Time { return now }, jitter: func(int64) int64 { return 0 }}
	resp := throttled(t, 429, "120", now.Add(time.Minute))
	ok, err := p.checkRetry(resp.Request.Context(), resp, nil)
	if ok || err != nil {
		t.Errorf("Retry-After 120 s with 60 s left: retry=%v err=%v, want no retry", ok, err)
	}
	resp = throttled(t, 429, "30", now.Add(time.Minute))
	if ok, _ := p.checkRetry(resp.Request.Context(), resp, nil); !ok {
		t.Error("Retry-After 30 s with 60 s left not retried")
	}
	resp = throttled(t, 404, "1", time.Time{})
	if ok, _ := p.checkRetry(resp.Request.Context(), resp, nil); ok {
		t.Error("404 retried")
	}
}

// End to end through retryablehttp: 429 twice (Retry-After: 0), then the
// body; the waits are recorded; a 429 that never ends is returned to the
// caller after RetryMax+1 requests.
func TestThrottledDownloadRetriedAndBounded(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/forever" || n.Add(1) <= 2 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
			return
		}
		io.WriteString(w, "key")
	}))
	defer srv.Close()
	waits := &throttle.Log{}
	c := New(Options{RetryMax: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, Waits: waits})
	resp, err := c.Get(srv.URL + "/key")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v %v", resp, err)
	}
	Drain(resp.Body)
	if got, _ := waits.Total(); got != 2 {
		t.Errorf("%d waits recorded, want 2", got)
	}
	var forever atomic.Int32
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forever.Add(1)
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(429)
	})
	resp, err = c.Get(srv.URL + "/forever")
	if err != nil || resp.StatusCode != 429 {
		t.Fatalf("never-ending 429: %v %v, want the 429 answer", resp, err)
	}
	Drain(resp.Body)
	if forever.Load() != 4 {
		t.Errorf("%d requests for a never-ending 429, want RetryMax+1 = 4", forever.Load())
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var n atomic.Int32
	var first time.Time
	var gap time.Duration
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			return
		}
		gap = time.Since(first)
	}))
	defer srv.Close()
	c := New(Options{RetryMax: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Second})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	if gap < 900*time.Millisecond {
		t.Errorf("retried after %s, Retry-After said 1s", gap)
	}
}

// proxyRecorder is a stand-in proxy that counts requests and answers 299,
// so a proxied request is recognisable.
func proxyRecorder(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(299)
	}))
	t.Cleanup(proxy.Close)
	return proxy, &hits
}

func TestProxyChoice(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
	}))
	defer target.Close()
	proxy, hits := proxyRecorder(t)
	for _, k := range []string{"HTTP_PROXY", "http_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	// The dialer sends "target.test:80" to the local target and the proxy's
	// address to the proxy; no packet leaves loopback and Go's rule of never
	// proxying loopback addresses does not hide the decision.
	for _, use := range []bool{false, true} {
		hits.Store(0)
		c := New(fast(Options{UseProxy: use, RetryMax: -1}))
		tr := c.HTTPClient.Transport.(*http.Transport)
		targetAddr := target.Listener.Addr().String()
		proxyAddr := proxy.Listener.Addr().String()
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			switch addr {
			case "target.test:80":
				return net.Dial("tcp", targetAddr)
			case proxyAddr:
				return net.Dial("tcp", proxyAddr)
			}
			return nil, errors.New("unexpected dial to " + addr)
		}
		resp, err := c.Get("http://target.test/")
		if err != nil {
			t.Fatalf("UseProxy=%v: %v", use, err)
		}
		Drain(resp.Body)
		wantStatus, wantHits := 200, int32(0)
		if use {
			wantStatus, wantHits = 299, 1
		}
		if resp.StatusCode != wantStatus || hits.Load() != wantHits {
			t.Errorf("UseProxy=%v: status %d, proxy hits %d", use, resp.StatusCode, hits.Load())
		}
	}
}

func TestLoggingIsDebugAndScrubbed(t *testing.T) {
	srv, _ := countingServer(t, 500, 200)
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetLevel(logrus.DebugLevel)
	c := New(fast(Options{RetryMax: 2, Log: log}))
	resp, err := c.Get(srv.URL + "/path?sig=topsecret")
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	out := buf.String()
	if strings.Contains(out, "topsecret") {
		t.Errorf("query string logged:\n%s", out)
	}
	if !strings.Contains(out, "/path") || !strings.Contains(out, "level=debug") {
		t.Errorf("expected debug lines naming the path:\n%s", out)
	}
	if strings.Contains(out, "level=error") || strings.Contains(out, "level=info") {
		t.Errorf("per-attempt lines above debug:\n%s", out)
	}
}

func TestRedactURL(t *testing.T) {
	got := RedactURL("https://user:pw@host.example/p?a=b#frag")
	if got != "https://host.example/p" {
		t.Errorf("got %q", got)
	}
}

func newReq(ctx context.Context, u string) (*retryablehttp.Request, error) {
	return retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
}

// TestRedirectsStayOnHTTPSAndHost: key and metadata downloads follow a
// redirect only to https on the host (and port) they were sent to; to plain
// http, to another host, or round and round, they stop with
// ErrRedirectRefused at once (no retries) and the other server is never
// asked.
func TestRedirectsStayOnHTTPSAndHost(t *testing.T) {
	var other atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { other.Add(1) }))
	defer plain.Close()
	otherTLS := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { other.Add(1) }))
	defer otherTLS.Close()
	var hits atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/keys/microsoft.asc", http.StatusFound)
		case "/same-absolute":
			http.Redirect(w, r, srv.URL+"/keys/microsoft.asc", http.StatusMovedPermanently)
		case "/to-http":
			http.Redirect(w, r, plain.URL+"/keys/microsoft.asc", http.StatusFound)
		case "/to-http-same-host":
			http.Redirect(w, r, "http://"+r.Host+"/keys/microsoft.asc", http.StatusFound)
		case "/to-other-host":
			http.Redirect(w, r, otherTLS.URL+"/keys/microsoft.asc", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/keys/microsoft.asc":
			_, _ = io.WriteString(w, "key")
		}
	}))
	defer srv.Close()
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c := New(fast(Options{RetryMax: 2, RootCAs: pool}))

	for _, path := range []string{"/same", "/same-absolute"} {
		for _, client := range []*retryablehttp.Client{c, Passthrough(c)} {
			resp, err := client.Get(srv.URL + path)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "key" {
				t.Errorf("%s: %d %q, want the key", path, resp.StatusCode, body)
			}
		}
	}
	for _, path := range []string{"/to-http", "/to-http-same-host", "/to-other-host", "/loop"} {
		for _, client := range []*retryablehttp.Client{c, Passthrough(c)} {
			hits.Store(0)
			resp, err := client.Get(srv.URL + path)
			if err == nil {
				Drain(resp.Body)
				t.Errorf("%s: followed to %s (HTTP %d)", path, resp.Request.URL, resp.StatusCode)
				continue
			}
			if !errors.Is(err, ErrRedirectRefused) {
				t.Errorf("%s: %v, want ErrRedirectRefused", path, err)
			}
			if want := int32(1); path != "/loop" && hits.Load() != want {
				t.Errorf("%s: %d requests, want %d (a refused redirect is not retried)", path, hits.Load(), want)
			}
			if path == "/loop" && hits.Load() != maxRedirects+1 {
				t.Errorf("/loop: %d requests, want %d", hits.Load(), maxRedirects+1)
			}
			if r := Reason(err); !strings.Contains(r, "redirected") {
				t.Errorf("%s: reason %q", path, r)
			}
		}
	}
	if other.Load() != 0 {
		t.Errorf("the redirect targets were asked %d times", other.Load())
	}
}

// TestNoRedirects: the copy follows nothing and hands back the 3xx answer;
// the original keeps its policy.
func TestNoRedirects(t *testing.T) {
	var target atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { target.Add(1) }))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/x", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c := New(fast(Options{RetryMax: 1}))
	resp, err := NoRedirects(c).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	if resp.StatusCode != http.StatusTemporaryRedirect || target.Load() != 0 {
		t.Errorf("status %d, target asked %d times", resp.StatusCode, target.Load())
	}
	if c.HTTPClient.CheckRedirect == nil {
		t.Fatal("New's client has no redirect policy")
	}
	if _, err := c.Get(srv.URL); !errors.Is(err, ErrRedirectRefused) {
		t.Errorf("the original client: %v", err)
	}
}

// TestWithLog: a client built without a log (main.go's) logs its attempts
// through the copy WithLog makes, and the original stays silent.
func TestWithLog(t *testing.T) {
	srv, _ := countingServer(t, 500, 200)
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetLevel(logrus.DebugLevel)
	c := New(fast(Options{RetryMax: 2}))
	resp, err := WithLog(c, log).Get(srv.URL + "/path")
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	if !strings.Contains(buf.String(), "/path") {
		t.Errorf("no attempt logged:\n%s", buf.String())
	}
	if c.Logger != nil {
		t.Error("WithLog changed the original client")
	}
}
