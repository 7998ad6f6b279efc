package sandbox

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/fixtures"
)

// Network is the fake outside world of one isolated test.
type Network struct {
	IMDS     *IMDS
	Repo     *RepoServer
	Fixtures *fixtures.Set
}

// NetworkOptions configure StartNetwork.
type NetworkOptions struct {
	IMDS IMDSOptions
	Repo RepoOptions
}

// StartNetwork starts, inside the isolated child only, the fake IMDS on
// 169.254.169.254:80 and the HTTPS repository on 127.0.0.1:443 (and [::1]:443)
// serving fx.RepoDir. Both stop at the end of the test.
func StartNetwork(t *testing.T, fx *fixtures.Set, o NetworkOptions) *Network {
	t.Helper()
	MustBeIsolated(t)
	return &Network{
		IMDS:     StartIMDS(t, o.IMDS),
		Repo:     StartRepo(t, fx, o.Repo),
		Fixtures: fx,
	}
}

// RepoOptions configure the fake packages.microsoft.com.
type RepoOptions struct {
	Status           map[string]int    // URL path prefix -> forced status code (longest prefix wins)
	Delay            time.Duration     // added before every answer
	TruncatePackages bool              // .deb/.rpm files are served cut in half
	CorruptPackages  bool              // .deb/.rpm files are served with flipped bytes
	UseWrongCert     bool              // present the certificate of the wrong CA
	OtherKey         bool              // serve fx.RepoDirOtherKey (metadata and keys/microsoft.asc from the other key)
	HostDirs         map[string]string // Host name -> web root, overriding the default root for that name
	PlainHTTP        bool              // also serve plain HTTP on 127.0.0.1:80
	// Files are served at their URL path instead of the web root's file
	// (e.g. Microsoft's real public keys at /keys/microsoft.asc).
	Files map[string][]byte
	// RateLimit answers like PMC past its limit (a fixed window, 429 with
	// Retry-After); nil: no limit. It keeps its own counters, so keep the
	// pointer to read them (Limited, Served).
	RateLimit *RateLimit
	// Bursts answer a status (429, 503) to the first matching requests,
	// then let them through.
	Bursts []*Burst
}

// RateLimit is a fixed-window request limit over all clients together (a
// fleet behind one address): the first Limit requests of each Window are
// served, the others answered 429 Too Many Requests with Retry-After set to
// the seconds left in the window. The first window starts with the first
// request.
type RateLimit struct {
	Limit  int
	Window time.Duration

	mu      sync.Mutex
	start   time.Time
	n       int // requests in the current window
	served  int // requests let through
	limited int // 429 answers
}

// take counts one request; it reports whether it may be served and, if
// not, the Retry-After to send.
func (l *RateLimit) take(now time.Time) (ok bool, retryAfter int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() || now.Sub(l.start) >= l.Window {
		if l.start.IsZero() {
			l.start = now
		} else {
			l.start = l.start.Add(now.Sub(l.start).Truncate(l.Window))
		}
		l.n = 0
	}
	l.n++
	if l.n <= l.Limit {
		l.served++
		return true, 0
	}
	l.limited++
	left := l.start.Add(l.Window).Sub(now)
	return false, max(1, int((left+time.Second-1)/time.Second))
}

// Limited is the number of 429 answers so far.
func (l *RateLimit) Limited() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limited
}

// Served is the number of requests let through so far.
func (l *RateLimit) Served() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served
}

// Burst answers Status to the first Count requests whose URL path contains
// one of Match (every request when Match is empty); Count < 0 never ends.
// RetryAfter, when set, is sent as the Retry-After header.
type Burst struct {
	Match      []string
	Status     int
	Count      int
	RetryAfter string

	mu       sync.Mutex
	answered int
}

func (b *Burst) take(p string) bool {
	if len(b.Match) > 0 && !slices.ContainsFunc(b.Match, func(m string) bool { return strings.Contains(p, m) }) {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Count >= 0 && b.answered >= b.Count {
		return false
	}
	b.answered++
	return true
}

// Answered is the number of requests the burst answered with its status.
func (b *Burst) Answered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.answered
}

