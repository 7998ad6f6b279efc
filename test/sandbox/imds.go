package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// IdentityMode is how the fake IMDS answers token requests.
type IdentityMode int

const (
	// IdentityPresent answers 200 with a token.
	IdentityPresent IdentityMode = iota
	// IdentityMissing answers 400 invalid_request "Identity not found".
	IdentityMissing
	// IdentityAfter is missing for the first IdentityAfterCalls token
	// requests (or until IdentityAfterDuration has passed), then present.
	IdentityAfter
	// IdentityServerError answers 500.
	IdentityServerError
	// IdentitySlow holds the request for SlowFor (default 10 minutes),
	// longer than any client timeout; it ends early when the client goes
	// away or the server is closed at the end of the test.
	IdentitySlow
	// IdentityGarbage answers 200 with a body that is not JSON.
	IdentityGarbage
	// IdentityUserAssignedOnly answers 200 with a token for a
	// user-assigned identity (xms_mirid names
	// Microsoft.ManagedIdentity/userAssignedIdentities/<name>), as IMDS
	// does for a VM whose only identity is one user-assigned identity.
	IdentityUserAssignedOnly
)

// Resource ids the fake IMDS puts into its tokens' xms_mirid claim.
const (
	SystemAssignedResourceID = "/subscriptions/00000000-0000-4000-8000-0000000000aa/resourcegroups/sandbox-rg/providers/Microsoft.Compute/virtualMachines/sandbox-vm"
	UserAssignedResourceID   = "/subscriptions/00000000-0000-4000-8000-0000000000aa/resourcegroups/sandbox-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/sandbox-uai"
)

func (m IdentityMode) String() string {
	switch m {
	case IdentityPresent:
		return "present"
	case IdentityMissing:
		return "missing"
	case IdentityAfter:
		return "after"
	case IdentityServerError:
		return "server-error"
	case IdentitySlow:
		return "slow"
	case IdentityGarbage:
		return "garbage"
	case IdentityUserAssignedOnly:
		return "user-assigned-only"
	}
	return "IdentityMode(" + strconv.Itoa(int(m)) + ")"
}

// IMDSOptions configure the fake metadata service.
type IMDSOptions struct {
	AzEnvironment         string // compute/azEnvironment; "" means AzurePublicCloud
	Identity              IdentityMode
	IdentityAfterCalls    int           // IdentityAfter: token requests answered "missing" first
	IdentityAfterDuration time.Duration // IdentityAfter: or "missing" until this long after the mode was set
	SlowFor               time.Duration // IdentitySlow: hold time (default 10m)
	Down                  bool          // do not listen at all (connection refused)
}

// RecordedRequest is one request the fake IMDS saw.
type RecordedRequest struct {
	Time       time.Time
	Method     string
	Path       string
	Query      url.Values
	Metadata   string // value of the Metadata header ("" when absent)
	Proxied    bool   // absolute-URI request line or X-Forwarded-For: came through a proxy
	Host       string
	UserAgent  string
	StatusCode int
}

// IMDS is the fake Instance Metadata Service on 169.254.169.254:80.
type IMDS struct {
	Addr string // host:port it listens on (even when Down)

	mu         sync.Mutex
	opts       IMDSOptions
	modeSince  time.Time
	modeCalls  int // token requests since the mode was set
	tokenCalls int
	reqs       []RecordedRequest
	srv        *http.Server
}

// StartIMDS starts the fake IMDS on 169.254.169.254:80. It refuses outside
// an isolated network namespace. The server stops at the end of the test.
func StartIMDS(t testing.TB, o IMDSOptions) *IMDS {
	t.Helper()
	MustBeIsolated(t)
	m := &IMDS{Addr: net.JoinHostPort(IMDSAddr, "80"), opts: o, modeSince: time.Now()}
	if m.opts.AzEnvironment == "" {
		m.opts.AzEnvironment = "AzurePublicCloud"
	}
	if o.Down {
		return m
	}
	ln, err := net.Listen("tcp", m.Addr)
	if err != nil {
		t.Fatalf("fake IMDS: listen %s: %v", m.Addr, err)
	}
	m.srv = &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = m.srv.Serve(ln) }()
	t.Cleanup(func() { _ = m.srv.Close() })
	return m
}

// SetIdentity switches the token behaviour; IdentityAfter counts from now.
func (m *IMDS) SetIdentity(mode IdentityMode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts.Identity = mode
	m.modeSince = time.Now()
	m.modeCalls = 0
}

// SetIdentityAfter switches to IdentityAfter with the given thresholds.
func (m *IMDS) SetIdentityAfter(calls int, d time.Duration) {
	m.mu.Lock()
	m.opts.IdentityAfterCalls, m.opts.IdentityAfterDuration = calls, d
	m.mu.Unlock()
	m.SetIdentity(IdentityAfter)
}

// SetAzEnvironment changes the cloud name served.
func (m *IMDS) SetAzEnvironment(env string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts.AzEnvironment = env
}

// Requests returns a copy of every request seen so far.
func (m *IMDS) Requests() []RecordedRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]RecordedRequest(nil), m.reqs...)
}

