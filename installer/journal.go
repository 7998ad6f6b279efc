package installer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/sysroot"
)

// journal records every change one run makes, newest last, so that a failure
// can undo them in reverse order. It is in memory only: a run killed before
// it could roll back leaves its files in place, and the next run converges
// (it rewrites the same files and reinstalls the same packages).
type journal struct {
	root    sysroot.Root
	log     logrus.FieldLogger
	backups string // target folder for users' files we replace
	undo    []undoStep
}

type undoStep struct {
	what string
	fn   func(ctx context.Context) error
}

func (j *journal) add(what string, fn func(ctx context.Context) error) {
	j.undo = append(j.undo, undoStep{what: what, fn: fn})
}

// rollback undoes every recorded change, newest first, and returns the
// changes it could not undo (named for the status message).
func (j *journal) rollback(ctx context.Context) (failed []string) {
	for i := len(j.undo) - 1; i >= 0; i-- {
		s := j.undo[i]
		if err := s.fn(ctx); err != nil {
			j.log.WithError(err).WithField("step", s.what).Error("rollback step failed")
			failed = append(failed, s.what)
			continue
		}
		j.log.WithField("step", s.what).Info("rolled back")
	}
	j.undo = nil
	return failed
}

// commit forgets the journal: the changes stay.
func (j *journal) commit() { j.undo = nil }

// writeFile writes a target file atomically and records how to undo it: a
// file we did not have before is removed again; a previous file is put back.
// A previous file that is not ours (no managed header) is also copied into
// the backup folder, so uninstall can restore it later. It returns the path
// of that backup ("" when none was needed).
func (j *journal) writeFile(path string, data []byte, mode fs.FileMode, ours func([]byte) bool) (backup string, err error) {
	old, readErr := j.root.ReadFile(path)
	existed := readErr == nil
	if readErr != nil && !errors.Is(readErr, fs.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", path, readErr)
	}
	backupPath := filepath.Join(j.backups, backupName(path))
	if _, err := os.Stat(j.root.Path(backupPath)); err == nil {
		// An earlier run (perhaps killed before it saved its state) already
		// kept the user's original: keep pointing at it.
		backup = backupPath
	}
	if existed && string(old) == string(data) {
		return backup, nil // already as wanted: nothing to change or undo
	}
	var oldMode fs.FileMode = 0o644
	if st, err := os.Stat(j.root.Path(path)); err == nil {
		oldMode = st.Mode().Perm()
	}
	if existed && !ours(old) {
		// The file is the user's: keep what they had last. A backup from an
		// earlier run holds an older version of theirs (they changed the
		// file since), so it is refreshed, and put back on rollback.
		backup = backupPath
		prev, perr := j.root.ReadFile(backup)
		switch {
		case perr == nil && string(prev) == string(old):
		case perr == nil:
			var prevMode fs.FileMode = 0o600
			if st, err := os.Stat(j.root.Path(backup)); err == nil {
				prevMode = st.Mode().Perm()
			}
			if err := j.root.WriteFileAtomic(backup, old, oldMode); err != nil {
				return "", fmt.Errorf("backing up %s: %w", path, err)
			}
			j.log.WithFields(logrus.Fields{"file": path, "backup": backup}).Info("refreshed the copy of the user's file with its current content")
			j.add("restore backup "+backup, func(context.Context) error { return j.root.WriteFileAtomic(backup, prev, prevMode) })
		case errors.Is(perr, fs.ErrNotExist):
			if err := j.mkdirs(filepath.Dir(backup), 0o700); err != nil {
				return "", fmt.Errorf("backing up %s: %w", path, err)
			}
			if err := j.root.WriteFileAtomic(backup, old, oldMode); err != nil {
				return "", fmt.Errorf("backing up %s: %w", path, err)
			}
			j.log.WithFields(logrus.Fields{"file": path, "backup": backup}).Info("kept a copy of the existing file")
			j.add("remove backup "+backup, func(context.Context) error { return j.root.RemoveIfExists(backup) })
		default:
			return "", fmt.Errorf("reading the backup of %s: %w", path, perr)
		}
	}
	if err := j.mkdirs(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := j.root.WriteFileAtomic(path, data, mode); err != nil {
		return "", err
	}
	if existed {
		j.add("restore "+path, func(context.Context) error { return j.root.WriteFileAtomic(path, old, oldMode) })
	} else {
		j.add("remove "+path, func(context.Context) error { return j.root.RemoveIfExists(path) })
	}
	return backup, nil
}

// removeFile removes a target file and records how to put it back with
// its mode. A missing file is not an error.
func (j *journal) removeFile(path string) error {
	old, err := j.root.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	var mode fs.FileMode = 0o644
	if st, err := os.Stat(j.root.Path(path)); err == nil {
		mode = st.Mode().Perm()
	}
	if err := j.root.RemoveIfExists(path); err != nil {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	j.add("restore "+path, func(context.Context) error { return j.root.WriteFileAtomic(path, old, mode) })
	return nil
}

// mkdirs creates the missing folders of a target directory and records how
// to remove them again; a folder that is no longer empty at rollback time is
// left alone.
func (j *journal) mkdirs(dir string, perm fs.FileMode) error {
	var missing []string // deepest first
	for d := filepath.Clean(dir); d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Stat(j.root.Path(d)); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(j.root.Path(dir), perm); err != nil {
		return err
	}
	j.add("remove created folder "+missing[len(missing)-1], func(context.Context) error {
		for _, d := range missing {
			if err := os.Remove(j.root.Path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil // not empty: something else lives there now
			}
		}
		return nil
	})
	return nil
}

// backupName flattens a target path into one file name.
func backupName(path string) string {
	return strings.ReplaceAll(strings.TrimPrefix(filepath.Clean(path), "/"), "/", "__")
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
