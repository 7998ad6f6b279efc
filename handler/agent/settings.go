package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
)

// HandlerSettings are the settings of one sequence number. Protected
// settings stay encrypted until Protected is called: decrypting them needs
// the certificate the agent stored, and a run that does not need them must
// not fail because it is missing.
type HandlerSettings struct {
	// Found is false when <seq>.settings does not exist, as for the old
	// version's disable during an update.
	Found bool
	// Public is the publicSettings object, nil when absent or null.
	Public json.RawMessage

	protected  string // protectedSettings as given (base64), "" when none
	thumbprint string // protectedSettingsCertThumbprint as given
	dec        Decrypter
	what       string // names the input in messages
}

// HasProtected reports whether the settings carry protected settings.
func (h *HandlerSettings) HasProtected() bool { return h != nil && h.protected != "" }

// Protected decrypts the protected settings and returns the JSON object they
// hold, or nil when there are none. Each call decrypts again, so the
// plaintext lives no longer than the caller keeps it. Errors are
// *failure.Error with code BadSettings; none of them quotes the plaintext.
func (h *HandlerSettings) Protected(ctx context.Context) (json.RawMessage, error) {
	if !h.HasProtected() {
		return nil, nil
	}
	bad := func(cause error, format string, args ...any) error {
		return failure.New(failure.BadSettings, cause, "%s is not valid: %s. %s", h.what, fmt.Sprintf(format, args...), settingsHint)
	}
	if h.thumbprint == "" {
		return nil, bad(nil, "protectedSettings are present but protectedSettingsCertThumbprint is missing")
	}
	thumb, err := normalizeThumbprint(h.thumbprint)
	if err != nil {
		return nil, bad(err, "protectedSettingsCertThumbprint is not a hexadecimal certificate thumbprint")
	}
	// Base64 may be wrapped over lines by some tools; the agent writes one
	// line, but stripping white space costs nothing.
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(h.protected), ""))
	if err != nil {
		return nil, bad(err, "protectedSettings is not valid base64")
	}
	if h.dec == nil {
		return nil, bad(nil, "protectedSettings are present but the handler has no way to decrypt them")
	}
	plain, err := h.dec.Decrypt(ctx, der, thumb)
	if err != nil {
		var fe *failure.Error
		if errors.As(err, &fe) {
			return nil, err // already says what to do
		}
		return nil, failure.New(failure.BadSettings, err, "%s has protected settings that could not be decrypted with the certificate %s. Check that the VM agent is healthy and deploy the extension again.", h.what, thumb)
	}
	plain = bytes.TrimSpace(stripBOM(plain))
	// The cause is deliberately dropped: a decoder error quotes the input,
	// and the input is a secret.
	if !isJSONObject(plain) {
		return nil, bad(nil, "the decrypted protectedSettings are not a JSON object")
	}
	return json.RawMessage(plain), nil
}

// Decrypter decrypts protected settings: der is the DER-encoded CMS
// EnvelopedData, thumbprint the upper-case hex SHA-1 of the recipient
// certificate. It returns the plaintext.
type Decrypter interface {
	Decrypt(ctx context.Context, der []byte, thumbprint string) ([]byte, error)
}

// settingsHint ends settings messages: the settings come from the user's
// extension definition, so redeploying with corrected settings is the fix.
const settingsHint = "Correct the extension's settings and deploy the extension again."

// LoadSettings reads <configFolder>/<seq>.settings. A missing file gives
// Found=false and no error; an empty (0-byte) file, which the agent writes
// when the goal state has no settings, gives Found=true and no settings.
// dec decrypts the protected settings if Protected is ever called.
func LoadSettings(configFolder string, seq int, dec Decrypter) (*HandlerSettings, error) {
	if seq < 0 {
		return nil, failure.New(failure.BadSettings, nil, "The settings sequence number %d is negative. Restart the VM agent (waagent) and retry the operation.", seq)
	}
	path := filepath.Join(configFolder, strconv.Itoa(seq)+".settings")
	data, err := readLimited(path, maxInputFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &HandlerSettings{}, nil
	case errors.Is(err, errTooLarge):
		return nil, failure.New(failure.BadSettings, err, "The settings file %s is larger than 1 MiB. %s", path, settingsHint)
	case err != nil:
		return nil, failure.New(failure.BadSettings, err, "The settings file %s could not be read. Check the file's permissions, or remove the extension and add it again.", path)
	}
	return parseSettings(data, dec, "The settings file "+path)
}

