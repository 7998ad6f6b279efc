package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/clock"
	"github.com/aadsshlogin/handler/failure"
)

// defaultLockPoll is used when Lock is given a non-positive poll interval.
const defaultLockPoll = 200 * time.Millisecond

// Lock takes an exclusive flock on path, creating the file (mode 0600) and
// its directory (0700) if needed, and retries every poll until ctx is done.
// After acquiring it, it writes "<pid> <what>\n" into the file so that a
// waiter that gives up can say who holds the lock. unlock empties the file
// and releases the lock; the file itself stays, since removing it would let
// a waiter lock an unlinked file while a newcomer locks a fresh one.
//
// flock locks belong to the open file description, so two Lock calls in one
// process exclude each other just as two processes do, and the lock goes
// away by itself when the process dies.
func Lock(ctx context.Context, path, what string, poll time.Duration) (unlock func() error, err error) {
	if poll <= 0 {
		poll = defaultLockPoll
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating lock directory: %w", err)
	}
	// os.OpenFile sets O_CLOEXEC, so commands we start (package managers
	// that may outlive us) never inherit the lock.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	start := time.Now()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if err := clock.Sleep(ctx, poll); err != nil {
			holder := lockHolder(path)
			_ = f.Close()
			return nil, failure.New(failure.HandlerBusy, err,
				"Another operation of the AADSSHLoginForLinux extension (%s) is still running; it was not finished after waiting %s. Try again later.",
				holder, roundWait(time.Since(start)))
		}
	}
	// Record the holder. Failing to do so only makes a waiter's message
	// vaguer, so it does not fail the lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+" "+sanitizeWhat(what)+"\n"), 0)
	}
	unlocked := false
	return func() error {
		if unlocked {
			return nil
		}
		unlocked = true
		// Empty the file first, while we still hold the lock, so that no
		// waiter reads our name after we are gone.
		_ = f.Truncate(0)
		uerr := unix.Flock(int(f.Fd()), unix.LOCK_UN)
		cerr := f.Close()
		if uerr != nil {
			return fmt.Errorf("unlocking %s: %w", path, uerr)
		}
		if cerr != nil {
			return fmt.Errorf("unlocking %s: %w", path, cerr)
		}
		return nil
	}, nil
}

// lockHolder describes the holder from the lock file's content, as
// "process 1234, enable", or says that it is unknown.
func lockHolder(path string) string {
	data, err := readLimited(path, 4096)
	if err != nil {
		return "process unknown"
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, what, _ := strings.Cut(strings.TrimSpace(line), " ")
	if _, err := parseSeq(pid); err != nil {
		return "process unknown"
	}
	if what = sanitizeWhat(what); what == "" {
		return "process " + pid
	}
	return "process " + pid + ", " + what
}

// sanitizeWhat keeps the description one short printable line: it ends up
// in a user message and in a file parsed line by line.
func sanitizeWhat(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	return truncateRunes(strings.TrimSpace(s), 200)
}

// roundWait renders a wait for a message: whole seconds, or milliseconds
// for waits under a second (tests, very short budgets).
func roundWait(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
