package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"

	"github.com/aadsshlogin/handler/failure"
)

const (
	keyHTTPProxy     = "httpProxy"
	keyProxyUsername = "httpProxyUsername"
	keyProxyPassword = "httpProxyPassword"
)

// parseHTTPProxy validates the httpProxy setting: http:// or https://, a
// host and a port, nothing else (no credentials: those belong in the
// protected settings, which are encrypted; no path or query). The value is
// written into the package managers' environment, so only the characters
// a host name or address and a port need are accepted.
func parseHTTPProxy(value json.RawMessage) (string, error) {
	if string(value) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(value, &s); err != nil {
		return "", bad("publicSettings.%s must be a string such as \"http://proxy.example.com:3128\", got %s.", keyHTTPProxy, clip(string(value)))
	}
	mustBe := func(why string) error {
		return bad("publicSettings.%s must be http://host:port or https://host:port (%s), got %q. Put credentials in the protected settings %s and %s.",
			keyHTTPProxy, why, clip(s), keyProxyUsername, keyProxyPassword)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return "", mustBe("only the http and https schemes are accepted")
	}
	if strings.Contains(rest, "@") {
		return "", mustBe("user names and passwords are not accepted here")
	}
	rest = strings.TrimSuffix(rest, "/")
	if r, bad := firstRefused(rest, ":"); bad {
		return "", mustBe("the character " + strings.Trim(jsonQuote(string(r)), `"`) + " is not accepted")
	}
	u, err := url.Parse(scheme + "://" + rest)
	if err != nil || u.Hostname() == "" || u.Port() == "" || u.Path != "" {
		return "", mustBe("a host and a port are required")
	}
	return u.String(), nil
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Protected is the validated protected settings: only the proxy's
// credentials, which are never logged.
type Protected struct {
	HTTPProxyUsername string
	HTTPProxyPassword string
}

// ParseProtected validates the decrypted protectedSettings object strictly,
// like ParsePublic. Messages never echo the values.
func ParseProtected(raw json.RawMessage) (Protected, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return Protected{}, nil
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&fields); err != nil {
		return Protected{}, failure.New(failure.BadSettings, errors.New("protectedSettings is not a JSON object"),
			"protectedSettings is not a JSON object. Fix the extension's protected settings.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Protected{}, bad("protectedSettings has data after the JSON object. Fix the extension's protected settings.")
	}
	var p Protected
	for k, v := range fields {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return Protected{}, bad("protectedSettings.%s must be a string.", clip(k))
		}
		for _, r := range s {
			if r < ' ' || r == 0x7f {
				return Protected{}, bad("protectedSettings.%s contains a control character.", clip(k))
			}
		}
		switch k {
		case keyProxyUsername:
			p.HTTPProxyUsername = s
		case keyProxyPassword:
			p.HTTPProxyPassword = s
		default:
			return Protected{}, bad("protectedSettings has an unknown key %q. Accepted keys: %s, %s.", clip(k), keyProxyUsername, keyProxyPassword)
		}
	}
	if p.HTTPProxyPassword != "" && p.HTTPProxyUsername == "" {
		return Protected{}, bad("protectedSettings.%s is set without %s.", keyProxyPassword, keyProxyUsername)
	}
	return p, nil
}
