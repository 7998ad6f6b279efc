package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aadsshlogin/handler/sysroot"
)

// State is the status value the agent understands.
type State string

// The four states the agent accepts. An unknown top-level state is coerced
// to error by the agent, and an unknown substatus state makes the whole file
// invalid, so WriteStatus only ever writes these.
const (
	Transitioning State = "transitioning"
	Success       State = "success"
	Error         State = "error"
	Warning       State = "warning"
)

func (s State) valid() bool {
	switch s {
	case Transitioning, Success, Error, Warning:
		return true
	}
	return false
}

// Substatus is one detail entry of a status report.
type Substatus struct {
	Name    string
	Status  State
	Code    int
	Message string
}

// Report is what the handler tells the agent about one operation.
type Report struct {
	Operation string
	Status    State
	Code      int
	Message   string
	Substatus []Substatus
}

// Limits of what we write. The agent itself truncates only files above
// 128 KiB, and then crudely; keeping below that ourselves means the user sees
// our text as we wrote it.
const (
	maxStatusFile     = 128 << 10
	maxMessageRunes   = 1024
	maxNameRunes      = 128
	maxSubstatus      = 16
	statusTimeFormat  = "2006-01-02T15:04:05Z"
	statusLang        = "en-US"
	statusFileVersion = "1.0"
)

type formattedMessage struct {
	Lang    string `json:"lang"`
	Message string `json:"message"`
}

type substatusJSON struct {
	Name             string            `json:"name"`
	Status           State             `json:"status"`
	Code             json.Number       `json:"code"`
	FormattedMessage *formattedMessage `json:"formattedMessage,omitempty"`
}

type statusJSON struct {
	Name             string            `json:"name"`
	Operation        string            `json:"operation"`
	Status           State             `json:"status"`
	Code             json.Number       `json:"code"`
	FormattedMessage *formattedMessage `json:"formattedMessage,omitempty"`
	Substatus        []substatusJSON   `json:"substatus,omitempty"`
}

type statusItem struct {
	Version      json.Number `json:"version"`
	TimestampUTC string      `json:"timestampUTC"`
	Status       *statusJSON `json:"status"`
}

// statusPath is <statusFolder>/<seq>.status, the one file the agent reads.
func statusPath(statusFolder string, seq int) string {
	return filepath.Join(statusFolder, strconv.Itoa(seq)+".status")
}

// WriteStatus writes <statusFolder>/<seq>.status atomically, so the agent,
// which reads it without any locking, never sees a torn file. Messages are
// capped and the file is kept below 128 KiB; an invalid State is written as
// "error" so the agent can still parse the file.
func WriteStatus(statusFolder string, seq int, r Report, now time.Time) error {
	if seq < 0 {
		return fmt.Errorf("writing status: negative sequence number %d", seq)
	}
	data, err := encodeStatus(r, now)
	if err != nil {
		return err
	}
	// The agent creates the folder with 0700; recreate it the same way if
	// someone removed it.
	if err := os.MkdirAll(statusFolder, 0o700); err != nil {
		return fmt.Errorf("creating status folder: %w", err)
	}
	if err := sysroot.WriteFileAtomic(statusPath(statusFolder, seq), data, 0o644); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	return nil
}

