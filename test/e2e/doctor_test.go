package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/doctor"
	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// runDoctor runs the entry script's doctor verb in the root, from the
// extension's folder, as run-command would.
func runDoctor(t *testing.T, w *world, h *agentsim.Handler) (doctor.Report, int, time.Duration) {
	t.Helper()
	start := time.Now()
	out, errOut, code := w.Root.Exec(context.Background(), nil, h.Dir+"/aadsshlogin-handler", "doctor", "--json")
	took := time.Since(start)
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor --json (exit %d) is not one JSON object: %v\n%s\n%s", code, err, out, errOut)
	}
	for _, c := range rep.Checks {
		t.Logf("doctor: %-4s %-24s %s", c.Status, c.Name, c.Message)
	}
	return rep, code, took
}

func wantCheck(t *testing.T, rep doctor.Report, name string, status doctor.Status, message, fix string) {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name != name {
			continue
		}
		if c.Status != status || !strings.Contains(c.Message, message) || !strings.Contains(c.Fix, fix) {
			t.Errorf("check %s: %s %q (fix %q), want %s with %q (fix %q)", name, c.Status, c.Message, c.Fix, status, message, fix)
		}
		return
	}
	t.Errorf("no check %s", name)
}

// TestDoctor runs doctor after a healthy install (exit 0, every check
// passes or says why it cannot tell, nothing on the machine changes), then
// in broken states, each checked by the check that names it and its fix.
func TestDoctor(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-12", sandbox.NetworkOptions{})
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())

		before := w.Baseline()
		rep, code, took := runDoctor(t, w, h)
		if code != 0 || rep.Failed() {
			t.Errorf("doctor on a healthy install: exit %d", code)
		}
		if took > 5*time.Second {
			t.Errorf("doctor took %s on a healthy machine, want ≤ 5 s", took)
		}
		for _, name := range []string{"imds", "identity", "cloud", "endpoint-signin", "endpoint-rbac", "endpoint-repository", "clock",
			"repository", "package", "obsolete-aadlogin", "authorized-keys-command", "sshd-config", "sshd-groups", "nss", "pam",
			"selinux", "handler-state", "last-status"} {
			wantCheck(t, rep, name, doctor.Pass, "", "")
		}
		wantCheck(t, rep, "identity", doctor.Pass, sandbox.SystemAssignedResourceID, "")
		for _, c := range rep.Checks {
			if (c.Status == doctor.Warn || c.Status == doctor.Fail) && c.Fix == "" {
				t.Errorf("%s is %s without a fix", c.Name, c.Status)
			}
		}
		w.WantUnchangedSince(before)

		t.Run("identity removed", func(t *testing.T) {
			w.Net.IMDS.SetIdentity(sandbox.IdentityMissing)
			defer w.Net.IMDS.SetIdentity(sandbox.IdentityPresent)
			rep, code, _ := runDoctor(t, w, h)
			if code != 32 {
				t.Errorf("exit %d, want 32", code)
			}
			wantCheck(t, rep, "identity", doctor.Fail, "no system-assigned managed identity", "az vm identity assign")
		})
		t.Run("user-assigned identity only", func(t *testing.T) {
			w.Net.IMDS.SetIdentity(sandbox.IdentityUserAssignedOnly)
			defer w.Net.IMDS.SetIdentity(sandbox.IdentityPresent)
			rep, _, _ := runDoctor(t, w, h)
			wantCheck(t, rep, "identity", doctor.Fail, `user-assigned identity "sandbox-uai"`, "az vmss identity assign")
		})
		t.Run("IMDS not answering", func(t *testing.T) {
			w.Net.IMDS.SetIdentity(sandbox.IdentitySlow)
			defer w.Net.IMDS.SetIdentity(sandbox.IdentityPresent)
			rep, code, took := runDoctor(t, w, h)
			if took > 30*time.Second {
				t.Errorf("doctor took %s with a silent IMDS, want ≤ 30 s", took)
			}
			if code != 0 {
				t.Errorf("exit %d: an identity that cannot be determined is not a failure", code)
			}
			wantCheck(t, rep, "identity", doctor.Skip, "Not determined", "")
		})
		t.Run("AllowGroups", func(t *testing.T) {
			orig := w.Root.ReadFile("/etc/ssh/sshd_config")
			defer w.Root.WriteFile("/etc/ssh/sshd_config", orig, 0o644)
			w.Root.WriteFile("/etc/ssh/sshd_config", "AllowGroups sshusers\n"+orig, 0o644)
			rep, code, _ := runDoctor(t, w, h)
			if code != 32 {
				t.Errorf("exit %d, want 32", code)
			}
			wantCheck(t, rep, "sshd-groups", doctor.Fail, "AllowGroups", "Match User *,!*@*")
		})
		t.Run("Entra user logged in", func(t *testing.T) {
			rec := doctor.UtmpRecord(doctor.Session{User: "alice@contoso.com", Line: "pts/0", Host: "10.1.2.3", PID: 1}, time.Now())
			w.Root.WriteFile("/run/utmp", string(rec), 0o664)
			defer w.Root.Remove("/run/utmp")
			rep, code, _ := runDoctor(t, w, h)
			if code != 0 {
				t.Errorf("exit %d", code)
			}
			wantCheck(t, rep, "entra-sessions", doctor.Pass, "alice@contoso.com", "ask them to log off")
		})
		t.Run("package removed", func(t *testing.T) {
			w.Root.MustExec(t, nil, "dpkg", "--purge", "aadsshlogin")
			rep, code, _ := runDoctor(t, w, h)
			if code != 32 {
				t.Errorf("exit %d, want 32", code)
			}
			wantCheck(t, rep, "package", doctor.Fail, "aadsshlogin is not installed", "az vm extension set")
			wantCheck(t, rep, "authorized-keys-command", doctor.Fail, "missing", "")
		})
	})
}

