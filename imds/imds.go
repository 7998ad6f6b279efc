// Package imds talks to the Azure Instance Metadata Service: which cloud the
// VM is in, and whether the VM has a system-assigned managed identity.
//
// Requests never go through a proxy: IMDS is a link-local address that no
// proxy can reach, and users who set http_proxy for the agent often forget
// no_proxy=169.254.169.254 (the shipped extension then reports "no managed
// identity" on VMs that have one). Redirects are never followed either.
package imds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/clock"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/httpclient"
)

// DefaultBaseURL is the Instance Metadata Service (plain HTTP by design).
const DefaultBaseURL = "http://169.254.169.254"

// SignInResource is the application "Microsoft Azure Linux Virtual Machine
// Sign-In"; a token for it proves the VM has a usable identity.
const SignInResource = "ce6ff14a-7fdc-4685-bbe0-f6afdfcfa8e0"

// API versions: the public, documented ones. The shipped extension uses the
// undocumented "latest_internal" for tokens; a documented version cannot be
// withdrawn under us.
const (
	instanceAPIVersion = "2021-02-01"
	identityAPIVersion = "2018-02-01"
)

// maxBody bounds what we read from IMDS: its answers are small, and a
// misbehaving endpoint must not make us buffer without limit.
const maxBody = 64 << 10

// Client is an IMDS client. The zero value is not usable; call New, then
// override fields in tests.
type Client struct {
	// BaseURL defaults to DefaultBaseURL; tests inject an httptest URL.
	BaseURL string
	// HTTP must not use a proxy.
	HTTP *retryablehttp.Client
	// Sleep waits between identity checks; it returns early with ctx's
	// error.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for the identity window.
	Now func() time.Time
	// Log may be nil.
	Log logrus.FieldLogger
}

// New returns a client for the real IMDS. Its HTTP retries are short: IMDS
// answers in milliseconds when it answers at all, and CheckIdentity has its
// own longer retry window on top.
func New(log logrus.FieldLogger) *Client {
	return &Client{
		BaseURL: DefaultBaseURL,
		HTTP: httpclient.New(httpclient.Options{
			UseProxy:       false,
			RequestTimeout: 5 * time.Second,
			RetryMax:       3,
			Log:            log,
		}),
		Sleep: clock.Sleep,
		Now:   time.Now,
		Log:   log,
	}
}

const advice = "Check that nothing on the VM (firewall rules, a proxy without no_proxy=169.254.169.254) blocks it, then re-apply the extension."

// AzEnvironment returns the VM's azEnvironment (e.g. "AzurePublicCloud"),
// trimmed. Failures are *failure.Error with code MetadataUnreachable; the
// caller may continue with the public cloud and a warning.
func (c *Client) AzEnvironment(ctx context.Context) (string, error) {
	q := url.Values{"api-version": {instanceAPIVersion}, "format": {"text"}}
	a := c.get(ctx, "/metadata/instance/compute/azEnvironment", q)
	if a.err == nil && a.status == http.StatusOK {
		env := strings.TrimSpace(string(a.body))
		c.logger().WithField("azEnvironment", env).Debug("IMDS azEnvironment")
		return env, nil
	}
	cause := a.err
	if cause == nil {
		cause = fmt.Errorf("IMDS azEnvironment: HTTP %d", a.status)
	}
	return "", failure.New(failure.MetadataUnreachable, cause,
		"The Azure Instance Metadata Service (169.254.169.254) did not answer the request for the VM's cloud environment (%s). %s",
		a.how(), advice)
}

