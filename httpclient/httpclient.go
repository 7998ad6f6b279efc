// Package httpclient builds the one kind of HTTP client the handler uses:
// bounded, jittered retries on answers that may go away by themselves, an
// explicit choice about proxies, and logging that never carries secrets.
//
// Two callers with opposite proxy needs share it: downloads from the package
// repository must honour http_proxy/https_proxy/no_proxy (many VMs reach the
// internet only through a proxy), while the Instance Metadata Service must
// never be proxied (a proxy cannot reach the link-local address, and users
// often forget no_proxy=169.254.169.254).
package httpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/http/httpproxy"

	"github.com/aadsshlogin/handler/throttle"
)

// Options configures New. Zero values select the defaults documented on
// each field.
type Options struct {
	// UseProxy true honours http_proxy/https_proxy/no_proxy from the
	// environment (package and key downloads); false never uses a proxy
	// (IMDS). The environment is read once, when New runs.
	UseProxy bool
	// RequestTimeout bounds one attempt, including reading the body
	// (default 20s).
	RequestTimeout time.Duration
	// RetryMax is the number of retries after the first attempt
	// (default 4; negative means no retries).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the jittered backoff
	// (defaults 500ms and 8s).
	RetryWaitMin, RetryWaitMax time.Duration
	// Log receives one debug line per attempt; may be nil.
	Log logrus.FieldLogger
	// RootCAs replaces the system trust store when set (tests).
	RootCAs *x509.CertPool
	// Waits, when set, records every wait before a retry of an HTTP 429 or
	// 503 answer (the status reports them).
	Waits *throttle.Log
	// Now is the clock for Retry-After dates and the remaining budget
	// (default time.Now).
	Now func() time.Time
	// Jitter returns a uniformly random value in [0, n) for n > 0 (default
	// math/rand/v2's N); tests make it deterministic.
	Jitter func(n int64) int64
}

// Defaults applied by New.
const (
	DefaultRequestTimeout = 20 * time.Second
	DefaultRetryMax       = 4
	DefaultRetryWaitMin   = 500 * time.Millisecond
	DefaultRetryWaitMax   = 8 * time.Second
)

