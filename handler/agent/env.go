package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aadsshlogin/handler/failure"
)

// EnvironmentFile is the name of the file the agent writes into the handler
// directory to tell the handler where its folders are.
const EnvironmentFile = "HandlerEnvironment.json"

// Environment is what HandlerEnvironment.json says, plus where it was found.
type Environment struct {
	// HandlerDir is the directory where HandlerEnvironment.json was found:
	// the handler directory <base> the agent extracted the package into.
	HandlerDir string
	// LogFolder, ConfigFolder and StatusFolder are always set by
	// ParseEnvironment; HeartbeatFile and EventsFolder may be empty (the
	// agent omits the events folder when it has no telemetry pipeline).
	LogFolder, ConfigFolder, StatusFolder, HeartbeatFile, EventsFolder string
}

// reinstallHint ends every environment message: the agent writes the file
// during installation, so reinstalling is the one thing a user can do.
const reinstallHint = "The VM agent writes this file when it installs the extension; remove the extension and add it again, or restart the VM agent (waagent)."

// FindEnvironment reads HandlerEnvironment.json from dir or, when it is not
// there, from dir's parent: the binary may live in a bin/ subdirectory of the
// handler directory.
func FindEnvironment(dir string) (*Environment, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, failure.New(failure.BadEnvironment, err, "The handler could not determine its own directory (%s). %s", dir, reinstallHint)
	}
	candidates := []string{abs}
	if parent := filepath.Dir(abs); parent != abs {
		candidates = append(candidates, parent)
	}
	for _, d := range candidates {
		path := filepath.Join(d, EnvironmentFile)
		data, err := readLimited(path, maxInputFile)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if errors.Is(err, errTooLarge) {
			return nil, failure.New(failure.BadEnvironment, err, "%s is larger than 1 MiB, so it is not a file the VM agent wrote. %s", path, reinstallHint)
		}
		if err != nil {
			// Present but unreadable: falling through to the parent
			// would silently pick up a different handler's file.
			return nil, failure.New(failure.BadEnvironment, err, "%s could not be read. %s", path, reinstallHint)
		}
		env, err := parseEnvironment(data, path)
		if err != nil {
			return nil, err
		}
		env.HandlerDir = d
		return env, nil
	}
	return nil, failure.New(failure.BadEnvironment, os.ErrNotExist, "%s was not found in %s. %s", EnvironmentFile, strings.Join(candidates, " or "), reinstallHint)
}

// ParseEnvironment parses the content of HandlerEnvironment.json. The
// returned HandlerDir is empty: only FindEnvironment knows the location.
func ParseEnvironment(data []byte) (*Environment, error) {
	return parseEnvironment(data, EnvironmentFile)
}

// LibDir is the agent's Lib.Dir, the parent of the handler directory, where
// the agent stores <thumbprint>.crt and .prv. It is derived rather than
// hard-coded because Lib.Dir is configurable in /etc/waagent.conf.
func (e *Environment) LibDir() string {
	if e.HandlerDir == "" {
		return ""
	}
	return filepath.Dir(e.HandlerDir)
}

// parseEnvironment does the work of ParseEnvironment; name is how messages
// refer to the file.
func parseEnvironment(data []byte, name string) (*Environment, error) {
	bad := func(cause error, format string, args ...any) error {
		return failure.New(failure.BadEnvironment, cause, "%s is not valid: %s. %s", name, fmt.Sprintf(format, args...), reinstallHint)
	}
	if len(data) > maxInputFile {
		return nil, bad(errTooLarge, "it is larger than 1 MiB")
	}
	data = bytes.TrimSpace(stripBOM(data))
	if len(data) == 0 {
		return nil, bad(nil, "it is empty")
	}
	// Decode step by step into raw values so that each wrong type gets a
	// message naming the field instead of a generic decoder error.
	var top []json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, bad(err, "it is not a JSON array")
	}
	if len(top) == 0 {
		return nil, bad(nil, "the array is empty")
	}
	var elem map[string]json.RawMessage
	if err := json.Unmarshal(top[0], &elem); err != nil || elem == nil {
		return nil, bad(err, "its first element is not a JSON object")
	}
	rawEnv, ok := elem["handlerEnvironment"]
	if !ok {
		return nil, bad(nil, "handlerEnvironment is missing")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(rawEnv, &fields); err != nil || fields == nil {
		return nil, bad(err, "handlerEnvironment is not a JSON object")
	}
	str := func(key string) (string, error) {
		raw, ok := fields[key]
		if !ok || isNull(raw) {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", bad(err, "%s is not a string", key)
		}
		return s, nil
	}
	path := func(key string, required bool) (string, error) {
		s, err := str(key)
		if err != nil {
			return "", err
		}
		if s == "" {
			if required {
				return "", bad(nil, "%s is missing", key)
			}
			return "", nil
		}
		// The agent always writes absolute paths; a relative one would
		// depend on the working directory, and a NUL cannot be a path.
		if !filepath.IsAbs(s) || strings.ContainsRune(s, 0) {
			return "", bad(nil, "%s is not an absolute path", key)
		}
		return filepath.Clean(s), nil
	}
	env := &Environment{}
	var err error
	if env.LogFolder, err = path("logFolder", true); err != nil {
		return nil, err
	}
	if env.ConfigFolder, err = path("configFolder", true); err != nil {
		return nil, err
	}
	if env.StatusFolder, err = path("statusFolder", true); err != nil {
		return nil, err
	}
	if env.HeartbeatFile, err = path("heartbeatFile", false); err != nil {
		return nil, err
	}
	if env.EventsFolder, err = path("eventsFolder", false); err != nil {
		return nil, err
	}
	if env.EventsFolder == "" {
		// eventsFolder_preview is the legacy duplicate older agents wrote.
		if env.EventsFolder, err = path("eventsFolder_preview", false); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// isNull reports whether a raw JSON value is the literal null.
func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