// TestDoctorIMDSDown: nothing listens on 169.254.169.254 (before any
// install): the metadata check fails with its fix, the identity is not
// determined (never "missing"), and doctor still ends in seconds.
func TestDoctorIMDSDown(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "ubuntu-22.04", sandbox.NetworkOptions{IMDS: sandbox.IMDSOptions{Down: true}})
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		before := w.Baseline()
		rep, code, took := runDoctor(t, w, h)
		if code != 32 {
			t.Errorf("exit %d, want 32", code)
		}
		if took > 30*time.Second {
			t.Errorf("doctor took %s", took)
		}
		wantCheck(t, rep, "imds", doctor.Fail, "169.254.169.254", "no_proxy=169.254.169.254")
		wantCheck(t, rep, "identity", doctor.Skip, "Not determined", "")
		wantCheck(t, rep, "handler-state", doctor.Warn, "has not completed an install", "az vm extension set")
		w.WantUnchangedSince(before)
	})
}

// TestUninstallWithEntraUserLoggedIn: an Entra user's utmp record is
// there when the extension is removed. Uninstall completes within its
// budget, removes the package, and its status names the user and what the
// open session loses.
func TestUninstallWithEntraUserLoggedIn(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-12", sandbox.NetworkOptions{})
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		rec := doctor.UtmpRecord(doctor.Session{User: "alice@contoso.com", Line: "pts/0", Host: "10.1.2.3", PID: 1}, time.Now())
		w.Root.WriteFile("/run/utmp", string(rec), 0o664)

		// The agent's uninstall, without the directory removal that
		// follows it, so the status can be read.
		r := w.Agent.Run(context.Background(), h, agentsim.Uninstall, 0, nil)
		w.LogResults([]agentsim.CommandResult{r})
		if r.ExitCode != 0 {
			t.Fatalf("uninstall exit %d: %s", r.ExitCode, r.AgentMessage)
		}
		if r.Duration > 60*time.Second {
			t.Errorf("uninstall took %s", r.Duration)
		}
		st := w.WantStatus(h, 0, "success", 0)
		found := false
		for _, s := range st.Substatus {
			if s.Name == "EntraSessions" && strings.Contains(s.Message, "alice@contoso.com") &&
				strings.Contains(s.Message, "cannot log in again") {
				found = true
			}
		}
		if !found {
			t.Errorf("no EntraSessions warning naming alice@contoso.com in %+v", st.Substatus)
		}
		if v := w.Installed("aadsshlogin"); v != "" {
			t.Errorf("aadsshlogin %s still installed", v)
		}
	})
}
