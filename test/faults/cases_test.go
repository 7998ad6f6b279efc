package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// faultCase is one row of the table.
type faultCase struct {
	Name   string // subtest name
	Distro string // sandbox.Distros key
	Fault  string // what is injected (table column)
	Expect string // expected behaviour (table column)
	// Waits marks a case that spends its time waiting (the handler's
	// 2-minute identity window), not on the CPU: it does not take one of
	// the heavy slots, so it overlaps with the other cases.
	Waits bool
	Net   sandbox.NetworkOptions
	Run   func(t *testing.T, f *fx)
}

// heavy bounds the cases that install packages at the same time (the
// machine has 2 cores; apt and dnf are CPU-bound for a few seconds).
var heavy = make(chan struct{}, 2)

// runCases runs every case as a parallel subtest in its own isolated
// child.
func runCases(t *testing.T, cases []faultCase) {
	t.Parallel()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			var note *startedCase
			if !sandbox.Isolated() {
				note = noteStarted(t.Name(), c)
				if !c.Waits {
					heavy <- struct{}{}
					defer func() { <-heavy }()
				}
			}
			sandbox.RunIsolated(t, func(t *testing.T) {
				start := time.Now()
				t.Cleanup(func() { recordResult(t, c, start) })
				c.Run(t, newFx(t, c))
			})
			if note != nil && t.Skipped() {
				note.skipped = true
			}
		})
	}
}

// fx is one case's machine.
type fx struct {
	*harness.World
	t *testing.T
	h *agentsim.Handler
	// killed lists the PIDs a simulated crash killed; reboot waits for
	// them to be gone.
	killed []int
}

// Units of the fake systemd that the handler pauses during an install.
var autoUpdateUnits = map[string][]string{
	"deb": {"apt-daily.timer", "apt-daily-upgrade.timer"},
	"rpm": {"dnf-automatic.timer"},
}

const fakeSystemdDir = "/run/fake-systemd"

// fakeSystemctl stands in for systemd so that the handler's pausing and
// restarting of automatic-update units can be observed. Unit states live
// under /run (gone at a reboot, like the real ones).
const fakeSystemctl = `#!/bin/sh
d=` + fakeSystemdDir + `
mkdir -p "$d"
echo "$*" >> "$d/calls"
case "$1" in
is-active)
	shift
	[ "$1" = --quiet ] && shift
	[ "$(cat "$d/$1" 2>/dev/null)" = active ]
	exit $? ;;
stop) echo inactive > "$d/$2" ;;
start) echo active > "$d/$2" ;;
esac
exit 0
`

