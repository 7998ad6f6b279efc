package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/installer/keys"
	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/fixtures"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// World is one isolated machine: a distro look-alike root, the fake
// outside World, and an agent that manages the extension in it.
type World struct {
	T     *testing.T
	Fx    *fixtures.Set
	Net   *sandbox.Network
	Root  *sandbox.Root
	Agent *agentsim.Agent
	Zips  Zips
}

// NewWorld must be called inside sandbox.RunIsolated.
func NewWorld(t *testing.T, distro string, o sandbox.NetworkOptions) *World {
	t.Helper()
	return NewWorldOn(t, "", distro, o)
}

// NewWorldOn is NewWorld on the image rootfs (the one sandbox.RunIsolatedOn
// hands its function, e.g. the arm64 image). An empty image means the one
// the distribution is made from on this host (sandbox.ImageFor): the
// look-alike image, or a real Debian root.
func NewWorldOn(t *testing.T, image, distro string, o sandbox.NetworkOptions) *World {
	t.Helper()
	spec, ok := sandbox.Distros[distro]
	if !ok {
		t.Fatalf("no distro look-alike or real root %q", distro)
	}
	if o.IMDS.AzEnvironment == "" {
		o.IMDS.AzEnvironment = "AzurePublicCloud"
	}
	fx := fixtures.Get(t)
	n := sandbox.StartNetwork(t, fx, o)
	if image == "" {
		image = sandbox.ImageFor(t, spec)
	}
	root := sandbox.NewRoot(t, image, spec, n)
	return &World{
		T: t, Fx: fx, Net: n, Root: root, Zips: LoadZips(t),
		Agent: &agentsim.Agent{Root: root.Dir},
	}
}

// Pinned are the settings that trust the fixture keys (the stand-ins for
// microsoft.asc and microsoft-2025.asc) instead of Microsoft's: the same
// knob a mirror user sets.
func (w *World) Pinned() map[string]any {
	return map[string]any{"signingKeyFingerprints": w.PinnedFingerprints()}
}

// PinnedFingerprints are the fixture keys' fingerprints, as Pinned lists
// them.
func (w *World) PinnedFingerprints() []string {
	return []string{w.Fx.KeyFingerprint, w.Fx.Key2025Fingerprint}
}

// Deploy extracts a zip into the agent's folder.
func (w *World) Deploy(zipPath, version string) *agentsim.Handler {
	w.T.Helper()
	h, err := w.Agent.Deploy(zipPath, HandlerName, version)
	if err != nil {
		w.T.Fatalf("deploy %s: %v", version, err)
	}
	return h
}

// Apply runs one goal state (install+enable for a new handler, enable
// otherwise) and logs what the agent would show.
func (w *World) Apply(h *agentsim.Handler, seq int, public any) ([]agentsim.CommandResult, error) {
	w.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	res, err := w.Agent.Apply(ctx, h, seq, public)
	w.LogResults(res)
	return res, err
}

// LogResults logs what the agent captured of each command.
func (w *World) LogResults(res []agentsim.CommandResult) {
	w.T.Helper()
	for _, r := range res {
		w.T.Logf("%s %s (seq %d): exit %d in %s\n%s", r.Version, r.Verb, r.Seq, r.ExitCode, r.Duration.Round(time.Millisecond), r.Output)
	}
}

// MustApply requires the goal state to succeed.
func (w *World) MustApply(h *agentsim.Handler, seq int, public any) []agentsim.CommandResult {
	w.T.Helper()
	res, err := w.Apply(h, seq, public)
	if err != nil {
		w.T.Fatalf("goal state seq %d failed: %v", seq, err)
	}
	return res
}

// LastExit returns the exit code of the last command of a verb.
func LastExit(t *testing.T, res []agentsim.CommandResult, verb agentsim.Verb) int {
	t.Helper()
	for i := len(res) - 1; i >= 0; i-- {
		if res[i].Verb == verb {
			return res[i].ExitCode
		}
	}
	t.Fatalf("%s did not run; ran: %v", verb, Verbs(res))
	return -1
}

// Verbs renders results as "version:verb=exit".
func Verbs(res []agentsim.CommandResult) []string {
	var out []string
	for _, r := range res {
		out = append(out, fmt.Sprintf("%s:%s=%d", r.Version, r.Verb, r.ExitCode))
	}
	return out
}

// Status reads the status the agent would report and checks it is
// well-formed by the agent's rules.
func (w *World) Status(h *agentsim.Handler, seq int) agentsim.AgentStatus {
	w.T.Helper()
	st := w.Agent.ReadStatus(h, seq)
	if st.Missing {
		w.T.Fatalf("no status file for seq %d", seq)
	}
	if st.Code == 1012 {
		w.T.Fatalf("status file for seq %d is invalid for the agent: %s", seq, st.Message)
	}
	if len(st.Message) > 1024 {
		w.T.Errorf("status message is %d characters (> 1024)", len(st.Message))
	}
	return st
}

// WantStatus requires the status for seq to be status/code.
func (w *World) WantStatus(h *agentsim.Handler, seq int, status string, code int) agentsim.AgentStatus {
	w.T.Helper()
	st := w.Status(h, seq)
	if st.Status != status || st.Code != code {
		w.T.Fatalf("status for seq %d = %s/%d %q, want %s/%d", seq, st.Status, st.Code, st.Message, status, code)
	}
	return st
}

