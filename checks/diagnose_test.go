package checks

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeNet resolves names from a table and dials fake addresses to local
// listeners, so Diagnose is exercised without any lookup or packet leaving
// loopback. Unknown names fail like NXDOMAIN; unknown addresses fail.
type fakeNet struct {
	mu    sync.Mutex
	names map[string]string // host -> fake IP
	addrs map[string]string // fake IP:port -> real loopback address
}

func (f *fakeNet) LookupHost(ctx context.Context, host string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ip, ok := f.names[host]; ok {
		return []string{ip}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (f *fakeNet) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	f.mu.Lock()
	real, ok := f.addrs[address]
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fakeNet: no route to %s", address)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

// add maps host:port to a local address through a fake documentation IP.
func (f *fakeNet) add(host, port, real string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.names == nil {
		f.names, f.addrs = map[string]string{}, map[string]string{}
	}
	ip, ok := f.names[host]
	if !ok {
		ip = fmt.Sprintf("192.0.2.%d", len(f.names)+1)
		f.names[host] = ip
	}
	f.addrs[net.JoinHostPort(ip, port)] = real
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func noProxyEnv(t *testing.T) {
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"} {
		t.Setenv(k, "")
	}
}

func TestDiagnose(t *testing.T) {
	noProxyEnv(t)
	ok := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/forbidden" {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer ok.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	// A listener that accepts and never speaks: the TLS handshake hangs.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	fn := &fakeNet{}
	okAddr := ok.Listener.Addr().String()
	// httptest's certificate is for example.com, so that name passes the
	// hostname check and others do not.
	fn.add("example.com", "443", okAddr)
	fn.add("wrongname.test", "443", okAddr)
	fn.add("closed.test", "443", closedAddr(t))
	fn.add("plain.test", "443", plain.Listener.Addr().String())
	fn.add("plain.test", "80", plain.Listener.Addr().String())
	fn.add("silent.test", "443", silent.Addr().String())

	roots := x509.NewCertPool()
	roots.AddCert(ok.Certificate())
	d := diagnoser{dial: fn, roots: roots, probe: 300 * time.Millisecond, total: 30 * time.Second}

	eps := []Endpoint{
		{"repository", "https://example.com/keys/microsoft.asc"},
		{"forbidden", "https://example.com/forbidden"},
		{"wrong name", "https://wrongname.test/"},
		{"refused", "https://closed.test/"},
		{"dns", "https://nonexistent.invalid/"},
		{"not tls", "https://plain.test/"},
		{"http", "http://plain.test/"},
		{"silent", "https://silent.test/"},
		{"bad", "ftp://x/"},
	}
	wants := []string{
		"repository (example.com:443): reachable (HTTP 200 OK).",
		"forbidden (example.com:443): the server answered HTTP 403 Forbidden.",
		"wrong name (wrongname.test:443): TLS handshake failed (certificate verify failed: the certificate is not valid for wrongname.test",
		"refused (closed.test:443): TCP connection to closed.test port 443 failed (connection refused)",
		"dns (nonexistent.invalid:443): DNS lookup of nonexistent.invalid failed (no such host)",
		"not tls (plain.test:443): TLS handshake failed (the server did not speak TLS)",
		"http (plain.test:80): reachable (HTTP 200 OK).",
		"silent (silent.test:443): TLS handshake failed (timed out)",
		"bad: not a valid http(s) URL",
	}
	start := time.Now()
	out := d.run(context.Background(), eps)
	// Without the 300ms probe bound the silent server would hold the run
	// until the 30s total; 5s leaves room for a loaded CI machine.
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %s; every probe is bounded by 300ms", time.Since(start))
	}
	lines := strings.Split(out, "\n")
	if len(lines) != len(wants) {
		t.Fatalf("got %d lines:\n%s", len(lines), out)
	}
	for i, want := range wants {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d:\n got %s\nwant %s…", i, lines[i], want)
		}
	}

	// Through the public entry point the system trust store applies, so the
	// test certificate is reported as untrusted.
	out = Diagnose(context.Background(), eps[:1], fn)
	if !strings.Contains(out, "is not trusted; a TLS-inspecting proxy") {
		t.Errorf("untrusted certificate: %s", out)
	}
}