// ParseSettings parses the content of a settings file. Protected settings
// are kept encrypted; dec (which may be nil) decrypts them if Protected is
// called.
func ParseSettings(data []byte, dec Decrypter) (*HandlerSettings, error) {
	return parseSettings(data, dec, "The extension settings")
}

// parseSettings does the work of ParseSettings; what names the input at the
// start of messages ("The settings file /…/0.settings").
func parseSettings(data []byte, dec Decrypter, what string) (*HandlerSettings, error) {
	bad := func(cause error, format string, args ...any) error {
		return failure.New(failure.BadSettings, cause, "%s is not valid: %s. %s", what, fmt.Sprintf(format, args...), settingsHint)
	}
	if len(data) > maxInputFile {
		return nil, bad(errTooLarge, "it is larger than 1 MiB")
	}
	data = bytes.TrimSpace(stripBOM(data))
	if len(data) == 0 {
		// The agent writes a 0-byte file when it has no settings at all.
		return &HandlerSettings{Found: true}, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		return nil, bad(err, "it is not a JSON object")
	}
	rawRS, ok := top["runtimeSettings"]
	if !ok {
		return nil, bad(nil, "runtimeSettings is missing")
	}
	var rs []json.RawMessage
	if err := json.Unmarshal(rawRS, &rs); err != nil {
		return nil, bad(err, "runtimeSettings is not a JSON array")
	}
	if len(rs) != 1 {
		return nil, bad(nil, "runtimeSettings has %d elements instead of exactly one", len(rs))
	}
	var elem map[string]json.RawMessage
	if err := json.Unmarshal(rs[0], &elem); err != nil || elem == nil {
		return nil, bad(err, "runtimeSettings[0] is not a JSON object")
	}
	rawHS, ok := elem["handlerSettings"]
	if !ok {
		return nil, bad(nil, "handlerSettings is missing")
	}
	var hs map[string]json.RawMessage
	if err := json.Unmarshal(rawHS, &hs); err != nil || hs == nil {
		return nil, bad(err, "handlerSettings is not a JSON object")
	}

	out := &HandlerSettings{Found: true, dec: dec, what: what}
	if raw, ok := hs["publicSettings"]; ok && !isNull(raw) {
		if !isJSONObject(raw) {
			return nil, bad(nil, "publicSettings is not a JSON object")
		}
		out.Public = cloneRaw(raw)
	}

	protected, err := optionalString(hs, "protectedSettings")
	if err != nil {
		return nil, bad(err, "protectedSettings is not a string")
	}
	thumb, err := optionalString(hs, "protectedSettingsCertThumbprint")
	if err != nil {
		return nil, bad(err, "protectedSettingsCertThumbprint is not a string")
	}
	// Without protected settings a thumbprint alone means nothing. With
	// them, both are checked only when Protected is called.
	out.protected = strings.TrimSpace(protected)
	out.thumbprint = thumb
	return out, nil
}

// optionalString returns the string value of key in m, "" when the key is
// absent or null, and an error when it holds another type.
func optionalString(m map[string]json.RawMessage, key string) (string, error) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("decoding %s: %w", key, err)
	}
	return s, nil
}

