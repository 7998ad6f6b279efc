// Package verify checks after installation that SSH login with Entra ID is
// really wired: the aadsshlogin package's scripts edit nsswitch.conf, PAM
// and sshd_config, and rpm ignores %post failures while pam-auth-update
// and hardening tools can undo or refuse the edits, so a successful
// package install proves little. Each check reports a Problem with a
// likely cause in plain words.
package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/selinux"
	"github.com/aadsshlogin/handler/sshdconfig"
	"github.com/aadsshlogin/handler/sysroot"
)

// Problem is one missing piece of the wiring.
type Problem struct {
	Check  string // "nss", "pam", "sshd", "selinux", "package"
	Detail string // what is wrong
	Hint   string // the likely cause and what to do, in plain words
}

func (p Problem) String() string {
	if p.Hint == "" {
		return p.Detail
	}
	return p.Detail + " (" + p.Hint + ")"
}

// Problems is the list of problems found; it is the cause inside the
// *failure.Error that Verify and Quick return, for callers that want the
// individual checks (errors.As).
type Problems []Problem

func (ps Problems) Error() string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Check + ": " + p.String()
	}
	return strings.Join(parts, "; ")
}

// Options are Verify's collaborators.
type Options struct {
	Runner cmdrun.Runner
	Root   sysroot.Root
	// SELinux enables the check for the aad_permissions policy module
	// (when aadsshlogin-selinux was installed).
	SELinux bool
}

// certHandler is the program the package registers with sshd.
const certHandler = "/usr/sbin/aad_certhandler"

// probeUser is the user sshd's effective configuration is evaluated for:
// shaped like an Entra ID UPN, so that the package's "Match User *@*"
// block applies to it.
const probeUser = "entra-probe@contoso.com"

// probeConn is the connection the configuration files are evaluated for
// when sshd -T cannot run: the same one effectiveAKC passes to sshd -T -C.
func probeConn() sshdconfig.Conn {
	return sshdconfig.Conn{User: probeUser, Host: "localhost", Address: "127.0.0.1"}
}

// maxMessage bounds the user message: the agent shows it in the portal,
// where long texts are cut.
const maxMessage = 900

// Verify runs all checks and returns nil or a *failure.Error with code
// VerificationFailed naming every problem.
func Verify(ctx context.Context, o Options) error {
	var ps Problems
	ps = append(ps, checkNSS(o.Root)...)
	ps = append(ps, checkPAM(o.Root)...)
	ps = append(ps, checkSSHD(ctx, o)...)
	if o.SELinux {
		ps = append(ps, checkSELinux(ctx, o)...)
	}
	return problemsError(ps)
}

// Quick is the cheap check for the enable fast path: no commands, a few
// file reads. It returns the same kind of error as Verify.
func Quick(root sysroot.Root) error {
	var ps Problems
	if !root.Exists(certHandler) {
		ps = append(ps, Problem{Check: "package", Detail: certHandler + " is missing",
			Hint: "the aadsshlogin package was removed or damaged; re-apply the extension to reinstall it"})
	}
	ps = append(ps, checkNSS(root)...)
	cfg, err := sshdconfig.Read(root)
	if err != nil {
		ps = append(ps, Problem{Check: "sshd", Detail: "/etc/ssh/sshd_config could not be read", Hint: "is openssh-server installed?"})
	} else if !mentions(cfg, certHandlerName) {
		ps = append(ps, sshdMissing("/etc/ssh/sshd_config does not mention aad_certhandler"))
	}
	return problemsError(ps)
}

func problemsError(ps Problems) error {
	if len(ps) == 0 {
		return nil
	}
	return failure.New(failure.VerificationFailed, ps, "%s", message(ps))
}