// encodeStatus renders the status file, shrinking it until it fits the
// size limit.
func encodeStatus(r Report, now time.Time) ([]byte, error) {
	st := &statusJSON{
		Name:             HandlerName,
		Operation:        truncateRunes(r.Operation, maxNameRunes),
		Status:           coerceState(r.Status),
		Code:             json.Number(strconv.Itoa(r.Code)),
		FormattedMessage: &formattedMessage{Lang: statusLang, Message: truncateRunes(r.Message, maxMessageRunes)},
	}
	subs := r.Substatus
	if len(subs) > maxSubstatus {
		subs = subs[:maxSubstatus]
	}
	for _, s := range subs {
		st.Substatus = append(st.Substatus, substatusJSON{
			Name:             truncateRunes(s.Name, maxNameRunes),
			Status:           coerceState(s.Status),
			Code:             json.Number(strconv.Itoa(s.Code)),
			FormattedMessage: &formattedMessage{Lang: statusLang, Message: truncateRunes(s.Message, maxMessageRunes)},
		})
	}
	doc := []statusItem{{
		Version:      json.Number(statusFileVersion),
		TimestampUTC: now.UTC().Format(statusTimeFormat),
		Status:       st,
	}}
	for {
		data, err := marshalStatus(doc)
		if err != nil {
			return nil, err
		}
		if len(data) < maxStatusFile {
			return data, nil
		}
		// With the caps above the worst case (every rune a control
		// character escaped as \u00XX) stays below the limit; this loop
		// is the guarantee should the caps ever change.
		if n := len(st.Substatus); n > 0 {
			st.Substatus = st.Substatus[:n-1]
			continue
		}
		st.FormattedMessage.Message = truncateRunes(st.FormattedMessage.Message, maxMessageRunes/4)
		st.Operation = truncateRunes(st.Operation, 16)
		if data, err = marshalStatus(doc); err == nil && len(data) >= maxStatusFile {
			return nil, errors.New("writing status: status does not fit 128 KiB")
		}
		return data, err
	}
}

// marshalStatus encodes without HTML escaping: "<" is legitimate in
// messages and escaping it would only make them longer.
func marshalStatus(doc []statusItem) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encoding status: %w", err)
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}

func coerceState(s State) State {
	if s.valid() {
		return s
	}
	return Error
}

// ReadStatus parses a status file we, or an older version of the handler,
// wrote. A missing file gives an error wrapping os.ErrNotExist.
func ReadStatus(statusFolder string, seq int) (*Report, error) {
	path := statusPath(statusFolder, seq)
	data, err := readLimited(path, maxInputFile)
	if err != nil {
		return nil, fmt.Errorf("reading status: %w", err)
	}
	data = bytes.TrimSpace(stripBOM(data))
	var doc []struct {
		Status *struct {
			Operation        string            `json:"operation"`
			Status           State             `json:"status"`
			Code             *json.Number      `json:"code"`
			FormattedMessage *formattedMessage `json:"formattedMessage"`
			Substatus        []struct {
				Name             string            `json:"name"`
				Status           State             `json:"status"`
				Code             *json.Number      `json:"code"`
				FormattedMessage *formattedMessage `json:"formattedMessage"`
			} `json:"substatus"`
		} `json:"status"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing status file %s: %w", path, err)
	}
	if len(doc) == 0 || doc[0].Status == nil {
		return nil, fmt.Errorf("parsing status file %s: no status entry", path)
	}
	s := doc[0].Status
	r := &Report{Operation: s.Operation, Status: s.Status}
	if r.Code, err = numberToInt(s.Code); err != nil {
		return nil, fmt.Errorf("parsing status file %s: code: %w", path, err)
	}
	if s.FormattedMessage != nil {
		r.Message = s.FormattedMessage.Message
	}
	for i, sub := range s.Substatus {
		out := Substatus{Name: sub.Name, Status: sub.Status}
		if out.Code, err = numberToInt(sub.Code); err != nil {
			return nil, fmt.Errorf("parsing status file %s: substatus %d code: %w", path, i, err)
		}
		if sub.FormattedMessage != nil {
			out.Message = sub.FormattedMessage.Message
		}
		r.Substatus = append(r.Substatus, out)
	}
	return r, nil
}

// numberToInt converts an optional JSON number (the agent defaults a missing
// code to 0, and Python writers may produce 1.0) to an int.
func numberToInt(n *json.Number) (int, error) {
	if n == nil {
		return 0, nil
	}
	if i, err := n.Int64(); err == nil {
		return int(i), nil
	}
	f, err := n.Float64()
	if err != nil || f != float64(int(f)) {
		return 0, fmt.Errorf("%s is not an integer", n.String())
	}
	return int(f), nil
}
