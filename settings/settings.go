// Package settings parses and validates the extension's public settings.
//
// The shipped extension takes no settings; ours accepts three: two for users
// who install from a mirror of packages.microsoft.com (the mirror's base URL
// and the fingerprints of the keys that sign it), and the aadsshlogin
// version to hold a fleet at (version.go). Validation is strict
// (unknown keys, duplicate keys and wrong types are refused) because a typo
// silently ignored would install from the wrong place.
package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/installer/keys"
)

// DefaultFingerprints are the fingerprints pinned without settings: every
// key packages.microsoft.com publishes (installer/keys), oldest first.
func DefaultFingerprints() []string { return keys.MicrosoftFingerprints() }

const (
	keyRepositoryURL = "repositoryUrl"
	keyFingerprints  = "signingKeyFingerprints"
)

// Public is the validated public settings.
type Public struct {
	// RepositoryURL replaces https://packages.microsoft.com (same layout
	// below it); "" means the default. No trailing slash.
	RepositoryURL string
	// SigningKeyFingerprints replaces the pinned fingerprint list: 40 upper
	// case hex digits each; nil means the default.
	SigningKeyFingerprints []string
	// AADSSHLoginVersion holds aadsshlogin at this version (ValidPackageVersion
	// syntax) instead of the newest; "" means not set.
	AADSSHLoginVersion string
}

// CustomPins reports whether the settings replace the default pin list.
func (p Public) CustomPins() bool { return len(p.SigningKeyFingerprints) > 0 }

// Fingerprints returns the fingerprints to pin: the configured ones or
// Microsoft's published keys. The result is a fresh slice.
func (p Public) Fingerprints() []string {
	if len(p.SigningKeyFingerprints) == 0 {
		return DefaultFingerprints()
	}
	return append([]string(nil), p.SigningKeyFingerprints...)
}

func acceptedKeys() []string { return []string{keyRepositoryURL, keyFingerprints, keyVersion} }

func bad(format string, args ...any) error {
	return failure.New(failure.BadSettings, nil, format, args...)
}