// message names every problem; hints are dropped from the last problem
// backwards when the text would exceed maxMessage, and as a last resort the
// text is cut.
func message(ps Problems) string {
	const prefix = "aadsshlogin was installed but SSH login with Entra ID is not wired: "
	shown := append(Problems(nil), ps...)
	build := func() string {
		parts := make([]string, len(shown))
		for i, p := range shown {
			parts[i] = p.String()
		}
		return prefix + strings.Join(parts, "; ") + "."
	}
	msg := build()
	for i := len(shown) - 1; i >= 0 && len([]rune(msg)) > maxMessage; i-- {
		shown[i].Hint = ""
		msg = build()
	}
	if r := []rune(msg); len(r) > maxMessage {
		msg = string(r[:maxMessage-1]) + "…"
	}
	return msg
}

// checkNSS requires the aad source on the passwd line of nsswitch.conf;
// without it Entra users do not exist for sshd and login fails before any
// key is checked.
func checkNSS(root sysroot.Root) []Problem {
	data, err := root.ReadFile("/etc/nsswitch.conf")
	if err != nil {
		return []Problem{{Check: "nss", Detail: "/etc/nsswitch.conf is missing or unreadable",
			Hint: "restore it with a passwd line listing the aad source, then re-apply the extension"}}
	}
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		db, sources, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(db) != "passwd" {
			continue
		}
		for _, s := range strings.Fields(sources) {
			if s == "aad" {
				return nil
			}
		}
	}
	return []Problem{{Check: "nss", Detail: "/etc/nsswitch.conf has no aad source on its passwd line",
		Hint: "the package's setup did not run, or authselect or another configuration tool rewrote the file afterwards; add aad to the passwd line or re-apply the extension"}}
}

// checkPAM requires some active line under /etc/pam.d that loads pam_aad,
// which provisions the local account at first login.
func checkPAM(root sysroot.Root) []Problem {
	entries, err := os.ReadDir(root.Path("/etc/pam.d"))
	if err == nil {
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			data, err := root.ReadFile("/etc/pam.d/" + e.Name())
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(data), "\n") {
				line, _, _ = strings.Cut(line, "#")
				if strings.Contains(line, "pam_aad") {
					return nil
				}
			}
		}
	}
	p := Problem{Check: "pam", Detail: "PAM has no pam_aad entry in /etc/pam.d"}
	if root.Exists("/usr/sbin/pam-auth-update") || root.Exists("/usr/share/pam-configs") {
		p.Hint = "on Debian/Ubuntu, pam-auth-update refuses to update locally modified /etc/pam.d/common-* files: run 'sudo pam-auth-update --force' or undo the local edits, then re-apply the extension"
	} else {
		p.Hint = "authselect or another tool probably rewrote the PAM configuration after the package added pam_aad; restore it, then re-apply the extension"
	}
	return []Problem{p}
}

const certHandlerName = "aad_certhandler"

func sshdMissing(detail string) Problem {
	return Problem{Check: "sshd", Detail: detail,
		Hint: "sshd_config was probably rewritten by a hardening tool after the package added its Match block; restore the block with 'AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k', then re-apply the extension"}
}

// checkSSHD prefers sshd's own view (sshd -T for a UPN-shaped user), which
// also honours Include files and Match blocks exactly as sshd will. sshd -T
// fails without host keys or without its privilege-separation directory,
// both common in fresh images; a throwaway host key is tried, then the
// configuration files are read directly.
func checkSSHD(ctx context.Context, o Options) []Problem {
	if o.Runner != nil {
		if value, ok := effectiveAKC(ctx, o); ok {
			if strings.Contains(value, certHandlerName) {
				return nil
			}
			return []Problem{sshdMissing(fmt.Sprintf("sshd's effective configuration for Entra ID users has AuthorizedKeysCommand %s instead of %s", orNone(value), certHandler))}
		}
	}
	cfg, err := sshdconfig.Read(o.Root)
	if err != nil {
		return []Problem{{Check: "sshd", Detail: "/etc/ssh/sshd_config could not be read", Hint: "is openssh-server installed?"}}
	}
	d, ok := cfg.Effective("authorizedkeyscommand", probeConn())
	value := d.Value()
	if strings.Contains(value, certHandlerName) {
		return nil
	}
	if !ok {
		return []Problem{sshdMissing("sshd_config has no AuthorizedKeysCommand with aad_certhandler for Entra ID users")}
	}
	if strings.EqualFold(value, "none") {
		value = "none"
	}
	return []Problem{sshdMissing(fmt.Sprintf("AuthorizedKeysCommand for Entra ID users is '%s' (set in %s) instead of %s", value, d.File, certHandler))}
}

