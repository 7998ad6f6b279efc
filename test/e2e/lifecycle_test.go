package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// TestLifecycle drives the whole lifecycle the way the agent does:
// install → enable → enable (same seq) → enable (new seq) → update to a
// newer build → disable → uninstall, checking status files, mrseq, the
// version marker and exit codes at each step.
func TestLifecycle(t *testing.T) {
	for _, distro := range []string{"ubuntu-22.04", "rhel-9.4"} {
		t.Run(distro, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, distro, sandbox.NetworkOptions{})
				ctx := context.Background()

				// 1. First goal state: install + enable.
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				res := w.MustApply(h, 0, w.Pinned())
				if got := verbs(res); len(got) != 2 {
					t.Fatalf("first goal state ran %v, want install and enable", got)
				}
				w.WantStatus(h, 0, "success", 0)
				if got := w.Mrseq(h); got != "0" {
					t.Errorf("mrseq after the first enable = %q, want 0 (the first enable at seq 0 must not be skipped)", got)
				}
				if got := w.Marker(); got != w.Zips.CurrentVersion {
					t.Errorf("version marker %q, want %q", got, w.Zips.CurrentVersion)
				}
				if w.Agent.State(h) != agentsim.Enabled {
					t.Errorf("handler state %s", w.Agent.State(h))
				}

				// 2. The same goal state again (agent restart, reboot, another
				// extension's goal state): enable only, nothing to do, no
				// network, status still correct.
				// The only request is the identity check: one IMDS token
				// request per enable (it may have been removed since).
				before, tokens := len(w.Net.Repo.Requests()), w.Net.IMDS.TokenRequests()
				imdsBefore := len(w.Net.IMDS.Requests())
				res = w.MustApply(h, 0, w.Pinned())
				if lastExit(t, res, agentsim.Enable) != 0 || len(res) != 1 {
					t.Fatalf("repeated goal state ran %v", verbs(res))
				}
				if n := len(w.Net.Repo.Requests()) - before; n != 0 {
					t.Errorf("a no-op enable reached the repository: %d requests", n)
				}
				if n, all := w.Net.IMDS.TokenRequests()-tokens, len(w.Net.IMDS.Requests())-imdsBefore; n != 1 || all != 1 {
					t.Errorf("a no-op enable made %d IMDS requests, %d token requests; want exactly one token request", all, n)
				}
				w.WantStatus(h, 0, "success", 0)
				res, err := w.Agent.Restart(ctx, h, 0)
				w.LogResults(res)
				if err != nil {
					t.Fatalf("enable after an agent restart failed: %v", err)
				}

				// 3. A new sequence number with the same settings: a fresh
				// status for seq 1, mrseq moves on, still no network.
				res = w.MustApply(h, 1, w.Pinned())
				w.WantStatus(h, 1, "success", 0)
				if got := w.Mrseq(h); got != "1" {
					t.Errorf("mrseq = %q, want 1", got)
				}
				if len(w.Net.Repo.Requests()) != before {
					t.Errorf("an enable with unchanged settings reached the repository")
				}

				// 4. Update to the next build: old disable, new update, old
				// uninstall (must keep the packages), new enable.
				h2, res, err := w.Agent.Update(ctx, h, w.Zips.Next, handlerName, w.Zips.NextVersion, 2, w.Pinned())
				w.LogResults(res)
				if err != nil {
					t.Fatalf("update failed: %v (%v)", err, verbs(res))
				}
				wantOrder := []string{
					w.Zips.CurrentVersion + ":disable=0", w.Zips.NextVersion + ":update=0",
					w.Zips.CurrentVersion + ":uninstall=0", w.Zips.NextVersion + ":enable=0",
				}
				if got := verbs(res); strings.Join(got, " ") != strings.Join(wantOrder, " ") {
					t.Errorf("update ran %v, want %v", got, wantOrder)
				}
				if w.Installed("aadsshlogin") == "" || !w.Wired() {
					t.Fatal("the old version's uninstall removed aadsshlogin during the update")
				}
				if got := w.Marker(); got != w.Zips.NextVersion {
					t.Errorf("marker after update %q, want %q", got, w.Zips.NextVersion)
				}
				w.WantStatus(h2, 2, "success", 0)
				if got := w.Mrseq(h2); got != "2" {
					t.Errorf("mrseq after update = %q, want 2", got)
				}

				// 5. Disable leaves login configured.
				cr, err := w.Agent.Disable(ctx, h2, 2)
				w.LogResults([]agentsim.CommandResult{cr})
				if err != nil || cr.ExitCode != 0 {
					t.Fatalf("disable: exit %d, %v", cr.ExitCode, err)
				}
				if !w.Wired() {
					t.Error("disable unwired SSH login")
				}

				// 6. Uninstall removes the packages, our repository file and
				// key, the state and the marker.
				res, err = w.Agent.Uninstall(ctx, h2, 2)
				w.LogResults(res)
				if err != nil || lastExit(t, res, agentsim.Uninstall) != 0 {
					t.Fatalf("uninstall: %v %v", err, verbs(res))
				}
				for _, pkg := range []string{"aadsshlogin", "aadsshlogin-selinux"} {
					if v := w.Installed(pkg); v != "" {
						t.Errorf("%s %s still installed after uninstall", pkg, v)
					}
				}
				if w.Wired() {
					t.Error("sshd/NSS still reference aadsshlogin after uninstall")
				}
				for _, p := range []string{aptList, yumRepo, "/etc/apt/keyrings/microsoft-aadsshlogin.gpg",
					"/etc/pki/rpm-gpg/microsoft-aadsshlogin.asc", "/var/lib/aadsshlogin-handler", markerPath} {
					if w.Root.Exists(p) {
						t.Errorf("%s left behind after uninstall", p)
					}
				}
			})
		})
	}
}