// RetryError is returned by the client when every attempt failed without
// any HTTP answer (connection refused, timeouts, TLS failures). When an
// attempt did get an answer, the client returns that last response instead
// (with a nil error), so callers always see the real status code.
type RetryError struct {
	Attempts int
	Err      error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("after %d attempt(s): %v", e.Attempts, e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// New returns a retrying client configured by o.
func New(o Options) *retryablehttp.Client {
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	switch {
	case o.RetryMax == 0:
		o.RetryMax = DefaultRetryMax
	case o.RetryMax < 0:
		o.RetryMax = 0
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = DefaultRetryWaitMin
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = DefaultRetryWaitMax
	}
	if o.RetryWaitMax < o.RetryWaitMin {
		o.RetryWaitMax = o.RetryWaitMin
	}

	transport := &http.Transport{
		Proxy: proxyFunc(o.UseProxy),
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.RequestTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          10,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}

	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{Transport: transport, Timeout: o.RequestTimeout, CheckRedirect: sameHostHTTPS}
	c.RetryMax = o.RetryMax
	c.RetryWaitMin = o.RetryWaitMin
	c.RetryWaitMax = o.RetryWaitMax
	p := policy{now: o.Now, jitter: o.Jitter, waits: o.Waits}
	if p.now == nil {
		p.now = time.Now
	}
	if p.jitter == nil {
		p.jitter = rand.N[int64]
	}
	c.CheckRetry = p.checkRetry
	c.Backoff = p.backoff
	c.ErrorHandler = lastAnswer
	// retryablehttp logs to stderr by default; the agent captures stderr
	// into its own log, so without a logger we stay silent.
	c.Logger = nil
	if o.Log != nil {
		c.Logger = leveled{log: o.Log}
	}
	return c
}

// ErrRedirectRefused is wrapped in the error of a request whose answer
// redirected where the client does not follow.
var ErrRedirectRefused = errors.New("redirect refused")

// maxRedirects bounds a chain of redirects (net/http's default is 10).
const maxRedirects = 5

// sameHostHTTPS is the redirect policy of every client from New: a
// redirect is followed only to https on the scheme, host and port of the
// first request, at most maxRedirects times. The key and the repository
// metadata come from the host the user configured (or the cloud's
// repository host): a redirect to plain http would let anyone on the path
// answer instead, and one to another host would fetch from a place nobody
// chose. A mirror that hands its files out from another host (a CDN) is
// configured with that host's URL instead.
func sameHostHTTPS(req *http.Request, via []*http.Request) error {
	if len(via) == 0 {
		return nil
	}
	first := via[0].URL
	switch {
	case len(via) > maxRedirects:
		return fmt.Errorf("%w: more than %d redirects", ErrRedirectRefused, maxRedirects)
	case req.URL.Scheme != "https" || first.Scheme != "https":
		return fmt.Errorf("%w: %s redirected to %s, which is not https", ErrRedirectRefused, RedactURL(via[len(via)-1].URL.String()), RedactURL(req.URL.String()))
	case !strings.EqualFold(hostPort(req.URL), hostPort(first)):
		return fmt.Errorf("%w: %s redirected to another host, %s", ErrRedirectRefused, RedactURL(via[len(via)-1].URL.String()), RedactURL(req.URL.String()))
	}
	return nil
}

// hostPort is the host and port a URL connects to.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// NoRedirects returns a copy of c that follows no redirect: a 3xx answer
// comes back to the caller as it is. The metadata service never redirects,
// and following one would carry its "Metadata: true" header (and the token
// request) to wherever the redirect points. c itself is not modified.
func NoRedirects(c *retryablehttp.Client) *retryablehttp.Client {
	cp := clone(c)
	hc := *c.HTTPClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cp.HTTPClient = &hc
	return cp
}

// proxyFunc snapshots the proxy environment. http.ProxyFromEnvironment would
// do the same but caches the environment for the whole process on first use,
// which makes the decision untestable and ties all clients together.
func proxyFunc(use bool) func(*http.Request) (*url.URL, error) {
	if !use {
		return nil
	}
	pf := httpproxy.FromEnvironment().ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return pf(r.URL) }
}

// Retryable reports whether an HTTP status may change by itself: request
// timeouts, throttling and server errors. 501 (Not Implemented) and 505 (HTTP
// Version Not Supported) are permanent, so asking again only wastes time.
func Retryable(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return true
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return false
	case status >= 500 && status <= 599:
		return true
	}
	return false
}

// policy decides about retries and waits. Retry-After is honoured in full
// when the time budget (the request context's deadline) allows it; when it
// points past the deadline the loop stops at once and the caller reports
// the answer (HTTP 429 with the rate limit named), instead of sleeping into
// the deadline. Every request is bounded by RetryMax: at most RetryMax+1
// requests per download.
type policy struct {
	now    func() time.Time
	jitter func(n int64) int64
	waits  *throttle.Log
}

func (p policy) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	// The caller gave up (deadline or cancel): stop at once and say why.
	if ctxErr := ctx.Err(); ctxErr != nil {
		return false, ctxErr
	}
	if err != nil {
		return !permanent(err), err
	}
	if !Retryable(resp.StatusCode) {
		return false, nil
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), p.now()); ok {
		if dl, has := ctx.Deadline(); has && p.now().Add(d).After(dl) {
			return false, nil
		}
	}
	return true, nil
}

// backoff honours a Retry-After from the server in full, plus a random
// extra of up to a quarter of it (at most maxWait), so that a fleet told
// the same moment does not come back at once. Without one it waits a
// uniformly random time between zero and an exponentially growing cap
// ("full jitter"), so many VMs retrying against the same repository spread
// out. The wait never extends past the request context's deadline. Waits
// on 429 and 503 are recorded.
func (p policy) backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	var d time.Duration
	if ra, ok := retryAfterOf(resp, p.now()); ok {
		d = ra + time.Duration(p.jitter(int64(min(ra/4, maxWait))+1))
	} else {
		ceiling := maxWait
		if attempt < 30 {
			if c := minWait << attempt; c > 0 && c < maxWait {
				ceiling = c
			}
		}
		d = time.Duration(p.jitter(int64(ceiling) + 1))
	}
	if resp != nil && resp.Request != nil {
		if dl, ok := resp.Request.Context().Deadline(); ok {
			d = min(d, max(dl.Sub(p.now()), 0))
		}
		if throttle.Transient(resp.StatusCode) {
			p.waits.Add(throttle.Wait{Source: "GET " + RedactURL(resp.Request.URL.String()), Status: resp.StatusCode, Delay: d})
		}
	}
	return d
}

