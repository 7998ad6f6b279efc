package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Level is the EventLevel of an extension event.
type Level string

// The levels the agent's telemetry pipeline knows.
const (
	LevelCritical      Level = "Critical"
	LevelError         Level = "Error"
	LevelWarning       Level = "Warning"
	LevelInformational Level = "Informational"
	LevelVerbose       Level = "Verbose"
)

// orDefault maps a level the agent does not know to Informational, so a
// caller's typo still yields a usable event.
func (l Level) orDefault() Level {
	switch l {
	case LevelCritical, LevelError, LevelWarning, LevelInformational, LevelVerbose:
		return l
	}
	return LevelInformational
}

// Event limits. The agent collects at most 360 events per handler every five
// minutes, cuts Message to 3072 characters and drops events whose fields
// total more than about 6144; runaway event files have exhausted inodes on
// real VMs (WALinuxAgent#3080), so we stay far below all of that.
const (
	maxEventsPerProcess = 20
	maxEventFolderFiles = 300
	maxEventMessage     = 3072
	maxEventField       = 256
)

// Events writes extension events for the agent's telemetry pipeline. It is
// safe for concurrent use. A nil *Events, or one with no folder, writes
// nothing.
type Events struct {
	folder  string
	version string
	now     func() time.Time

	mu       sync.Mutex
	written  int
	dropped  int
	lastName int64 // last file-name number used, to keep names unique
}

// NewEvents returns an event writer for folder (the environment's
// EventsFolder; "" disables events). version is the handler's version and
// now the clock (nil means time.Now).
func NewEvents(folder, version string, now func() time.Time) *Events {
	if now == nil {
		now = time.Now
	}
	return &Events{folder: folder, version: version, now: now}
}

// Dropped returns how many events were not written because of the limits.
func (e *Events) Dropped() int {
	if e == nil {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dropped
}

// eventJSON is one event; every value is a string, which every agent version
// accepts (integers for the ids only from 2.10 on).
type eventJSON struct {
	Version     string `json:"Version"`
	Timestamp   string `json:"Timestamp"`
	TaskName    string `json:"TaskName"`
	EventLevel  string `json:"EventLevel"`
	Message     string `json:"Message"`
	EventPid    string `json:"EventPid"`
	EventTid    string `json:"EventTid"`
	OperationId string `json:"OperationId"`
}

// Write writes one event file. Events beyond the limits are counted as
// dropped, not reported as errors. An error means the event was lost; the
// caller should log it and carry on, never fail the operation.
func (e *Events) Write(level Level, task, message, operationID string) error {
	if e == nil || e.folder == "" {
		return nil
	}
	message = strings.TrimSpace(message)
	if message == "" {
		// The agent rejects events with an empty Message.
		return errors.New("writing event: empty message")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.written >= maxEventsPerProcess {
		e.dropped++
		return nil
	}
	n, err := countEntries(e.folder, maxEventFolderFiles)
	if err != nil {
		e.dropped++
		return fmt.Errorf("writing event: %w", err)
	}
	if n >= maxEventFolderFiles {
		// The agent is not collecting (or something else floods the
		// folder): adding more would only consume inodes.
		e.dropped++
		return nil
	}
	now := e.now()
	ev := eventJSON{
		Version:     truncateRunes(e.version, maxEventField),
		Timestamp:   now.UTC().Format(time.RFC3339Nano),
		TaskName:    truncateRunes(strings.TrimSpace(task), maxEventField),
		EventLevel:  string(level.orDefault()),
		Message:     truncateRunes(message, maxEventMessage),
		EventPid:    strconv.Itoa(os.Getpid()),
		EventTid:    strconv.Itoa(unix.Gettid()),
		OperationId: truncateRunes(strings.TrimSpace(operationID), maxEventField),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return fmt.Errorf("encoding event: %w", err)
	}
	name := now.UnixNano()
	if name <= e.lastName {
		name = e.lastName + 1
	}
	if name < 0 {
		name = 0 // a clock before 1970 must still give a digits-only name
	}
	used, err := e.publish(buf.Bytes(), name)
	if err != nil {
		e.dropped++
		return err
	}
	e.lastName = used
	e.written++
	return nil
}

// publish writes data to a temporary file in the events folder's parent and
// moves it into the folder as <name>.json. The temporary file must not be in
// the folder itself: the agent deletes every file there after collecting,
// and would read or delete a half-written file. The name is bumped when
// another writer already used it.
func (e *Events) publish(data []byte, name int64) (int64, error) {
	parent := filepath.Dir(e.folder)
	f, err := os.CreateTemp(parent, ".event-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("writing event: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful link the data lives on under the new name
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return 0, fmt.Errorf("writing event: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("writing event: %w", err)
	}
	for range 100 {
		final := filepath.Join(e.folder, strconv.FormatInt(name, 10)+".json")
		// A hard link never replaces an existing event (rename would),
		// so a concurrent handler process cannot overwrite ours.
		err := os.Link(tmp, final)
		if err == nil {
			return name, nil
		}
		if errors.Is(err, os.ErrExist) {
			name++
			continue
		}
		var errno syscall.Errno
		if errors.As(err, &errno) && (errno == syscall.EPERM || errno == syscall.EOPNOTSUPP || errno == syscall.EMLINK) {
			// File systems without hard links: rename is the best we
			// can do.
			if err := os.Rename(tmp, final); err != nil {
				return 0, fmt.Errorf("writing event: %w", err)
			}
			return name, nil
		}
		return 0, fmt.Errorf("writing event: %w", err)
	}
	return 0, errors.New("writing event: no free file name")
}

// countEntries counts the entries of dir, stopping at limit so that a huge
// folder costs no more than a small one.
func countEntries(dir string, limit int) (int, error) {
	d, err := os.Open(dir)
	if err != nil {
		return 0, fmt.Errorf("opening events folder: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(limit)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("reading events folder: %w", err)
	}
	return len(names), nil
}
