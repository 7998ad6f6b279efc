package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/fixtures"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// world is one isolated machine: a distro look-alike root, the fake
// outside world, and an agent that manages the extension in it.
type world struct {
	t     *testing.T
	fx    *fixtures.Set
	net   *sandbox.Network
	root  *sandbox.Root
	agent *agentsim.Agent
	zips  zips
}

// newWorld must be called inside sandbox.RunIsolated.
func newWorld(t *testing.T, distro string, o sandbox.NetworkOptions) *world {
	t.Helper()
	spec, ok := sandbox.Distros[distro]
	if !ok {
		t.Fatalf("no distro look-alike %q", distro)
	}
	if o.IMDS.AzEnvironment == "" {
		o.IMDS.AzEnvironment = "AzurePublicCloud"
	}
	fx := fixtures.Get(t)
	n := sandbox.StartNetwork(t, fx, o)
	root := sandbox.NewRoot(t, sandbox.Image(t), spec, n)
	return &world{
		t: t, fx: fx, net: n, root: root, zips: loadZips(t),
		agent: &agentsim.Agent{Root: root.Dir},
	}
}

// pinned are the settings that trust the fixture key instead of
// Microsoft's (the same knob a mirror user sets).
func (w *world) pinned() map[string]any {
	return map[string]any{"signingKeyFingerprints": []string{w.fx.KeyFingerprint}}
}

func (w *world) deploy(zipPath, version string) *agentsim.Handler {
	w.t.Helper()
	h, err := w.agent.Deploy(zipPath, handlerName, version)
	if err != nil {
		w.t.Fatalf("deploy %s: %v", version, err)
	}
	return h
}

// apply runs one goal state (install+enable for a new handler, enable
// otherwise) and logs what the agent would show.
func (w *world) apply(h *agentsim.Handler, seq int, public any) ([]agentsim.CommandResult, error) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	res, err := w.agent.Apply(ctx, h, seq, public)
	w.logResults(res)
	return res, err
}

func (w *world) logResults(res []agentsim.CommandResult) {
	w.t.Helper()
	for _, r := range res {
		w.t.Logf("%s %s (seq %d): exit %d in %s\n%s", r.Version, r.Verb, r.Seq, r.ExitCode, r.Duration.Round(time.Millisecond), r.Output)
	}
}

// mustApply requires the goal state to succeed.
func (w *world) mustApply(h *agentsim.Handler, seq int, public any) []agentsim.CommandResult {
	w.t.Helper()
	res, err := w.apply(h, seq, public)
	if err != nil {
		w.t.Fatalf("goal state seq %d failed: %v", seq, err)
	}
	return res
}

// lastExit returns the exit code of the last command of a verb.
func lastExit(t *testing.T, res []agentsim.CommandResult, verb agentsim.Verb) int {
	t.Helper()
	for i := len(res) - 1; i >= 0; i-- {
		if res[i].Verb == verb {
			return res[i].ExitCode
		}
	}
	t.Fatalf("%s did not run; ran: %v", verb, verbs(res))
	return -1
}

func verbs(res []agentsim.CommandResult) []string {
	var out []string
	for _, r := range res {
		out = append(out, fmt.Sprintf("%s:%s=%d", r.Version, r.Verb, r.ExitCode))
	}
	return out
}

// status reads the status the agent would report and checks it is
// well-formed by the agent's rules.
func (w *world) status(h *agentsim.Handler, seq int) agentsim.AgentStatus {
	w.t.Helper()
	st := w.agent.ReadStatus(h, seq)
	if st.Missing {
		w.t.Fatalf("no status file for seq %d", seq)
	}
	if st.Code == 1012 {
		w.t.Fatalf("status file for seq %d is invalid for the agent: %s", seq, st.Message)
	}
	if len(st.Message) > 1024 {
		w.t.Errorf("status message is %d characters (> 1024)", len(st.Message))
	}
	return st
}

func (w *world) wantStatus(h *agentsim.Handler, seq int, status string, code int) agentsim.AgentStatus {
	w.t.Helper()
	st := w.status(h, seq)
	if st.Status != status || st.Code != code {
		w.t.Fatalf("status for seq %d = %s/%d %q, want %s/%d", seq, st.Status, st.Code, st.Message, status, code)
	}
	return st
}

// installed returns the installed version of a package ("" if absent),
// asking the root's own package database.
func (w *world) installed(pkg string) string {
	w.t.Helper()
	var out string
	var code int
	if w.root.Spec.Family == "deb" {
		out, _, code = w.root.Exec(context.Background(), nil, "dpkg-query", "-W", "-f=${Status}\t${Version}", pkg)
		if code != 0 || !strings.HasPrefix(out, "install ok installed") {
			return ""
		}
		v := strings.SplitN(out, "\t", 2)[1]
		return strings.SplitN(v, "-", 2)[0]
	}
	out, _, code = w.root.Exec(context.Background(), nil, "rpm", "-q", "--qf", "%{VERSION}", pkg)
	if code != 0 {
		return ""
	}
	return strings.TrimSpace(out)
}

// wired checks what aadsshlogin's scripts did, as a user would see it.
func (w *world) wired() bool {
	nss := w.root.ReadFile("/etc/nsswitch.conf")
	sshd := w.root.ReadFile("/etc/ssh/sshd_config")
	return w.root.Exists("/usr/sbin/aad_certhandler") && strings.Contains(nss, "aad") &&
		strings.Contains(sshd, "AuthorizedKeysCommand /usr/sbin/aad_certhandler")
}

// changedPaths lists what changed on the machine between two snapshots,
// ignoring the agent's own folders.
func changedPaths(before, after sandbox.Snapshot) []string {
	var out []string
	for _, d := range before.Diff(after) {
		p := strings.TrimLeft(d, "+-~ ")
		if strings.HasPrefix(p, "/var/lib/waagent") {
			continue
		}
		// rpm's sqlite database keeps a shared-memory index next to it that
		// every read-only query may touch; it holds no package data.
		if strings.HasSuffix(p, ".sqlite-shm") {
			continue
		}
		out = append(out, d)
	}
	return out
}

func (w *world) wantUnchanged(before sandbox.Snapshot) {
	w.t.Helper()
	if diff := changedPaths(before, w.root.Snapshot(w.t)); len(diff) > 0 {
		w.t.Errorf("the machine changed although the handler failed: %v", diff)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
