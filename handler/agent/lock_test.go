package agent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/failure"
)

func TestLockExcludesWithinProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "handler.lock")
	unlock, err := Lock(context.Background(), path, "enable", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", info, err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != strconv.Itoa(os.Getpid())+" enable\n" {
		t.Fatalf("lock content %q", data)
	}

	// A second taker (another goroutine) times out naming the holder.
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		u, err := Lock(ctx, path, "disable", 2*time.Millisecond)
		if err == nil {
			_ = u()
		}
		errc <- err
	}()
	err = <-errc
	wantFailure(t, err, failure.HandlerBusy, "process "+strconv.Itoa(os.Getpid())+", enable", "Try again later", "ms")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cause: %v", err)
	}

	// After unlock the next taker gets it at once.
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Fatalf("second unlock: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	unlock2, err := Lock(ctx, path, "disable", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock2()
	data, _ = os.ReadFile(path)
	if string(data) != strconv.Itoa(os.Getpid())+" disable\n" {
		t.Fatalf("lock content %q", data)
	}
}

func TestLockWaitsForRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handler.lock")
	unlock, err := Lock(context.Background(), path, "install", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		u, err := Lock(ctx, path, "enable", time.Millisecond)
		if err == nil {
			err = u()
		}
		got <- err
	}()
	time.Sleep(5 * time.Millisecond)
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
}

func TestLockHolderUnknown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handler.lock")
	unlock, err := Lock(context.Background(), path, "x", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	// An older version that writes nothing into the file.
	if err := os.WriteFile(path, []byte("garbage\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = Lock(ctx, path, "y", time.Millisecond)
	wantFailure(t, err, failure.HandlerBusy, "(process unknown)")
}

func TestLockBadPath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, file, nil)
	if _, err := Lock(context.Background(), filepath.Join(file, "lock"), "x", 0); err == nil {
		t.Fatal("lock under a regular file succeeded")
	}
}

// lockHelperEnv makes the test binary act as a separate process that holds
// the lock until its stdin closes.
const lockHelperEnv = "AGENT_TEST_LOCK_HELPER"

func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv(lockHelperEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	unlock, err := Lock(context.Background(), path, "helper update", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = unlock()
}

func TestLockAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handler.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper: %q %v", line, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = Lock(ctx, path, "enable", 2*time.Millisecond)
	wantFailure(t, err, failure.HandlerBusy, "(process "+strconv.Itoa(cmd.Process.Pid)+", helper update)")

	// Once the helper lets go, the lock is ours.
	_ = stdin.Close()
	_ = cmd.Wait()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	unlock, err := Lock(ctx2, path, "enable", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	_ = unlock()
}
