package sysroot

import (
	"os"
	"path/filepath"
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

func TestWriteFileAtomicRemovesStaleTemporaries(t *testing.T) {
	r := Root(t.TempDir())
	stale := r.Path("/etc/.x.list.tmp-123")
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, []byte("half"), 0o600)
	if err := r.WriteFileAtomic("/etc/x.list", []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale temporary file left")
	}
}