// RepoRequest is one request the repository server saw.
type RepoRequest struct {
	Time   time.Time
	Method string
	Host   string
	Path   string
	Status int
}

// RepoServer is the fake packages.microsoft.com (and the other repository
// names in fixtures.ServerNames, which /etc/hosts in each root maps to
// 127.0.0.1).
type RepoServer struct {
	Addr string // "127.0.0.1:443"

	fx *fixtures.Set

	mu    sync.Mutex
	opts  RepoOptions
	rules map[string]int
	log   []RepoRequest
	srvs  []*http.Server

	good, wrong tls.Certificate
}

// DefaultRules are in force unless overridden: Oracle Linux's directory is
// forbidden on PMC.
var DefaultRules = map[string]int{"/ol/": http.StatusForbidden, "/ol": http.StatusForbidden}

// StartRepo starts the repository server (see StartNetwork).
func StartRepo(t testing.TB, fx *fixtures.Set, o RepoOptions) *RepoServer {
	t.Helper()
	MustBeIsolated(t)
	good, err := tls.X509KeyPair(fx.ServerCertPEM, fx.ServerKeyPEM)
	if err != nil {
		t.Fatalf("repo server: certificate: %v", err)
	}
	wrong, err := tls.X509KeyPair(fx.WrongServerCertPEM, fx.WrongServerKeyPEM)
	if err != nil {
		t.Fatalf("repo server: wrong certificate: %v", err)
	}
	s := &RepoServer{Addr: "127.0.0.1:443", fx: fx, opts: o, rules: map[string]int{}, good: good, wrong: wrong}
	for k, v := range DefaultRules {
		s.rules[k] = v
	}
	for k, v := range o.Status {
		s.rules[k] = v
	}
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.opts.UseWrongCert {
				return &s.wrong, nil
			}
			return &s.good, nil
		},
	}
	listen := func(addr string, useTLS, required bool) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if required {
				t.Fatalf("repo server: listen %s: %v", addr, err)
			}
			return
		}
		if useTLS {
			ln = tls.NewListener(ln, tlsConf)
		}
		srv := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, ErrorLog: nil}
		s.srvs = append(s.srvs, srv)
		go func() { _ = srv.Serve(ln) }()
	}
	listen("127.0.0.1:443", true, true)
	listen("[::1]:443", true, false)
	if o.PlainHTTP {
		listen("127.0.0.1:80", false, true)
	}
	t.Cleanup(func() {
		for _, srv := range s.srvs {
			_ = srv.Close()
		}
	})
	return s
}

// SetRule forces status code for every path under prefix; code 0 removes
// the rule (DefaultRules included).
func (s *RepoServer) SetRule(prefix string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.rules, prefix)
		return
	}
	s.rules[prefix] = code
}

// SetOptions replaces the options that can change at run time (Delay, RateLimit, Bursts,
// TruncatePackages, CorruptPackages, UseWrongCert, OtherKey, HostDirs);
// Status is merged as SetRule would.
func (s *RepoServer) SetOptions(o RepoOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	plain := s.opts.PlainHTTP
	s.opts = o
	s.opts.PlainHTTP = plain
	for k, v := range o.Status {
		s.rules[k] = v
	}
}

// Options returns the options in force.
func (s *RepoServer) Options() RepoOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

// Requests returns the paths requested so far, in order.
func (s *RepoServer) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.log))
	for i, r := range s.log {
		out[i] = r.Path
	}
	return out
}

// Log returns every request with method, host and status.
func (s *RepoServer) Log() []RepoRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RepoRequest(nil), s.log...)
}

// ResetLog forgets the requests seen so far.
func (s *RepoServer) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP serves the web root with the configured faults.
func (s *RepoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	s.serve(sw, r)
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	s.mu.Lock()
	s.log = append(s.log, RepoRequest{Time: time.Now(), Method: r.Method, Host: host, Path: r.URL.Path, Status: sw.code})
	s.mu.Unlock()
}