func newFx(t *testing.T, c faultCase) *fx {
	distro := c.Distro
	if distro == "" {
		distro = "debian-12"
	}
	w := harness.NewWorld(t, distro, c.Net)
	f := &fx{World: w, t: t}
	w.Root.WriteFile("/usr/local/sbin/systemctl", fakeSystemctl, 0o755)
	if err := os.MkdirAll(w.Root.Path("/run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.bootUnits()
	f.h = w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
	return f
}

// bootUnits starts the automatic-update units, as systemd does at boot.
func (f *fx) bootUnits() {
	for _, u := range autoUpdateUnits[f.Root.Spec.Family] {
		f.Root.WriteFile(fakeSystemdDir+"/"+u, "active\n", 0o644)
	}
}

// wantUnitsActive requires the automatic-update units to run again (the
// handler pauses them during an install and must restart them).
func (f *fx) wantUnitsActive() {
	f.t.Helper()
	for _, u := range autoUpdateUnits[f.Root.Spec.Family] {
		if got := strings.TrimSpace(f.Root.ReadFile(fakeSystemdDir + "/" + u)); got != "active" {
			f.t.Errorf("automatic-update unit %s is %q after the handler finished, want active (systemctl calls: %q)",
				u, got, strings.TrimSpace(f.Root.ReadFile(fakeSystemdDir+"/calls")))
		}
	}
}

// wantUnitsPaused requires that the handler did pause the units (so that
// wantUnitsActive proves a restart, not that nothing happened).
func (f *fx) wantUnitsPaused() {
	f.t.Helper()
	calls := f.Root.ReadFile(fakeSystemdDir + "/calls")
	for _, u := range autoUpdateUnits[f.Root.Spec.Family] {
		if !strings.Contains(calls, "stop "+u) {
			f.t.Errorf("the handler did not pause %s (systemctl calls: %q)", u, strings.TrimSpace(calls))
		}
	}
}

func (f *fx) pinned() map[string]any { return f.Pinned() }

func (f *fx) deb() bool { return f.Root.Spec.Family == "deb" }

// repoFile and keyring are what the handler writes on this family.
func (f *fx) repoFile() string {
	switch {
	case f.deb():
		return harness.AptList
	case f.Root.Spec.Manager == "zypper":
		return harness.ZypperRepo
	}
	if f.Root.Spec.Manager == "zypper" {
		return harness.ZypperRepo
	}
	return harness.YumRepo
}

func (f *fx) keyring() string {
	if f.deb() {
		return harness.AptKeyring
	}
	return harness.RPMKey
}

// apply runs a goal state and returns the exit code of verb (-1000 when it
// did not run).
func (f *fx) apply(seq int, public any, verb agentsim.Verb) ([]agentsim.CommandResult, int) {
	f.t.Helper()
	res, _ := f.Apply(f.h, seq, public)
	for i := len(res) - 1; i >= 0; i-- {
		if res[i].Verb == verb {
			return res, res[i].ExitCode
		}
	}
	return res, -1000
}

// run runs one command the way the agent does, without its goal-state
// logic (for faults injected into the handler directory).
func (f *fx) run(verb agentsim.Verb, seq int) agentsim.CommandResult {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	r := f.Agent.Run(ctx, f.h, verb, seq, map[string]string{agentsim.EnvUninstallExitCode: agentsim.NotRun})
	f.LogResults([]agentsim.CommandResult{r})
	return r
}

// wantRefused checks a failed install: the exit code, an error status
// with that code whose message contains every one of want, and the
// machine as in before.
func (f *fx) wantRefused(res []agentsim.CommandResult, exit, seq, code int, before sandbox.Snapshot, want ...string) agentsim.AgentStatus {
	f.t.Helper()
	if exit != code {
		f.t.Errorf("install exit code %d, want %d (ran %v)", exit, code, harness.Verbs(res))
	}
	st := f.Status(f.h, seq)
	if st.Status != "error" || st.Code != code {
		f.t.Errorf("status for seq %d = %s/%d %q, want error/%d", seq, st.Status, st.Code, st.Message, code)
	}
	for _, w := range want {
		if !strings.Contains(st.Message, w) {
			f.t.Errorf("status message does not contain %q: %q", w, st.Message)
		}
	}
	f.WantUnchanged(before)
	f.wantNoLeftovers()
	f.wantUnitsActive()
	if v := f.Installed("aadsshlogin"); v != "" {
		f.t.Errorf("aadsshlogin %s installed although the install failed", v)
	}
	return st
}

// wantHealthy checks a successful goal state at seq: a success status,
// the new aadsshlogin installed and wired, the package database sound, our
// repository file and key complete, no temporary files, units running.
func (f *fx) wantHealthy(seq int) {
	f.t.Helper()
	st := f.Status(f.h, seq)
	if st.Status != "success" || st.Code != 0 {
		f.t.Errorf("status for seq %d = %s/%d %q, want success/0", seq, st.Status, st.Code, st.Message)
	}
	if got := f.Installed("aadsshlogin"); got != f.Fx.Versions.New {
		f.t.Errorf("aadsshlogin version %q, want %s", got, f.Fx.Versions.New)
	}
	if !f.Wired() {
		f.t.Error("sshd/NSS not wired after a successful run")
	}
	f.wantPackageDBClean()
	if repo := f.Root.ReadFile(f.repoFile()); !strings.HasPrefix(repo, "# Managed by the AADSSHLoginForLinux VM extension") {
		f.t.Errorf("%s is not our complete repository file:\n%s", f.repoFile(), repo)
	}
	if !f.Root.Exists(f.keyring()) {
		f.t.Errorf("%s missing after a successful run", f.keyring())
	}
	if !f.Root.Exists(harness.StateDir + "/state.json") {
		f.t.Error("state.json missing after a successful run")
	}
	f.wantNoLeftovers()
	f.wantUnitsActive()
}

// wantPackageDBClean: dpkg --audit prints nothing; rpm -V finds nothing
// wrong with aadsshlogin, which is installed exactly once.
func (f *fx) wantPackageDBClean() {
	f.t.Helper()
	ctx := context.Background()
	if f.deb() {
		out, errOut, code := f.Root.Exec(ctx, nil, "dpkg", "--audit")
		if strings.TrimSpace(out) != "" || code != 0 {
			f.t.Errorf("dpkg --audit (exit %d) reports problems:\n%s%s", code, out, errOut)
		}
		return
	}
	out, errOut, code := f.Root.Exec(ctx, nil, "rpm", "-V", "aadsshlogin")
	if code != 0 || strings.TrimSpace(out) != "" {
		f.t.Errorf("rpm -V aadsshlogin (exit %d):\n%s%s", code, out, errOut)
	}
	out, _, _ = f.Root.Exec(ctx, nil, "rpm", "-q", "aadsshlogin")
	if n := len(strings.Fields(out)); n != 1 {
		f.t.Errorf("rpm -q aadsshlogin lists %d packages: %q", n, out)
	}
}

// wantNoLeftovers: no temporary file of an atomic write (".<name>.tmp-*")
// in the folders the handler writes to.
func (f *fx) wantNoLeftovers() {
	f.t.Helper()
	for _, dir := range []string{"/etc/apt/sources.list.d", "/etc/apt/keyrings", "/etc/yum.repos.d", "/etc/pki/rpm-gpg",
		harness.StateDir, harness.StateDir + "/backup", "/var/log", path.Join(f.h.Dir, "status")} {
		entries, _ := os.ReadDir(f.Root.Path(dir))
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				f.t.Errorf("partial file left behind: %s/%s", dir, e.Name())
			}
		}
	}
}

