package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// TestUserAssignedIdentityOnly: a VM whose only identity is user-assigned
// gets a token for it from a request without an identity selector; Entra
// login still fails. The install reports exit 22 saying a user-assigned
// identity is not enough, after the identity window, and changes nothing.
func TestUserAssignedIdentityOnly(t *testing.T) {
	t.Parallel() // waits out the identity window
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "ubuntu-22.04", sandbox.NetworkOptions{IMDS: sandbox.IMDSOptions{Identity: sandbox.IdentityUserAssignedOnly}})
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		before := w.Baseline()
		res, err := w.Apply(h, 0, w.Pinned())
		if err == nil || lastExit(t, res, agentsim.Install) != 22 {
			t.Fatalf("want exit 22, got %v (%v)", verbs(res), err)
		}
		st := w.WantStatus(h, 0, "error", 22)
		for _, want := range []string{`user-assigned identity "sandbox-uai"`, "not enough", "az vm identity assign"} {
			if !strings.Contains(st.Message, want) {
				t.Errorf("message lacks %q: %q", want, st.Message)
			}
		}
		if len(w.Net.Repo.Requests()) != 0 {
			t.Errorf("the repository was contacted: %v", w.Net.Repo.Requests())
		}
		w.WantUnchangedSince(before)
	})
}

// TestEnableAfterIdentityRemoved: the identity is removed after a healthy
// install. The next enable (a goal state or a boot) asks IMDS once and
// reports an error (exit 22) naming the missing identity and the fix, in
// seconds, without touching the packages; a user-assigned-only answer the
// same; once the identity is back, enable succeeds again.
func TestEnableAfterIdentityRemoved(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-12", sandbox.NetworkOptions{})
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		w.WantStatus(h, 0, "success", 0)
		pkgs := w.PackageSet()

		for i, c := range []struct {
			mode sandbox.IdentityMode
			want []string
		}{
			{sandbox.IdentityMissing, []string{"system-assigned managed identity is gone", "az vm identity assign", "wait a few minutes"}},
			{sandbox.IdentityUserAssignedOnly, []string{`user-assigned identity "sandbox-uai"`, "az vmss identity assign"}},
		} {
			seq := i + 1
			w.Net.IMDS.SetIdentity(c.mode)
			tokens, repo := w.Net.IMDS.TokenRequests(), len(w.Net.Repo.Requests())
			start := time.Now()
			res, err := w.Apply(h, seq, w.Pinned())
			took := time.Since(start)
			if err == nil || lastExit(t, res, agentsim.Enable) != 22 {
				t.Fatalf("%s: want enable to fail with 22, got %v (%v)", c.mode, verbs(res), err)
			}
			if took > 10*time.Second {
				t.Errorf("%s: enable took %s; it must not wait out the install's identity window", c.mode, took)
			}
			st := w.WantStatus(h, seq, "error", 22)
			for _, want := range c.want {
				if !strings.Contains(st.Message, want) {
					t.Errorf("%s: status lacks %q: %q", c.mode, want, st.Message)
				}
			}
			if n := w.Net.IMDS.TokenRequests() - tokens; n != 1 {
				t.Errorf("%s: %d token requests, want 1", c.mode, n)
			}
			if len(w.Net.Repo.Requests()) != repo {
				t.Errorf("%s: enable reached the repository", c.mode)
			}
			if got := w.PackageSet(); got != pkgs || !w.Wired() {
				t.Errorf("%s: enable changed the packages or the wiring: %s → %s", c.mode, pkgs, got)
			}
		}

		w.Net.IMDS.SetIdentity(sandbox.IdentityPresent)
		w.MustApply(h, 3, w.Pinned())
		w.WantStatus(h, 3, "success", 0)
	})
}
