// Package selinux answers, from the policy the kernel has loaded, the
// questions the handler has about SELinux: is it enforcing; does the policy
// run sshd's per-session work in a domain of its own (sshd_session_t: RHEL
// 10, OpenSSH 10 elsewhere); is aadsshlogin-selinux's module aad_permissions
// loaded; and does something already give sshd_session_t what that module
// gives sshd_t.
//
// Everything here only reads: no question changes the policy or the
// machine. Each question has a primary source and at most one fallback;
// when neither answers, the answer is Unknown, which callers must treat as
// "say nothing", never as a problem. docs/selinux.md explains the choices.
package selinux

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/sysroot"
)

// Names the checks look for.
const (
	// SessionDomain is the domain OpenSSH's sshd-session process runs in
	// where the policy defines it.
	SessionDomain = "sshd_session_t"
	// ClassicDomain is the domain aad_permissions grants its access to.
	ClassicDomain = "sshd_t"
	// ModuleName is the policy module aadsshlogin-selinux registers.
	ModuleName = "aad_permissions"
	// LocalModuleName is the name docs/selinux.md gives the administrator's
	// own module for sshd_session_t.
	LocalModuleName = "aad_sshd_session"
	// PermissiveModuleName is the module "semanage permissive -a
	// sshd_session_t" creates.
	PermissiveModuleName = "permissive_" + SessionDomain
)

// selinuxfs is where the kernel exposes the loaded policy.
const selinuxfs = "/sys/fs/selinux"

// cmdTimeout bounds each command: all of them only read, and semodule may
// wait briefly for the policy store's lock while a package installs.
const cmdTimeout = 15 * time.Second

// Mode is SELinux's state.
type Mode int

// The states; ModeUnknown means nothing could tell.
const (
	ModeUnknown Mode = iota
	Disabled
	Permissive
	Enforcing
)

func (m Mode) String() string {
	switch m {
	case Disabled:
		return "disabled"
	case Permissive:
		return "permissive"
	case Enforcing:
		return "enforcing"
	}
	return "unknown"
}

// Answer is a yes or no that may be unknown.
type Answer int

// The answers.
const (
	Unknown Answer = iota
	Yes
	No
)

func (a Answer) String() string {
	switch a {
	case Yes:
		return "yes"
	case No:
		return "no"
	}
	return "unknown"
}

func answer(b bool) Answer {
	if b {
		return Yes
	}
	return No
}