// TestUpdateFromShippedExtension: the shipped 1.0.2385.1 (a stand-in that
// reproduces its documented marker rule) is installed with aadsshlogin; the
// agent updates it to this handler. The old version's uninstall runs after
// our update and must not remove the packages.
func TestUpdateFromShippedExtension(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-12", sandbox.NetworkOptions{})
		ctx := context.Background()
		w.Root.InstallLocalPackage(t, w.Fx.Deb("aadsshlogin", w.Fx.Versions.Old))
		legacy := w.Deploy(w.Zips.Legacy, legacyVersion)
		w.MustApply(legacy, 3, map[string]any{})
		if got := w.Marker(); got != legacyVersion {
			t.Fatalf("legacy stand-in wrote marker %q", got)
		}

		h, res, err := w.Agent.Update(ctx, legacy, w.Zips.Current, handlerName, w.Zips.CurrentVersion, 4, w.Pinned())
		w.LogResults(res)
		if err != nil {
			t.Fatalf("update from %s failed: %v", legacyVersion, err)
		}
		if got := w.Installed("aadsshlogin"); got != w.Fx.Versions.New {
			t.Errorf("aadsshlogin %q after the update, want %s (upgraded and kept)", got, w.Fx.Versions.New)
		}
		if !w.Wired() {
			t.Error("SSH login not wired after the update")
		}
		w.WantStatus(h, 4, "success", 0)
		if got := w.Marker(); got != w.Zips.CurrentVersion {
			t.Errorf("marker %q", got)
		}
	})
}

// TestDowngrade: from this handler to an older one (here the shipped
// 1.0.2385.1 stand-in). The agent runs the NEW (higher) version's update with
// VERSION set to the lower version, then its uninstall: the packages must
// stay, and the marker must be handed to the target version so that its own
// later uninstall really removes them.
func TestDowngrade(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "ubuntu-22.04", sandbox.NetworkOptions{})
		ctx := context.Background()
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())

		old, res, err := w.Agent.Update(ctx, h, w.Zips.Legacy, handlerName, legacyVersion, 1, map[string]any{})
		w.LogResults(res)
		if err != nil {
			t.Fatalf("downgrade failed: %v", err)
		}
		if w.Installed("aadsshlogin") == "" || !w.Wired() {
			t.Fatal("the downgrade removed aadsshlogin")
		}
		if got := w.Marker(); got != legacyVersion {
			t.Errorf("marker %q after the downgrade, want %s", got, legacyVersion)
		}
		// The older version's real uninstall now removes the packages.
		res, err = w.Agent.Uninstall(ctx, old, 1)
		w.LogResults(res)
		if err != nil {
			t.Fatal(err)
		}
		if v := w.Installed("aadsshlogin"); v != "" {
			t.Errorf("aadsshlogin %s still installed after the older version's uninstall", v)
		}
	})
}