// mentions reports whether any active line of the configuration has s in
// its arguments.
func mentions(cfg *sshdconfig.Config, s string) bool {
	for _, d := range cfg.Directives {
		if strings.Contains(d.Value(), s) {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// effectiveAKC asks sshd for the AuthorizedKeysCommand that applies to the
// probe user; ok is false when sshd could not tell.
func effectiveAKC(ctx context.Context, o Options) (string, bool) {
	sshd := "sshd"
	if o.Root.Exists("/usr/sbin/sshd") {
		sshd = "/usr/sbin/sshd"
	}
	conn := probeConn()
	args := []string{"-T", "-C", "user=" + conn.User + ",host=" + conn.Host + ",addr=" + conn.Address}
	res, err := o.Runner.Run(ctx, cmdrun.Cmd{Name: sshd, Args: args})
	if err != nil {
		return "", false
	}
	if res.ExitCode != 0 && strings.Contains(res.Combined(), "no hostkeys available") {
		key, cleanup, kerr := throwawayHostKey(ctx, o)
		if kerr != nil {
			return "", false
		}
		defer cleanup()
		res, err = o.Runner.Run(ctx, cmdrun.Cmd{Name: sshd, Args: append(args, "-h", key)})
		if err != nil {
			return "", false
		}
	}
	if res.ExitCode != 0 {
		return "", false
	}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.EqualFold(k, "authorizedkeyscommand") {
			v = strings.TrimSpace(v)
			if v == "none" {
				v = ""
			}
			return v, true
		}
	}
	// sshd -T omits unset options in some versions: unset means none.
	return "", true
}

// throwawayHostKey generates a host key under the root's /tmp, only so that
// sshd -T can run; it is removed right after.
func throwawayHostKey(ctx context.Context, o Options) (string, func(), error) {
	dir, err := os.MkdirTemp(o.Root.Path("/tmp"), "aadsshlogin-verify-")
	if err != nil {
		return "", nil, fmt.Errorf("creating temporary directory: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	target := targetPath(o.Root, filepath.Join(dir, "hostkey"))
	res, err := o.Runner.Run(ctx, cmdrun.Cmd{Name: "ssh-keygen", Args: []string{"-q", "-t", "ed25519", "-N", "", "-f", target}})
	if err != nil || res.ExitCode != 0 {
		cleanup()
		return "", nil, errors.Join(errors.New("ssh-keygen failed"), err)
	}
	return target, cleanup, nil
}

// targetPath turns a host path under root back into the target path that
// commands (which run in the real root) understand.
func targetPath(root sysroot.Root, host string) string {
	r := string(root)
	if r == "" || r == "/" {
		return host
	}
	rel, err := filepath.Rel(r, host)
	if err != nil {
		return host
	}
	return "/" + rel
}

// checkSELinux requires the aad_permissions module that lets sshd run
// aad_certhandler and pam_aad create users under SELinux enforcement.
// Whether the module also covers sshd_session_t is not a verification
// failure but advice (checks.SELinuxWarnings): the install itself worked.
func checkSELinux(ctx context.Context, o Options) []Problem {
	if o.Runner == nil {
		return nil
	}
	mods, err := selinux.ListModules(ctx, o.Runner)
	if err != nil {
		return []Problem{{Check: "selinux", Detail: "'semodule -l' could not list the SELinux modules",
			Hint: "install policycoreutils so the aad_permissions module can be checked, then re-apply the extension"}}
	}
	if mods[selinux.ModuleName] {
		return nil
	}
	return []Problem{{Check: "selinux", Detail: "the SELinux module aad_permissions is not loaded",
		Hint: "aadsshlogin-selinux could not register its policy, often because policycoreutils is too old; update it and re-apply the extension"}}
}
