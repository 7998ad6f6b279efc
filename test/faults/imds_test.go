package faults

import (
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// TestMetadataService: the Instance Metadata Service fails in each way it
// can. The failing cases wait out the handler's 2-minute identity window,
// so they run alongside the rest of the suite (Waits).
func TestMetadataService(t *testing.T) {
	imdsNet := func(o sandbox.IMDSOptions) sandbox.NetworkOptions { return sandbox.NetworkOptions{IMDS: o} }
	refused := func(how string, heal func(f *fx)) func(t *testing.T, f *fx) {
		return func(t *testing.T, f *fx) {
			before := f.Root.Snapshot(t)
			res, exit := f.apply(0, f.pinned(), agentsim.Install)
			st := f.wantRefused(res, exit, 0, 24, before, "Instance Metadata Service", "169.254.169.254")
			if how != "" && !strings.Contains(st.Message, how) {
				t.Errorf("message does not say how IMDS failed (%q): %q", how, st.Message)
			}
			if strings.Contains(st.Message, "identity assign") {
				t.Errorf("an unreachable IMDS is reported as a missing identity: %q", st.Message)
			}
			if got := len(f.Net.Repo.Requests()); got != 0 {
				t.Errorf("the repository was contacted although IMDS failed: %v", f.Net.Repo.Requests())
			}
			for _, r := range f.Net.IMDS.Requests() {
				if r.Proxied {
					t.Errorf("IMDS request went through a proxy: %+v", r)
				}
			}
			heal(f)
			f.recover(1)
		}
	}
	present := func(f *fx) { f.Net.IMDS.SetIdentity(sandbox.IdentityPresent) }
	runCases(t, []faultCase{
		{
			Name: "down", Waits: true,
			Net:    imdsNet(sandbox.IMDSOptions{Down: true}),
			Fault:  "nothing listens on 169.254.169.254:80 (connection refused)",
			Expect: "exit 24 after the identity window, message names IMDS and \"connection refused\", machine unchanged; next run succeeds",
			Run: refused("connection refused", func(f *fx) {
				f.Net.IMDS = sandbox.StartIMDS(f.t, sandbox.IMDSOptions{AzEnvironment: "AzurePublicCloud"})
			}),
		},
		{
			Name: "token-slow", Waits: true,
			Net:    imdsNet(sandbox.IMDSOptions{Identity: sandbox.IdentitySlow}),
			Fault:  "token requests hang longer than the client's timeout",
			Expect: "exit 24, message names IMDS and \"timed out\", machine unchanged; next run succeeds",
			Run:    refused("timed out", present),
		},
		{
			Name: "token-5xx", Waits: true,
			Net:    imdsNet(sandbox.IMDSOptions{Identity: sandbox.IdentityServerError}),
			Fault:  "token requests answer HTTP 500",
			Expect: "exit 24, message names IMDS and HTTP 500, machine unchanged; next run succeeds",
			Run:    refused("HTTP 500", present),
		},
		{
			Name: "token-garbage", Waits: true,
			Net:    imdsNet(sandbox.IMDSOptions{Identity: sandbox.IdentityGarbage}),
			Fault:  "token requests answer 200 with a body that is not JSON",
			Expect: "exit 24 (not 22: the identity may exist), message names IMDS, machine unchanged; next run succeeds",
			Run:    refused("unexpected answer", present),
		},
		{
			Name: "identity-appears-late", Waits: true,
			Net:    imdsNet(sandbox.IMDSOptions{Identity: sandbox.IdentityAfter, IdentityAfterCalls: 2}),
			Fault:  "\"Identity not found\" for the first 2 token requests, then a token",
			Expect: "the handler keeps asking within its window and succeeds (exit 0)",
			Run: func(t *testing.T, f *fx) {
				res, exit := f.apply(0, f.pinned(), agentsim.Enable)
				if exit != 0 {
					t.Fatalf("install with a late identity failed: %v", res)
				}
				if n := f.Net.IMDS.TokenRequests(); n < 3 {
					t.Errorf("%d token requests, want at least 3", n)
				}
				f.wantHealthy(0)
				f.recover(1)
			},
		},
	})
}
