package agentsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"strconv"
	"unicode/utf8"
)

// AgentStatus is the extension status the agent would report for one
// sequence number, after its parsing and limits (contract §7.2–§7.4).
type AgentStatus struct {
	// Status is "transitioning", "success", "error" or "warning" ("" for an
	// empty list or a JSON null, which the agent parses to nothing).
	Status    string
	Code      int
	Operation string
	// ConfigurationAppliedTime is passed through.
	ConfigurationAppliedTime string
	Message                  string
	Substatus                []SubStatus
	// Missing is true when the status file does not exist.
	Missing bool
	// Raw is the file content.
	Raw []byte
}

// SubStatus is one parsed substatus entry.
type SubStatus struct {
	Name, Status string
	Code         int
	Message      string
}

// Find returns the first substatus with the given name.
func (st AgentStatus) Find(name string) (SubStatus, bool) {
	for _, s := range st.Substatus {
		if s.Name == name {
			return s, true
		}
	}
	return SubStatus{}, false
}

// Status-file limits of the agent.
const (
	maxStatusFileSize    = 128 * 1024
	maxStatusMessageLen  = 1024
	maxSubstatusFieldLen = 10 * 1024
	truncatedSuffix      = " ... [TRUNCATED]"
)

// isStatusValue reports whether s is one of the agent's four status values
// (case-sensitive).
func isStatusValue(s string) bool {
	switch s {
	case "transitioning", "error", "success", "warning":
		return true
	}
	return false
}

// statusFormatError is the agent's ExtensionStatusError(StatusFileMalformed).
type statusFormatError struct{ msg string }

func (e *statusFormatError) Error() string { return "[ExtensionStatusError] " + e.msg }

// ReadStatus reads <dir>/status/<seq>.status with the agent's rules: missing
// -> transitioning/0 with the agent's "no status file" message; unreadable
// -> error/-1; invalid JSON (including empty or torn files) -> error/1012
// with the first 2000 characters; schema violations -> error/1012; an
// unknown status string -> "error"; files over 128 KiB -> truncated message
// and substatus fields. The agent's retries (5 reads, 2 s apart) are not
// simulated.
func (a *Agent) ReadStatus(h *Handler, seq int) AgentStatus {
	p := path.Join(h.Dir, "status", strconv.Itoa(seq)+".status")
	full := h.FullName()
	hp, err := a.hostPath(p)
	if err == nil {
		_, err = os.Stat(hp)
	}
	if errors.Is(err, os.ErrNotExist) {
		return AgentStatus{
			Status:  "transitioning",
			Missing: true,
			Message: fmt.Sprintf("This status is being reported by the Guest Agent since no status file was reported by extension %s: [ExtensionStatusError] Status file %s does not exist", full, p),
		}
	}
	var raw []byte
	if err == nil {
		raw, err = os.ReadFile(hp)
	}
	if err != nil {
		return AgentStatus{
			Status: "error",
			Code:   CodeUnknownFailure,
			Message: fmt.Sprintf("We couldn't read any status for %s extension, for the sequence number %d. It failed due to [ExtensionStatusError] %v",
				full, seq, err),
		}
	}
	st := AgentStatus{Raw: raw}
	text := string(raw)
	var data any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	jsonErr := dec.Decode(&data)
	if jsonErr == nil && dec.More() {
		jsonErr = errors.New("extra data after the JSON value")
	}
	if jsonErr == nil && !utf8.Valid(raw) {
		jsonErr = errors.New("invalid UTF-8")
	}
	if jsonErr != nil {
		st.Status = "error"
		st.Code = CodeStatusInvalid
		st.Message = fmt.Sprintf("The status reported by the extension %s(Sequence number %d), was in an incorrect format and the Guest Agent could not parse it correctly. Please ensure that the extension reports the status correctly. [ExtensionStatusError] %v \n First 2000 Bytes of status file:\n %s",
			full, seq, jsonErr, firstRunes(text, 2000))
		return st
	}
	if err := parseExtStatus(&st, data); err != nil {
		st.Status = "error"
		st.Code = CodeStatusInvalid
		st.Message = fmt.Sprintf("Could not get a valid status from the extension %s. Encountered the following error: %v", full, err)
		st.Substatus = nil
		return st
	}
	if utf8.RuneCountInString(text) > maxStatusFileSize {
		msg, size := truncateField(st.Message, maxStatusMessageLen)
		st.Message = msg
		var kept []SubStatus
		for _, s := range st.Substatus {
			var n int
			s.Name, n = truncateField(s.Name, maxSubstatusFieldLen)
			size += n
			s.Message, n = truncateField(s.Message, maxSubstatusFieldLen)
			size += n
			if size > maxStatusFileSize {
				break
			}
			kept = append(kept, s)
		}
		st.Substatus = kept
	}
	return st
}