// CheckIdentity succeeds when IMDS hands out a token for SignInResource, which
// needs a system-assigned managed identity. A newly assigned identity takes
// a while to appear, so "identity not found" and transient failures are
// retried every interval until window has passed since the first answer.
// The two outcomes stay distinct: only an explicit "Identity not found"
// becomes NoManagedIdentity; anything else (no connection, timeouts, 5xx,
// unexpected answers) is MetadataUnreachable, because telling a user to
// enable an identity they already have sends them the wrong way. The token
// itself is never logged or kept.
func (c *Client) CheckIdentity(ctx context.Context, window, interval time.Duration) error {
	q := url.Values{"api-version": {identityAPIVersion}, "resource": {SignInResource}}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	sleep := c.Sleep
	if sleep == nil {
		sleep = clock.Sleep
	}
	var last *answer
	var first time.Time
	for attempt := 1; ; attempt++ {
		a := c.get(ctx, "/metadata/identity/oauth2/token", q)
		// An attempt cut short by our own caller's deadline says nothing
		// about IMDS; judge by the answer before it when there is one.
		if last == nil || !a.cancelled(ctx) {
			a.classifyIdentity()
			last = &a
		}
		if last.kind == identityOK {
			c.logger().WithFields(logrus.Fields{"attempts": attempt, "identity": last.identity.String()}).Info("the VM has a managed identity")
			return nil
		}
		if first.IsZero() {
			first = now()
		}
		c.logger().WithFields(logrus.Fields{"attempt": attempt, "answer": last.how()}).Debug("managed identity not available yet")
		if ctx.Err() != nil || now().Sub(first) >= window {
			break
		}
		if err := sleep(ctx, interval); err != nil {
			break
		}
	}
	return last.identityFailure()
}

// IdentityAnswer is the result of one managed-identity token request.
type IdentityAnswer struct {
	// Err is nil when IMDS handed out a token for the VM's system-assigned
	// identity (or a token that does not say whose it is). Otherwise a
	// *failure.Error: NoManagedIdentity when IMDS said there is none or
	// answered for a user-assigned identity only, MetadataUnreachable for
	// anything else.
	Err error
	// Kind and ResourceID are what the token says about its identity.
	Kind       IdentityKind
	ResourceID string
	// Date is the Date header of IMDS's answer (zero without one): a time
	// source the VM already trusts, for clock checks.
	Date time.Time
}

// Identity asks once, without waiting for an identity to appear: for the
// enable fast path and diagnostics. ctx bounds it.
func (c *Client) Identity(ctx context.Context) IdentityAnswer {
	q := url.Values{"api-version": {identityAPIVersion}, "resource": {SignInResource}}
	a := c.get(ctx, "/metadata/identity/oauth2/token", q)
	a.classifyIdentity()
	out := IdentityAnswer{Kind: a.identity, ResourceID: a.resourceID, Date: a.date}
	if a.kind != identityOK {
		out.Err = a.identityFailure()
	}
	return out
}

type answerKind int

const (
	identityUnknown answerKind = iota
	identityOK
	identityMissing
	// identityUserAssignedOnly: a token, but for a user-assigned identity
	// (the VM has no system-assigned one).
	identityUserAssignedOnly
)

// answer is what one IMDS request produced: a status and body, or a
// transport error.
type answer struct {
	status int
	body   []byte
	err    error
	kind   answerKind
	// bad marks a 200 whose body was not what IMDS sends.
	bad bool
	// identity and resourceID: whose token it was (token answers only).
	identity   IdentityKind
	resourceID string
	// date is the answer's Date header.
	date time.Time
}

