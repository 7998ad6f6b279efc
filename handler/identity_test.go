package handler

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/handler/agent"
	"github.com/aadsshlogin/handler/httpclient"
	"github.com/aadsshlogin/handler/imds"
	"github.com/aadsshlogin/handler/installer"
	"github.com/aadsshlogin/handler/settings"
)

// installed lays out what a finished install leaves (state, the package's
// wiring) so that enable takes the fast path.
func (a *fakeAgent) installed(t testing.TB) {
	t.Helper()
	a.settings(t, 3, `{}`)
	a.write(t, a.root.Path("/usr/sbin/aad_certhandler"), "#!/bin/sh\n")
	a.write(t, a.root.Path("/etc/nsswitch.conf"), "passwd: files aad\ngroup: files aad\n")
	a.write(t, a.root.Path("/etc/ssh/sshd_config"), "Match User *@*\n    AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k\n")
	st := &installer.State{HandlerVersion: testVersion, ConfigHash: configHash(settings.Public{}), PackageManager: "apt",
		Packages: map[string]string{installer.PackageName: "1.0.031620001"}}
	if err := installer.SaveState(a.root, st); err != nil {
		t.Fatal(err)
	}
}

func tokenFor(mirid string) string {
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(map[string]string{"xms_mirid": mirid})
	body, _ := json.Marshal(map[string]string{"access_token": enc([]byte(`{"alg":"RS256"}`)) + "." + enc(payload) + ".sig"})
	return string(body)
}

// fakeIdentity is an httptest IMDS whose token answer the test sets.
type fakeIdentity struct {
	status atomic.Int32
	body   atomic.Value
	calls  atomic.Int32
	srv    *httptest.Server
}

func newFakeIdentity(t testing.TB, status int, body string) *fakeIdentity {
	f := &fakeIdentity{}
	f.status.Store(int32(status))
	f.body.Store(body)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		w.WriteHeader(int(f.status.Load()))
		w.Write([]byte(f.body.Load().(string)))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIdentity) client() *imds.Client {
	c := imds.New(nil)
	c.BaseURL = f.srv.URL
	c.HTTP = httpclient.New(httpclient.Options{RetryMax: -1, RequestTimeout: time.Second})
	return c
}

const (
	vmMIRID  = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
	uaiMIRID = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ci-identity"
)

// TestEnableNoticesRemovedIdentity: enable's fast path asks IMDS once; an
// identity removed since the install is an error (exit 22) naming the
// identity and the fix, not a plain success; IMDS not answering is a
// warning substatus on a success.
func TestEnableNoticesRemovedIdentity(t *testing.T) {
	for _, c := range []struct {
		name      string
		status    int
		body      string
		code      failure.Code
		message   string
		substatus string
	}{
		{"present", 200, tokenFor(vmMIRID), failure.OK, "is configured", ""},
		{"removed", 400, `{"error":"invalid_request","error_description":"Identity not found"}`, failure.NoManagedIdentity, "system-assigned managed identity is gone", ""},
		{"user-assigned only", 200, tokenFor(uaiMIRID), failure.NoManagedIdentity, `user-assigned identity "ci-identity", which is not enough`, ""},
		{"IMDS failing", 500, `{}`, failure.OK, "is configured", identitySubstatus},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := newFakeAgent(t)
			a.installed(t)
			f := newFakeIdentity(t, c.status, c.body)
			opts := a.options("enable")
			opts.IMDS = f.client()
			start := time.Now()
			code := Main(opts)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("enable took %s", took)
			}
			if code != c.code {
				t.Fatalf("code %d, want %d: %s%s", code, c.code, a.stdout.String(), a.stderr.String())
			}
			if n := f.calls.Load(); n != 1 {
				t.Errorf("%d token requests, want 1 (no identity window in enable)", n)
			}
			rep := a.status(t, 3)
			if !strings.Contains(rep.Message, c.message) {
				t.Errorf("status message %q does not contain %q", rep.Message, c.message)
			}
			if c.code != failure.OK {
				if rep.Status != agent.Error || rep.Code != int(c.code) {
					t.Errorf("status %s code %d, want error %d", rep.Status, rep.Code, c.code)
				}
				if !strings.Contains(rep.Message, "az vm identity assign") {
					t.Errorf("no fix in %q", rep.Message)
				}
			}
			found := false
			for _, s := range rep.Substatus {
				found = found || (s.Name == c.substatus && s.Status == agent.Warning)
			}
			if c.substatus != "" && !found {
				t.Errorf("no %s warning in %+v", c.substatus, rep.Substatus)
			}
		})
	}
}

// BenchmarkEnableNoOp measures the whole no-op enable in-process with the
// identity check answered by a loopback IMDS (docs/benchmarks.md has the
// end-to-end figure through the agent and the entry script).
func BenchmarkEnableNoOp(b *testing.B) {
	a := newFakeAgent(b)
	a.installed(b)
	f := newFakeIdentity(b, 200, tokenFor(vmMIRID))
	opts := a.options("enable")
	opts.IMDS = f.client()
	for b.Loop() {
		if code := Main(opts); code != 0 {
			b.Fatalf("code %d: %s", code, a.stderr.String())
		}
	}
}
