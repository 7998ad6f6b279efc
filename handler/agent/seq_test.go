package agent

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/failure"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRequestedSeqFromEnv(t *testing.T) {
	dir := t.TempDir()
	// A newer settings file must not override the variable.
	writeFile(t, filepath.Join(dir, "9.settings"), nil)
	tests := []struct {
		value string
		want  int
	}{
		{"0", 0}, {"3", 3}, {" 12\n", 12}, {"007", 7},
	}
	for _, tt := range tests {
		got, err := RequestedSeq(envFunc(map[string]string{SeqEnvVar: tt.value}), dir)
		if err != nil || got != tt.want {
			t.Errorf("%q: got %d, %v; want %d", tt.value, got, err, tt.want)
		}
	}
}

func TestRequestedSeqBadEnv(t *testing.T) {
	for _, v := range []string{"-1", "+1", "1.0", "abc", "1 2", "0x10", "99999999999999999999999"} {
		_, err := RequestedSeq(envFunc(map[string]string{SeqEnvVar: v}), t.TempDir())
		wantFailure(t, err, failure.BadEnvironment, SeqEnvVar)
	}
}

func TestRequestedSeqFallback(t *testing.T) {
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	type file struct {
		name string
		age  time.Duration // older by this much
	}
	tests := []struct {
		name  string
		files []file
		want  int
	}{
		{"no files", nil, 0},
		{"single", []file{{"4.settings", 0}}, 4},
		{"newest mtime wins over highest number", []file{{"10.settings", time.Hour}, {"2.settings", 0}}, 2},
		{"tie broken by highest number", []file{{"3.settings", 0}, {"7.settings", 0}, {"5.settings", 0}}, 7},
		{"non-matching names ignored", []file{
			{"1.settings", time.Hour},
			{"HandlerState", 0}, {"x.settings", 0}, {"ext.5.settings", 0},
			{"5.settings.tmp", 0}, {"-3.settings", 0}, {"99999999999999999999999.settings", 0},
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				p := filepath.Join(dir, f.name)
				writeFile(t, p, []byte("{}"))
				mt := base.Add(-f.age)
				if err := os.Chtimes(p, mt, mt); err != nil {
					t.Fatal(err)
				}
			}
			got, err := RequestedSeq(envFunc(nil), dir)
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestRequestedSeqMissingFolder(t *testing.T) {
	got, err := RequestedSeq(envFunc(nil), filepath.Join(t.TempDir(), "nope"))
	if err != nil || got != 0 {
		t.Fatalf("got %d, %v", got, err)
	}
}

func TestRequestedSeqFolderIsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config")
	writeFile(t, p, nil)
	_, err := RequestedSeq(envFunc(nil), p)
	wantFailure(t, err, failure.BadEnvironment, p)
}

func TestMrseq(t *testing.T) {
	dir := t.TempDir()
	// Missing is "unset", not 0: the first-enable-at-seq-0 trap.
	seq, ok, err := ReadMrseq(dir)
	if err != nil || ok || seq != 0 {
		t.Fatalf("missing: %d %v %v", seq, ok, err)
	}
	for _, n := range []int{0, 5, 123456} {
		if err := WriteMrseq(dir, n); err != nil {
			t.Fatal(err)
		}
		seq, ok, err := ReadMrseq(dir)
		if err != nil || !ok || seq != n {
			t.Fatalf("after writing %d: %d %v %v", n, seq, ok, err)
		}
	}
	info, err := os.Stat(filepath.Join(dir, MrseqFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := WriteMrseq(dir, -1); err == nil {
		t.Error("negative seq accepted")
	}
}

// TestMrseqUnchangedIsNotRewritten: the no-op enable leaves an mrseq that
// already holds its number as it is (same inode), and still writes one
// that differs, including a tolerated but untidy "7\n".
func TestMrseqUnchangedIsNotRewritten(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, MrseqFile)
	if err := WriteMrseq(dir, 7); err != nil {
		t.Fatal(err)
	}
	inode := func() uint64 {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return info.Sys().(*syscall.Stat_t).Ino
	}
	before := inode()
	if err := WriteMrseq(dir, 7); err != nil {
		t.Fatal(err)
	}
	if inode() != before {
		t.Error("an mrseq that already said 7 was replaced")
	}
	writeFile(t, path, []byte("7\n"))
	before = inode()
	if err := WriteMrseq(dir, 7); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "7" || inode() == before {
		t.Errorf("untidy mrseq not rewritten: %q", got)
	}
}

func TestReadMrseqTolerated(t *testing.T) {
	for content, want := range map[string]int{"7\n": 7, " 3 ": 3, "0": 0} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, MrseqFile), []byte(content))
		seq, ok, err := ReadMrseq(dir)
		if err != nil || !ok || seq != want {
			t.Errorf("%q: %d %v %v", content, seq, ok, err)
		}
	}
}

func TestReadMrseqGarbage(t *testing.T) {
	for _, content := range []string{"", "\n", "abc", "-1", "1.5", "1 2", "\x00", "99999999999999999999999", string(make([]byte, 100))} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, MrseqFile), []byte(content))
		seq, ok, err := ReadMrseq(dir)
		if err == nil || ok || seq != 0 {
			t.Errorf("%q: %d %v %v", content, seq, ok, err)
		}
	}
	// A directory where the file should be is an error too.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, MrseqFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ReadMrseq(dir); err == nil || ok {
		t.Errorf("directory: %v %v", ok, err)
	}
}
