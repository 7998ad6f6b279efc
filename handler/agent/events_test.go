package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func eventsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "log", "events")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestEventsWrite(t *testing.T) {
	dir := eventsDir(t)
	now := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("x", -7200))
	ev := NewEvents(dir, "1.2.3", func() time.Time { return now })
	if err := ev.Write(LevelWarning, "Enable", `msg with "quotes"`, "op-1"); err != nil {
		t.Fatal(err)
	}
	// Same clock value: the second file must get a different name.
	if err := ev.Write(Level("nonsense"), "Enable", strings.Repeat("m", 5000), "op-1"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d files: %v", len(entries), entries)
	}
	nameRE := regexp.MustCompile(`^\d+\.json$`)
	wantFirst := strconv.FormatInt(now.UnixNano(), 10) + ".json"
	if entries[0].Name() != wantFirst {
		t.Errorf("first file %q, want %q", entries[0].Name(), wantFirst)
	}
	for i, e := range entries {
		if !nameRE.MatchString(e.Name()) {
			t.Errorf("file name %q", e.Name())
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := json.Unmarshal(data, &obj); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		keys := []string{"Version", "Timestamp", "TaskName", "EventLevel", "Message", "EventPid", "EventTid", "OperationId"}
		if len(obj) != len(keys) {
			t.Errorf("keys: %v", obj)
		}
		for _, k := range keys {
			if _, ok := obj[k].(string); !ok {
				t.Errorf("%s: key %s missing or not a string", e.Name(), k)
			}
		}
		if obj["Version"] != "1.2.3" || obj["Timestamp"] != "2025-06-07T10:09:10.123456789Z" || obj["TaskName"] != "Enable" ||
			obj["OperationId"] != "op-1" || obj["EventPid"] != strconv.Itoa(os.Getpid()) {
			t.Errorf("%s: %v", e.Name(), obj)
		}
		msg := obj["Message"].(string)
		switch i {
		case 0:
			if obj["EventLevel"] != "Warning" || msg != `msg with "quotes"` {
				t.Errorf("first: %v", obj)
			}
		case 1:
			if obj["EventLevel"] != "Informational" || utf8.RuneCountInString(msg) != 3072 || !strings.HasSuffix(msg, "…") {
				t.Errorf("second: level %v, message %d runes", obj["EventLevel"], utf8.RuneCountInString(msg))
			}
		}
	}
	// No temporary file may remain, in the folder or next to it.
	parent, _ := os.ReadDir(filepath.Dir(dir))
	if len(parent) != 1 {
		t.Errorf("parent holds %v", parent)
	}
}

func TestEventsDisabled(t *testing.T) {
	var nilEvents *Events
	for _, ev := range []*Events{NewEvents("", "1", nil), nilEvents} {
		if err := ev.Write(LevelError, "t", "m", ""); err != nil {
			t.Fatal(err)
		}
		if ev.Dropped() != 0 {
			t.Fatal("dropped counted")
		}
	}
}

func TestEventsPerProcessLimit(t *testing.T) {
	dir := eventsDir(t)
	ev := NewEvents(dir, "1", nil)
	for range 25 {
		if err := ev.Write(LevelInformational, "t", "m", ""); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 20 || ev.Dropped() != 5 {
		t.Fatalf("%d files, %d dropped", len(entries), ev.Dropped())
	}
}

func TestEventsFolderLimit(t *testing.T) {
	dir := eventsDir(t)
	for i := range 300 {
		writeFile(t, filepath.Join(dir, strconv.Itoa(i)+".json"), []byte("{}"))
	}
	ev := NewEvents(dir, "1", nil)
	if err := ev.Write(LevelError, "t", "m", ""); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 300 || ev.Dropped() != 1 {
		t.Fatalf("%d files, %d dropped", len(entries), ev.Dropped())
	}
	// One fewer file: there is room again.
	if err := os.Remove(filepath.Join(dir, "0.json")); err != nil {
		t.Fatal(err)
	}
	if err := ev.Write(LevelError, "t", "m", ""); err != nil {
		t.Fatal(err)
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 300 {
		t.Fatalf("%d files", len(entries))
	}
}

func TestEventsErrors(t *testing.T) {
	ev := NewEvents(filepath.Join(t.TempDir(), "missing"), "1", nil)
	if err := ev.Write(LevelError, "t", "m", ""); err == nil {
		t.Error("missing folder: no error")
	}
	if ev.Dropped() != 1 {
		t.Errorf("dropped %d", ev.Dropped())
	}
	ev = NewEvents(eventsDir(t), "1", nil)
	if err := ev.Write(LevelError, "t", "  \n", ""); err == nil {
		t.Error("empty message: no error")
	}
}

func TestEventsDoNotOverwriteForeignFile(t *testing.T) {
	dir := eventsDir(t)
	now := time.Unix(100, 5)
	// Another process already wrote an event with the same name.
	foreign := filepath.Join(dir, strconv.FormatInt(now.UnixNano(), 10)+".json")
	writeFile(t, foreign, []byte(`{"foreign":true}`))
	ev := NewEvents(dir, "1", func() time.Time { return now })
	if err := ev.Write(LevelError, "t", "mine", ""); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(foreign)
	if string(data) != `{"foreign":true}` {
		t.Fatalf("foreign event overwritten: %s", data)
	}
	data, err := os.ReadFile(filepath.Join(dir, strconv.FormatInt(now.UnixNano()+1, 10)+".json"))
	if err != nil || !strings.Contains(string(data), "mine") {
		t.Fatalf("%s %v", data, err)
	}
}
