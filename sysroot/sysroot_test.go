package sysroot

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

func TestPathNeverEscapes(t *testing.T) {
	r := Root("/tmp/r")
	for in, want := range map[string]string{
		"/etc/os-release":  "/tmp/r/etc/os-release",
		"../../etc/passwd": "/tmp/r/etc/passwd",
		"/a/../../b":       "/tmp/r/b",
		"etc/apt/x.list":   "/tmp/r/etc/apt/x.list",
	} {
		if got := r.Path(in); got != want {
			t.Errorf("Path(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Root("/").Path("/etc/x"); got != "/etc/x" {
		t.Errorf("slash root: %q", got)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	r := Root(t.TempDir())
	if err := r.WriteFileAtomic("/etc/apt/sources.list.d/a.list", []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(r.Path("/etc/apt/sources.list.d/a.list"))
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("stat %v %v", st, err)
	}
	left, _ := filepath.Glob(r.Path("/etc/apt/sources.list.d/.*tmp*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
	got, _ := r.Glob("/etc/apt/sources.list.d/*.list")
	if len(got) != 1 || got[0] != "/etc/apt/sources.list.d/a.list" {
		t.Fatalf("glob %v", got)
	}
	if err := r.RemoveIfExists("/nope"); err != nil {
		t.Fatal(err)
	}
}

// TestWriteFileAtomicRemovesStaleTemporaries: the temporary files of
// writers that no longer exist (and of builds that did not record the
// writer) go; those of live writers stay, or their rename would fail.
func TestWriteFileAtomicRemovesStaleTemporaries(t *testing.T) {
	r := Root(t.TempDir())
	if err := os.MkdirAll(r.Path("/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A process that has exited: its id is free (for now).
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	// A process that lives for the whole test.
	alive := exec.Command("sleep", "60")
	if err := alive.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = alive.Process.Kill(); _ = alive.Wait() }()

	tmp := func(tag string) string { return r.Path("/etc/.x.list.tmp-" + tag) }
	stale := []string{tmp("123"), tmp(strconv.Itoa(gone.ProcessState.Pid()) + "-42")}
	live := []string{tmp(strconv.Itoa(alive.Process.Pid) + "-42"), tmp(strconv.Itoa(os.Getpid()) + "-42"), r.Path("/etc/.y.list.tmp-123")}
	for _, p := range append(append([]string(nil), stale...), live...) {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.WriteFileAtomic("/etc/x.list", []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("stale temporary file %s left", filepath.Base(p))
		}
	}
	for _, p := range live {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s of a live writer (or another file) removed", filepath.Base(p))
		}
	}
}

// TestConcurrentWritersOfOneFile: two writers of the same file (the
// handler's final status and a concurrent writer's) never remove each
// other's temporary file, so neither write fails.
func TestConcurrentWritersOfOneFile(t *testing.T) {
	r := Root(t.TempDir())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Go(func() {
			for i := range 300 {
				if err := r.WriteFileAtomic("/status/0.status", []byte(fmt.Sprintf("writer %d, %d\n", w, i)), 0o644); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
