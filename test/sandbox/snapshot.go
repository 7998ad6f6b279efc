package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// SnapshotIncludes are the trees a Snapshot covers.
var SnapshotIncludes = []string{"/etc", "/usr", "/var/lib"}

// SnapshotFiles are single files a Snapshot covers although an exclude
// would skip them: the version marker the handler shares with 1.0.2385.1
// lives among the logs, and "machine unchanged" must include it.
var SnapshotFiles = []string{"/var/log/AADSSHLoginForLinux.version"}

// SnapshotExcludes are skipped (caches, logs and runtime noise).
var SnapshotExcludes = []string{
	"/var/cache", "/var/log", "/var/lib/apt/lists", "/tmp", "/run", "/proc", "/dev",
}

// fileState is what a Snapshot compares.
type fileState struct {
	exists   bool
	kind     fs.FileMode // type bits
	perm     fs.FileMode
	uid, gid uint32
	link     string
	sum      string // sha256 of regular files
}

func (s fileState) String() string {
	if !s.exists {
		return "absent"
	}
	return fmt.Sprintf("%v %o %d:%d %s%s", s.kind, s.perm, s.uid, s.gid, s.link, s.sum)
}

// Snapshot is the state of the root's files that differ from the image.
// Because the image is the overlay's lower layer and never changes, only
// paths present in the upper layer can differ; everything else is the
// image's state.
type Snapshot struct {
	image  string
	states map[string]fileState
}

func statePath(host string) (fileState, error) {
	st, err := os.Lstat(host)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, fmt.Errorf("lstat %s: %w", host, err)
	}
	s := fileState{exists: true, kind: st.Mode().Type(), perm: st.Mode().Perm() | st.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.uid, s.gid = sys.Uid, sys.Gid
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		if s.link, err = os.Readlink(host); err != nil {
			return fileState{}, fmt.Errorf("readlink %s: %w", host, err)
		}
	case st.Mode().IsRegular():
		f, err := os.Open(host)
		if err != nil {
			return fileState{}, fmt.Errorf("open %s: %w", host, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		_ = f.Close()
		if err != nil {
			return fileState{}, fmt.Errorf("read %s: %w", host, err)
		}
		s.sum = hex.EncodeToString(h.Sum(nil))
	}
	return s, nil
}

func tracked(p string) bool {
	if slices.Contains(SnapshotFiles, p) {
		return true
	}
	for _, x := range SnapshotExcludes {
		if p == x || strings.HasPrefix(p, x+"/") {
			return false
		}
	}
	for _, in := range SnapshotIncludes {
		if p == in || strings.HasPrefix(p, in+"/") {
			return true
		}
	}
	return false
}

// Snapshot records the current state of the changed paths under
// SnapshotIncludes (minus SnapshotExcludes).
func (r *Root) Snapshot(t testing.TB) Snapshot {
	t.Helper()
	s, err := r.snapshot()
	if err != nil {
		t.Fatalf("sandbox: snapshot of %s: %v", r.Spec.Name, err)
	}
	return s
}

func (r *Root) snapshot() (Snapshot, error) {
	paths := map[string]bool{}
	err := filepath.WalkDir(r.Upper, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walking upper layer: %w", err)
		}
		rel, err := filepath.Rel(r.Upper, host)
		if err != nil {
			return fmt.Errorf("walking upper layer: %w", err)
		}
		p := filepath.Clean("/" + rel)
		if p != "/" && !tracked(p) {
			if d.IsDir() && !isAncestorOfTracked(p) {
				return filepath.SkipDir
			}
			return nil
		}
		if p != "/" {
			paths[p] = true
		}
		if d.IsDir() && p != "/" && isOpaque(host) {
			// An opaque directory hides the image's children: list them too.
			lower := filepath.Join(r.Image, rel)
			_ = filepath.WalkDir(lower, func(lh string, _ fs.DirEntry, err error) error {
				if err != nil {
					return nil
				}
				if lr, err := filepath.Rel(r.Image, lh); err == nil {
					paths[filepath.Clean("/"+lr)] = true
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{image: r.Image, states: make(map[string]fileState, len(paths))}
	for p := range paths {
		st, err := statePath(r.Path(p))
		if err != nil {
			return Snapshot{}, err
		}
		s.states[p] = st
	}
	return s, nil
}

func isAncestorOfTracked(p string) bool {
	for _, in := range append(slices.Clone(SnapshotIncludes), SnapshotFiles...) {
		if strings.HasPrefix(in, p+"/") {
			return true
		}
	}
	return false
}

func isOpaque(host string) bool {
	buf := make([]byte, 8)
	for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		n, err := unix.Lgetxattr(host, attr, buf)
		if err == nil && n > 0 && buf[0] == 'y' {
			return true
		}
	}
	return false
}

// Diff lists the paths whose state differs between s (before) and other
// (after), sorted: "+ /p" added, "- /p" removed, "~ /p" changed.
func (s Snapshot) Diff(other Snapshot) []string {
	paths := map[string]bool{}
	for p := range s.states {
		paths[p] = true
	}
	for p := range other.states {
		paths[p] = true
	}
	lowerCache := map[string]fileState{}
	state := func(snap Snapshot, p string) fileState {
		if st, ok := snap.states[p]; ok {
			return st
		}
		if st, ok := lowerCache[p]; ok {
			return st
		}
		st, err := statePath(filepath.Join(snap.image, p))
		if err != nil {
			st = fileState{exists: true, sum: "unreadable: " + err.Error()}
		}
		lowerCache[p] = st
		return st
	}
	var out []string
	for p := range paths {
		a, b := state(s, p), state(other, p)
		switch {
		case a == b:
		case !a.exists:
			out = append(out, "+ "+p)
		case !b.exists:
			out = append(out, "- "+p)
		default:
			out = append(out, "~ "+p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][2:] < out[j][2:] })
	return out
}

// Len is the number of changed paths recorded (relative to the image).
func (s Snapshot) Len() int { return len(s.states) }