// truncateField is the agent's _truncate_message. (The agent raises a
// TypeError for an absent field here; the simulator treats it as "".)
func truncateField(s string, limit int) (string, int) {
	r := []rune(s)
	if len(r) < limit {
		return s, len(r)
	}
	out := string(r[:limit]) + truncatedSuffix
	return out, utf8.RuneCountInString(out)
}

func firstRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// parseExtStatus is the agent's parse_ext_status.
func parseExtStatus(st *AgentStatus, data any) error {
	if data == nil {
		return nil
	}
	list, ok := data.([]any)
	if !ok {
		b, _ := json.Marshal(data)
		return &statusFormatError{msg: "The extension status must be an array: " + firstRunes(string(b), 4096)}
	}
	if len(list) == 0 {
		return nil
	}
	first, ok := list[0].(map[string]any)
	if !ok {
		return &statusFormatError{msg: "Invalid status format by extension: Missing status key"}
	}
	statusRaw, ok := first["status"]
	if !ok {
		return &statusFormatError{msg: "Invalid status format by extension: Missing status key"}
	}
	sd, ok := statusRaw.(map[string]any)
	if !ok {
		return &statusFormatError{msg: "Invalid status format by extension: Missing status/status key"}
	}
	sv, ok := sd["status"]
	if !ok {
		return &statusFormatError{msg: "Invalid status format by extension: Missing status/status key"}
	}
	s, _ := sv.(string)
	if !isStatusValue(s) {
		s = "error"
	}
	st.Status = s
	st.ConfigurationAppliedTime, _ = sd["configurationAppliedTime"].(string)
	st.Operation, _ = sd["operation"].(string)
	st.Code = jsonInt(sd["code"])
	msg, err := parseFormattedMessage(sd["formattedMessage"])
	if err != nil {
		return err
	}
	st.Message = msg
	switch subs := sd["substatus"].(type) {
	case nil:
	case []any:
		for _, e := range subs {
			if e == nil {
				continue
			}
			sub, err := parseSubstatus(e)
			if err != nil {
				return err
			}
			st.Substatus = append(st.Substatus, sub)
		}
	default:
		return &statusFormatError{msg: "Invalid status format by extension: Missing substatus/status key"}
	}
	return nil
}

func parseSubstatus(e any) (SubStatus, error) {
	m, ok := e.(map[string]any)
	if !ok {
		return SubStatus{}, &statusFormatError{msg: "Invalid status format by extension: Missing substatus/status key"}
	}
	sv, ok := m["status"]
	if !ok {
		return SubStatus{}, &statusFormatError{msg: "Invalid status format by extension: Missing substatus/status key"}
	}
	s, _ := sv.(string)
	if !isStatusValue(s) {
		return SubStatus{}, &statusFormatError{msg: fmt.Sprintf("Invalid value %v in range ['transitioning', 'error', 'success', 'warning'] for substatus/status", sv)}
	}
	sub := SubStatus{Status: s, Code: jsonInt(m["code"])}
	sub.Name, _ = m["name"].(string)
	msg, err := parseFormattedMessage(m["formattedMessage"])
	if err != nil {
		return SubStatus{}, err
	}
	sub.Message = msg
	return sub, nil
}

func parseFormattedMessage(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return "", &statusFormatError{msg: "Invalid status format by extension: Missing formattedMessage/lang key"}
	}
	if _, ok := m["lang"]; !ok {
		return "", &statusFormatError{msg: "Invalid status format by extension: Missing formattedMessage/lang key"}
	}
	msg, ok := m["message"]
	if !ok {
		return "", &statusFormatError{msg: "Invalid status format by extension: Missing formattedMessage/message key"}
	}
	s, _ := msg.(string)
	return s, nil
}

// jsonInt returns an integral JSON number as int (0 otherwise).
func jsonInt(v any) int {
	n, ok := v.(json.Number)
	if !ok {
		return 0
	}
	if i, err := n.Int64(); err == nil {
		return int(i)
	}
	if f, err := n.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < math.MaxInt32 {
		return int(f)
	}
	return 0
}