// TokenRequests counts requests to /metadata/identity/oauth2/token.
func (m *IMDS) TokenRequests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokenCalls
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP implements the fake endpoints.
func (m *IMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := RecordedRequest{
		Time:      time.Now(),
		Method:    r.Method,
		Path:      r.URL.Path,
		Query:     r.URL.Query(),
		Metadata:  r.Header.Get("Metadata"),
		Proxied:   r.URL.IsAbs() || strings.HasPrefix(r.RequestURI, "http") || r.Header.Get("X-Forwarded-For") != "",
		Host:      r.Host,
		UserAgent: r.UserAgent(),
	}
	code := m.serve(w, r, rec)
	rec.StatusCode = code
	m.mu.Lock()
	m.reqs = append(m.reqs, rec)
	m.mu.Unlock()
}

func (m *IMDS) serve(w http.ResponseWriter, r *http.Request, rec RecordedRequest) int {
	if rec.Proxied {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Bad request. Requests through a proxy are not allowed"})
		return http.StatusBadRequest
	}
	if !strings.EqualFold(rec.Metadata, "true") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Bad request. Required metadata header not specified"})
		return http.StatusBadRequest
	}
	if rec.Query.Get("api-version") == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Bad request. api-version was not specified in the request"})
		return http.StatusBadRequest
	}
	m.mu.Lock()
	env := m.opts.AzEnvironment
	m.mu.Unlock()
	switch strings.TrimRight(r.URL.Path, "/") {
	case "/metadata/instance/compute/azEnvironment":
		if rec.Query.Get("format") == "text" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = fmt.Fprint(w, env)
			return http.StatusOK
		}
		writeJSON(w, http.StatusOK, env)
		return http.StatusOK
	case "/metadata/instance/compute":
		writeJSON(w, http.StatusOK, m.compute(env))
		return http.StatusOK
	case "/metadata/instance":
		writeJSON(w, http.StatusOK, map[string]any{"compute": m.compute(env), "network": map[string]any{"interface": []any{}}})
		return http.StatusOK
	case "/metadata/identity/oauth2/token":
		return m.token(w, r, rec)
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not found"})
	return http.StatusNotFound
}

func (m *IMDS) compute(env string) map[string]any {
	return map[string]any{
		"azEnvironment": env,
		"location":      "eastus",
		"name":          "sandbox-vm",
		"osType":        "Linux",
		"vmId":          "00000000-0000-4000-8000-000000000001",
		"vmSize":        "Standard_B2s",
	}
}

func (m *IMDS) token(w http.ResponseWriter, r *http.Request, rec RecordedRequest) int {
	m.mu.Lock()
	m.tokenCalls++
	m.modeCalls++
	mode := m.opts.Identity
	if mode == IdentityAfter {
		present := m.modeCalls > m.opts.IdentityAfterCalls
		if m.opts.IdentityAfterDuration > 0 {
			present = present || time.Since(m.modeSince) >= m.opts.IdentityAfterDuration
		}
		mode = IdentityMissing
		if present {
			mode = IdentityPresent
		}
	}
	slow := m.opts.SlowFor
	m.mu.Unlock()

	switch mode {
	case IdentityMissing:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Identity not found"})
		return http.StatusBadRequest
	case IdentityServerError:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "unknown", "error_description": "Internal server error (fake)"})
		return http.StatusInternalServerError
	case IdentitySlow:
		if slow <= 0 {
			slow = 10 * time.Minute
		}
		select {
		case <-r.Context().Done():
		case <-time.After(slow):
		}
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "timeout (fake slow identity)"})
		return http.StatusInternalServerError
	case IdentityGarbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprint(w, "<html><body>this is not JSON</body></html>")
		return http.StatusOK
	}
	now := time.Now().Unix()
	resource := rec.Query.Get("resource")
	mirid := SystemAssignedResourceID
	if mode == IdentityUserAssignedOnly {
		mirid = UserAssignedResourceID
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token":   fakeJWT(resource, mirid, now),
		"client_id":      "00000000-0000-4000-8000-000000000002",
		"expires_in":     "86399",
		"expires_on":     strconv.FormatInt(now+86399, 10),
		"ext_expires_in": "86399",
		"not_before":     strconv.FormatInt(now, 10),
		"resource":       resource,
		"token_type":     "Bearer",
	})
	return http.StatusOK
}

// fakeJWT is an unsigned token shaped like the ones IMDS hands out: the
// handler reads only the payload's xms_mirid claim.
func fakeJWT(resource, mirid string, now int64) string {
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(map[string]any{
		"aud": resource, "iss": "https://sts.windows.net/00000000-0000-4000-8000-0000000000bb/",
		"iat": now, "nbf": now, "exp": now + 86399,
		"oid": "00000000-0000-4000-8000-000000000003", "xms_mirid": mirid,
	})
	return enc([]byte(`{"typ":"JWT","alg":"RS256"}`)) + "." + enc(payload) + "." + enc([]byte("fake-signature"))
}
