package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func dirSize(t *testing.T, dir string) (int64, []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	var names []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		total += info.Size()
		names = append(names, e.Name())
	}
	return total, names
}

func TestOpenLogWritesLines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	log, closer, err := OpenLog(dir, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log.WithField("k", "v").Info("hello world")
	log.Debug("not at default level")
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	log.Info("after close is dropped")
	data, err := os.ReadFile(filepath.Join(dir, "handler.log"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, want := range []string{"level=info", `msg="hello world"`, "k=v", "pid=" + strconv.Itoa(os.Getpid()), "time="} {
		if !strings.Contains(s, want) {
			t.Errorf("log %q lacks %q", s, want)
		}
	}
	if strings.Contains(s, "not at default level") || strings.Contains(s, "after close") {
		t.Errorf("unexpected line in %q", s)
	}
	if strings.Count(s, "\n") != 1 {
		t.Errorf("lines: %q", s)
	}
}

func TestOpenLogRotationBoundsSize(t *testing.T) {
	dir := t.TempDir()
	const max = 2000
	opts := LogOptions{FileName: "h.log", MaxBytes: max, Keep: 2, Level: logrus.DebugLevel}
	// Leftovers of a version that kept more files must go.
	writeFile(t, filepath.Join(dir, "h.log.7"), []byte(strings.Repeat("x", 5000)))
	// A full file is rotated at open.
	writeFile(t, filepath.Join(dir, "h.log"), []byte(strings.Repeat("y", max)))
	for round := range 3 { // reopen, as every handler invocation does
		log, closer, err := OpenLog(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			log.Debugf("round %d line %d %s", round, i, strings.Repeat("z", i%50))
		}
		log.Info(strings.Repeat("huge ", 3000)) // larger than a whole file
		_ = closer.Close()
	}
	total, names := dirSize(t, dir)
	if total > int64(opts.Keep+1)*max {
		t.Errorf("total %d bytes in %v", total, names)
	}
	want := "h.log h.log.1 h.log.2"
	if strings.Join(names, " ") != want {
		t.Errorf("files %v, want %s", names, want)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "h.log"))
	if len(data) == 0 || int64(len(data)) > max {
		t.Errorf("current file %d bytes", len(data))
	}
}

// Two loggers on one file (two handler processes) follow each other's
// rotation instead of writing into a rotated file forever.
func TestOpenLogSharedFile(t *testing.T) {
	dir := t.TempDir()
	opts := LogOptions{MaxBytes: 1000, Keep: 1}
	a, ca, err := OpenLog(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	b, cb, err := OpenLog(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	for i := range 100 {
		a.Infof("a %d", i)
		b.Infof("b %d", i)
	}
	total, names := dirSize(t, dir)
	if total > 2*1000 {
		t.Errorf("total %d in %v", total, names)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "handler.log"))
	if !strings.Contains(string(data), "a 99") || !strings.Contains(string(data), "b 99") {
		t.Errorf("last lines missing from the current file: %q", data)
	}
}

func TestOpenLogUnwritable(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	writeFile(t, blocker, nil)
	for name, folder := range map[string]string{
		"folder is a file":      blocker,
		"folder under a file":   filepath.Join(blocker, "sub"),
		"log name is directory": filepath.Dir(blocker),
	} {
		t.Run(name, func(t *testing.T) {
			opts := LogOptions{}
			if name == "log name is directory" {
				opts.FileName = "dir.log"
				if err := os.Mkdir(filepath.Join(folder, "dir.log"), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			log, closer, err := OpenLog(folder, opts)
			if err == nil {
				t.Fatal("no error")
			}
			if log == nil || closer == nil {
				t.Fatal("nil logger or closer")
			}
			log.Error("goes nowhere") // must not panic or print
			if err := closer.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, _, err := OpenLog(t.TempDir(), LogOptions{FileName: "../escape.log"}); err == nil {
		t.Error("file name with a slash accepted")
	}
}
