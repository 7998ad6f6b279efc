package pkgmgr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/clock"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
)

// Locks waits for the package manager's locks to be free before we run a
// package command, so that a running unattended-upgrade or dnf-automatic
// delays us instead of failing us, and so that we can name the process we
// waited for when it does not finish in time.
type Locks struct {
	Root sysroot.Root
	Log  logrus.FieldLogger
	// Poll is the interval between checks; zero means 5 s.
	Poll time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Holder is a process holding one of the package manager's locks.
type Holder struct {
	Path    string // target path of the lock or pid file
	PID     int    // 0 when the kernel did not say (OFD lock, other pid namespace)
	Comm    string // /proc/<pid>/comm, "" when unknown
	Cmdline string // /proc/<pid>/cmdline, shortened, "" when unknown
}

// String describes the holder for messages: "process 1234 (unattended-upgr)".
func (h Holder) String() string {
	switch {
	case h.PID > 0 && h.Comm != "":
		return fmt.Sprintf("process %d (%s)", h.PID, h.Comm)
	case h.PID > 0:
		return fmt.Sprintf("process %d", h.PID)
	}
	return "another process"
}

// lockFile is one file to watch: fcntl-locked files are probed for a
// conflicting lock, pid files are held while the process they name lives.
type lockFile struct {
	path    string
	pidFile bool
}

// lockFiles lists what each package manager locks. dpkg and apt take fcntl
// (POSIX) locks on their lock files; rpm locks .rpm.lock with fcntl;
// yum 3, libzypp and dnf 4 write pid files (dnf's under its cache and
// state directories); tdnf locks an instance lock file.
func lockFiles(kind Kind) []lockFile {
	rpmdb := lockFile{path: "/var/lib/rpm/.rpm.lock"}
	switch kind {
	case Apt:
		return []lockFile{
			{path: "/var/lib/dpkg/lock-frontend"},
			{path: "/var/lib/dpkg/lock"},
			{path: "/var/lib/apt/lists/lock"},
			{path: "/var/cache/apt/archives/lock"},
		}
	case Dnf, Yum:
		return []lockFile{
			rpmdb,
			{path: "/var/run/yum.pid", pidFile: true},
			{path: "/run/yum.pid", pidFile: true},
			{path: "/var/run/dnf.pid", pidFile: true},
			{path: "/run/dnf.pid", pidFile: true},
			{path: "/var/cache/dnf/metadata_lock.pid", pidFile: true},
			{path: "/var/cache/dnf/download_lock.pid", pidFile: true},
			{path: "/var/lib/dnf/rpmdb_lock.pid", pidFile: true},
		}
	case Tdnf:
		return []lockFile{
			rpmdb,
			{path: "/var/run/.tdnf-instance-lockfile"},
			{path: "/run/.tdnf-instance-lockfile"},
		}
	case Zypper:
		return []lockFile{
			rpmdb,
			{path: "/var/run/zypp.pid", pidFile: true},
			{path: "/run/zypp.pid", pidFile: true},
		}
	}
	return nil
}

// Check returns the first holder of one of kind's locks, or nil when all
// are free.
func (l Locks) Check(kind Kind) (*Holder, error) {
	seen := map[string]bool{}
	for _, lf := range lockFiles(kind) {
		host := l.Root.Path(lf.path)
		// /var/run is usually a link to /run: probe each file once.
		if real, err := realPath(host); err == nil {
			if seen[real] {
				continue
			}
			seen[real] = true
		}
		var (
			h   *Holder
			err error
		)
		if lf.pidFile {
			h, err = l.pidFileHolder(lf.path)
		} else {
			h, err = l.fileLockHolder(lf.path)
		}
		if err != nil {
			return nil, err
		}
		if h != nil {
			l.describe(h)
			return h, nil
		}
	}
	return nil, nil
}

func realPath(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return p, nil
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}

// fileLockHolder probes path for a lock that would conflict with a write
// lock. It asks with F_OFD_GETLK, which also sees locks of our own process,
// and falls back to F_GETLK on kernels before 3.15. A BSD flock() lock is
// invisible to both, so /proc/locks is consulted as well.
func (l Locks) fileLockHolder(p string) (*Holder, error) {
	host := l.Root.Path(p)
	f, err := os.OpenFile(host, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("opening lock file %s: %w", host, err)
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	err = unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk)
	if errors.Is(err, unix.EINVAL) {
		lk = unix.Flock_t{Type: unix.F_WRLCK}
		err = unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk)
	}
	if err != nil {
		return nil, fmt.Errorf("probing lock %s: %w", host, err)
	}
	if lk.Type != unix.F_UNLCK {
		pid := int(lk.Pid)
		if pid < 0 {
			pid = 0 // an OFD lock has no owning process
		}
		return &Holder{Path: p, PID: pid}, nil
	}
	return l.flockHolder(p, f)
}

