package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
)

// SeqEnvVar is the variable through which the agent passes the sequence
// number of the settings that triggered the command (agent 2.2.44 and later).
const SeqEnvVar = "ConfigSequenceNumber"

// MrseqFile is the name of the "most recent sequence" file in the handler
// directory. It must be there (not next to the binary) because the agent
// copies exactly <base>/mrseq to the new version on update.
const MrseqFile = "mrseq"

// parseSeq parses a sequence number: decimal digits only (no sign, no
// spaces inside), fitting in an int.
func parseSeq(s string) (int, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a non-negative decimal integer", s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range: %w", s, err)
	}
	return n, nil
}

// RequestedSeq returns the sequence number of the current operation: the
// ConfigSequenceNumber variable when set, otherwise the settings file with
// the newest modification time (what the agent itself falls back to; the
// numbers are not guaranteed to increase), ties broken by the higher number,
// otherwise 0.
func RequestedSeq(getenv func(string) string, configFolder string) (int, error) {
	if v := strings.TrimSpace(getenv(SeqEnvVar)); v != "" {
		n, err := parseSeq(v)
		if err != nil {
			return 0, failure.New(failure.BadEnvironment, err, "The VM agent passed an invalid %s (%q); it must be a non-negative integer. Restart the VM agent (waagent) and retry the operation.", SeqEnvVar, truncateRunes(v, 64))
		}
		return n, nil
	}
	entries, err := os.ReadDir(configFolder)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, failure.New(failure.BadEnvironment, err, "The handler's configuration folder %s could not be read. Check that it is a readable directory, or remove the extension and add it again.", configFolder)
	}
	best, found := 0, false
	var bestTime int64
	for _, e := range entries {
		// Same pattern as the agent's fallback: ^\d+\.settings$.
		digits, ok := strings.CutSuffix(e.Name(), ".settings")
		if !ok {
			continue
		}
		n, err := parseSeq(digits)
		if err != nil {
			continue // not digits, or absurdly long: not the agent's
		}
		info, err := os.Stat(filepath.Join(configFolder, e.Name()))
		if err != nil || !info.Mode().IsRegular() {
			continue // vanished or a link to something odd
		}
		mt := info.ModTime().UnixNano()
		if !found || mt > bestTime || mt == bestTime && n > best {
			best, bestTime, found = n, mt, true
		}
	}
	return best, nil
}

// mrseqLimit bounds reads of mrseq: it holds one number, and 64 bytes is
// generous for any int.
const mrseqLimit = 64

// ReadMrseq reads <handlerDir>/mrseq. A missing file is reported as
// ok=false with no error: it means "nothing finished yet", which must not be
// confused with "sequence 0 finished" (otherwise the first enable at
// sequence 0 would be skipped and never report a status). A file that is not
// a number gives ok=false and an error the caller should log.
func ReadMrseq(handlerDir string) (seq int, ok bool, err error) {
	path := filepath.Join(handlerDir, MrseqFile)
	data, err := readLimited(path, mrseqLimit)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading mrseq: %w", err)
	}
	n, err := parseSeq(string(bytes.TrimSpace(data)))
	if err != nil {
		return 0, false, fmt.Errorf("%s does not hold a sequence number: %w", path, err)
	}
	return n, true, nil
}

// WriteMrseq records seq as the most recent finished sequence number. It is
// written atomically so that a crash leaves the old or the new number, never
// an empty file.
func WriteMrseq(handlerDir string, seq int) error {
	if seq < 0 {
		return fmt.Errorf("writing mrseq: negative sequence number %d", seq)
	}
	path := filepath.Join(handlerDir, MrseqFile)
	want := []byte(strconv.Itoa(seq))
	// Every enable of an unchanged goal state (each boot, each goal state)
	// finishes here: a file that already says so stays as it is, which
	// spares a temporary file and two fsyncs on the no-op path.
	if got, err := readLimited(path, mrseqLimit); err == nil && bytes.Equal(got, want) {
		return nil
	}
	if err := sysroot.WriteFileAtomic(path, want, 0o600); err != nil {
		return fmt.Errorf("writing mrseq: %w", err)
	}
	return nil
}