func (c *Client) get(ctx context.Context, path string, q url.Values) answer {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u := strings.TrimSuffix(base, "/") + path + "?" + q.Encode()
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{err: fmt.Errorf("building IMDS request: %w", err)}
	}
	req.Header.Set("Metadata", "true")
	req.Header.Set("User-Agent", "aadsshlogin-handler")
	// IMDS never redirects; a redirect (from something impersonating it)
	// is an answer like any other unexpected status, and is not followed
	// with the Metadata header, whatever client the caller gave us.
	hc := httpclient.NoRedirects(c.HTTP)
	// Remember the last status IMDS gave: when our caller's context ends
	// during a retry, that status (say 503) is the truth about IMDS, not
	// "did not answer".
	lastStatus := 0
	checkRetry := hc.CheckRetry
	if checkRetry == nil {
		checkRetry = retryablehttp.DefaultRetryPolicy
	}
	hc.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if resp != nil && httpclient.Retryable(resp.StatusCode) {
			lastStatus = resp.StatusCode
		}
		return checkRetry(ctx, resp, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if lastStatus != 0 && ctx.Err() != nil {
			return answer{status: lastStatus}
		}
		return answer{err: fmt.Errorf("IMDS %s: %w", path, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{err: fmt.Errorf("reading IMDS %s answer: %w", path, err)}
	}
	date, _ := http.ParseTime(resp.Header.Get("Date"))
	return answer{status: resp.StatusCode, body: body, date: date}
}

func (a answer) cancelled(ctx context.Context) bool {
	return a.err != nil && ctx.Err() != nil
}

// classifyIdentity decides what a token answer means and drops the body, so
// a token never outlives this function.
func (a *answer) classifyIdentity() {
	defer func() { a.body = nil }()
	if a.err != nil {
		return
	}
	var doc struct {
		AccessToken string `json:"access_token"`
	}
	parsed := json.Unmarshal(a.body, &doc) == nil
	switch a.status {
	case http.StatusOK:
		if parsed && doc.AccessToken != "" {
			a.identity, a.resourceID = TokenIdentity(doc.AccessToken)
			a.kind = identityOK
			if a.identity == IdentityUserAssigned {
				a.kind = identityUserAssignedOnly
			}
			return
		}
		a.bad = true
	case http.StatusBadRequest:
		// IMDS answers {"error":"invalid_request","error_description":
		// "Identity not found"}; matching the raw text also covers a
		// plain-text variant without trusting any one field.
		if strings.Contains(strings.ToLower(string(a.body)), "identity not found") {
			a.kind = identityMissing
		}
	}
}

func (a *answer) identityFailure() error {
	if a.kind == identityUserAssignedOnly {
		return failure.New(failure.NoManagedIdentity, fmt.Errorf("IMDS answered with the user-assigned identity %s", a.resourceID),
			"This VM has no system-assigned managed identity: the metadata service answered with the user-assigned identity %q, "+
				"which is not enough for Microsoft Entra ID login (it needs the VM's own, system-assigned identity). "+
				"Enable the system-assigned identity as well (az vm identity assign -g <resource-group> -n <vm-name>; for a scale set: "+
				"az vmss identity assign -g <resource-group> -n <scale-set-name>), wait a few minutes, then re-apply the extension.",
			resourceName(a.resourceID))
	}
	if a.kind == identityMissing {
		return failure.New(failure.NoManagedIdentity, errors.New("IMDS: Identity not found"),
			"This VM has no system-assigned managed identity, which Microsoft Entra ID login needs. "+
				"Enable it (az vm identity assign -g <resource-group> -n <vm-name>; for a scale set: "+
				"az vmss identity assign -g <resource-group> -n <scale-set-name>), then re-apply the extension.")
	}
	cause := a.err
	if cause == nil {
		cause = fmt.Errorf("IMDS token request: HTTP %d", a.status)
	}
	return failure.New(failure.MetadataUnreachable, cause,
		"The Azure Instance Metadata Service (169.254.169.254) did not answer the managed-identity request (%s). %s",
		a.how(), advice)
}

// how describes an answer in a few words for the user.
func (a *answer) how() string {
	if a.err != nil {
		return httpclient.Reason(a.err)
	}
	if a.bad {
		return fmt.Sprintf("unexpected answer: HTTP %d without a token", a.status)
	}
	if a.status == http.StatusBadRequest && a.kind != identityMissing {
		return "unexpected answer: HTTP 400"
	}
	if a.kind == identityMissing {
		return "HTTP 400: identity not found"
	}
	if a.kind == identityUserAssignedOnly {
		return "HTTP 200: a token for a user-assigned identity"
	}
	return fmt.Sprintf("HTTP %d", a.status)
}

func (c *Client) logger() logrus.FieldLogger {
	if c.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		return l
	}
	return c.Log
}
