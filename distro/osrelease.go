// Package distro identifies the Linux distribution of the target machine,
// checks it against the support matrix and derives everything the installer
// needs from it: the package manager, the packages.microsoft.com folder, the
// release number and codename used in repository URLs.
//
// The package manager is chosen from the distribution, not from which
// binaries happen to exist: the shipped extension probed apt-get, yum and
// zypper in that order and so picked yum on distributions that merely carry
// a compatibility shim, or failed on Mariner/Azure Linux (tdnf).
package distro

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
)

// OSRelease holds the fields of os-release(5) (or of a legacy release file)
// that the handler uses.
type OSRelease struct {
	ID         string   // lower case, e.g. "ubuntu", "rhel", "opensuse-leap"
	IDLike     []string // lower case, from ID_LIKE
	VersionID  string   // e.g. "22.04", "8.9", "15.5", "2.0"
	Codename   string   // VERSION_CODENAME, else UBUNTU_CODENAME
	PrettyName string
	Source     string // the file it was read from
}

// ParseOSRelease parses os-release(5) content. It follows the format's
// shell-compatible subset: KEY=value lines, values optionally in double
// quotes (with \" \\ \$ \` escapes) or single quotes, comments and blank
// lines. Lines that do not follow the format are ignored, as the
// specification asks. An input without a single assignment is an error.
func ParseOSRelease(data []byte) (OSRelease, error) {
	vars := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok || !validKey(key) {
			continue
		}
		value, err := unquote(raw)
		if err != nil {
			continue
		}
		vars[key] = value
	}
	if len(vars) == 0 {
		return OSRelease{}, errors.New("no KEY=value assignment found")
	}
	osr := OSRelease{
		ID:         strings.ToLower(strings.TrimSpace(vars["ID"])),
		VersionID:  strings.TrimSpace(vars["VERSION_ID"]),
		Codename:   strings.ToLower(strings.TrimSpace(vars["VERSION_CODENAME"])),
		PrettyName: strings.TrimSpace(vars["PRETTY_NAME"]),
	}
	if osr.Codename == "" {
		osr.Codename = strings.ToLower(strings.TrimSpace(vars["UBUNTU_CODENAME"]))
	}
	for _, like := range strings.Fields(vars["ID_LIKE"]) {
		osr.IDLike = append(osr.IDLike, strings.ToLower(like))
	}
	return osr, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// unquote evaluates a value the way a POSIX shell would for the subset
// os-release allows: concatenated unquoted, '…' and "…" segments.
func unquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		switch c := s[i]; c {
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated single quote")
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 2
		case '"':
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '"' {
					closed = true
					i++
					break
				}
				if c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return "", errors.New("unterminated double quote")
			}
		case '\\':
			if i+1 < len(s) {
				b.WriteByte(s[i+1])
				i += 2
			} else {
				i++
			}
		case ' ', '\t':
			// Unquoted whitespace would end the word in a shell; what
			// follows can only be a trailing comment or junk.
			return b.String(), nil
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// releaseNumber finds the first "N.N" (or, failing that, "N") in legacy
// release files such as "CentOS Linux release 7.9.2009 (Core)".
var (
	releaseNumberDotted = regexp.MustCompile(`[0-9]+\.[0-9]+`)
	releaseNumberPlain  = regexp.MustCompile(`[0-9]+`)
)

// Detect reads the distribution identity from the target root: the
// os-release files first, then the legacy Red Hat release files that old
// RHEL/CentOS 7 images may carry without os-release.
func Detect(root sysroot.Root) (OSRelease, error) {
	var problems []string
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		data, err := root.ReadFile(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			}
			continue
		}
		osr, err := ParseOSRelease(data)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		osr.Source = p
		return osr, nil
	}
	for _, p := range []string{"/etc/centos-release", "/etc/redhat-release"} {
		data, err := root.ReadFile(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			}
			continue
		}
		osr := OSRelease{ID: "rhel", Source: p, PrettyName: strings.TrimSpace(string(firstLine(data)))}
		if p == "/etc/centos-release" || bytes.Contains(bytes.ToLower(data), []byte("centos")) {
			osr.ID = "centos"
		}
		if v := releaseNumberDotted.Find(data); v != nil {
			osr.VersionID = string(v)
		} else if v := releaseNumberPlain.Find(data); v != nil {
			osr.VersionID = string(v)
		}
		return osr, nil
	}
	var cause error
	if len(problems) > 0 {
		cause = errors.New(strings.Join(problems, "; "))
	}
	return OSRelease{}, failure.New(failure.Unsupported, cause,
		"Cannot identify the Linux distribution: none of /etc/os-release, /usr/lib/os-release, /etc/centos-release or /etc/redhat-release could be read. Supported: %s. Learn more at %s",
		supportedSummary(), LearnMoreURL)
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}
