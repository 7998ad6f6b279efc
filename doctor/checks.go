package doctor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/checks"
	"github.com/aadsshlogin/handler/cloud"
	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/handler/agent"
	"github.com/aadsshlogin/handler/imds"
	"github.com/aadsshlogin/handler/installer"
	"github.com/aadsshlogin/handler/installer/pkgmgr"
	"github.com/aadsshlogin/handler/installer/verify"
	"github.com/aadsshlogin/handler/selinux"
	"github.com/aadsshlogin/handler/sshdconfig"
)

// Clock thresholds. Entra SSH certificates (az ssh) are valid for one hour
// (Azure/azure-cli-extensions#3565, "default to an hour"), checked against
// the VM's clock; token validators commonly tolerate 5 minutes of skew: a
// clock off by more than the certificate's lifetime rejects every
// certificate, one off by minutes rejects fresh ones now and then.
const (
	clockWarn = 5 * time.Minute
	clockFail = time.Hour
)

// reapply is the fix for anything the extension sets up.
const reapply = "Re-apply the extension (az vm extension set -g <resource-group> --vm-name <vm-name> --publisher Microsoft.Azure.ActiveDirectory --name AADSSHLoginForLinux; for a scale set: az vmss extension set … and az vmss update-instances)."

const identityFix = "Enable the VM's system-assigned managed identity (az vm identity assign -g <resource-group> -n <vm-name>; for a scale set: az vmss identity assign -g <resource-group> -n <scale-set-name>), wait a few minutes, then run doctor again."

// env holds the answers several checks share; each is computed once, on
// first use, bounded by the run's context.
type env struct {
	o    Options
	ctx  context.Context
	log  logrus.FieldLogger
	arc  bool
	once struct {
		cloud, identity, probes, platform, packages, sshd, state sync.Once
	}
	cloudEnv    string
	cloudErr    error
	identityAns imds.IdentityAnswer
	probeRes    []checks.ProbeResult
	probeEPs    map[string]int
	plat        distro.Platform
	platErr     error
	pkgs        map[string]string
	pkgErr      error
	sshdWarn    []checks.Warning
	st          *installer.State
	stErr       error
}

func newEnv(ctx context.Context, o Options) *env {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return &env{o: o, ctx: ctx, log: l, arc: checks.IsArc(o.Root)}
}

func (e *env) checks() []check {
	return []check{
		{"imds", e.checkIMDS},
		{"identity", e.checkIdentity},
		{"cloud", e.checkCloud},
		{"endpoint-signin", e.checkEndpoint("signin")},
		{"endpoint-rbac", e.checkEndpoint("rbac")},
		{"endpoint-repository", e.checkEndpoint("repository")},
		{"clock", e.checkClock},
		{"repository", e.checkRepository},
		{"package", e.checkPackage},
		{"obsolete-aadlogin", e.checkObsolete},
		{"authorized-keys-command", e.checkCertHandler},
		{"sshd-config", e.checkSSHDConfig},
		{"sshd-running", e.checkSSHDRunning},
		{"openssh-version", e.checkOpenSSHVersion},
		{"sshd-groups", e.checkSSHDGroups},
		{"nss", e.checkNSS},
		{"pam", e.checkPAM},
		{"selinux", e.checkSELinux},
		{"sudo", e.checkSudo},
		{"entra-sessions", e.checkSessions},
		{"handler-state", e.checkState},
		{"last-status", e.checkLastStatus},
	}
}

// Shared answers.

func (e *env) azEnvironment() (string, error) {
	e.once.cloud.Do(func() {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		defer cancel()
		e.cloudEnv, e.cloudErr = e.o.IMDS.AzEnvironment(ctx)
	})
	return e.cloudEnv, e.cloudErr
}

func (e *env) cloud() (cloud.Cloud, bool) {
	if e.arc {
		return cloud.Public(), true
	}
	name, err := e.azEnvironment()
	if err != nil {
		return cloud.Public(), false
	}
	return cloud.ForAzEnvironment(name)
}

func (e *env) identity() imds.IdentityAnswer {
	e.once.identity.Do(func() {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		defer cancel()
		e.identityAns = e.o.IMDS.Identity(ctx)
	})
	return e.identityAns
}

func (e *env) state() (*installer.State, error) {
	e.once.state.Do(func() { e.st, e.stErr = installer.LoadState(e.o.Root) })
	return e.st, e.stErr
}