// Report is what Detect found. Fields after the first Unknown or No that
// makes the later questions moot stay Unknown.
type Report struct {
	Mode Mode
	// SessionDomain: the loaded policy defines sshd_session_t.
	SessionDomain Answer
	// Module: aad_permissions is loaded (semodule -l).
	Module Answer
	// Covered: sshd_session_t already has access of the kind aad_permissions
	// gives sshd_t, or is permissive; CoveredBy names the module that does
	// it.
	Covered   Answer
	CoveredBy string
	// Notes say where each answer came from, or why there is none, for the
	// log.
	Notes []string
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// String is a one-line summary for the log.
func (r Report) String() string {
	s := fmt.Sprintf("selinux=%s %s=%s %s=%s covered=%s", r.Mode, SessionDomain, r.SessionDomain, ModuleName, r.Module, r.Covered)
	if r.CoveredBy != "" {
		s += " (" + r.CoveredBy + ")"
	}
	if len(r.Notes) > 0 {
		s += "; " + strings.Join(r.Notes, "; ")
	}
	return s
}

// Probe holds Detect's collaborators.
type Probe struct {
	Runner cmdrun.Runner
	Root   sysroot.Root
	// Contexts asks the loaded policy whether a context is valid; nil
	// means Kernel{Root}.
	Contexts ContextChecker
}

// Detect answers the questions in order and stops where the rest cannot
// matter: SELinux off or unknown, or no sshd_session_t in the policy.
func (p Probe) Detect(ctx context.Context) Report {
	var rep Report
	rep.Mode = p.mode(ctx, &rep)
	if rep.Mode != Enforcing && rep.Mode != Permissive {
		return rep
	}
	rep.SessionDomain = p.defines(ctx, SessionDomain, &rep)
	if rep.SessionDomain != Yes {
		return rep
	}
	mods, err := ListModules(ctx, p.Runner)
	if err != nil {
		rep.note("module list: %v", err)
		return rep
	}
	rep.Module = answer(mods[ModuleName])
	switch {
	case mods[PermissiveModuleName]:
		rep.Covered, rep.CoveredBy = Yes, PermissiveModuleName+" makes "+SessionDomain+" permissive"
	case mods[LocalModuleName]:
		rep.Covered, rep.CoveredBy = Yes, LocalModuleName
	case rep.Module == Yes:
		rep.Covered, rep.CoveredBy = p.storeCoverage(&rep)
	}
	return rep
}

// mode reads the kernel's enforcing flag (what getenforce itself reads);
// getenforce answers when selinuxfs cannot be read under the root.
func (p Probe) mode(ctx context.Context, rep *Report) Mode {
	data, err := p.Root.ReadFile(selinuxfs + "/enforce")
	if err == nil {
		switch strings.TrimSpace(string(data)) {
		case "1":
			return Enforcing
		case "0":
			return Permissive
		}
		rep.note("%s/enforce holds %q", selinuxfs, cmdrun.Tail(string(data), 20))
	}
	res, err := p.run(ctx, "getenforce")
	if err != nil {
		rep.note("getenforce: %v", err)
		return ModeUnknown
	}
	if res.ExitCode != 0 {
		rep.note("getenforce exited %d", res.ExitCode)
		return ModeUnknown
	}
	return ParseGetenforce(res.Stdout)
}

// defines asks the kernel whether a context with the type is valid (the
// question libselinux's security_check_context asks); seinfo, when
// installed, answers when the kernel does not.
func (p Probe) defines(ctx context.Context, typ string, rep *Report) Answer {
	con := "system_u:system_r:" + typ
	// Without MLS a level makes every context invalid.
	if mls, err := p.Root.ReadFile(selinuxfs + "/mls"); err != nil || strings.TrimSpace(string(mls)) != "0" {
		con += ":s0"
	}
	checker := p.Contexts
	if checker == nil {
		checker = Kernel{Root: p.Root}
	}
	err := checker.CheckContext(con)
	switch {
	case err == nil:
		return Yes
	case errors.Is(err, ErrInvalidContext):
		return No
	}
	rep.note("context check: %v", err)
	res, err := p.run(ctx, "seinfo", "-t", typ)
	if err != nil {
		rep.note("seinfo: %v", err)
		return Unknown
	}
	if res.ExitCode != 0 {
		rep.note("seinfo exited %d: %s", res.ExitCode, cmdrun.Tail(res.Combined(), 200))
		return Unknown
	}
	return ParseSeinfoType(res.Stdout, typ)
}

func (p Probe) run(ctx context.Context, name string, args ...string) (cmdrun.Result, error) {
	return p.Runner.Run(ctx, cmdrun.Cmd{Name: name, Args: args, Timeout: cmdTimeout})
}

// ParseGetenforce reads getenforce's one word.
func ParseGetenforce(out []byte) Mode {
	switch strings.ToLower(strings.TrimSpace(string(out))) {
	case "enforcing":
		return Enforcing
	case "permissive":
		return Permissive
	case "disabled":
		return Disabled
	}
	return ModeUnknown
}

// ParseSeinfoType reads "seinfo -t TYPE" (setools 4): a "Types: N" line,
// then one indented line per type found (its statement, "type T, attr…;",
// with -x). Yes needs the type itself listed; No needs "Types: 0".
func ParseSeinfoType(out []byte, typ string) Answer {
	zero := false
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == typ || typeStatement(line, typ) {
			return Yes
		}
		if n, ok := strings.CutPrefix(line, "Types:"); ok && strings.TrimSpace(n) == "0" {
			zero = true
		}
	}
	if zero {
		return No
	}
	return Unknown
}

// typeStatement matches "type T;" and "type T, attribute, …;".
func typeStatement(line, typ string) bool {
	rest, ok := strings.CutPrefix(line, "type "+typ)
	return ok && (strings.HasPrefix(rest, ";") || strings.HasPrefix(rest, ",") || strings.HasPrefix(rest, " "))
}
