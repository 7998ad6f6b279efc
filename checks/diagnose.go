package checks

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/aadsshlogin/handler/httpclient"
)

// Endpoint is one HTTPS endpoint to diagnose.
type Endpoint struct {
	// Name says what the endpoint is for ("package repository", "Entra
	// login", …).
	Name string
	// URL is what the handler tried to reach.
	URL string
}

// Dialer resolves names and opens connections for Diagnose. Tests inject one
// so that no lookup or packet leaves loopback.
type Dialer interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// systemDialer is the production Dialer: the system resolver and a plain
// TCP dialer.
type systemDialer struct{ d net.Dialer }

func (s *systemDialer) LookupHost(ctx context.Context, host string) ([]string, error) {
	return net.DefaultResolver.LookupHost(ctx, host)
}

func (s *systemDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return s.d.DialContext(ctx, network, address)
}

// Time bounds of Diagnose: it runs after a failure, inside the verb's time
// budget, so it must not add more than a few seconds per endpoint.
const (
	probeTimeout = 5 * time.Second
	totalTimeout = 20 * time.Second
)

// Diagnose explains, one line per endpoint, where reaching each endpoint
// fails: the DNS lookup, the TCP connection, the TLS handshake (certificate
// problems, typically a TLS-inspecting proxy), or the HTTP answer. When the
// environment sets a proxy for an endpoint, the line names it (without
// credentials) and the steps are taken towards the proxy. Probes run in
// parallel; each takes at most 5 s and all together at most 20 s. dial nil
// means the system resolver and dialer.
func Diagnose(ctx context.Context, endpoints []Endpoint, dial Dialer) string {
	d := diagnoser{
		dial:  dial,
		proxy: proxyFromEnv(),
		probe: probeTimeout,
		total: totalTimeout,
	}
	return d.run(ctx, endpoints)
}

// proxyFromEnv snapshots http_proxy/https_proxy/no_proxy as the package
// managers and our downloads see them.
func proxyFromEnv() func(*url.URL) (*url.URL, error) {
	return httpproxy.FromEnvironment().ProxyFunc()
}

type diagnoser struct {
	dial  Dialer
	proxy func(*url.URL) (*url.URL, error)
	// roots replaces the system trust store (tests).
	roots        *x509.CertPool
	probe, total time.Duration
}

func (d diagnoser) run(ctx context.Context, endpoints []Endpoint) string {
	results := d.probeAll(ctx, endpoints)
	lines := make([]string, len(results))
	for i, r := range results {
		lines[i] = r.Line
	}
	return strings.Join(lines, "\n")
}

// ProbeResult is what probing one endpoint found.
type ProbeResult struct {
	Endpoint Endpoint
	// Line is the endpoint's line of Diagnose's text.
	Line string
	// Reached is true when an HTTP answer came back (any status).
	Reached bool
	// Date is that answer's Date header (zero without one).
	Date time.Time
}

// Probe is Diagnose with one result per endpoint, in the order given,
// under the same bounds; doctor uses it.
func Probe(ctx context.Context, endpoints []Endpoint, dial Dialer) []ProbeResult {
	d := diagnoser{dial: dial, proxy: proxyFromEnv(), probe: probeTimeout, total: totalTimeout}
	return d.probeAll(ctx, endpoints)
}

func (d diagnoser) probeAll(ctx context.Context, endpoints []Endpoint) []ProbeResult {
	if d.dial == nil {
		d.dial = &systemDialer{}
	}
	if d.proxy == nil {
		d.proxy = func(*url.URL) (*url.URL, error) { return nil, nil }
	}
	ctx, cancel := context.WithTimeout(ctx, d.total)
	defer cancel()
	results := make([]ProbeResult, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Go(func() {
			pctx, pcancel := context.WithTimeout(ctx, d.probe)
			defer pcancel()
			results[i] = d.endpoint(pctx, ep)
		})
	}
	wg.Wait()
	return results
}

// endpoint probes one endpoint and renders its line.
func (d diagnoser) endpoint(ctx context.Context, ep Endpoint) ProbeResult {
	u, err := url.Parse(ep.URL)
	if err != nil || u.Hostname() == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return ProbeResult{Endpoint: ep, Line: fmt.Sprintf("%s: not a valid http(s) URL", ep.Name)}
	}
	target := net.JoinHostPort(u.Hostname(), portOf(u))
	label := fmt.Sprintf("%s (%s)", ep.Name, target)
	proxyURL, err := d.proxy(u)
	if err != nil {
		return ProbeResult{Endpoint: ep, Line: fmt.Sprintf("%s: the proxy setting in the environment is invalid (%v)", label, err)}
	}
	if proxyURL != nil {
		label += " via proxy " + redactedProxy(proxyURL)
	}
	line, ok, date := d.steps(ctx, u, target, proxyURL)
	return ProbeResult{Endpoint: ep, Line: label + ": " + line, Reached: ok, Date: date}
}