// ParsePublic validates the publicSettings object. nil, empty or JSON null
// yield the zero Public (defaults). A key given as JSON null counts as not
// given, which lets templates pass optional parameters through.
func ParsePublic(raw json.RawMessage) (Public, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return Public{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	tok, err := dec.Token()
	if err != nil {
		return Public{}, failure.New(failure.BadSettings, err, "publicSettings is not valid JSON. Fix the extension's public settings.")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Public{}, bad("publicSettings must be a JSON object, got %s. Fix the extension's public settings.", describeToken(tok))
	}
	var p Public
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Public{}, failure.New(failure.BadSettings, err, "publicSettings is not valid JSON. Fix the extension's public settings.")
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return Public{}, failure.New(failure.BadSettings, err, "publicSettings is not valid JSON (at key %q). Fix the extension's public settings.", clip(key))
		}
		if seen[key] {
			return Public{}, bad("publicSettings has the key %q more than once. Keep one.", clip(key))
		}
		seen[key] = true
		switch key {
		case keyRepositoryURL:
			if p.RepositoryURL, err = parseRepositoryURL(value); err != nil {
				return Public{}, err
			}
		case keyFingerprints:
			if p.SigningKeyFingerprints, err = parseFingerprints(value); err != nil {
				return Public{}, err
			}
		case keyVersion:
			if p.AADSSHLoginVersion, err = parseVersion(value); err != nil {
				return Public{}, err
			}
		default:
			return Public{}, unknownKey(key)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Public{}, failure.New(failure.BadSettings, err, "publicSettings is not valid JSON. Fix the extension's public settings.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Public{}, failure.New(failure.BadSettings, err, "publicSettings has data after the JSON object. Fix the extension's public settings.")
	}
	return p, nil
}

func unknownKey(key string) error {
	accepted := acceptedKeys()
	hint := ""
	for _, k := range accepted {
		// encoding/json would match case-insensitively; we do not, so
		// point at the likely intended spelling.
		if strings.EqualFold(k, key) {
			hint = fmt.Sprintf(" (keys are case-sensitive: did you mean %q?)", k)
		}
	}
	return bad("publicSettings has an unknown key %q%s. Accepted keys: %s.", clip(key), hint, strings.Join(accepted, ", "))
}

func parseRepositoryURL(value json.RawMessage) (string, error) {
	if string(value) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(value, &s); err != nil {
		return "", bad("publicSettings.%s must be a string with an https:// URL, got %s.", keyRepositoryURL, clip(string(value)))
	}
	mustBe := func(why string) error {
		return bad("publicSettings.%s must be an https:// URL (%s), got %q. Use the URL of a mirror of packages.microsoft.com, or remove the key to use packages.microsoft.com.",
			keyRepositoryURL, why, clip(s))
	}
	if s == "" {
		return "", mustBe("it is empty")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", mustBe("it contains white space or control characters")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", mustBe("it does not parse")
	}
	switch {
	case !strings.EqualFold(u.Scheme, "https") || u.Opaque != "":
		return "", mustBe("only https is accepted")
	case u.Host == "" || u.Hostname() == "":
		return "", mustBe("a host name is required")
	case u.User != nil:
		return "", mustBe("user names and passwords in the URL are not accepted")
	case u.RawQuery != "" || u.ForceQuery:
		return "", mustBe("a query string is not accepted")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "", mustBe("a fragment is not accepted")
	}
	rest := s[len(u.Scheme)+len("://"):]
	authority, path, _ := strings.Cut(rest, "/")
	if r, ok := firstRefused(authority, ":"); ok {
		return "", mustBe(fmt.Sprintf("the host name contains %q: only letters, digits, \"-._~\" and \":\" before a port are accepted", r))
	}
	if r, ok := firstRefused(path, "/"); ok {
		return "", mustBe(fmt.Sprintf("the path contains %q: only letters, digits and \"-._~/\" are accepted", r))
	}
	// Keep the user's spelling but normalise the scheme and drop trailing
	// slashes: we append "/rhel/9/prod/" etc.
	return "https://" + strings.TrimRight(rest, "/"), nil
}

// firstRefused returns the first rune of s that a mirror's URL does not
// need: anything but the unreserved characters of RFC 3986 (ASCII letters,
// digits, "-._~") and extra. Nothing else is safe in the files the package
// managers read: dnf, yum and tdnf split baseurl= on commas and white space
// (so "https://m.example/pmc,file:///var/tmp/r" would give the repository a
// second, local address) and expand "$" variables, and apt reads "[", "]"
// and white space as option syntax. Percent-escapes are refused too: a
// mirror's path needs none, and without them no escaped form of those
// characters reaches a file either.
func firstRefused(s, extra string) (rune, bool) {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-._~", r), strings.ContainsRune(extra, r):
		default:
			return r, true
		}
	}
	return 0, false
}

func parseFingerprints(value json.RawMessage) ([]string, error) {
	if string(value) == "null" {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(value, &list); err != nil {
		return nil, bad("publicSettings.%s must be a list of key fingerprints (40 hexadecimal digits each), got %s.", keyFingerprints, clip(string(value)))
	}
	if len(list) == 0 {
		return nil, bad("publicSettings.%s must not be empty. List at least one key fingerprint, or remove the key to trust Microsoft's keys (%s).", keyFingerprints, strings.Join(DefaultFingerprints(), ", "))
	}
	out := make([]string, 0, len(list))
	seen := map[string]bool{}
	for i, item := range list {
		var s string
		if err := json.Unmarshal(item, &s); err != nil {
			return nil, bad("publicSettings.%s[%d] must be a string of 40 hexadecimal digits, got %s.", keyFingerprints, i, clip(string(item)))
		}
		fp, ok := NormalizeFingerprint(s)
		if !ok {
			return nil, bad("publicSettings.%s[%d] must be a key fingerprint of 40 hexadecimal digits (as `gpg --show-keys` prints it), got %q.", keyFingerprints, i, clip(s))
		}
		if !seen[fp] {
			seen[fp] = true
			out = append(out, fp)
		}
	}
	return out, nil
}

// NormalizeFingerprint removes spaces and upper-cases a v4 fingerprint, and
// reports whether the result is 40 hexadecimal digits.
func NormalizeFingerprint(s string) (string, bool) {
	s = strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	if len(s) != 40 {
		return s, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return s, false
		}
	}
	return s, true
}

// clip keeps echoed user input short enough for a status message.
func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return string(v)
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}