// flockHolder finds a BSD (flock) lock on the open file in /proc/locks,
// whose lines read "1: FLOCK  ADVISORY  WRITE 1234 08:01:56789 0 EOF".
func (l Locks) flockHolder(p string, f *os.File) (*Holder, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	data, err := l.Root.ReadFile("/proc/locks")
	if err != nil {
		return nil, nil // no /proc (chroot without it): nothing more to learn
	}
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Blocked waiters are shown as "1: -> FLOCK ..."; skip them.
		if len(f) < 6 || f[1] != "FLOCK" {
			continue
		}
		if f[5] == want {
			pid, _ := strconv.Atoi(f[4])
			return &Holder{Path: p, PID: pid}, nil
		}
	}
	return nil, nil
}

// pidFileHolder treats a pid file as held while the process it names is
// alive; stale files left by a crash are ignored.
func (l Locks) pidFileHolder(p string) (*Holder, error) {
	data, err := l.Root.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading pid file %s: %w", l.Root.Path(p), err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(firstLine(string(data))))
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return nil, nil
	}
	if !l.Root.Exists(fmt.Sprintf("/proc/%d", pid)) {
		return nil, nil
	}
	return &Holder{Path: p, PID: pid}, nil
}

// describe fills in the holder's command name and command line.
func (l Locks) describe(h *Holder) {
	if h.PID <= 0 {
		return
	}
	if b, err := l.Root.ReadFile(fmt.Sprintf("/proc/%d/comm", h.PID)); err == nil {
		h.Comm = strings.TrimSpace(string(b))
	}
	if b, err := l.Root.ReadFile(fmt.Sprintf("/proc/%d/cmdline", h.PID)); err == nil {
		h.Cmdline = clip(strings.Join(strings.FieldsFunc(string(b), func(r rune) bool { return r == 0 }), " "), 120)
	}
}

// Wait returns once all of kind's locks are free, or a *failure.Error
// (PackageManagerLocked) naming the holder when ctx ends first. The caller
// sets ctx's deadline so that enough of its budget is left for the package
// command itself.
func (l Locks) Wait(ctx context.Context, kind Kind) error {
	log := l.Log
	if log == nil {
		lg := logrus.New()
		lg.SetOutput(io.Discard)
		log = lg
	}
	now := l.Now
	if now == nil {
		now = time.Now
	}
	poll := l.Poll
	if poll <= 0 {
		poll = 5 * time.Second
	}
	start := now()
	var last *Holder
	lastLog := time.Time{}
	for {
		h, err := l.Check(kind)
		if err != nil {
			return err
		}
		if h == nil {
			if last != nil {
				log.WithField("waited", now().Sub(start).Round(time.Second)).Info("package manager lock released")
			}
			return nil
		}
		// Log when the holder changes and then once a minute, so a long
		// wait is visible without flooding the log.
		if last == nil || last.PID != h.PID || last.Path != h.Path || now().Sub(lastLog) >= time.Minute {
			log.WithFields(logrus.Fields{"lock": h.Path, "pid": h.PID, "comm": h.Comm, "cmdline": h.Cmdline,
				"waited": now().Sub(start).Round(time.Second)}).Info("waiting for the package manager lock")
			lastLog = now()
		}
		last = h
		if err := clock.Sleep(ctx, poll); err != nil {
			waited := now().Sub(start).Round(time.Second)
			return failure.New(failure.PackageManagerLocked, err,
				"The package manager is busy: %s holds %s and did not release it within %s. Wait for it to finish (or stop it) and re-apply the extension.",
				h, h.Path, waited)
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
