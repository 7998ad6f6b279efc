package pkgmgr

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
	"github.com/aadsshlogin/handler/test/loopback"
	"github.com/aadsshlogin/handler/test/require"
)

// The test binary doubles as the lock holder: started with
// PKGMGR_TEST_LOCK=<mode>:<path> it takes the lock, prints "locked" and
// holds it until its standard input closes, like dpkg would until done. On
// failure it prints the error instead, which the parent reports.
// TestMain runs the tests with loopback networking only (test/loopback);
// started with PKGMGR_TEST_LOCK, the binary is instead a helper holding a
// lock.
func TestMain(m *testing.M) {
	if spec := os.Getenv("PKGMGR_TEST_LOCK"); spec != "" {
		holdLock(spec)
		return
	}
	os.Exit(loopback.Main(m))
}

func holdLock(spec string) {
	mode, path, _ := strings.Cut(spec, ":")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Println(err)
		return
	}
	switch mode {
	case "fcntl":
		lk := unix.Flock_t{Type: unix.F_WRLCK}
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
	case "flock":
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// startHolder starts a helper holding a lock on root+target and returns
// its pid and a function that makes it release the lock and exit.
func startHolder(t *testing.T, mode string, root sysroot.Root, target string) (int, func()) {
	t.Helper()
	host := root.Path(target)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PKGMGR_TEST_LOCK="+mode+":"+host)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		_ = cmd.Process.Kill()
		t.Fatalf("helper did not lock: %q %v", line, err)
	}
	released := false
	release := func() {
		if released {
			return
		}
		released = true
		_ = stdin.Close()
		_ = cmd.Wait()
	}
	t.Cleanup(release)
	return cmd.Process.Pid, release
}

// tempRoot returns a root whose /proc is the real one, so the holder's
// name can be read like on a VM.
func tempRoot(t *testing.T) sysroot.Root {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink("/proc", filepath.Join(dir, "proc")); err != nil {
		t.Fatal(err)
	}
	return sysroot.Root(dir)
}

func TestLocksFreeWhenNoFiles(t *testing.T) {
	l := Locks{Root: tempRoot(t)}
	for _, k := range []Kind{Apt, Dnf, Yum, Tdnf, Zypper} {
		if h, err := l.Check(k); h != nil || err != nil {
			t.Errorf("%s: %v %v", k, h, err)
		}
		if err := l.Wait(context.Background(), k); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
}

func TestLocksReportFcntlHolder(t *testing.T) {
	root := tempRoot(t)
	// An unlocked lock file of another manager must not count.
	if err := root.WriteFileAtomic("/var/lib/dpkg/lock", nil, 0o640); err != nil {
		t.Fatal(err)
	}
	pid, _ := startHolder(t, "fcntl", root, "/var/lib/dpkg/lock-frontend")
	l := Locks{Root: root, Poll: 10 * time.Millisecond}
	h, err := l.Check(Apt)
	if err != nil || h == nil {
		t.Fatalf("Check: %v %v", h, err)
	}
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15] // the kernel truncates comm
	}
	if h.PID != pid || h.Comm != comm || h.Path != "/var/lib/dpkg/lock-frontend" || !strings.Contains(h.Cmdline, "-test.run") {
		t.Errorf("holder %+v, want pid %d comm %s", h, pid, comm)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	err = l.Wait(ctx, Apt)
	wantFailure(t, err, failure.PackageManagerLocked,
		fmt.Sprintf("The package manager is busy: process %d (%s) holds /var/lib/dpkg/lock-frontend and did not release it within ", pid, comm),
		"Wait for it to finish (or stop it) and re-apply the extension.")
	// Another manager's files are not affected.
	if h, _ := l.Check(Zypper); h != nil {
		t.Errorf("zypper sees %v", h)
	}
}

func TestLocksWaitReturnsWhenReleased(t *testing.T) {
	root := tempRoot(t)
	_, release := startHolder(t, "fcntl", root, "/var/lib/rpm/.rpm.lock")
	go func() {
		time.Sleep(200 * time.Millisecond)
		release()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := (Locks{Root: root, Poll: 20 * time.Millisecond}).Wait(ctx, Dnf); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Error("Wait returned before the lock was released")
	}
}

func TestLocksSeeFlock(t *testing.T) {
	root := tempRoot(t)
	pid, _ := startHolder(t, "flock", root, "/var/run/.tdnf-instance-lockfile")
	h, err := (Locks{Root: root}).Check(Tdnf)
	if err != nil || h == nil || h.PID != pid {
		t.Fatalf("Check: %+v %v, want pid %d", h, err, pid)
	}
}

func TestLocksPidFiles(t *testing.T) {
	root := tempRoot(t)
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		require.SkipOrFail(t, "cannot start sleep: %v", err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	if err := root.WriteFileAtomic("/var/run/zypp.pid", []byte(strconv.Itoa(sleeper.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := (Locks{Root: root}).Check(Zypper)
	if err != nil || h == nil || h.PID != sleeper.Process.Pid || h.Comm != "sleep" {
		t.Fatalf("Check: %+v %v", h, err)
	}
	if h.String() != fmt.Sprintf("process %d (sleep)", sleeper.Process.Pid) {
		t.Errorf("String() = %q", h.String())
	}
	// A stale pid file (the process is gone) does not block.
	_ = sleeper.Process.Kill()
	_ = sleeper.Wait()
	if h, err := (Locks{Root: root}).Check(Zypper); h != nil || err != nil {
		t.Errorf("stale pid file: %+v %v", h, err)
	}
	if err := root.WriteFileAtomic("/var/run/yum.pid", []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h, err := (Locks{Root: root}).Check(Yum); h != nil || err != nil {
		t.Errorf("garbage pid file: %+v %v", h, err)
	}
}

func TestHolderString(t *testing.T) {
	if s := (Holder{}).String(); s != "another process" {
		t.Error(s)
	}
	if s := (Holder{PID: 7}).String(); s != "process 7" {
		t.Error(s)
	}
}