func (d diagnoser) steps(ctx context.Context, u *url.URL, target string, proxyURL *url.URL) (string, bool, time.Time) {
	// The first hop is the proxy when there is one, else the endpoint.
	hopHost, hopPort, hopName := u.Hostname(), portOf(u), ""
	if proxyURL != nil {
		hopHost, hopPort, hopName = proxyURL.Hostname(), portOf(proxyURL), "the proxy "
	}

	addrs := []string{hopHost}
	if net.ParseIP(hopHost) == nil {
		var err error
		addrs, err = d.dial.LookupHost(ctx, hopHost)
		if err != nil || len(addrs) == 0 {
			reason := "no addresses"
			if err != nil {
				reason = httpclient.DNSReason(err)
			}
			return fmt.Sprintf("DNS lookup of %s%s failed (%s); check the VM's DNS servers.", hopName, hopHost, reason), false, time.Time{}
		}
	}

	var conn net.Conn
	var dialErr error
	for _, a := range addrs {
		conn, dialErr = d.dial.DialContext(ctx, "tcp", net.JoinHostPort(a, hopPort))
		if dialErr == nil {
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	if conn == nil {
		return fmt.Sprintf("TCP connection to %s%s port %s failed (%s); check firewall, NSG and route rules for outbound traffic.",
			hopName, hopHost, hopPort, httpclient.Reason(dialErr)), false, time.Time{}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}

	if proxyURL != nil && proxyURL.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: hopHost, RootCAs: d.roots, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Sprintf("TLS handshake with the proxy failed (%s).", httpclient.Reason(err)), false, time.Time{}
		}
		conn = tc
	}

	br := bufio.NewReader(conn)
	tunnel := proxyURL != nil && u.Scheme == "https"
	if tunnel {
		if msg := connectThrough(conn, br, proxyURL, target); msg != "" {
			return msg, false, time.Time{}
		}
	}

	if u.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname(), RootCAs: d.roots, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Sprintf("TLS handshake failed (%s).", httpclient.Reason(err)), false, time.Time{}
		}
		conn = tc
		br = bufio.NewReader(conn)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Sprintf("could not build the request (%v).", err), false, time.Time{}
	}
	req.Header.Set("User-Agent", "aadsshlogin-handler-diagnose")
	req.Close = true
	if proxyURL != nil && !tunnel {
		setProxyAuth(req.Header, proxyURL)
		err = req.WriteProxy(conn)
	} else {
		err = req.Write(conn)
	}
	if err != nil {
		return fmt.Sprintf("sending the HTTP request failed (%s).", httpclient.Reason(err)), false, time.Time{}
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fmt.Sprintf("no HTTP answer (%s).", httpclient.Reason(err)), false, time.Time{}
	}
	_ = resp.Body.Close()
	date, _ := http.ParseTime(resp.Header.Get("Date"))
	if resp.StatusCode < 400 {
		return fmt.Sprintf("reachable (HTTP %s).", resp.Status), true, date
	}
	return fmt.Sprintf("the server answered HTTP %s.", resp.Status), true, date
}

// connectThrough opens a tunnel to target; it returns a message when the
// proxy refuses.
func connectThrough(conn net.Conn, br *bufio.Reader, proxyURL *url.URL, target string) string {
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: http.Header{},
	}
	setProxyAuth(req.Header, proxyURL)
	if err := req.Write(conn); err != nil {
		return fmt.Sprintf("sending CONNECT to the proxy failed (%s).", httpclient.Reason(err))
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fmt.Sprintf("the proxy did not answer CONNECT (%s).", httpclient.Reason(err))
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("the proxy refused the connection (HTTP %s); check the proxy's credentials and allow list.", resp.Status)
	}
	return ""
}

func setProxyAuth(h http.Header, proxyURL *url.URL) {
	if proxyURL.User == nil {
		return
	}
	pw, _ := proxyURL.User.Password()
	cred := base64.StdEncoding.EncodeToString([]byte(proxyURL.User.Username() + ":" + pw))
	h.Set("Proxy-Authorization", "Basic "+cred)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// redactedProxy prints a proxy URL without credentials, which often sit in
// http_proxy as user:password@host.
func redactedProxy(p *url.URL) string {
	c := *p
	c.User = nil
	c.RawQuery, c.Fragment = "", ""
	return c.String()
}
