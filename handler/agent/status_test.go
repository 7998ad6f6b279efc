package agent

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// testNow is a fixed clock reading in a non-UTC zone, to check the
// conversion to UTC.
func testNow() time.Time { return time.Date(2025, 3, 4, 5, 6, 7, 890, time.FixedZone("x", 3600)) }

func TestWriteStatusShape(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "status")
	r := Report{Operation: "Enable", Status: Success, Code: 0, Message: "Done",
		Substatus: []Substatus{{Name: "Install", Status: Warning, Code: 7, Message: "careful"}}}
	if err := WriteStatus(dir, 3, r, testNow()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "3.status"))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"version":1.0,"timestampUTC":"2025-03-04T04:06:07Z","status":{"name":"Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux","operation":"Enable","status":"success","code":0,"formattedMessage":{"lang":"en-US","message":"Done"},"substatus":[{"name":"Install","status":"warning","code":7,"formattedMessage":{"lang":"en-US","message":"careful"}}]}}]`
	if string(data) != want {
		t.Fatalf("got\n%s\nwant\n%s", data, want)
	}
	info, _ := os.Stat(filepath.Join(dir, "3.status"))
	if info.Mode().Perm() != 0o644 {
		t.Errorf("file mode %v", info.Mode().Perm())
	}
	dinfo, _ := os.Stat(dir)
	if dinfo.Mode().Perm() != 0o700 {
		t.Errorf("folder mode %v", dinfo.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	got, err := ReadStatus(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got.Operation != r.Operation || got.Status != r.Status || got.Message != r.Message || len(got.Substatus) != 1 || got.Substatus[0] != r.Substatus[0] {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestWriteStatusNoSubstatus(t *testing.T) {
	dir := t.TempDir()
	if err := WriteStatus(dir, 0, Report{Operation: "Install", Status: Transitioning}, testNow()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "0.status"))
	if strings.Contains(string(data), "substatus") {
		t.Fatalf("substatus written: %s", data)
	}
}

// agentView decodes a status file the way the agent does and checks the
// schema rules it enforces.
func agentView(t *testing.T, data []byte) map[string]any {
	t.Helper()
	if len(data) >= 128<<10 {
		t.Fatalf("status file is %d bytes", len(data))
	}
	var doc []map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("status is not valid JSON: %v\n%.500s", err, data)
	}
	if len(doc) != 1 {
		t.Fatalf("%d elements", len(doc))
	}
	st, ok := doc[0]["status"].(map[string]any)
	if !ok {
		t.Fatal("no status object")
	}
	valid := map[any]bool{"transitioning": true, "success": true, "error": true, "warning": true}
	if !valid[st["status"]] {
		t.Fatalf("invalid status %v", st["status"])
	}
	if subs, ok := st["substatus"].([]any); ok {
		for _, s := range subs {
			if !valid[s.(map[string]any)["status"]] {
				t.Fatalf("invalid substatus %v", s)
			}
		}
	}
	return st
}

func TestWriteStatusEscapingAndCaps(t *testing.T) {
	var ctl strings.Builder
	for i := range 32 {
		ctl.WriteByte(byte(i))
	}
	hostile := `He said "hi" \ back\slash ` + ctl.String() + " <tag> & \u2028 \xff\xfe end"
	many := make([]Substatus, 40)
	for i := range many {
		many[i] = Substatus{Name: strings.Repeat("\x01", 10000), Status: State("bogus"), Message: strings.Repeat("\x00", 1<<20)}
	}
	tests := []struct {
		name string
		r    Report
		msg  string // expected message; "" = just check the caps
	}{
		{"quotes and control chars", Report{Operation: "Enable", Status: Error, Code: 21, Message: hostile}, ""},
		{"huge ascii", Report{Operation: "Enable", Status: Error, Message: strings.Repeat("a", 1<<20)}, strings.Repeat("a", 1023) + "…"},
		{"huge multibyte", Report{Operation: "Enable", Status: Error, Message: strings.Repeat("é", 2000)}, strings.Repeat("é", 1023) + "…"},
		{"exactly the cap", Report{Operation: "Enable", Status: Success, Message: strings.Repeat("b", 1024)}, strings.Repeat("b", 1024)},
		{"worst case everything", Report{Operation: strings.Repeat("\x02", 1<<20), Status: State("weird"), Message: strings.Repeat("\x03", 1<<20), Substatus: many}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteStatus(dir, 1, tt.r, testNow()); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(dir, "1.status"))
			if err != nil {
				t.Fatal(err)
			}
			st := agentView(t, data)
			msg := st["formattedMessage"].(map[string]any)["message"].(string)
			if n := utf8.RuneCountInString(msg); n > 1024 {
				t.Errorf("message has %d runes", n)
			}
			if tt.msg != "" && msg != tt.msg {
				t.Errorf("message = %.80q…, want %.80q…", msg, tt.msg)
			}
			if subs, ok := st["substatus"].([]any); ok {
				if len(subs) > 16 {
					t.Errorf("%d substatus entries", len(subs))
				}
				for _, s := range subs {
					m := s.(map[string]any)["formattedMessage"].(map[string]any)["message"].(string)
					if n := utf8.RuneCountInString(m); n > 1024 {
						t.Errorf("substatus message has %d runes", n)
					}
				}
			}
			r, err := ReadStatus(dir, 1)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "quotes and control chars" {
				// Valid UTF-8 survives exactly; invalid bytes become U+FFFD.
				want := strings.ToValidUTF8(hostile, "\ufffd")
				if strings.ReplaceAll(r.Message, "\ufffd", "") != strings.ReplaceAll(want, "\ufffd", "") {
					t.Errorf("round trip changed the message: %q", r.Message)
				}
			}
		})
	}
}

func TestReadStatus(t *testing.T) {
	tests := []struct {
		name, data string
		want       Report
		bad        bool
	}{
		{"shipped 1.0.2385.1", `[{"version":1,"timestampUTC":"2024-02-23T10:30:37+00:00","status":{"operation":"Enable","status":"success","formattedMessage":{"lang":"en","message":"Done"}}}]`,
			Report{Operation: "Enable", Status: Success, Message: "Done"}, false},
		{"float code and null substatus", `[{"status":{"status":"error","code":21.0,"substatus":null}}]`, Report{Status: Error, Code: 21}, false},
		{"substatus without message", `[{"status":{"status":"error","substatus":[{"status":"warning","code":3}]}}]`,
			Report{Status: Error, Substatus: []Substatus{{Status: Warning, Code: 3}}}, false},
		{"unescaped quote (old script bug)", `[{"status":{"status":"error","formattedMessage":{"lang":"en","message":"a "quote""}}}]`, Report{}, true},
		{"object", `{"status":{}}`, Report{}, true},
		{"empty array", `[]`, Report{}, true},
		{"no status", `[{"version":1}]`, Report{}, true},
		{"fractional code", `[{"status":{"status":"error","code":1.5}}]`, Report{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "2.status"), []byte(tt.data))
			r, err := ReadStatus(dir, 2)
			if tt.bad {
				if err == nil {
					t.Fatalf("no error: %+v", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Operation != tt.want.Operation || r.Status != tt.want.Status || r.Code != tt.want.Code || r.Message != tt.want.Message || len(r.Substatus) != len(tt.want.Substatus) {
				t.Fatalf("got %+v, want %+v", r, tt.want)
			}
			for i := range r.Substatus {
				if r.Substatus[i] != tt.want.Substatus[i] {
					t.Fatalf("substatus %d: %+v", i, r.Substatus[i])
				}
			}
		})
	}
	if _, err := ReadStatus(t.TempDir(), 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

func TestWriteStatusOverwrites(t *testing.T) {
	dir := t.TempDir()
	for _, st := range []State{Transitioning, Success} {
		if err := WriteStatus(dir, 4, Report{Operation: "Enable", Status: st, Message: string(st)}, testNow()); err != nil {
			t.Fatal(err)
		}
	}
	r, err := ReadStatus(dir, 4)
	if err != nil || r.Status != Success {
		t.Fatalf("%+v %v", r, err)
	}
	if err := WriteStatus(dir, -1, Report{Status: Success}, testNow()); err == nil {
		t.Error("negative seq accepted")
	}
}
