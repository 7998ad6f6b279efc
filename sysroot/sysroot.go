// Package sysroot addresses files of the machine being configured through a
// root prefix, and writes them atomically.
//
// In production the root is "/"; unit tests point it at a temporary
// directory. End-to-end tests do not need it: they run the unchanged binary
// chrooted into a throwaway root.
package sysroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Root is the directory that stands for "/" of the target machine.
type Root string

// Path maps an absolute target path (e.g. "/etc/os-release") to the host
// path under the root. It never escapes the root: ".." segments are cleaned
// against "/" first.
func (r Root) Path(p string) string {
	clean := filepath.Clean("/" + p)
	if r == "" || r == "/" {
		return clean
	}
	return filepath.Join(string(r), clean)
}

// ReadFile reads a target file.
func (r Root) ReadFile(p string) ([]byte, error) { return os.ReadFile(r.Path(p)) }

// Exists reports whether a target path exists (without following a final
// symlink's target being absent as "exists": a dangling link counts).
func (r Root) Exists(p string) bool {
	_, err := os.Lstat(r.Path(p))
	return err == nil
}

// WriteFileAtomic writes data to the target path p with mode perm: it writes
// a temporary file in the same directory, fsyncs it, renames it over p and
// fsyncs the directory, so readers see the old or the new content, never a
// torn file. Missing parent directories are created with mode 0755.
func (r Root) WriteFileAtomic(p string, data []byte, perm fs.FileMode) error {
	return WriteFileAtomic(r.Path(p), data, perm)
}

// WriteFileAtomic is the host-path form of Root.WriteFileAtomic.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	prefix := "." + filepath.Base(path) + ".tmp-"
	removeStaleTemps(dir, prefix)
	f, err := os.CreateTemp(dir, prefix+strconv.Itoa(os.Getpid())+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// removeStaleTemps removes the temporary files "<prefix><pid>-<random>"
// that a writer killed in the middle of a write left in dir: they were never
// visible under the real name. Only those of processes that no longer exist
// go; another live writer's file (this process's own included) stays, or
// its rename would fail. Names without a process id come from builds before
// the id was recorded, whose processes never outlive the command that
// started them, so they go too. A process id reused since then (after a
// reboot) only keeps a leftover a little longer.
func removeStaleTemps(dir, prefix string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		if pid, _, tagged := strings.Cut(rest, "-"); tagged {
			n, err := strconv.Atoi(pid)
			if err != nil || n <= 0 || processExists(n) {
				continue
			}
		}
		_ = os.Remove(filepath.Join(dir, e.Name()))
	}
}

// processExists reports whether a process with this id exists (signal 0
// checks without sending anything; EPERM means it exists but is not ours).
func processExists(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// RemoveIfExists removes a target file; a missing file is not an error.
func (r Root) RemoveIfExists(p string) error {
	err := os.Remove(r.Path(p))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Glob returns target paths (not host paths) matching pattern.
func (r Root) Glob(pattern string) ([]string, error) {
	matches, err := filepath.Glob(r.Path(pattern))
	if err != nil {
		return nil, err
	}
	prefix := string(r)
	if prefix == "/" {
		prefix = ""
	}
	for i, m := range matches {
		matches[i] = "/" + strings.TrimPrefix(strings.TrimPrefix(m, prefix), "/")
	}
	return matches, nil
}
