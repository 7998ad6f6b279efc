package checks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/sysroot"
)

// sshdConfigPath is where sshd reads its configuration; relative Include
// paths are resolved against its directory.
const (
	sshdConfigPath = "/etc/ssh/sshd_config"
	sshdConfigDir  = "/etc/ssh"
)

// Bounds for reading the configuration: sshd itself refuses Include nesting
// deeper than 16; the file count stops a glob over a huge directory from
// making a pre-flight check slow.
const (
	maxIncludeDepth = 16
	maxConfigFiles  = 256
	maxConfigBytes  = 1 << 20
)

// SSHDWarnings reports sshd settings that make Entra logins fail or need
// care. It never fails: a missing configuration or sshd binary just yields
// fewer warnings. packageVersion is the OpenSSH server package's version
// (Preflight.OpenSSHVersion); sshd is asked only when it is empty or
// unreadable.
func SSHDWarnings(ctx context.Context, r cmdrun.Runner, root sysroot.Root, packageVersion string) []Warning {
	var warnings []Warning
	if data, err := root.ReadFile(sshdConfigPath); err == nil {
		cr := &configReader{root: root}
		cr.parse(data, sshdConfigPath, false, 0)
		warnings = append(warnings, configWarnings(cr.out)...)
	}
	if w, ok := openSSHVersionWarning(ctx, r, packageVersion); ok {
		warnings = append(warnings, w)
	}
	return warnings
}

// directive is one configuration line: keyword lower-cased, arguments with
// quotes removed, and whether it sits inside a Match block.
type directive struct {
	file    string
	line    int
	keyword string
	args    []string
	inMatch bool
}

func (d directive) where() string { return fmt.Sprintf("%s:%d", d.file, d.line) }

// configReader flattens sshd_config and its Includes into directives, in
// the order sshd reads them.
type configReader struct {
	root  sysroot.Root
	files int
	out   []directive
}

// parse reads one file. inMatch is the Match state at the Include line: an
// Include inside a Match block is conditional, and a Match opened inside an
// included file ends with that file.
func (cr *configReader) parse(data []byte, file string, inMatch bool, depth int) {
	cr.files++
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxConfigBytes)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		keyword, args := splitConfigLine(sc.Text())
		if keyword == "" {
			continue
		}
		switch keyword {
		case "match":
			// "Match all" matches every connection, so what follows is in
			// effect global again.
			inMatch = !(len(args) == 1 && strings.EqualFold(args[0], "all"))
			continue
		case "include":
			cr.include(args, inMatch, depth)
			continue
		}
		cr.out = append(cr.out, directive{file: file, line: lineNo, keyword: keyword, args: args, inMatch: inMatch})
	}
}

func (cr *configReader) include(patterns []string, inMatch bool, depth int) {
	if depth+1 > maxIncludeDepth {
		return
	}
	for _, pat := range patterns {
		if !path.IsAbs(pat) {
			pat = path.Join(sshdConfigDir, pat)
		}
		matches, err := cr.root.Glob(pat)
		if err != nil {
			continue
		}
		for _, m := range matches {
			if cr.files >= maxConfigFiles {
				return
			}
			data, err := cr.root.ReadFile(m)
			if err != nil || len(data) > maxConfigBytes {
				continue
			}
			cr.parse(data, m, inMatch, depth+1)
		}
	}
}

// splitConfigLine splits a line the way sshd does: the keyword ends at
// whitespace or '=', arguments are separated by whitespace and may be
// double-quoted, and an unquoted token starting with '#' begins a comment.
// The keyword is returned lower-cased (sshd keywords are case-insensitive);
// an empty keyword means a blank or comment line.
func splitConfigLine(line string) (string, []string) {
	line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
	if line == "" || line[0] == '#' {
		return "", nil
	}
	end := strings.IndexAny(line, " \t=")
	if end < 0 {
		return strings.ToLower(line), nil
	}
	keyword := strings.ToLower(line[:end])
	rest := strings.TrimLeft(line[end:], " \t")
	// At most one '=' separates the keyword from its arguments.
	rest = strings.TrimLeft(strings.TrimPrefix(rest, "="), " \t")
	var args []string
	for rest != "" {
		if rest[0] == '#' {
			break
		}
		var tok string
		if rest[0] == '"' {
			closing := strings.IndexByte(rest[1:], '"')
			if closing < 0 {
				// sshd rejects an unterminated quote; keep what is there.
				tok, rest = rest[1:], ""
			} else {
				tok, rest = rest[1:1+closing], rest[2+closing:]
			}
		} else {
			i := strings.IndexAny(rest, " \t")
			if i < 0 {
				i = len(rest)
			}
			tok, rest = rest[:i], rest[i:]
		}
		args = append(args, tok)
		rest = strings.TrimLeft(rest, " \t")
	}
	return keyword, args
}

