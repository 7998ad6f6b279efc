// Package demo shows the handler doing its job: the built zip is driven
// through the agent simulator inside a sandbox (private namespaces, a fake
// metadata service, a signed repository answering as packages.microsoft.com)
// and every step's status is printed as a user would read it.
//
// Run it with `make demo`. It is skipped by `go test ./...` unless
// AADSSH_DEMO=1 is set.
package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

const demoEnv, outEnv = "AADSSH_DEMO", "AADSSH_DEMO_OUT"

func TestMain(m *testing.M) {
	if os.Getenv(demoEnv) != "1" {
		os.Exit(m.Run()) // TestDemo skips itself
	}
	os.Exit(harness.Main(m))
}

// TestDemo is the demo. The isolated child writes the narrative to a file
// that the parent prints as it grows (the child's own output is captured by
// the test framework).
func TestDemo(t *testing.T) {
	if os.Getenv(demoEnv) != "1" {
		t.Skip("set AADSSH_DEMO=1 (make demo) to run the demo")
	}
	if sandbox.Isolated() {
		sandbox.RunIsolated(t, runDemo)
		return
	}
	f, err := os.CreateTemp("", "aadssh-demo-*.txt")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer os.Remove(f.Name())
	t.Setenv(outEnv, f.Name())
	done := make(chan struct{})
	printed := make(chan struct{})
	go follow(f.Name(), done, printed)
	sandbox.RunIsolated(t, runDemo)
	close(done)
	<-printed
}

// follow copies the narrative file to stdout until done.
func follow(path string, done <-chan struct{}, printed chan<- struct{}) {
	defer close(printed)
	var off int64
	for {
		finished := false
		select {
		case <-done:
			finished = true
		case <-time.After(200 * time.Millisecond):
		}
		if f, err := os.Open(path); err == nil {
			f.Seek(off, io.SeekStart)
			n, _ := io.Copy(os.Stdout, f)
			off += n
			f.Close()
		}
		if finished {
			return
		}
	}
}

type narrator struct {
	w *bufio.Writer
	f *os.File
}

func (n *narrator) say(format string, args ...any) {
	fmt.Fprintf(n.w, format+"\n", args...)
	n.w.Flush()
}

func runDemo(t *testing.T) {
	f, err := os.OpenFile(os.Getenv(outEnv), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("demo output: %v", err)
	}
	defer f.Close()
	n := &narrator{w: bufio.NewWriter(f), f: f}
	ctx := context.Background()

	w := harness.NewWorld(t, "ubuntu-22.04", sandbox.NetworkOptions{})
	st, _ := os.Stat(w.Zips.Current)
	n.say("")
	n.say("AADSSHLoginForLinux handler %s — demo", w.Zips.CurrentVersion)
	n.say("==============================================================")
	n.say("Package: %s (%d KiB)", w.Zips.Current, st.Size()/1024)
	n.say("Sandbox: an Ubuntu 22.04 look-alike root in private namespaces; a fake Instance Metadata Service")
	n.say("on 169.254.169.254 (system-assigned identity present); a signed HTTPS repository answering as")
	n.say("packages.microsoft.com. Nothing leaves this machine. The agent simulator drives the zip as")
	n.say("waagent does. Settings pin the sandbox's signing key instead of Microsoft's:")
	n.say("  %s", harness.JSONString(w.Pinned()))

	step := func(title string, res []agentsim.CommandResult, h *agentsim.Handler, seq int) {
		n.say("")
		n.say("▶ %s", title)
		for _, r := range res {
			n.say("  %-9s %-10s exit %-3d %6s", r.Version, r.Verb, r.ExitCode, r.Duration.Round(time.Millisecond))
		}
		if h != nil {
			showStatus(n, w.Agent.ReadStatus(h, seq), seq)
		}
	}

	h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
	res, _ := w.Agent.Apply(ctx, h, 0, w.Pinned())
	step("az vm extension set … (first goal state: install, then enable)", res, h, 0)
	n.say("  repository file: %s", firstLine(w.Root.ReadFile(harness.AptList), "deb "))
	n.say("  installed: aadsshlogin %s", w.Installed("aadsshlogin"))

	before := w.Requests()
	res, _ = w.Agent.Restart(ctx, h, 0)
	step("VM reboot / agent restart (enable again, same sequence number)", res, h, 0)
	n.say("  network requests during this enable: %d (the identity check: one IMDS token request)", w.Requests()-before)

	mirror := map[string]any{"repositoryUrl": "https://mirror.example.test", "signingKeyFingerprints": []string{w.Fx.KeyFingerprint}}
	res, _ = w.Agent.Apply(ctx, h, 1, mirror)
	step("New settings (seq 1): use a mirror of packages.microsoft.com", res, h, 1)
	n.say("  repository file: %s", firstLine(w.Root.ReadFile(harness.AptList), "deb "))

	res, _ = w.Agent.Apply(ctx, h, 2, map[string]any{"repositoryUrl": "http://mirror.example.test"})
	step("Invalid settings (seq 2): a plain-http mirror", res, h, 2)

	h2, res, _ := w.Agent.Update(ctx, h, w.Zips.Next, harness.HandlerName, w.Zips.NextVersion, 3, w.Pinned())
	step(fmt.Sprintf("Extension update %s → %s (old disable, new update, old uninstall, new enable)", w.Zips.CurrentVersion, w.Zips.NextVersion), res, h2, 3)
	n.say("  aadsshlogin still installed: %s; version marker: %s", w.Installed("aadsshlogin"), w.Marker())

	res, _ = w.Agent.Uninstall(ctx, h2, 3)
	step("az vm extension delete (disable, then uninstall)", res, nil, 0)
	n.say("  aadsshlogin installed: %q; repository file present: %v; state present: %v",
		w.Installed("aadsshlogin"), w.Root.Exists(harness.AptList), w.Root.Exists(harness.StateDir))

	fedora := sandbox.NewRoot(t, sandbox.Image(t), sandbox.Distros["fedora-40"], w.Net)
	a := &agentsim.Agent{Root: fedora.Dir}
	fh, err := a.Deploy(w.Zips.Current, harness.HandlerName, w.Zips.CurrentVersion)
	if err != nil {
		t.Fatal(err)
	}
	res, _ = a.Apply(ctx, fh, 0, w.Pinned())
	n.say("")
	n.say("▶ The same zip on a Fedora 40 look-alike (not supported)")
	for _, r := range res {
		n.say("  %-9s %-10s exit %-3d %6s", r.Version, r.Verb, r.ExitCode, r.Duration.Round(time.Millisecond))
	}
	showStatus(n, a.ReadStatus(fh, 0), 0)
	n.say("")
}

func showStatus(n *narrator, st agentsim.AgentStatus, seq int) {
	n.say("  status (seq %d): %s, code %d", seq, st.Status, st.Code)
	n.say("    %s", wrap(st.Message, 96, "    "))
	for _, s := range st.Substatus {
		n.say("    · %s [%s]: %s", s.Name, s.Status, wrap(s.Message, 90, "      "))
	}
}

func firstLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return "(none)"
}

func wrap(s string, width int, indent string) string {
	var b strings.Builder
	col := 0
	for _, word := range strings.Fields(s) {
		if col > 0 && col+len(word)+1 > width {
			b.WriteString("\n" + indent)
			col = 0
		} else if col > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
	return b.String()
}