// normalizeThumbprint checks that a thumbprint is hex digits only and returns
// it upper-cased, as the agent names the certificate files. The thumbprint
// becomes part of a file name, so anything else (a "/", "..") is refused to
// keep it from pointing outside the certificate folder.
func normalizeThumbprint(tp string) (string, error) {
	tp = strings.TrimSpace(tp)
	// SHA-1 is 40 digits; allow longer digests in case the platform moves
	// on, but keep a bound so the name stays a sane file name.
	if len(tp) == 0 || len(tp) > 128 {
		return "", fmt.Errorf("thumbprint has %d characters", len(tp))
	}
	for i := 0; i < len(tp); i++ {
		c := tp[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", fmt.Errorf("thumbprint has a character that is not a hexadecimal digit at position %d", i+1)
		}
	}
	return strings.ToUpper(tp), nil
}

// isJSONObject reports whether raw is one valid JSON value that is an
// object.
func isJSONObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{' && json.Valid(raw)
}

// cloneRaw copies a raw message so the result does not alias the input
// buffer.
func cloneRaw(raw json.RawMessage) json.RawMessage {
	return json.RawMessage(bytes.Clone(bytes.TrimSpace(raw)))
}

// OpenSSL decrypts protected settings with the openssl command, as the agent
// does, using the certificate and key the agent stored as
// <CertDir>/<THUMBPRINT>.crt and .prv.
type OpenSSL struct {
	Runner cmdrun.Runner
	// CertDir is the agent's Lib.Dir (Environment.LibDir()).
	CertDir string
	// Binary is the openssl program; "" means "openssl" from PATH.
	Binary string
}

// decryptTimeout bounds one openssl run: decryption of a few kilobytes takes
// milliseconds, and a hung openssl must not eat the verb's time budget.
const decryptTimeout = 30 * time.Second

// Decrypt implements Decrypter. It tries `openssl cms` first and falls back
// to `openssl smime`, which older OpenSSL builds without cms support have.
func (o OpenSSL) Decrypt(ctx context.Context, der []byte, thumbprint string) ([]byte, error) {
	tp, err := normalizeThumbprint(thumbprint)
	if err != nil {
		return nil, failure.New(failure.BadSettings, err, "The protected settings name a certificate thumbprint that is not hexadecimal. %s", settingsHint)
	}
	crt := filepath.Join(o.CertDir, tp+".crt")
	prv := filepath.Join(o.CertDir, tp+".prv")
	for _, f := range []string{crt, prv} {
		if _, err := os.Stat(f); err != nil {
			return nil, failure.New(failure.BadSettings, err, "The certificate %s needed to decrypt the protected settings is not in %s (%s is missing). The VM agent stores it there with the goal state; restart the VM agent (waagent) and deploy the extension again.", tp, o.CertDir, filepath.Base(f))
		}
	}
	bin := o.Binary
	if bin == "" {
		bin = "openssl"
	}
	var causes []error
	for _, sub := range []string{"cms", "smime"} {
		res, err := o.Runner.Run(ctx, cmdrun.Cmd{
			Name:      bin,
			Args:      []string{sub, "-decrypt", "-inform", "DER", "-recip", crt, "-inkey", prv},
			Stdin:     bytes.NewReader(der),
			Timeout:   decryptTimeout,
			Sensitive: true,
		})
		if err == nil && res.ExitCode == 0 {
			return res.Stdout, nil
		}
		// Neither stream goes into the cause, which is logged: a failed
		// decryption can still have written part of the plaintext.
		if err == nil {
			err = fmt.Errorf("exit code %d", res.ExitCode)
		}
		causes = append(causes, fmt.Errorf("openssl %s: %w", sub, err))
		if errors.Is(err, cmdrun.ErrNotFound) {
			return nil, failure.New(failure.BadSettings, errors.Join(causes...), "The protected settings cannot be decrypted because the openssl command is not installed. Install openssl and retry the operation.")
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, failure.New(failure.BadSettings, errors.Join(causes...), "The protected settings could not be decrypted with the certificate %s in %s. Check that the VM agent is healthy and deploy the extension again.", tp, o.CertDir)
}