func (s *RepoServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	o := s.opts
	code := 0
	best := -1
	for prefix, c := range s.rules {
		if strings.HasPrefix(r.URL.Path, prefix) && len(prefix) > best {
			best, code = len(prefix), c
		}
	}
	s.mu.Unlock()
	if o.Delay > 0 {
		select {
		case <-time.After(o.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if l := o.RateLimit; l != nil {
		if ok, after := l.take(time.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(after))
			http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
			return
		}
	}
	for _, b := range o.Bursts {
		if b.take(r.URL.Path) {
			if b.RetryAfter != "" {
				w.Header().Set("Retry-After", b.RetryAfter)
			}
			http.Error(w, http.StatusText(b.Status), b.Status)
			return
		}
	}
	if code != 0 {
		http.Error(w, http.StatusText(code), code)
		return
	}
	root := s.fx.RepoDir
	if o.OtherKey {
		root = s.fx.RepoDirOtherKey
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if d, ok := o.HostDirs[strings.ToLower(host)]; ok {
		root = d
	}
	clean := path.Clean("/" + r.URL.Path)
	if body, ok := o.Files[clean]; ok {
		w.Write(body)
		return
	}
	isPkg := strings.HasSuffix(clean, ".deb") || strings.HasSuffix(clean, ".rpm")
	if isPkg && (o.TruncatePackages || o.CorruptPackages) {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(clean)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if o.TruncatePackages {
			data = data[:len(data)/2]
		}
		if o.CorruptPackages {
			data = bytes.Clone(data)
			mid := len(data) / 2
			for i := mid; i < mid+64 && i < len(data); i++ {
				data[i] ^= 0xFF
			}
		}
		http.ServeContent(w, r, path.Base(clean), time.Time{}, bytes.NewReader(data))
		return
	}
	// Always answer in full: the trees are built within the same second, so
	// If-Modified-Since would make a switched tree (OtherKey, HostDirs)
	// look unchanged to apt.
	r.Header.Del("If-Modified-Since")
	r.Header.Del("If-None-Match")
	r.Header.Del("If-Range")
	http.FileServer(http.Dir(root)).ServeHTTP(w, r)
}

// Proxy is a small HTTP proxy (CONNECT and absolute-URI requests) that
// records what went through it. It only runs in the isolated child, where
// nothing beyond loopback is reachable.
type Proxy struct {
	Addr string // host:port
	URL  string // "http://host:port"

	mu       sync.Mutex
	targets  []string
	requests []string
}

// StartProxy starts a proxy on addr (e.g. "127.0.0.1:3128", or
// "127.0.0.1:0" for any port). It stops at the end of the test.
func StartProxy(t testing.TB, addr string) *Proxy {
	t.Helper()
	MustBeIsolated(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("proxy: listen %s: %v", addr, err)
	}
	p := &Proxy{Addr: ln.Addr().String()}
	p.URL = "http://" + p.Addr
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

// Targets returns the host:port of every CONNECT request.
func (p *Proxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// Requests returns the absolute URLs of plain (non-CONNECT) proxied requests.
func (p *Proxy) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

// ServeHTTP proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.mu.Lock()
		p.targets = append(p.targets, r.Host)
		p.mu.Unlock()
		p.connect(w, r)
		return
	}
	p.mu.Lock()
	p.requests = append(p.requests, r.URL.String())
	p.mu.Unlock()
	if !r.URL.IsAbs() {
		http.Error(w, "proxy: absolute URI required", http.StatusBadRequest)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Connection")
	out.Header.Set("X-Forwarded-For", "127.0.0.1")
	tr := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(out)
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	up, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		_ = up.Close()
		http.Error(w, "proxy: hijacking unsupported", http.StatusInternalServerError)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		_ = up.Close()
		return
	}
	_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if n := buf.Reader.Buffered(); n > 0 {
			pending, _ := buf.Reader.Peek(n)
			_, _ = up.Write(pending)
		}
		_, _ = io.Copy(up, conn)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(conn, up)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	wg.Wait()
	_ = up.Close()
	_ = conn.Close()
}

// DeadProxy returns a proxy URL ("http://127.0.0.1:<port>") on which
// nothing listens: connections are refused.
func DeadProxy(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dead proxy: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("dead proxy: %v", err)
	}
	return "http://" + addr
}