// wantTerminal: a command that ended on its own left a terminal status.
func (f *fx) wantTerminal(seq int) agentsim.AgentStatus {
	f.t.Helper()
	st := f.Agent.ReadStatus(f.h, seq)
	if !agentsim.Terminal(st.Status) {
		f.t.Errorf("status for seq %d is %q (%s) after the handler exited: a finished sequence number must not stay transitioning", seq, st.Status, st.Message)
	}
	return st
}

// recover removes nothing itself: it applies the next goal state and
// requires it to succeed and leave a healthy machine.
func (f *fx) recover(seq int) {
	f.t.Helper()
	res, exit := f.apply(seq, f.pinned(), agentsim.Enable)
	if exit != 0 {
		f.t.Fatalf("the next normal run (seq %d) did not succeed: %v", seq, harness.Verbs(res))
	}
	f.wantHealthy(seq)
}

// substatus returns the message of the named substatus ("" if absent).
func substatus(st agentsim.AgentStatus, name string) string {
	s, _ := st.Find(name)
	return s.Message
}

// ---- crashes -------------------------------------------------------------

// rootProcs lists the processes running inside the root (their root
// directory is the root), read from the root's own /proc (this child's PID
// namespace). Handler processes come first.
func rootProcs(root string) []int {
	procDir := filepath.Join(root, "proc")
	entries, _ := os.ReadDir(procDir)
	var handlers, others []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if r, err := os.Readlink(filepath.Join(procDir, e.Name(), "root")); err != nil || r != root {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(procDir, e.Name(), "comm"))
		if strings.HasPrefix(string(comm), "aadsshlogin-han") {
			handlers = append(handlers, pid)
		} else {
			others = append(others, pid)
		}
	}
	return append(handlers, others...)
}