// Installed returns the installed version of a package ("" if absent),
// asking the root's own package database.
func (w *World) Installed(pkg string) string {
	w.T.Helper()
	var out string
	var code int
	if w.Root.Spec.Family == "deb" {
		out, _, code = w.Root.Exec(context.Background(), nil, "dpkg-query", "-W", "-f=${Status}\t${Version}", pkg)
		if code != 0 || !strings.HasPrefix(out, "install ok installed") {
			return ""
		}
		v := strings.SplitN(out, "\t", 2)[1]
		return strings.SplitN(v, "-", 2)[0]
	}
	out, _, code = w.Root.Exec(context.Background(), nil, "rpm", "-q", "--qf", "%{VERSION}", pkg)
	if code != 0 {
		return ""
	}
	return strings.TrimSpace(out)
}

// RPMTrusts reports whether the root's rpm database holds the key with
// exactly this fingerprint (read from the keys rpm stores, not from the
// 32-bit short id in the entry's name).
func (w *World) RPMTrusts(fp string) bool {
	w.T.Helper()
	out, _, code := w.Root.Exec(context.Background(), nil, "rpm", "-q", "gpg-pubkey", "--qf", "%{DESCRIPTION}\n")
	if code != 0 {
		return false
	}
	fps, err := keys.FingerprintsOf([]byte(out))
	return err == nil && slices.Contains(fps, fp)
}

// Wired checks what aadsshlogin's scripts did, as a user would see it.
func (w *World) Wired() bool {
	nss := w.Root.ReadFile("/etc/nsswitch.conf")
	sshd := w.Root.ReadFile("/etc/ssh/sshd_config")
	return w.Root.Exists("/usr/sbin/aad_certhandler") && strings.Contains(nss, "aad") &&
		strings.Contains(sshd, "AuthorizedKeysCommand /usr/sbin/aad_certhandler")
}

// ChangedPaths lists what changed on the machine between two snapshots,
// ignoring the agent's own folders.
func ChangedPaths(before, after sandbox.Snapshot) []string {
	var out []string
	for _, d := range before.Diff(after) {
		p := strings.TrimLeft(d, "+-~ ")
		if strings.HasPrefix(p, "/var/lib/waagent") {
			continue
		}
		if bookkeeping(p) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// WantUnchanged requires the machine to be as in before.
func (w *World) WantUnchanged(before sandbox.Snapshot) {
	w.T.Helper()
	if diff := ChangedPaths(before, w.Root.Snapshot(w.T)); len(diff) > 0 {
		w.T.Errorf("the machine changed although the handler failed: %v", diff)
	}
}

// JSONString renders v as JSON for messages.
func JSONString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Mrseq returns the handler's mrseq file content.
func (w *World) Mrseq(h *agentsim.Handler) string {
	return strings.TrimSpace(w.Root.ReadFile(h.Dir + "/mrseq"))
}

// MarkerPath is the version marker shared with 1.0.2385.1.
const MarkerPath = "/var/log/AADSSHLoginForLinux.version"

// Marker returns the version marker's content.
func (w *World) Marker() string { return strings.TrimSpace(w.Root.ReadFile(MarkerPath)) }

// Requests counts what reached the fake outside world.
func (w *World) Requests() int { return len(w.Net.Repo.Requests()) + len(w.Net.IMDS.Requests()) }

// Well-known paths the handler writes.
const (
	AptList    = "/etc/apt/sources.list.d/microsoft-prod.list"
	YumRepo    = "/etc/yum.repos.d/microsoft-prod.repo"
	ZypperRepo = "/etc/zypp/repos.d/microsoft-prod.repo"
	AptKeyring = "/etc/apt/keyrings/microsoft-aadsshlogin.gpg"
	RPMKey     = "/etc/pki/rpm-gpg/microsoft-aadsshlogin.asc"
	StateDir   = "/var/lib/aadsshlogin-handler"
)

// bookkeeping reports paths that package managers and the stand-in packages
// rewrite whenever they run, even when the run is undone: databases'
// journals and backups, transaction histories, and the stand-ins' own
// scriptlet log. "Unchanged" is judged on everything else plus the
// installed package set (Baseline).
func bookkeeping(p string) bool {
	for _, prefix := range []string{
		"/var/lib/dpkg/status-old", "/var/lib/dpkg/triggers/", "/var/lib/dpkg/updates/",
		"/var/lib/rpm/", "/var/lib/dnf/", "/var/lib/zypp/", "/var/lib/tdnf/", "/var/lib/YaST2",
		"/var/lib/aadsshlogin-standin", "/var/lib/selinux-standin",
	} {
		if p == strings.TrimSuffix(prefix, "/") || strings.HasPrefix(p, prefix) {
			return true
		}
	}
	// sqlite keeps a shared-memory index next to a database that every
	// read-only query may touch; it holds no data.
	return strings.HasSuffix(p, ".sqlite-shm")
}

// Baseline is the machine's state before a run that is expected to change
// nothing: files plus the installed package set.
type Baseline struct {
	Snapshot sandbox.Snapshot
	Packages string
}

// Baseline records the state for WantUnchangedSince.
func (w *World) Baseline() Baseline {
	return Baseline{Snapshot: w.Root.Snapshot(w.T), Packages: w.PackageSet()}
}

// WantUnchangedSince requires files and installed packages to be as in b.
func (w *World) WantUnchangedSince(b Baseline) {
	w.T.Helper()
	w.WantUnchanged(b.Snapshot)
	if got := w.PackageSet(); got != b.Packages {
		w.T.Errorf("the installed packages changed although the handler failed:\nbefore:\n%s\nafter:\n%s", b.Packages, got)
	}
}

// PackageSet lists installed packages with versions, sorted.
func (w *World) PackageSet() string {
	w.T.Helper()
	var out string
	if w.Root.Spec.Family == "deb" {
		out, _, _ = w.Root.Exec(context.Background(), nil, "dpkg-query", "-W", "-f=${Package} ${Version} ${Status}\n")
	} else {
		out, _, _ = w.Root.Exec(context.Background(), nil, "rpm", "-qa", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\n")
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