func retryAfterOf(resp *http.Response, now time.Time) (time.Duration, bool) {
	if resp == nil {
		return 0, false
	}
	return retryAfter(resp.Header.Get("Retry-After"), now)
}

// permanent reports transport errors that the same request will hit again:
// certificate problems, bad URLs and redirect loops.
func permanent(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidErr x509.CertificateInvalidError
	if errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalidErr) {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		msg := ue.Err.Error()
		if strings.Contains(msg, "unsupported protocol scheme") || strings.Contains(msg, "stopped after") ||
			strings.Contains(msg, "invalid header") {
			return true
		}
	}
	return errors.Is(err, ErrRedirectRefused)
}

// retryAfter parses the seconds and HTTP-date forms of Retry-After.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// lastAnswer replaces retryablehttp's "giving up after N attempts" error,
// which hides the status: with an answer, the caller gets the last response
// (body unread) and decides; without one, or when the answer was a refused
// redirect, it gets the last transport error,
// with any URL query string removed so tokens or signatures in it cannot
// reach a log.
func lastAnswer(resp *http.Response, err error, attempts int) (*http.Response, error) {
	// A refused redirect comes with the redirect answer; the caller gets
	// the refusal, which says where it pointed.
	if resp != nil && (err == nil || !isContextErr(err) && !errors.Is(err, ErrRedirectRefused)) {
		return resp, nil
	}
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err == nil {
		err = errors.New("no answer")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = RedactURL(ue.URL)
	}
	return nil, &RetryError{Attempts: attempts, Err: err}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// RedactURL removes user information, query and fragment from a URL for
// logs and messages.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Not a URL we can take apart: cut at the first '?' at least.
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			return raw[:i]
		}
		return raw
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

// Drain reads a little of a body and closes it, so the connection can be
// reused; callers that only need the status use it.
func Drain(body io.ReadCloser) {
	if body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

// leveled adapts logrus to retryablehttp.LeveledLogger. Every message the
// library emits is about one attempt, so all go to debug: the caller logs the
// final outcome at the level it deserves. Values are scrubbed of query
// strings because the library logs full URLs.
type leveled struct {
	log logrus.FieldLogger
}

func (l leveled) Error(msg string, kv ...any) { l.entry(kv).Debug(msg) }
func (l leveled) Info(msg string, kv ...any)  { l.entry(kv).Debug(msg) }
func (l leveled) Debug(msg string, kv ...any) { l.entry(kv).Debug(msg) }
func (l leveled) Warn(msg string, kv ...any)  { l.entry(kv).Debug(msg) }

func (l leveled) entry(kv []any) logrus.FieldLogger {
	fields := logrus.Fields{}
	for i := 0; i+1 < len(kv); i += 2 {
		key := fmt.Sprint(kv[i])
		fields[key] = scrub(fmt.Sprint(kv[i+1]))
	}
	return l.log.WithFields(fields)
}

// scrub removes query strings from every URL-looking word of s.
func scrub(s string) string {
	words := strings.Fields(s)
	changed := false
	for i, w := range words {
		if strings.Contains(w, "://") && strings.ContainsAny(w, "?#@") {
			words[i] = RedactURL(w)
			changed = true
		}
	}
	if !changed {
		return s
	}
	return strings.Join(words, " ")
}

// Passthrough returns a client with c's settings whose exhausted retries
// hand back the last response instead of an error, so callers can name the
// HTTP status in their messages. c itself is not modified (it may be
// shared); clients from New already behave this way.
func Passthrough(c *retryablehttp.Client) *retryablehttp.Client {
	cp := clone(c)
	cp.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return cp
}

// WithLog returns a copy of c that logs its attempts (at debug level,
// scrubbed) to log. c itself is not modified.
func WithLog(c *retryablehttp.Client, log logrus.FieldLogger) *retryablehttp.Client {
	cp := clone(c)
	cp.Logger = leveled{log: log}
	return cp
}

// WithWaits returns a copy of c whose retries follow this package's
// policy (Retry-After within the budget, jittered backoff) and record each
// wait on a 429 or 503 in waits, so the status can say the run waited.
func WithWaits(c *retryablehttp.Client, waits *throttle.Log) *retryablehttp.Client {
	cp := clone(c)
	p := policy{now: time.Now, jitter: rand.N[int64], waits: waits}
	cp.CheckRetry, cp.Backoff = p.checkRetry, p.backoff
	return cp
}

// clone copies c's settings into a new client (the struct holds
// sync.Once values, so it cannot be copied as a whole).
func clone(c *retryablehttp.Client) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:      c.HTTPClient,
		Logger:          c.Logger,
		RetryWaitMin:    c.RetryWaitMin,
		RetryWaitMax:    c.RetryWaitMax,
		RetryMax:        c.RetryMax,
		RequestLogHook:  c.RequestLogHook,
		ResponseLogHook: c.ResponseLogHook,
		CheckRetry:      c.CheckRetry,
		Backoff:         c.Backoff,
		ErrorHandler:    c.ErrorHandler,
		PrepareRetry:    c.PrepareRetry,
	}
}

