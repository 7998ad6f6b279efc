package httpclient

import (
	"bytes"
	"context"
	"errors"
	"io"
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
	if n.Load() != 2 || time.Since(start) > time.Second {
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
	for attempt := range 10 {
		for range 50 {
			d := backoff(10*time.Millisecond, 80*time.Millisecond, attempt, nil)
			ceiling := min(10*time.Millisecond<<attempt, 80*time.Millisecond)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: %s outside [0,%s]", attempt, d, ceiling)
			}
		}
	}
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"3"}}}
	if d := backoff(time.Millisecond, 10*time.Second, 0, resp); d != 3*time.Second {
		t.Errorf("Retry-After 3: %s", d)
	}
	if d := backoff(time.Millisecond, time.Second, 0, resp); d != time.Second {
		t.Errorf("Retry-After capped: %s", d)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if d, ok := retryAfter(now.Add(5*time.Second).Format(http.TimeFormat), now); !ok || d != 5*time.Second {
		t.Errorf("date form: %s %v", d, ok)
	}
	if _, ok := retryAfter("soon", now); ok {
		t.Error("garbage Retry-After accepted")
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