// TestSettingsChangeReconfigures: a new sequence number with a different
// repository (a mirror) is applied by enable.
func TestSettingsChangeReconfigures(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-12", sandbox.NetworkOptions{})
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		mirror := map[string]any{
			"repositoryUrl":          "https://mirror.example.test",
			"signingKeyFingerprints": []string{w.Fx.KeyFingerprint},
		}
		w.MustApply(h, 1, mirror)
		w.WantStatus(h, 1, "success", 0)
		if list := w.Root.ReadFile(aptList); !strings.Contains(list, "https://mirror.example.test/repos/microsoft-debian-bookworm-prod") {
			t.Errorf("enable did not apply the mirror:\n%s", list)
		}
		if got := w.Mrseq(h); got != "1" {
			t.Errorf("mrseq %q", got)
		}
	})
}

// TestBadSettings: unknown keys and invalid values fail with 53, naming the
// field, before anything is changed.
func TestBadSettings(t *testing.T) {
	cases := []struct {
		public any
		field  string
	}{
		{map[string]any{"repositoryURL": "https://x.example"}, "repositoryURL"},
		{map[string]any{"repositoryUrl": "http://mirror.example.test"}, "repositoryUrl"},
		{map[string]any{"signingKeyFingerprints": []string{"not-hex"}}, "signingKeyFingerprints"},
		{map[string]any{"aadsshloginVersion": "-o APT::Get::AllowUnauthenticated=1"}, "aadsshloginVersion"},
		{"a string", "publicSettings"},
	}
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "debian-12", sandbox.NetworkOptions{})
		for i, c := range cases {
			h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
			before := w.Baseline()
			res, err := w.Apply(h, i, c.public)
			if err == nil {
				t.Errorf("settings %s accepted", jsonString(c.public))
				continue
			}
			if got := lastExit(t, res, agentsim.Install); got != 53 {
				t.Errorf("settings %s: exit %d, want 53", jsonString(c.public), got)
			}
			st := w.WantStatus(h, i, "error", 53)
			if !strings.Contains(st.Message, c.field) {
				t.Errorf("message does not name %s: %q", c.field, st.Message)
			}
			w.WantUnchangedSince(before)
		}
	})
}

// TestSELinuxPolicyInstalled: with the distro's SELinux policy package
// present, aadsshlogin-selinux goes in first and its module is checked.
func TestSELinuxPolicyInstalled(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "rhel-9.4", sandbox.NetworkOptions{})
		w.Root.InstallLocalPackage(t, w.Fx.RPM("selinux-policy-targeted", "38.1.35"))
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		if got := w.Installed("aadsshlogin-selinux"); got != w.Fx.Versions.New {
			t.Errorf("aadsshlogin-selinux %q, want %s", got, w.Fx.Versions.New)
		}
		out := w.Root.MustExec(t, nil, "semodule", "-l")
		if !strings.Contains(out, "aad_permissions") {
			t.Errorf("semodule -l: %q", out)
		}
		st := w.WantStatus(h, 0, "success", 0)
		if !strings.Contains(st.Message, "SELinux") {
			t.Errorf("status does not mention the SELinux module: %q", st.Message)
		}
		if sub, ok := st.Find("SELinux"); ok {
			t.Errorf("an SELinux warning without an enforcing policy: %+v", sub)
		}
	})
}

// TestSELinuxSessionDomainWarning: on an enforcing machine whose loaded
// policy defines sshd_session_t (RHEL 10), the install succeeds and the
// status carries the SELinux warning with its remedy. The root has no
// selinuxfs of its own: /sys/fs/selinux/enforce says "enforcing", and a
// plain context file accepts every context as a loaded policy that defines
// it would. On the machine without them (TestSELinuxPolicyInstalled's), no
// warning: what cannot be determined is never reported as a problem.
func TestSELinuxSessionDomainWarning(t *testing.T) {
	sandbox.RunIsolated(t, func(t *testing.T) {
		w := newWorld(t, "rhel-10.1", sandbox.NetworkOptions{})
		w.Root.InstallLocalPackage(t, w.Fx.RPM("selinux-policy-targeted", "38.1.35"))
		w.Root.WriteFile("/sys/fs/selinux/enforce", "1", 0o644)
		w.Root.WriteFile("/sys/fs/selinux/context", "", 0o644)
		h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
		w.MustApply(h, 0, w.Pinned())
		st := w.WantStatus(h, 0, "success", 0)
		sub, ok := st.Find("SELinux")
		if !ok || sub.Status != "warning" || !strings.Contains(sub.Message, "sshd_session_t") ||
			!strings.Contains(sub.Message, "semanage permissive -a sshd_session_t") {
			t.Fatalf("no SELinux warning with the remedy: %+v", st)
		}
	})
}
