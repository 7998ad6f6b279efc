package installer

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
)

func newJournal(t *testing.T) (*journal, sysroot.Root) {
	root := sysroot.Root(t.TempDir())
	log := logrus.New()
	log.SetOutput(io.Discard)
	return &journal{root: root, log: log, backups: StateDir + "/backup"}, root
}

func ours(b []byte) bool { return strings.HasPrefix(string(b), "# ours") }

func read(t *testing.T, root sysroot.Root, p string) string {
	t.Helper()
	b, err := root.ReadFile(p)
	if err != nil {
		return "<missing>"
	}
	return string(b)
}

func TestJournalNewFileIsRemovedOnRollback(t *testing.T) {
	j, root := newJournal(t)
	if _, err := j.writeFile("/etc/x.list", []byte("# ours\n"), 0o644, ours); err != nil {
		t.Fatal(err)
	}
	if failed := j.rollback(context.Background()); len(failed) != 0 {
		t.Fatal(failed)
	}
	if got := read(t, root, "/etc/x.list"); got != "<missing>" {
		t.Errorf("file left: %q", got)
	}
}

func TestJournalUsersFileIsBackedUpAndRestored(t *testing.T) {
	j, root := newJournal(t)
	root.WriteFileAtomic("/etc/x.list", []byte("user's own\n"), 0o600)
	backup, err := j.writeFile("/etc/x.list", []byte("# ours\n"), 0o644, ours)
	if err != nil || backup == "" {
		t.Fatalf("backup %q, err %v", backup, err)
	}
	if got := read(t, root, backup); got != "user's own\n" {
		t.Errorf("backup holds %q", got)
	}
	j.rollback(context.Background())
	if got := read(t, root, "/etc/x.list"); got != "user's own\n" {
		t.Errorf("after rollback: %q", got)
	}
	st, _ := os.Stat(root.Path("/etc/x.list"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode not restored: %v", st.Mode())
	}
	if got := read(t, root, backup); got != "<missing>" {
		t.Errorf("backup of this run not removed on rollback")
	}
}

func TestJournalRemembersBackupOfAnEarlierKilledRun(t *testing.T) {
	j, root := newJournal(t)
	root.WriteFileAtomic("/etc/x.list", []byte("user's own\n"), 0o644)
	backup, _ := j.writeFile("/etc/x.list", []byte("# ours\n"), 0o644, ours)
	j.commit() // the run was killed before saving its state; the files stay
	j2, _ := newJournal(t)
	j2.root = root
	again, err := j2.writeFile("/etc/x.list", []byte("# ours\n"), 0o644, ours)
	if err != nil || again != backup {
		t.Fatalf("second run lost the backup: %q (first %q) %v", again, backup, err)
	}
}

func TestJournalUnchangedFileNeedsNoUndo(t *testing.T) {
	j, root := newJournal(t)
	root.WriteFileAtomic("/etc/x.list", []byte("# ours\n"), 0o644)
	if _, err := j.writeFile("/etc/x.list", []byte("# ours\n"), 0o644, ours); err != nil {
		t.Fatal(err)
	}
	if len(j.undo) != 0 {
		t.Errorf("undo steps for an unchanged file: %d", len(j.undo))
	}
}

func TestRollbackNoteKeepsCode(t *testing.T) {
	base := failure.New(failure.VerificationFailed, nil, "PAM is not wired.")
	err := withRollbackNote(base, true, nil)
	if failure.CodeOf(err) != failure.VerificationFailed || !strings.Contains(failure.MessageOf(err), "undone") {
		t.Errorf("%v", err)
	}
	if !errors.Is(err, base) {
		t.Error("cause lost")
	}
	err = withRollbackNote(base, true, []string{"remove aadsshlogin"})
	if !strings.Contains(failure.MessageOf(err), "could not be undone (remove aadsshlogin)") {
		t.Errorf("%v", failure.MessageOf(err))
	}
	if withRollbackNote(base, false, nil) != error(base) {
		t.Error("nothing changed: message must stay as it was")
	}
}

func TestStateRoundTrip(t *testing.T) {
	root := sysroot.Root(t.TempDir())
	if s, err := LoadState(root); s != nil || err != nil {
		t.Fatalf("missing state: %v %v", s, err)
	}
	want := &State{HandlerVersion: "1", Packages: map[string]string{"aadsshlogin": "1.0"}}
	if err := SaveState(root, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(root)
	if err != nil || got.Packages["aadsshlogin"] != "1.0" {
		t.Fatalf("%+v %v", got, err)
	}
	root.WriteFileAtomic(stateFile, []byte("{garbage"), 0o600)
	if _, err := LoadState(root); err == nil {
		t.Error("corrupt state accepted")
	}
	if err := RemoveState(root); err != nil || root.Exists(StateDir) {
		t.Errorf("remove: %v", err)
	}
}

func TestJournalRemovesFoldersItCreated(t *testing.T) {
	j, root := newJournal(t)
	root.WriteFileAtomic("/etc/x.list", []byte("user's own\n"), 0o640)
	if _, err := j.writeFile("/etc/apt/keyrings/k.gpg", []byte("k"), 0o644, ours); err != nil {
		t.Fatal(err)
	}
	if _, err := j.writeFile("/etc/x.list", []byte("# ours\n"), 0o644, ours); err != nil {
		t.Fatal(err)
	}
	j.rollback(context.Background())
	for _, d := range []string{"/etc/apt", StateDir} {
		if root.Exists(d) {
			t.Errorf("%s left after rollback", d)
		}
	}
	if !root.Exists("/etc/x.list") {
		t.Error("user's file gone")
	}
}

// TestJournalRefreshesBackupWithUsersLatest: after one run kept the user's
// file A, the user writes B over ours; the next run keeps B (what they
// had last), and its rollback puts both the file and the old backup back.
func TestJournalRefreshesBackupWithUsersLatest(t *testing.T) {
	j, root := newJournal(t)
	root.WriteFileAtomic("/etc/x.list", []byte("A\n"), 0o644)
	backup, _ := j.writeFile("/etc/x.list", []byte("# ours\n"), 0o644, ours)
	j.commit()
	root.WriteFileAtomic("/etc/x.list", []byte("B\n"), 0o644)

	j2, _ := newJournal(t)
	j2.root = root
	again, err := j2.writeFile("/etc/x.list", []byte("# ours\n"), 0o644, ours)
	if err != nil || again != backup {
		t.Fatalf("backup %q (want %q): %v", again, backup, err)
	}
	if got := read(t, root, backup); got != "B\n" {
		t.Fatalf("the backup holds %q, want the user's latest file", got)
	}
	j2.rollback(context.Background())
	if got, old := read(t, root, "/etc/x.list"), read(t, root, backup); got != "B\n" || old != "A\n" {
		t.Fatalf("after rollback: file %q backup %q, want B and A", got, old)
	}
}
