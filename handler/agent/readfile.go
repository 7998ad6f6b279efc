package agent

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// constError is an error type whose values can be constants, so sentinel
// errors need no package-level variables.
type constError string

func (e constError) Error() string { return string(e) }

// errTooLarge marks a file that exceeds the size limit of readLimited.
const errTooLarge = constError("file too large")

// readLimited reads a whole file but refuses one longer than limit bytes, so
// a corrupt or hostile file cannot make us allocate without bound. The
// returned error wraps os.ErrNotExist for a missing file and errTooLarge for
// an oversized one.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	// Read one byte past the limit to tell "exactly at the limit" from
	// "over it" without trusting Stat (the file may still be growing).
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", path, limit, errTooLarge)
	}
	return data, nil
}

// stripBOM removes a leading UTF-8 byte order mark.
func stripBOM(b []byte) []byte {
	return bytes.TrimPrefix(b, []byte(utf8BOM))
}