// repositoryURL is the host the packages come from: the one the last
// install used, else the cloud's.
func (e *env) repositoryURL() string {
	if st, _ := e.state(); st != nil && st.RepoURL != "" {
		if u, err := url.Parse(st.RepoURL); err == nil && u.Host != "" {
			return u.Scheme + "://" + u.Host + "/"
		}
	}
	c, _ := e.cloud()
	return c.RepositoryBase + "/"
}

func (e *env) probes() ([]checks.ProbeResult, map[string]int) {
	e.once.probes.Do(func() {
		c, _ := e.cloud()
		var eps []checks.Endpoint
		e.probeEPs = map[string]int{}
		add := func(key, name, u string) {
			e.probeEPs[key] = len(eps)
			eps = append(eps, checks.Endpoint{Name: name, URL: u})
		}
		if c.LoginHost != "" {
			add("signin", "Entra ID sign-in", "https://"+c.LoginHost+"/")
		}
		if c.PASHost != "" {
			add("rbac", "Azure RBAC login check (PAS)", "https://"+c.PASHost+"/")
		}
		add("repository", "package repository", e.repositoryURL())
		e.probeRes = checks.Probe(e.ctx, eps, e.o.Dialer)
	})
	return e.probeRes, e.probeEPs
}

func (e *env) platform() (distro.Platform, error) {
	e.once.platform.Do(func() {
		osr, err := distro.Detect(e.o.Root)
		if err != nil {
			e.platErr = err
			return
		}
		e.plat, e.platErr = distro.Resolve(osr, e.o.Arch)
	})
	return e.plat, e.platErr
}

// packages asks the package database once for everything the checks need.
func (e *env) packages() (map[string]string, error) {
	e.once.packages.Do(func() {
		p, err := e.platform()
		if err != nil {
			e.pkgErr = fmt.Errorf("the distribution could not be identified: %w", err)
			return
		}
		if e.o.Runner == nil {
			e.pkgErr = fmt.Errorf("no command runner")
			return
		}
		m, err := pkgmgr.New(p.PackageManager, pkgmgr.Options{Runner: e.o.Runner, Root: e.o.Root, Log: e.log})
		if err != nil {
			e.pkgErr = fmt.Errorf("package manager %s: %w", p.PackageManager, err)
			return
		}
		ctx, cancel := context.WithTimeout(e.ctx, 8*time.Second)
		defer cancel()
		names := []string{installer.PackageName, installer.SELinuxPackageName, "aadlogin", "aadlogin-selinux", "openssh-server", "openssh"}
		e.pkgs, e.pkgErr = m.Installed(ctx, names...)
	})
	return e.pkgs, e.pkgErr
}

func (e *env) preflight() (checks.Preflight, error) {
	pkgs, err := e.packages()
	return checks.Preflight(pkgs), err
}

func (e *env) sshdWarnings() []checks.Warning {
	e.once.sshd.Do(func() {
		pre, _ := e.preflight()
		e.sshdWarn = checks.SSHDWarnings(e.ctx, e.o.Runner, e.o.Root, pre.OpenSSHVersion())
	})
	return e.sshdWarn
}

func pass(format string, args ...any) Check {
	return Check{Status: Pass, Message: fmt.Sprintf(format, args...)}
}

func skip(format string, args ...any) Check {
	return Check{Status: Skip, Message: fmt.Sprintf(format, args...)}
}

// The checks.

func (e *env) checkIMDS(context.Context) Check {
	if e.arc {
		return skip("Azure Arc-enabled server: there is no Azure Instance Metadata Service; the Arc agent provides the identity.")
	}
	name, err := e.azEnvironment()
	if err != nil {
		return Check{Status: Fail, Message: failure.MessageOf(err),
			Fix: "Make sure nothing on the VM blocks http://169.254.169.254 (firewall or iptables rules, a proxy in the environment without no_proxy=169.254.169.254); Entra logins use the metadata service for the VM's identity."}
	}
	return pass("The Instance Metadata Service answers (azEnvironment %s).", name)
}

func (e *env) checkIdentity(context.Context) Check {
	if e.arc {
		return skip("Azure Arc-enabled server: the Arc agent provides the identity.")
	}
	a := e.identity()
	switch {
	case a.Err == nil && a.Kind == imds.IdentitySystemAssigned:
		return pass("The VM has its system-assigned managed identity (%s).", a.ResourceID)
	case a.Err == nil:
		return pass("The metadata service hands out a token for the VM sign-in application; the token does not name its identity, so it is taken to be the system-assigned one (IMDS's default).")
	case failure.CodeOf(a.Err) == failure.NoManagedIdentity:
		return Check{Status: Fail, Message: failure.MessageOf(a.Err), Fix: identityFix}
	}
	return skip("Not determined: the metadata service did not answer the token request (%s). See the imds check.", failure.MessageOf(a.Err))
}