// powerOff kills every process in the root at once, as a crash or a reboot
// does (the agent, the handler, the package manager and its scripts), and
// returns their PIDs.
func powerOff(root string) []int {
	var killed []int
	seen := map[int]bool{}
	for round := 0; round < 20; round++ {
		pids := rootProcs(root)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil && !seen[pid] {
				seen[pid] = true
				killed = append(killed, pid)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return killed
}

// reapZombies collects the processes killed by powerOff. This test process
// is PID 1 of the child's PID namespace, so the orphans are reparented to
// it; unreaped, they would stay visible in /proc (a package manager's pid
// file would keep naming a "live" process, and dnf itself would wait for
// it), which no real init allows. Call it only while no exec.Cmd of this
// process is running.
func reapZombies() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// reboot is what a restart of the VM resets after powerOff: no process
// left, /run empty again, and systemd starts the enabled timers.
//
// A killed process leaves rootProcs' view (its root link goes) before it
// has finished exiting; a large one such as dnf can take a while to become
// a zombie. So reap until every killed PID is gone from /proc: reaping once
// could run before the last one died and leave it a zombie for good.
func (f *fx) reboot() {
	start := time.Now()
	deadline := start.Add(time.Minute)
	for round := 0; ; round++ {
		reapZombies()
		var left []int
		for _, pid := range f.killed {
			if _, err := os.Stat(filepath.Join(f.Root.Dir, "proc", strconv.Itoa(pid))); err == nil {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			if round > 0 {
				f.t.Logf("reboot: waited %s for the killed processes to exit", time.Since(start).Round(time.Millisecond))
			}
			break
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("processes %v killed by the crash are still present after a minute", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.killed = nil
	f.Root.Remove(fakeSystemdDir)
	f.Root.Remove("/run/aadsshlogin-handler.lock")
	f.bootUnits()
}

// trigger fires once target (a path inside the root) exists, watched with
// inotify so that the reaction comes within microseconds of the rename
// that creates it.
type trigger struct {
	target string
	fired  chan struct{}
	once   sync.Once
	stop   chan struct{}
	done   chan struct{}
	// Seen describes the machine at the moment of the crash.
	Seen string
}

// crashWhen powers the machine off as soon as target appears in the root.
func (f *fx) crashWhen(target string) *trigger {
	tr := &trigger{target: target, fired: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	root := f.Root.Dir
	fire := func() {
		tr.once.Do(func() {
			f.killed = powerOff(root)
			tr.Seen = f.describeCrash(len(f.killed))
			close(tr.fired)
		})
	}
	go func() {
		defer close(tr.done)
		if err := watchFor(root, target, fire, tr.stop); err != nil {
			f.t.Errorf("watching for %s: %v", target, err)
		}
	}()
	f.t.Cleanup(tr.Stop)
	return tr
}

// Fired waits briefly for a crash in progress to finish and reports
// whether the trigger fired.
func (tr *trigger) Fired() bool {
	select {
	case <-tr.fired:
		return true
	case <-tr.done:
		select {
		case <-tr.fired:
			return true
		default:
			return false
		}
	case <-time.After(30 * time.Second):
		return false
	}
}

func (tr *trigger) Stop() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
}

func (f *fx) describeCrash(killed int) string {
	var parts []string
	for _, p := range []string{f.keyring(), f.repoFile(), "/var/lib/aadsshlogin-standin/log", harness.StateDir + "/state.json"} {
		if f.Root.Exists(p) {
			parts = append(parts, p)
		}
	}
	st := f.Agent.ReadStatus(f.h, 0)
	return fmt.Sprintf("%d processes killed; present: %v; status for seq 0: %s", killed, parts, st.Status)
}

// watchFor calls fire once the file target exists under root, watching
// the deepest existing ancestor and moving down as directories appear.
func watchFor(root, target string, fire func(), stop <-chan struct{}) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	full := filepath.Join(root, target)
	watched := map[string]bool{}
	// arm adds a watch on every existing ancestor of the target and
	// reports whether the target exists.
	arm := func() (bool, error) {
		for d := filepath.Dir(full); len(d) >= len(root); d = filepath.Dir(d) {
			if watched[d] {
				break
			}
			if _, err := os.Stat(d); err != nil {
				continue
			}
			if _, err := unix.InotifyAddWatch(fd, d, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
				return false, err
			}
			watched[d] = true
		}
		_, err := os.Lstat(full)
		return err == nil, nil
	}
	buf := make([]byte, 64*1024)
	for {
		ok, err := arm()
		if err != nil {
			return err
		}
		if ok {
			fire()
			return nil
		}
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 50)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return err
			}
			if n > 0 {
				// Drain; the events only say "look again".
				for {
					if _, err := unix.Read(fd, buf); err != nil {
						break
					}
				}
				break
			}
		}
	}
}

// crashCase: crash the machine when target appears during the first
// install, then let the agent retry the goal state (as after a reboot)
// and require convergence.
func crashCase(target string, also ...func(t *testing.T, f *fx)) func(t *testing.T, f *fx) {
	return func(t *testing.T, f *fx) {
		tr := f.crashWhen(target)
		res, exit := f.apply(0, f.pinned(), agentsim.Install)
		if !tr.Fired() {
			t.Fatalf("%s never appeared: the install ended first (%v)", target, harness.Verbs(res))
		}
		t.Logf("crash: %s", tr.Seen)
		// The agent's shell either dies with the handler (-9) or sees it
		// die first and exits 128+9.
		if exit != -int(syscall.SIGKILL) && exit != 128+int(syscall.SIGKILL) {
			t.Errorf("install exit %d, want death by SIGKILL (-9 or 137)", exit)
		}
		if st := f.Agent.State(f.h); st != agentsim.NotInstalled {
			t.Errorf("handler state %s after the crash, want NotInstalled", st)
		}
		f.reboot()
		// The agent processes the same goal state again: install (the
		// handler never reported Installed), then enable.
		res, exit = f.apply(0, f.pinned(), agentsim.Enable)
		if exit != 0 || harness.LastExit(t, res, agentsim.Install) != 0 {
			t.Fatalf("the run after the crash did not converge: %v", harness.Verbs(res))
		}
		f.wantHealthy(0)
		f.wantTerminal(0)
		for _, check := range also {
			check(t, f)
		}
	}
}

// wantDpkgRepaired: the retry found dpkg interrupted and ran dpkg
// --configure -a itself, instead of leaving apt-get to refuse.
func wantDpkgRepaired(t *testing.T, f *fx) {
	log := f.Root.ReadFile("/var/log/azure/" + harness.HandlerName + "/handler.log")
	if !strings.Contains(log, "dpkg database needs repair") {
		t.Errorf("the handler log does not show the dpkg repair after the crash")
	}
}
