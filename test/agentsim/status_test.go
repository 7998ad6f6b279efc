package agentsim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// statusHandler deploys nothing: it only creates <dir>/status for fixtures.
func statusHandler(t *testing.T) (*Agent, *Handler) {
	t.Helper()
	tmp := t.TempDir()
	a := &Agent{LibDir: filepath.Join(tmp, "lib"), LogDir: filepath.Join(tmp, "log")}
	h := &Handler{Name: testName, Version: "1.0", Dir: filepath.Join(tmp, "lib", testName+"-1.0")}
	if err := os.MkdirAll(filepath.Join(h.Dir, "status"), 0o700); err != nil {
		t.Fatal(err)
	}
	return a, h
}

func putStatus(t *testing.T, h *Handler, seq string, fixture string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "status", fixture))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "status", seq+".status"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadStatusValid(t *testing.T) {
	t.Parallel()
	a, h := statusHandler(t)
	raw := putStatus(t, h, "2", "valid.status")
	st := a.ReadStatus(h, 2)
	if st.Status != "success" || st.Code != 0 || st.Operation != "Enable" || st.Message != "Done" || st.Missing ||
		st.ConfigurationAppliedTime != "2024-02-23T10:30:37Z" || string(st.Raw) != string(raw) {
		t.Fatalf("status = %+v", st)
	}
	want := []SubStatus{
		{Name: "install", Status: "success", Message: "packages installed"},
		{Name: "sshd", Status: "warning", Code: 7},
	}
	if len(st.Substatus) != 2 || st.Substatus[0] != want[0] || st.Substatus[1] != want[1] {
		t.Errorf("substatus = %+v", st.Substatus)
	}
	if !Terminal(st.Status) || Terminal("transitioning") || Terminal("warning") || !Terminal("error") {
		t.Error("Terminal")
	}
}

func TestReadStatusMissing(t *testing.T) {
	t.Parallel()
	a, h := statusHandler(t)
	st := a.ReadStatus(h, 5)
	want := "This status is being reported by the Guest Agent since no status file was reported by extension " +
		testName + "-1.0: [ExtensionStatusError] Status file " + h.Dir + "/status/5.status does not exist"
	if !st.Missing || st.Status != "transitioning" || st.Code != 0 || st.Message != want || Terminal(st.Status) {
		t.Fatalf("status = %+v", st)
	}
}

func TestReadStatusRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fixture   string
		status    string
		code      int
		msgHas    string
		substatus int
	}{
		{fixture: "substatus-null.status", status: "success", msgHas: "Done"},
		{fixture: "empty-list.status", status: ""},
		{fixture: "unknown-status.status", status: "error", code: 12, msgHas: "odd"},
		{fixture: "torn.status", status: "error", code: 1012, msgHas: "First 2000 Bytes of status file:\n " + `[{"version":1,"status":{"operation":"Enable","status":"succ`},
		{fixture: "empty.status", status: "error", code: 1012, msgHas: "incorrect format"},
		{fixture: "not-a-list.status", status: "error", code: 1012, msgHas: "Could not get a valid status from the extension " + testName + "-1.0. Encountered the following error: [ExtensionStatusError] The extension status must be an array"},
		{fixture: "missing-status.status", status: "error", code: 1012, msgHas: "Missing status key"},
		{fixture: "missing-status-status.status", status: "error", code: 1012, msgHas: "Missing status/status key"},
		{fixture: "bad-substatus-status.status", status: "error", code: 1012, msgHas: "Invalid value done"},
		{fixture: "substatus-without-status.status", status: "error", code: 1012, msgHas: "Missing substatus/status key"},
		{fixture: "formatted-without-lang.status", status: "error", code: 1012, msgHas: "Missing formattedMessage/lang key"},
		{fixture: "formatted-without-message.status", status: "error", code: 1012, msgHas: "Missing formattedMessage/message key"},
		{fixture: "long-message-under-limit.status", status: "success", msgHas: strings.Repeat("s", 5000)},
		{fixture: "oversized-short-message.status", status: "success", msgHas: "short"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			a, h := statusHandler(t)
			putStatus(t, h, "0", tc.fixture)
			st := a.ReadStatus(h, 0)
			if st.Status != tc.status || st.Code != tc.code || !strings.Contains(st.Message, tc.msgHas) || len(st.Substatus) != tc.substatus {
				t.Fatalf("status = %q code %d substatus %d message %.300q", st.Status, st.Code, len(st.Substatus), st.Message)
			}
		})
	}
}

func TestReadStatusInvalidJSONKeepsFirst2000(t *testing.T) {
	t.Parallel()
	a, h := statusHandler(t)
	body := "[" + strings.Repeat("x", 3000)
	if err := os.WriteFile(filepath.Join(h.Dir, "status", "0.status"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	st := a.ReadStatus(h, 0)
	if !strings.HasSuffix(st.Message, "\n "+body[:2000]) {
		t.Errorf("message tail = %q", st.Message[len(st.Message)-50:])
	}
}

func TestReadStatusOversizedTruncates(t *testing.T) {
	t.Parallel()
	a, h := statusHandler(t)
	putStatus(t, h, "0", "oversized.status")
	st := a.ReadStatus(h, 0)
	if st.Status != "error" || st.Code != 21 {
		t.Fatalf("status %s code %d", st.Status, st.Code)
	}
	if st.Message != strings.Repeat("m", 1024)+" ... [TRUNCATED]" {
		t.Errorf("message = %.60q… (%d)", st.Message, len(st.Message))
	}
	// 1040 + 10 × (2 + 10256) + 2 × (3 + 10256) = 124138 ≤ 128 KiB; the 13th passes it.
	if len(st.Substatus) != 12 {
		t.Fatalf("substatus kept = %d", len(st.Substatus))
	}
	for _, s := range st.Substatus {
		if s.Message != strings.Repeat("x", 10240)+" ... [TRUNCATED]" {
			t.Fatalf("substatus %s message length %d", s.Name, len(s.Message))
		}
	}
}

func TestReadStatusUnreadable(t *testing.T) {
	t.Parallel()
	a, h := statusHandler(t)
	if err := os.Mkdir(filepath.Join(h.Dir, "status", "0.status"), 0o700); err != nil {
		t.Fatal(err)
	}
	st := a.ReadStatus(h, 0)
	if st.Status != "error" || st.Code != -1 || st.Missing {
		t.Fatalf("status = %+v", st)
	}
}