// configWarnings looks for global settings that break Entra logins. Only
// the first occurrence of each is reported: that is the one sshd uses, and
// one warning per problem is enough to act on.
func configWarnings(ds []directive) []Warning {
	var warnings []Warning
	var groupsSeen, pubkeySeen bool
	for _, d := range ds {
		if d.inMatch {
			continue
		}
		switch d.keyword {
		case "allowgroups", "denygroups":
			if groupsSeen {
				continue
			}
			groupsSeen = true
			warnings = append(warnings, Warning{
				Name: "SSHDGroupRestriction",
				Message: fmt.Sprintf("sshd_config restricts logins by group outside any Match block (%s at %s), "+
					"so an Entra user's first login fails before the user's groups exist. "+
					"Move AllowGroups/DenyGroups into a Match block that excludes Entra users, e.g. Match User *,!*@*.",
					configKeywordName(d.keyword), d.where()),
			})
		case "pubkeyauthentication":
			if pubkeySeen {
				continue
			}
			pubkeySeen = true
			if len(d.args) > 0 && strings.EqualFold(d.args[0], "no") {
				warnings = append(warnings, Warning{
					Name: "SSHDPubkeyAuthentication",
					Message: fmt.Sprintf("Public-key authentication is disabled globally (PubkeyAuthentication no at %s); "+
						"Entra login needs it. It works only if a Match block for Entra users, such as the one aadsshlogin adds, "+
						"turns it back on and no earlier Match block turns it off for them.", d.where()),
				})
			}
		}
	}
	return warnings
}

func configKeywordName(k string) string {
	if k == "denygroups" {
		return "DenyGroups"
	}
	return "AllowGroups"
}

// openSSHVersionWarning warns about OpenSSH servers older than 7.8, which
// reject the RSA-SHA2 certificate signatures that OpenSSH 8.8 and later
// clients send by default (bugzilla.mindrot.org #3351).
//
// The version comes from the package that installed sshd when there is one:
// its upstream version is sshd's, and the answer costs no process. Without
// a package (sshd built by hand) sshd itself is asked.
func openSSHVersionWarning(ctx context.Context, r cmdrun.Runner, packageVersion string) (Warning, bool) {
	major, minor, ok := ParsePackageOpenSSHVersion(packageVersion)
	if !ok {
		major, minor, ok = askOpenSSHVersion(ctx, r)
	}
	if !ok || major > 7 || (major == 7 && minor >= 8) {
		return Warning{}, false
	}
	return Warning{
		Name: "OpenSSHVersion",
		Message: fmt.Sprintf("This VM runs OpenSSH %d.%d, which rejects the RSA-SHA2 certificates sent by OpenSSH 8.8 "+
			"and later clients. Users with such clients must add ssh-rsa-cert-v01@openssh.com to PubkeyAcceptedKeyTypes "+
			"(e.g. az ssh vm ... -- -o PubkeyAcceptedKeyTypes=+ssh-rsa-cert-v01@openssh.com).", major, minor),
	}, true
}

// askOpenSSHVersion runs sshd for its version. "sshd -V" exists only since
// OpenSSH 9.x; older sshd reject the option but still print the version in
// their usage text, and "ssh -V" comes from the same source when sshd is
// not in PATH.
func askOpenSSHVersion(ctx context.Context, r cmdrun.Runner) (major, minor int, ok bool) {
	for _, c := range []cmdrun.Cmd{
		{Name: "sshd", Args: []string{"-V"}, Timeout: 5 * time.Second},
		{Name: "ssh", Args: []string{"-V"}, Timeout: 5 * time.Second},
	} {
		res, err := r.Run(ctx, c)
		if err != nil {
			continue
		}
		if major, minor, ok := ParseOpenSSHVersion(res.Combined()); ok {
			return major, minor, true
		}
	}
	return 0, 0, false
}

// ParsePackageOpenSSHVersion reads the upstream major and minor version
// from an OpenSSH package version: "1:9.2p1-2+deb12u3" (Debian, with an
// epoch), "8.7p1-38.el9" (rpm VERSION-RELEASE), "7.4p1".
func ParsePackageOpenSSHVersion(v string) (major, minor int, ok bool) {
	if epoch, rest, found := strings.Cut(v, ":"); found {
		if _, tail, okEpoch := leadingInt(epoch); !okEpoch || tail != "" {
			return 0, 0, false
		}
		v = rest
	}
	maj, rest, okMaj := leadingInt(v)
	if !okMaj || !strings.HasPrefix(rest, ".") {
		return 0, 0, false
	}
	mnr, _, okMin := leadingInt(rest[1:])
	if !okMin {
		return 0, 0, false
	}
	return maj, mnr, true
}

// ParseOpenSSHVersion finds "OpenSSH_<major>.<minor>" in s (as printed by
// "ssh -V", e.g. "OpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017").
func ParseOpenSSHVersion(s string) (major, minor int, ok bool) {
	const marker = "OpenSSH_"
	for {
		i := strings.Index(s, marker)
		if i < 0 {
			return 0, 0, false
		}
		s = s[i+len(marker):]
		maj, rest, okMaj := leadingInt(s)
		if okMaj && strings.HasPrefix(rest, ".") {
			if mnr, _, okMin := leadingInt(rest[1:]); okMin {
				return maj, mnr, true
			}
		}
	}
}

// leadingInt parses up to 6 leading decimal digits.
func leadingInt(s string) (int, string, bool) {
	n, i := 0, 0
	for i < len(s) && i < 6 && s[i] >= '0' && s[i] <= '9' {
		n = n*10 + int(s[i]-'0')
		i++
	}
	return n, s[i:], i > 0
}
