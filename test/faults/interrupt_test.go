package faults

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// TestInterruptions: locks, crashes, the agent's timeout and concurrent
// invocations.
func TestInterruptions(t *testing.T) {
	runCases(t, []faultCase{
		{
			Name: "apt-lock-held-5s", Distro: "debian-12",
			Fault:  "another process holds an fcntl write lock on /var/lib/dpkg/lock-frontend for 5 s",
			Expect: "install waits for the lock, then succeeds (exit 0); automatic-update units paused and restarted",
			Run:    lockHeld,
		},
		{
			Name: "crash-after-key-debian-12", Distro: "debian-12",
			Fault:  "power loss (every process SIGKILLed) as soon as the signing key file is written",
			Expect: "the agent's retry of the goal state converges: exit 0, status success, dpkg --audit clean, no partial files",
			Run:    crashCase(harness.AptKeyring),
		},
		{
			Name: "crash-after-key-rhel-9.4", Distro: "rhel-9.4",
			Fault:  "power loss as soon as the signing key file is written (before rpm --import)",
			Expect: "the retry converges: exit 0, status success, rpm -V aadsshlogin clean",
			Run:    crashCase(harness.RPMKey),
		},
		{
			Name: "crash-after-repo-file-debian-12", Distro: "debian-12",
			Fault:  "power loss as soon as /etc/apt/sources.list.d/microsoft-prod.list is written",
			Expect: "the retry converges: exit 0, status success, dpkg --audit clean",
			Run:    crashCase(harness.AptList),
		},
		{
			Name: "crash-after-repo-file-rhel-9.4", Distro: "rhel-9.4",
			Fault:  "power loss as soon as /etc/yum.repos.d/microsoft-prod.repo is written",
			Expect: "the retry converges: exit 0, status success, rpm -V aadsshlogin clean",
			Run:    crashCase(harness.YumRepo),
		},
		{
			Name: "crash-during-package-install-debian-12", Distro: "debian-12",
			Fault:  "power loss while dpkg runs aadsshlogin's postinst (package unpacked, half-configured)",
			Expect: "the retry repairs dpkg (dpkg --configure -a) and converges: exit 0, dpkg --audit clean",
			Run:    crashCase("/var/lib/aadsshlogin-standin/log", wantDpkgRepaired),
		},
		{
			Name: "crash-during-package-install-rhel-9.4", Distro: "rhel-9.4",
			Fault:  "power loss while rpm runs aadsshlogin's %post scriptlet",
			Expect: "the retry converges: exit 0, rpm -V aadsshlogin clean, aadsshlogin installed once",
			Run:    crashCase("/var/lib/aadsshlogin-standin/log"),
		},
		{
			Name: "crash-before-status-debian-12", Distro: "debian-12",
			Fault:  "power loss as soon as state.json is written (install done, final status not yet written)",
			Expect: "the retry takes the fast path and writes a terminal success status for the same seq",
			Run:    crashCase(harness.StateDir + "/state.json"),
		},
		{
			Name: "agent-timeout", Distro: "debian-12",
			Fault:  "the agent's install timeout (1 s) expires mid-install: SIGKILL to the handler's process group, no reboot",
			Expect: "the next goal state (normal timeouts) converges; the paused automatic-update units run again",
			Run:    agentTimeout,
		},
		{
			Name: "two-installs-at-once", Distro: "debian-12",
			Fault:  "two install commands of the same handler started at the same time",
			Expect: "serialized by the handler lock: both exit 0, one status, package installed once",
			Run:    twoAtOnce,
		},
	})
}

func lockHeld(t *testing.T, f *fx) {
	lockPath := f.Root.Path("/var/lib/dpkg/lock-frontend")
	lf, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(lf.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatalf("taking the dpkg lock: %v", err)
	}
	const hold = 5 * time.Second
	locked := time.Now()
	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(hold)
		un := unix.Flock_t{Type: unix.F_UNLCK}
		_ = unix.FcntlFlock(lf.Fd(), unix.F_SETLK, &un)
		released <- time.Now()
	}()
	res, exit := f.apply(0, f.pinned(), agentsim.Enable)
	end := time.Now()
	rel := <-released
	if exit != 0 || harness.LastExit(t, res, agentsim.Install) != 0 {
		t.Fatalf("install with a briefly held lock failed: %v", harness.Verbs(res))
	}
	if end.Before(rel) || end.Sub(locked) < hold {
		t.Errorf("the goal state finished %s after the lock was taken, before its release after %s: the lock was not waited for", end.Sub(locked), hold)
	}
	log := f.Root.ReadFile("/var/log/azure/" + harness.HandlerName + "/handler.log")
	if !strings.Contains(log, "waiting for the package manager lock") {
		t.Errorf("the handler log does not show the wait for the lock")
	}
	f.wantHealthy(0)
	f.wantUnitsPaused()
	f.recover(1)
}

func agentTimeout(t *testing.T, f *fx) {
	// Slow answers keep the handler busy past the agent's limit, after it
	// paused the automatic-update units.
	f.Net.Repo.SetOptions(sandbox.RepoOptions{Delay: 3 * time.Second})
	f.Agent.Timeouts = map[agentsim.Verb]time.Duration{agentsim.Install: time.Second}
	res, _ := f.Apply(f.h, 0, f.pinned())
	if len(res) == 0 || !res[0].TimedOut {
		t.Fatalf("install did not time out: %v", harness.Verbs(res))
	}
	if st := f.Agent.State(f.h); st != agentsim.NotInstalled {
		t.Errorf("handler state %s after the timeout, want NotInstalled", st)
	}
	left := rootProcs(f.Root.Dir)
	st := f.Agent.ReadStatus(f.h, 0)
	t.Logf("after the agent's kill: %d processes left in the root; status for seq 0: %s", len(left), st.Status)
	// The handler said it was working before the slow download began.
	if st.Missing || st.Status != "transitioning" {
		t.Errorf("status for seq 0 after the kill mid-install: missing %v, %q; want a transitioning status written by the handler", st.Missing, st.Status)
	}
	// The kill came after the pause: the units the next run must start
	// again were really stopped.
	f.wantUnitsPaused()

	f.Net.Repo.SetOptions(sandbox.RepoOptions{})
	f.Agent.Timeouts = nil
	res, exit := f.apply(0, f.pinned(), agentsim.Enable)
	if exit != 0 || harness.LastExit(t, res, agentsim.Install) != 0 {
		t.Fatalf("the goal state after the timeout did not converge: %v", harness.Verbs(res))
	}
	f.wantHealthy(0)
	f.wantTerminal(0)
}

func twoAtOnce(t *testing.T, f *fx) {
	if err := f.Agent.WriteSettings(f.h, 0, f.pinned()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	results := make([]agentsim.CommandResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = f.Agent.Run(ctx, f.h, agentsim.Install, 0, map[string]string{agentsim.EnvUninstallExitCode: agentsim.NotRun})
		}()
	}
	wg.Wait()
	f.LogResults(results)
	for i, r := range results {
		if r.ExitCode != 0 || r.TimedOut || r.Err != nil {
			t.Errorf("invocation %d: exit %d (timed out %v, %v), want 0", i, r.ExitCode, r.TimedOut, r.Err)
		}
	}
	f.wantHealthy(0)
	// The agent saw two successful installs; its next goal state enables.
	f.recover(1)
}
