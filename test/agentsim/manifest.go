package agentsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Manifest is the handlerManifest part of HandlerManifest.json, read with the
// agent's rules (contract §2.3).
type Manifest struct {
	Install, Uninstall, Update, Enable, Disable string

	ReportHeartbeat            bool
	UpdateMode                 string
	ContinueOnUpdateFailure    bool
	SupportsMultipleExtensions bool

	// UpdateModeSet is true when updateMode is present and not null; the
	// agent treats an absent updateMode like "UpdateWithInstall".
	UpdateModeSet bool
}

// UpdateWithInstall reports whether the agent runs installCommand after a
// successful update: updateMode absent or (case-insensitively)
// "UpdateWithInstall"; any other value skips install.
func (m Manifest) UpdateWithInstall() bool {
	return !m.UpdateModeSet || strings.ToLower(m.UpdateMode) == "updatewithinstall"
}

// Command returns the manifest command of verb.
func (m Manifest) Command(verb Verb) (string, error) {
	switch verb {
	case Install:
		return m.Install, nil
	case Uninstall:
		return m.Uninstall, nil
	case Update:
		return m.Update, nil
	case Enable:
		return m.Enable, nil
	case Disable:
		return m.Disable, nil
	}
	return "", fmt.Errorf("unknown verb %q", verb)
}

// utf8BOM is the byte-order mark the agent strips from the manifest.
const utf8BOM = "\xef\xbb\xbf"

// ParseManifest parses HandlerManifest.json like the agent: a UTF-8 BOM is
// stripped, the top level must be an array whose element [0] has a
// non-null "handlerManifest" object; all five commands must be strings;
// booleans are JSON booleans or strings equal to "true" (any case), any
// other value gives false.
func ParseManifest(data []byte) (Manifest, error) {
	data = bytes.TrimPrefix(data, []byte(utf8BOM))
	var top any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return Manifest{}, fmt.Errorf("malformed manifest file: %w", err)
	}
	if dec.More() {
		return Manifest{}, errors.New("malformed manifest file: trailing data")
	}
	arr, ok := top.([]any)
	if !ok || len(arr) == 0 {
		return Manifest{}, errors.New("malformed manifest file: not a non-empty array")
	}
	first, ok := arr[0].(map[string]any)
	if !ok {
		return Manifest{}, errors.New("malformed manifest file: element [0] is not an object")
	}
	hm, ok := first["handlerManifest"].(map[string]any)
	if !ok {
		return Manifest{}, errors.New("malformed manifest file: no handlerManifest object")
	}
	var m Manifest
	cmds := []struct {
		key string
		dst *string
	}{
		{"installCommand", &m.Install},
		{"uninstallCommand", &m.Uninstall},
		{"updateCommand", &m.Update},
		{"enableCommand", &m.Enable},
		{"disableCommand", &m.Disable},
	}
	for _, c := range cmds {
		v, present := hm[c.key]
		if !present {
			return Manifest{}, fmt.Errorf("manifest has no %s", c.key)
		}
		s, ok := v.(string)
		if !ok {
			return Manifest{}, fmt.Errorf("manifest %s is not a string", c.key)
		}
		*c.dst = s
	}
	m.ReportHeartbeat = parseAgentBool(hm["reportHeartbeat"])
	m.ContinueOnUpdateFailure = parseAgentBool(hm["continueOnUpdateFailure"])
	m.SupportsMultipleExtensions = parseAgentBool(hm["supportsMultipleExtensions"])
	switch v := hm["updateMode"].(type) {
	case nil:
	case string:
		m.UpdateMode, m.UpdateModeSet = v, true
	default:
		return Manifest{}, fmt.Errorf("manifest updateMode is not a string: %v", v)
	}
	return m, nil
}

// parseAgentBool is the agent's _parse_boolean_value with default false.
func parseAgentBool(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		return strings.ToLower(t) == "true"
	}
	return false
}