func (e *env) checkCloud(context.Context) Check {
	if e.arc {
		c := cloud.Public()
		return pass("Azure Arc-enabled server: Azure public cloud endpoints (sign-in %s, RBAC %s).", c.LoginHost, c.PASHost)
	}
	name, err := e.azEnvironment()
	if err != nil {
		return skip("Not determined: the metadata service did not answer; the endpoints below are the Azure public cloud's.")
	}
	c, known := cloud.ForAzEnvironment(name)
	if !known {
		return Check{Status: Warn, Message: fmt.Sprintf("Unknown Azure environment %q; the endpoints below are the Azure public cloud's.", name),
			Fix: "Check the endpoints your cloud documents for Entra ID login; report the environment name to the extension's maintainers."}
	}
	if c.LoginHost == "" {
		return pass("%s: its sign-in endpoints are not public; only the repository (%s) is checked.", c.Name, c.RepositoryBase)
	}
	return pass("%s: sign-in %s, RBAC %s, repository %s.", c.Name, c.LoginHost, c.PASHost, c.RepositoryBase)
}

func (e *env) checkEndpoint(key string) func(context.Context) Check {
	return func(context.Context) Check {
		res, idx := e.probes()
		i, ok := idx[key]
		if !ok {
			return skip("This cloud's endpoint for it is not public.")
		}
		r := res[i]
		if r.Reached {
			return pass("%s", r.Line)
		}
		fix := "Allow outbound HTTPS (TCP 443) from the VM to this host (NSG, firewall, route table); if the VM must use a proxy, set http_proxy/https_proxy for the agent and sshd's environment."
		if key == "repository" {
			fix = "Allow outbound HTTPS (TCP 443) to the repository (or your mirror); needed for installs and updates, not for logins."
			return Check{Status: Warn, Message: r.Line, Fix: fix}
		}
		return Check{Status: Fail, Message: r.Line + " Entra logins need it.", Fix: fix}
	}
}

func (e *env) checkClock(context.Context) Check {
	now := e.o.Now()
	ref, source := time.Time{}, ""
	if !e.arc {
		if a := e.identity(); !a.Date.IsZero() {
			ref, source = a.Date, "the metadata service's Date header"
		}
	}
	if ref.IsZero() {
		res, idx := e.probes()
		if i, ok := idx["repository"]; ok && !res[i].Date.IsZero() {
			ref, source = res[i].Date, "the repository's HTTPS Date header"
		}
	}
	if ref.IsZero() {
		return skip("Not determined: neither the metadata service nor the repository answered with a time.")
	}
	skew := now.Sub(ref)
	abs := skew.Abs()
	dir := "ahead of"
	if skew < 0 {
		dir = "behind"
	}
	msg := fmt.Sprintf("The system clock is %s %s %s.", abs.Round(time.Second), dir, source)
	fix := "Synchronise the clock (chronyd or systemd-timesyncd with the Azure host's PTP clock /dev/ptp_hyperv, or NTP); Entra SSH certificates are valid for about an hour and are checked against this clock."
	switch {
	case abs >= clockFail:
		return Check{Status: Fail, Message: msg + " Every Entra certificate appears expired or not yet valid.", Fix: fix}
	case abs >= clockWarn:
		return Check{Status: Warn, Message: msg + " Fresh certificates may be rejected.", Fix: fix}
	}
	return pass("%s", msg)
}

