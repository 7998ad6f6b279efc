package checks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/sshdconfig"
	"github.com/aadsshlogin/handler/sysroot"
)

// SSHDWarnings reports sshd settings that make Entra logins fail or need
// care. It never fails: a missing configuration or sshd binary just yields
// fewer warnings. packageVersion is the OpenSSH server package's version
// (Preflight.OpenSSHVersion); sshd is asked only when it is empty or
// unreadable.
func SSHDWarnings(ctx context.Context, r cmdrun.Runner, root sysroot.Root, packageVersion string) []Warning {
	var warnings []Warning
	if cfg, err := sshdconfig.Read(root); err == nil {
		warnings = append(warnings, configWarnings(cfg.Directives)...)
	}
	if w, ok := openSSHVersionWarning(ctx, r, packageVersion); ok {
		warnings = append(warnings, w)
	}
	return warnings
}

// configWarnings looks for settings that apply to every connection (the
// global section, or "Match all") and break Entra logins. Only the first
// occurrence of each is reported: that is the one sshd uses, and one
// warning per problem is enough to act on.
func configWarnings(ds []sshdconfig.Directive) []Warning {
	var warnings []Warning
	var groupsSeen, pubkeySeen bool
	for _, d := range ds {
		if !d.ForEveryone() {
			continue
		}
		switch d.Keyword {
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
					configKeywordName(d.Keyword), d.Where()),
			})
		case "pubkeyauthentication":
			if pubkeySeen {
				continue
			}
			pubkeySeen = true
			if len(d.Args) > 0 && strings.EqualFold(d.Args[0], "no") {
				warnings = append(warnings, Warning{
					Name: "SSHDPubkeyAuthentication",
					Message: fmt.Sprintf("Public-key authentication is disabled globally (PubkeyAuthentication no at %s); "+
						"Entra login needs it. It works only if a Match block for Entra users, such as the one aadsshlogin adds, "+
						"turns it back on and no earlier Match block turns it off for them.", d.Where()),
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