// WarmTrustStore starts loading the system trust store in the background.
// crypto/x509 parses every certificate of /etc/ssl/certs (or the distro's
// bundle) once per process, on the first TLS handshake: 30–40 ms of CPU
// that would otherwise sit on the install's critical path. Callers start
// it when an HTTPS download most likely lies ahead (the full install run;
// only the reuse of an Azure Linux image's own repository makes none) and
// do other work meanwhile; the first handshake then finds the store loaded
// (or waits for the same load). The enable fast path must never call it.
func WarmTrustStore() {
	go func() { _, _ = x509.SystemCertPool() }()
}

// Reason turns a transport error into a few words a user understands
// ("connection refused", "certificate verify failed: …"). It is the one
// wording of network errors: the downloads, the IMDS client and the network
// diagnosis (checks) all use it, adding their own context (URL, host, step)
// around it. Certificate problems say what usually causes them: a
// TLS-inspecting proxy or firewall for an untrusted issuer, something else
// answering for a wrong name, the VM's clock for a certificate not valid
// now. Anything unrecognised is "network error": Go's error text goes to
// the log, not to the user.
func Reason(err error) string {
	var (
		unknownCA   x509.UnknownAuthorityError
		hostnameErr x509.HostnameError
		invalidCert x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		dnsErr      *net.DNSError
		recordErr   tls.RecordHeaderError
		netErr      net.Error
	)
	switch {
	case err == nil:
		return "no error"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, ErrRedirectRefused):
		return "the server redirected to plain HTTP, to another host or too often, which the extension does not follow"
	case errors.As(err, &unknownCA):
		issuer := "an unknown issuer"
		if unknownCA.Cert != nil && unknownCA.Cert.Issuer.CommonName != "" {
			issuer = strconv.Quote(unknownCA.Cert.Issuer.CommonName)
		}
		return "certificate verify failed: the certificate, issued by " + issuer +
			", is not trusted; a TLS-inspecting proxy or firewall may be intercepting the connection"
	case errors.As(err, &hostnameErr):
		return "certificate verify failed: the certificate is not valid for " + hostnameErr.Host +
			"; something other than the real server answered"
	case errors.As(err, &invalidCert) && invalidCert.Reason == x509.Expired:
		return "certificate verify failed: the certificate is expired or not yet valid; check the VM's clock"
	case errors.As(err, &invalidCert):
		return "certificate verify failed: the certificate is not valid (" + strings.TrimPrefix(invalidCert.Error(), "x509: ") + ")"
	case errors.As(err, &verifyErr):
		return "certificate verify failed"
	case errors.As(err, &dnsErr):
		if dnsErr.Name == "" {
			return "cannot resolve the host name (" + DNSReason(dnsErr) + ")"
		}
		return "cannot resolve host name " + dnsErr.Name + " (" + DNSReason(dnsErr) + ")"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.As(err, &recordErr) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http reports the second form only as text.
		return "the server did not speak TLS"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "connection closed by the server"
	case strings.Contains(err.Error(), "tls: "):
		msg := err.Error()
		return "TLS error: " + msg[strings.LastIndex(msg, "tls: ")+len("tls: "):]
	}
	return "network error"
}

// DNSReason says why a name lookup failed, without the name (callers that
// name the host themselves use it; Reason adds the name).
func DNSReason(err error) string {
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		return "no such host"
	case errors.As(err, &de) && de.IsTimeout, errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.As(err, &de) && de.Err != "":
		return de.Err
	}
	return "lookup failed"
}
