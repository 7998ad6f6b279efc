// Package pkgmgr drives the distribution's package manager (apt, dnf, yum,
// tdnf, zypper) for the installer: metadata refresh of our repository,
// install, upgrade, removal, key import, and waiting for the locks other
// package operations hold.
//
// Commands run against the machine's real root: in production the handler
// runs with root "/", and end-to-end tests chroot the whole handler. The
// sysroot.Root given here is only used for files (locks, /proc), so unit
// tests can use temporary directories. Every command runs with LC_ALL=C so
// that the output classification below sees the English messages.
package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
)

// Kind names a package manager: the support table's own type
// (distro.PackageManager), so that a platform's package manager is a Kind
// without conversion.
type Kind = distro.PackageManager

// The package managers we drive.
const (
	Apt    = distro.Apt
	Dnf    = distro.Dnf
	Yum    = distro.Yum
	Zypper = distro.Zypper
	Tdnf   = distro.Tdnf
)

// Package is a package to install. Version "" means the newest available.
type Package struct {
	Name    string
	Version string
	// Presence is what the caller already knows of the package's installed
	// state, from an Installed query with nothing installed since. A back
	// end that must choose between installing and upgrading (dnf, yum,
	// tdnf) then does not ask the database again.
	Presence Presence
}

// Presence is a package's installed state as far as the caller knows it.
type Presence int8

const (
	PresenceUnknown Presence = iota // the back end asks when it needs to
	Absent
	Present
)

// Manager is one package-manager back end.
type Manager interface {
	// Kind reports which package manager this is.
	Kind() Kind
	// Installed returns the installed version of each named package that is
	// installed, asking the package database once for all of them; a name
	// that is not installed has no entry.
	Installed(ctx context.Context, names ...string) (versions map[string]string, err error)
	// Refresh refreshes metadata. repoID (rpm families) or sourceFile (apt)
	// identify our repository, whose failure is never hidden: it returns
	// failure.UntrustedKey or failure.RepositoryUnreachable.
	Refresh(ctx context.Context, repoID, sourceFile string) error
	// Available reports whether the enabled repositories offer the package.
	Available(ctx context.Context, name string) (bool, error)
	// Install installs, or upgrades to the newest (or to Version when set),
	// non-interactively.
	Install(ctx context.Context, pkgs ...Package) error
	// Reinstall installs the installed version of each package again, so its
	// maintainer scripts run once more (a run killed while they ran leaves a
	// package registered but not configured, which rpm cannot repair).
	Reinstall(ctx context.Context, names ...string) error
	// Remove removes (apt: purges) those of the named packages that are
	// installed; packages that are not installed are skipped.
	Remove(ctx context.Context, names ...string) error
	// Repair brings an interrupted package database back to a usable state
	// (apt: dpkg --configure -a); a no-op for rpm families.
	Repair(ctx context.Context) error
	// ImportKey makes the package manager trust the armored key file at
	// path (a target path). apt needs nothing: the keyring is referenced by
	// signed-by=.
	ImportKey(ctx context.Context, path string) error
	// RemoveKey removes the key with exactly this fingerprint (40 hex
	// digits) from the package manager's trust; a key that is not there is
	// no error. apt needs nothing (see ImportKey).
	RemoveKey(ctx context.Context, fingerprint string) error
	// TrustedKeys returns the fingerprints (upper-case, 40 hex digits) of
	// the keys the package manager trusts on its own (the rpm database),
	// each with the name of its entry. apt: none.
	TrustedKeys(ctx context.Context) (map[string]string, error)
}

// As finds, in m or in the back end a decorator (WithRetry) wraps, the
// optional capability T (PackageLocker, VersionLister).
func As[T any](m Manager) (T, bool) {
	for m != nil {
		if t, ok := m.(T); ok {
			return t, true
		}
		u, ok := m.(interface{ Unwrap() Manager })
		if !ok {
			break
		}
		m = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Options are the collaborators of a Manager.
type Options struct {
	Runner cmdrun.Runner
	Root   sysroot.Root
	Log    logrus.FieldLogger
	// Env holds extra "KEY=value" entries for every package command, after
	// ours (so they win). Proxy variables are inherited anyway; component
	// tests use this to point apt at an alternative root (APT_CONFIG,
	// DPKG_ADMINDIR) without changing the command lines.
	Env []string
}

// New returns the Manager for kind.
func New(kind Kind, o Options) (Manager, error) {
	if o.Runner == nil {
		return nil, errors.New("pkgmgr: no command runner")
	}
	b := base{kind: kind, run: o.Runner, root: o.Root, log: o.Log, env: o.Env}
	if b.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		b.log = l
	}
	b.log = b.log.WithField("pkgmgr", string(kind))
	switch kind {
	case Apt:
		return &apt{base: b}, nil
	case Dnf, Yum, Tdnf:
		return &yumLike{base: b}, nil
	case Zypper:
		return &zypper{base: b}, nil
	}
	return nil, fmt.Errorf("pkgmgr: unknown package manager %q", kind)
}

// base holds what every back end shares.
type base struct {
	kind Kind
	run  cmdrun.Runner
	root sysroot.Root
	log  logrus.FieldLogger
	env  []string
	// ours is our repository, recorded by Refresh (see scope.go).
	ours scope
}

func (b *base) Kind() Kind { return b.kind }

// exec runs one command with the common environment. extraEnv comes
// before the caller's Options.Env so tests can override anything.
func (b *base) exec(ctx context.Context, extraEnv []string, name string, args ...string) (cmdrun.Result, error) {
	env := append([]string{"LC_ALL=C", "LANG=C"}, extraEnv...)
	env = append(env, b.env...)
	c := cmdrun.Cmd{Name: name, Args: args, Env: env}
	res, err := b.run.Run(ctx, c)
	if err != nil {
		return res, runError(c, err)
	}
	return res, nil
}

// runError turns a command that could not run (missing, stopped by the
// deadline) into an error the user can act on where possible.
func runError(c cmdrun.Cmd, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return failure.New(failure.TimeBudgetExceeded, err,
			"'%s' did not finish within the time the extension has. Check the VM's network and package manager, then re-apply the extension.", shortCmd(c))
	case errors.Is(err, cmdrun.ErrNotFound):
		return failure.New(failure.PackageManagerFailed, err,
			"The package manager command '%s' is not available on this VM. Install it or re-apply the extension on a supported image.", c.Name)
	}
	return fmt.Errorf("running %s: %w", c.Name, err)
}

// shortCmd renders a command for messages without environment or the
// long -o options, which only distract.
func shortCmd(c cmdrun.Cmd) string {
	parts := []string{c.Name}
	skip := false
	for _, a := range c.Args {
		if skip {
			skip = false
			continue
		}
		if a == "-o" {
			skip = true
			continue
		}
		if strings.HasPrefix(a, "-o") || strings.HasPrefix(a, "--disablerepo") || strings.HasPrefix(a, "--enablerepo") {
			continue
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func names(pkgs []Package) []string {
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = p.Name
	}
	return out
}

// eqSpecs renders packages as "name" or "name=version" (the apt and zypper
// syntax) and reports whether any version is pinned.
func eqSpecs(pkgs []Package) (specs []string, pinned bool) {
	specs = make([]string, len(pkgs))
	for i, p := range pkgs {
		specs[i] = p.Name
		if p.Version != "" {
			specs[i] += "=" + p.Version
			pinned = true
		}
	}
	return specs, pinned
}