func (e *env) checkRepository(context.Context) Check {
	st, err := e.state()
	if err != nil {
		return skip("Not determined: the handler's state is unreadable (%v).", err)
	}
	if st == nil {
		return skip("Not determined: the extension has not completed an install on this VM (no state).")
	}
	if st.ReusedRepo != "" {
		return pass("The image's own repository %s provides aadsshlogin (%s).", st.ReusedRepo, st.RepoURL)
	}
	if st.RepoFile == "" {
		return skip("Not determined: the state names no repository file.")
	}
	data, err := e.o.Root.ReadFile(st.RepoFile)
	if err != nil {
		return Check{Status: Warn, Message: fmt.Sprintf("The repository definition %s the extension wrote is gone.", st.RepoFile),
			Fix: "Updates of aadsshlogin will not arrive. " + reapply}
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != st.RepoFileSHA256 {
		return Check{Status: Warn, Message: fmt.Sprintf("The repository definition %s was changed since the install.", st.RepoFile),
			Fix: "If the change was not intended, " + strings.ToLower(reapply[:1]) + reapply[1:]}
	}
	return pass("%s points at %s, as installed.", st.RepoFile, st.RepoURL)
}

func (e *env) checkPackage(context.Context) Check {
	pkgs, err := e.packages()
	if err != nil {
		return skip("Not determined: %v.", err)
	}
	v, ok := pkgs[installer.PackageName]
	if !ok {
		return Check{Status: Fail, Message: "aadsshlogin is not installed.", Fix: reapply}
	}
	msg := "aadsshlogin " + v + " is installed"
	if sv, ok := pkgs[installer.SELinuxPackageName]; ok {
		msg += ", with aadsshlogin-selinux " + sv
	}
	p, _ := e.platform()
	if p.PinnedVersion != "" {
		if !strings.Contains(v, p.PinnedVersion) {
			return Check{Status: Warn, Message: fmt.Sprintf("%s, but %s needs the pinned version %s (newer builds need a library SUSE ships from 15.6 on).", msg, describe(p), p.PinnedVersion),
				Fix: reapply + " The extension installs the pinned version."}
		}
		msg += fmt.Sprintf(" (pinned: %s needs %s)", describe(p), p.PinnedVersion)
	}
	return pass("%s.", msg)
}

func describe(p distro.Platform) string {
	if p.OS.PrettyName != "" {
		return p.OS.PrettyName
	}
	return p.OS.ID + " " + p.OS.VersionID
}

func (e *env) checkObsolete(context.Context) Check {
	pre, err := e.preflight()
	if err != nil {
		return skip("Not determined: %v.", err)
	}
	p, _ := e.platform()
	if err := pre.Obsolete(p.PackageManager); err != nil {
		return Check{Status: Fail, Message: "The old AADLoginForLinux packages are installed; their PAM and NSS modules conflict with aadsshlogin's.",
			Fix: failure.MessageOf(err)}
	}
	return pass("The obsolete AADLoginForLinux packages (aadlogin) are not installed.")
}

func (e *env) checkCertHandler(context.Context) Check {
	fi, err := os.Stat(e.o.Root.Path(verify.CertHandler))
	if err != nil {
		return Check{Status: Fail, Message: verify.CertHandler + " is missing: sshd cannot check Entra certificates.", Fix: reapply}
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o100 == 0 {
		return Check{Status: Fail, Message: fmt.Sprintf("%s is not an executable file (mode %s).", verify.CertHandler, fi.Mode()),
			Fix: "Restore it: reinstall aadsshlogin (" + reapply + ")"}
	}
	return pass("%s is present and executable.", verify.CertHandler)
}

func (e *env) verifyOptions() verify.Options {
	return verify.Options{Runner: e.o.Runner, Root: e.o.Root}
}

func problemsCheck(ps []verify.Problem, okMsg string) Check {
	if len(ps) == 0 {
		return pass("%s", okMsg)
	}
	msgs, fixes := make([]string, 0, len(ps)), make([]string, 0, len(ps))
	for _, p := range ps {
		msgs = append(msgs, p.Detail)
		if p.Hint != "" {
			fixes = append(fixes, p.Hint)
		}
	}
	return Check{Status: Fail, Message: strings.Join(msgs, "; ") + ".", Fix: strings.Join(fixes, "; ")}
}

func (e *env) checkSSHDConfig(ctx context.Context) Check {
	c := problemsCheck(verify.SSHD(ctx, e.verifyOptions()),
		fmt.Sprintf("sshd's effective configuration for an Entra user (sshd -T -C user=%s,…) runs %s as AuthorizedKeysCommand.", verify.ProbeUser, verify.CertHandler))
	if c.Status == Pass {
		for _, w := range e.sshdWarnings() {
			if w.Name == "SSHDPubkeyAuthentication" {
				return Check{Status: Warn, Message: w.Message, Fix: "Leave PubkeyAuthentication on for Entra users (the Match block aadsshlogin adds does it); remove a global 'PubkeyAuthentication no' or a Match block that turns it off for them."}
			}
		}
	}
	return c
}

func (e *env) checkSSHDGroups(context.Context) Check {
	for _, w := range e.sshdWarnings() {
		if w.Name == "SSHDGroupRestriction" {
			return Check{Status: Fail, Message: w.Message,
				Fix: "Move AllowGroups/DenyGroups into a Match block that excludes Entra users (e.g. 'Match User *,!*@*'), then reload sshd (systemctl reload sshd)."}
		}
	}
	if !e.o.Root.Exists(sshdconfig.Path) {
		return skip("Not determined: /etc/ssh/sshd_config is missing.")
	}
	return pass("sshd_config has no global AllowGroups or DenyGroups.")
}

func (e *env) checkOpenSSHVersion(context.Context) Check {
	for _, w := range e.sshdWarnings() {
		if w.Name == "OpenSSHVersion" {
			return Check{Status: Warn, Message: w.Message,
				Fix: "Update OpenSSH if the distribution offers 7.8 or later; else users add -o PubkeyAcceptedKeyTypes=+ssh-rsa-cert-v01@openssh.com to az ssh vm."}
		}
	}
	pre, _ := e.preflight()
	if v := pre.OpenSSHVersion(); v != "" {
		return pass("OpenSSH server %s accepts RSA-SHA2 certificates.", v)
	}
	return pass("No OpenSSH older than 7.8 was found.")
}

func (e *env) checkNSS(context.Context) Check {
	return problemsCheck(verify.NSS(e.o.Root), "nsswitch.conf lists the aad source for passwd.")
}

func (e *env) checkPAM(context.Context) Check {
	return problemsCheck(verify.PAM(e.o.Root), "PAM loads pam_aad.")
}

func (e *env) checkSELinux(ctx context.Context) Check {
	if e.o.Runner == nil {
		return skip("Not determined: no command runner.")
	}
	rep := selinux.Probe{Runner: e.o.Runner, Root: e.o.Root}.Detect(ctx)
	switch rep.Mode {
	case selinux.ModeUnknown:
		if !e.o.Root.Exists("/sys/fs/selinux") {
			// The kernel mounts selinuxfs whenever SELinux is enabled.
			return pass("SELinux is not enabled (no /sys/fs/selinux).")
		}
		return skip("Not determined: SELinux's mode could not be read.")
	case selinux.Disabled:
		return pass("SELinux is disabled.")
	}
	pkgs, _ := e.packages()
	if _, ok := pkgs[installer.SELinuxPackageName]; ok && rep.Mode == selinux.Enforcing {
		if ps := verify.SELinuxModule(ctx, verify.Options{Runner: e.o.Runner, Root: e.o.Root, SELinux: true}); len(ps) > 0 {
			return problemsCheck(ps, "")
		}
	}
	if ws := checks.SELinuxWarningsFrom(rep); len(ws) > 0 {
		st := Warn
		if rep.Covered == selinux.No {
			st = Fail
		}
		return Check{Status: st, Message: ws[0].Message,
			Fix: "As root: semanage permissive -a sshd_session_t (stop-gap), then build a local module from the AVC denials of one Entra login (docs/selinux.md)."}
	}
	msg := fmt.Sprintf("SELinux is %s", rep.Mode)
	if rep.Mode == selinux.Enforcing {
		msg += fmt.Sprintf("; aad_permissions loaded: %s; sshd_session_t defined: %s", rep.Module, rep.SessionDomain)
	}
	return pass("%s.", msg)
}

// Sudo for the Virtual Machine Administrator Login role: aadsshlogin puts
// such users into the local group aad_admins, which a sudoers drop-in
// grants sudo (existing-extension.md §10.6).
const (
	sudoersDropIn = "/etc/sudoers.d/aad_admins"
	adminGroup    = "aad_admins"
)

func (e *env) checkSudo(context.Context) Check {
	data, err := e.o.Root.ReadFile(sudoersDropIn)
	if err != nil {
		if !e.o.Root.Exists(verify.CertHandler) {
			return skip("Not determined: aadsshlogin is not installed.")
		}
		return Check{Status: Warn, Message: sudoersDropIn + " is missing: users with the Virtual Machine Administrator Login role get no sudo.",
			Fix: "Reinstall aadsshlogin (" + reapply + ") or restore the drop-in granting %" + adminGroup + " sudo."}
	}
	if !strings.Contains(string(data), "%"+adminGroup) {
		return Check{Status: Warn, Message: sudoersDropIn + " does not mention %" + adminGroup + ".",
			Fix: "Restore the drop-in aadsshlogin installed (reinstall the package)."}
	}
	main, err := e.o.Root.ReadFile("/etc/sudoers")
	if err == nil && !strings.Contains(string(main), "includedir /etc/sudoers.d") {
		return Check{Status: Warn, Message: "/etc/sudoers does not include /etc/sudoers.d, so " + sudoersDropIn + " has no effect.",
			Fix: "Add '@includedir /etc/sudoers.d' to /etc/sudoers (with visudo)."}
	}
	return pass("%s grants sudo to the %s group (Virtual Machine Administrator Login).", sudoersDropIn, adminGroup)
}

func (e *env) checkSessions(context.Context) Check {
	users, src, err := EntraSessions(e.o.Root)
	if err != nil {
		return skip("Not determined: %v.", err)
	}
	if len(users) == 0 {
		return pass("No Entra ID user is logged in (%s).", src)
	}
	return Check{Status: Pass, Message: fmt.Sprintf("Entra ID users logged in (%s): %s.", src, strings.Join(users, ", ")),
		Fix: "Before removing the extension or aadsshlogin, ask them to log off: their sessions stay open, but they cannot log in again or use sudo once it is gone."}
}

func (e *env) checkState(context.Context) Check {
	st, err := e.state()
	if err != nil {
		return Check{Status: Warn, Message: fmt.Sprintf("The handler's state is unreadable (%v).", err),
			Fix: "The next enable or install rewrites it; " + strings.ToLower(reapply[:1]) + reapply[1:]}
	}
	if st == nil {
		return Check{Status: Warn, Message: "The extension has not completed an install on this VM (no " + installer.StateDir + "/state.json).",
			Fix: reapply}
	}
	return pass("Installed by handler %s on %s (%s, %s).", st.HandlerVersion, st.CompletedAt.UTC().Format(time.RFC3339), st.Distro, st.PackageManager)
}

func (e *env) checkLastStatus(context.Context) Check {
	if e.o.StatusFolder == "" {
		return skip("Not determined: doctor was not started from the extension's folder (no HandlerEnvironment.json).")
	}
	seq, ok := latestStatus(e.o.StatusFolder, e.o.HandlerDir)
	if !ok {
		return skip("No status file in %s yet.", e.o.StatusFolder)
	}
	rep, err := agent.ReadStatus(e.o.StatusFolder, seq)
	if err != nil {
		return skip("Not determined: status %d is unreadable (%v).", seq, err)
	}
	switch rep.Status {
	case agent.Success:
		var warns []string
		for _, s := range rep.Substatus {
			if s.Status == agent.Warning {
				warns = append(warns, s.Name+": "+s.Message)
			}
		}
		if len(warns) > 0 {
			return Check{Status: Warn, Message: fmt.Sprintf("%s of sequence number %d succeeded with warnings: %s", rep.Operation, seq, strings.Join(warns, " | ")),
				Fix: "See the warnings; each says what to do."}
		}
		return pass("%s of sequence number %d succeeded: %s", rep.Operation, seq, rep.Message)
	case agent.Error:
		return Check{Status: Warn, Message: fmt.Sprintf("%s of sequence number %d failed with exit code %d: %s", rep.Operation, seq, rep.Code, rep.Message),
			Fix: "Fix what the checks above report, then re-apply the extension."}
	}
	return pass("%s of sequence number %d is %s.", rep.Operation, seq, rep.Status)
}

// latestStatus is the sequence number in mrseq when its status exists, else
// the highest-numbered status file.
func latestStatus(statusFolder, handlerDir string) (int, bool) {
	if handlerDir != "" {
		if seq, ok, err := agent.ReadMrseq(handlerDir); err == nil && ok {
			if _, err := os.Stat(filepath.Join(statusFolder, fmt.Sprintf("%d.status", seq))); err == nil {
				best := seq
				// A later failed operation has no mrseq entry.
				if s, ok := highestStatus(statusFolder); ok && s > best {
					best = s
				}
				return best, true
			}
		}
	}
	return highestStatus(statusFolder)
}

func highestStatus(dir string) (int, bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	best, found := -1, false
	for _, en := range entries {
		var n int
		if _, err := fmt.Sscanf(en.Name(), "%d.status", &n); err == nil && en.Name() == fmt.Sprintf("%d.status", n) && n > best {
			best, found = n, true
		}
	}
	return best, found
}