// connectProxy is a minimal CONNECT proxy: it tunnels to the address the
// fake network gives the requested host, or refuses with status refuse.
func connectProxy(t *testing.T, fn *fakeNet, refuse int, seen *[]string) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*seen = append(*seen, r.Method+" "+r.Host+" auth="+r.Header.Get("Proxy-Authorization"))
		mu.Unlock()
		if refuse != 0 || r.Method != http.MethodConnect {
			w.WriteHeader(refuse)
			return
		}
		host, port, _ := net.SplitHostPort(r.Host)
		ips, _ := fn.LookupHost(r.Context(), host)
		if len(ips) == 0 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		up, err := fn.DialContext(r.Context(), "tcp", net.JoinHostPort(ips[0], port))
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		hj, _ := w.(http.Hijacker)
		c, buf, err := hj.Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { _, _ = io.Copy(up, buf); up.Close() }()
		_, _ = io.Copy(c, up)
		c.Close()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDiagnoseThroughProxy(t *testing.T) {
	ok := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ok.Certificate())

	for _, tc := range []struct {
		refuse int
		want   string
	}{
		{0, "reachable (HTTP 200 OK)."},
		{http.StatusProxyAuthRequired, "the proxy refused the connection (HTTP 407 Proxy Authentication Required)"},
	} {
		fn := &fakeNet{}
		fn.add("example.com", "443", ok.Listener.Addr().String())
		var seen []string
		proxy := connectProxy(t, fn, tc.refuse, &seen)
		fn.add("proxy.test", "3128", proxy.Listener.Addr().String())
		noProxyEnv(t)
		t.Setenv("HTTPS_PROXY", "http://corp%5Cuser:s3cret@proxy.test:3128")

		d := diagnoser{dial: fn, roots: roots, probe: time.Second, total: 2 * time.Second}
		d.proxy = proxyFromEnv()
		out := d.run(context.Background(), []Endpoint{{"repository", "https://example.com/"}})
		if !strings.HasPrefix(out, "repository (example.com:443) via proxy http://proxy.test:3128: ") ||
			!strings.Contains(out, tc.want) {
			t.Errorf("refuse=%d: %s", tc.refuse, out)
		}
		if strings.Contains(out, "s3cret") || strings.Contains(out, "corp") {
			t.Errorf("proxy credentials in the output: %s", out)
		}
		if len(seen) != 1 || !strings.HasPrefix(seen[0], "CONNECT example.com:443 auth=Basic ") {
			t.Errorf("proxy saw %v", seen)
		}
	}

	// A proxy whose name does not resolve is named as such.
	fn := &fakeNet{}
	noProxyEnv(t)
	t.Setenv("HTTPS_PROXY", "http://gone.invalid:8080")
	d := diagnoser{dial: fn, proxy: proxyFromEnv(), probe: time.Second, total: time.Second}
	out := d.run(context.Background(), []Endpoint{{"login", "https://login.microsoftonline.com/"}})
	if !strings.Contains(out, "DNS lookup of the proxy gone.invalid failed (no such host)") {
		t.Errorf("got %s", out)
	}
}

func TestDiagnoseTotalBound(t *testing.T) {
	noProxyEnv(t)
	d := diagnoser{dial: hangingNet{}, probe: time.Hour, total: 100 * time.Millisecond}
	start := time.Now()
	out := d.run(context.Background(), []Endpoint{{"a", "https://a.test/"}, {"b", "https://b.test/"}})
	if time.Since(start) > 10*time.Second || strings.Count(out, "timed out") != 2 {
		t.Errorf("after %s: %s", time.Since(start), out)
	}
}

// hangingNet never answers lookups until the context ends.
type hangingNet struct{}

func (hangingNet) LookupHost(ctx context.Context, host string) ([]string, error) {
	<-ctx.Done()
	return nil, &net.DNSError{Err: ctx.Err().Error(), Name: host, IsTimeout: true}
}

func (hangingNet) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestRedactedProxy(t *testing.T) {
	u, _ := url.Parse("http://user:pw@proxy.corp:8080/")
	if got := redactedProxy(u); got != "http://proxy.corp:8080/" {
		t.Errorf("got %s", got)
	}
}

// TestDiagnoseWordsErrorsLikeHTTPClient: the diagnosis words network errors
// as httpclient.Reason does (a connection closed before the answer used to
// show Go's "EOF").
func TestDiagnoseWordsErrorsLikeHTTPClient(t *testing.T) {
	noProxyEnv(t)
	closing, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer closing.Close()
	go func() {
		for {
			c, err := closing.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 4096))
			c.Close()
		}
	}()
	fn := &fakeNet{}
	fn.add("closing.test", "80", closing.Addr().String())
	d := diagnoser{dial: fn, roots: x509.NewCertPool(), probe: time.Second, total: 2 * time.Second}
	out := d.run(context.Background(), []Endpoint{{"closing", "http://closing.test/"}})
	if !strings.Contains(out, "no HTTP answer (connection closed by the server)") {
		t.Errorf("got %q", out)
	}
}
