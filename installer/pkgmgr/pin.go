package pkgmgr

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// This file holds a package at a version against the administrator's own
// upgrades (apt upgrade, dnf upgrade, zypper update). Each back end uses the
// mechanism its package manager offers without extra packages, and one the
// administrator can see with the package manager's own tools:
//
//   - apt: a preferences file in /etc/apt/preferences.d pinning the version
//     with Pin-Priority 1001 (≥ 1000 also lets apt move down to it);
//   - dnf, yum: the package excluded from our own repository's section
//     (excludepkgs=, yum 3: exclude=), so no upgrade candidate exists for it,
//     while other repositories' packages stay visible; our own commands pass
//     --disableexcludes=<our repository> (IgnoringRepoExcludes). The
//     versionlock plugin would need a package that is often not installed;
//   - zypper: a package lock (zypper addlock), listed by zypper locks;
//   - tdnf: nothing. tdnf reads excludepkgs only from its main configuration
//     and usually installs from the image's own repository, which is not ours
//     to edit, so the caller refuses to hold a version there.

// HoldMethod names how a back end holds a package at a version.
type HoldMethod string

const (
	HoldUnsupported HoldMethod = ""                // tdnf
	HoldPreferences HoldMethod = "apt-preferences" // a file in /etc/apt/preferences.d
	HoldRepoExclude HoldMethod = "repo-exclude"    // excludepkgs= in our repository's section
	HoldLock        HoldMethod = "zypper-lock"     // zypper addlock
)

// HoldMethodFor returns the mechanism kind's back end uses.
func HoldMethodFor(kind Kind) HoldMethod {
	switch kind {
	case Apt:
		return HoldPreferences
	case Dnf, Yum:
		return HoldRepoExclude
	case Zypper:
		return HoldLock
	}
	return HoldUnsupported
}

// AptPreferencesPath is the preferences file that holds our packages. apt
// reads files of preferences.d whose names end in ".pref" (or have no
// extension) and consist of letters, digits, '-', '_' and '.'.
const AptPreferencesPath = "/etc/apt/preferences.d/microsoft-aadsshlogin.pref"

// AptPinPriority is above 1000, the priority from which apt installs a
// pinned version even when that is a downgrade.
const AptPinPriority = 1001

// AptPreferences renders the preferences file holding each name at version.
// Comments are Explanation: fields, which every apt version reads as
// comments ('#' lines confused older apt versions); each stanza carries
// them, the first line being the managed-file header.
func AptPreferences(explanations []string, names []string, version string) []byte {
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteString("\n")
		}
		for _, e := range explanations {
			fmt.Fprintf(&b, "Explanation: %s\n", e)
		}
		fmt.Fprintf(&b, "Package: %s\nPin: version %s\nPin-Priority: %d\n", name, version, AptPinPriority)
	}
	return []byte(b.String())
}

// RepoExclude returns the line that hides names from one repository
// section: excludepkgs= for dnf, exclude= for yum 3 (dnf's older name for
// the same option).
func RepoExclude(kind Kind, names []string) string {
	if kind == Yum {
		return "exclude=" + strings.Join(names, " ") + "\n"
	}
	return "excludepkgs=" + strings.Join(names, ",") + "\n"
}

// IgnoringRepoExcludes returns a Manager whose install, reinstall and
// availability commands see the packages that the exclude option of the
// repository repoID hides (dnf and yum: --disableexcludes=repoID). Other
// back ends are returned unchanged. The result is a new value: m itself is
// not modified.
func IgnoringRepoExcludes(m Manager, repoID string) Manager {
	if r, ok := m.(*retrying); ok {
		return &retrying{Manager: IgnoringRepoExcludes(r.Manager, repoID), p: r.p}
	}
	y, ok := m.(*yumLike)
	if !ok || y.kind == Tdnf || repoID == "" {
		return m
	}
	c := *y
	c.excludesOff = repoID
	return &c
}

// excludeArgs are the options that make dnf and yum ignore our own
// repository's excludes.
func (y *yumLike) excludeArgs() []string {
	if y.excludesOff == "" {
		return nil
	}
	return []string{"--disableexcludes=" + y.excludesOff}
}

// PackageLocker is implemented by back ends whose holds live in the
// package manager's own state (zypper's package locks) rather than in a
// file. (Not to be confused with Locks, the waits for the package
// manager's process locks.)
type PackageLocker interface {
	// PackageLocks returns the names of the package locks in effect, as
	// the package manager lists them (a lock by glob keeps its pattern).
	PackageLocks(ctx context.Context) ([]string, error)
	// AddPackageLocks locks each name: it is neither installed, upgraded
	// nor removed until the lock is removed.
	AddPackageLocks(ctx context.Context, names ...string) error
	// RemovePackageLocks removes the locks of exactly these names; a name
	// without a lock is not an error.
	RemovePackageLocks(ctx context.Context, names ...string) error
}

// PackageLocks implements PackageLocker: zypper locks prints a table "# | Name | Type |
// Repository" (newer zypper may add columns), or "There are no package
// locks defined.".
func (z *zypper) PackageLocks(ctx context.Context) ([]string, error) {
	res, err := z.exec(ctx, zypperEnv(ctx), "zypper", "--non-interactive", "locks")
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, commandCause("zypper locks", res)
	}
	return parseZypperLocks(string(res.Stdout)), nil
}

func parseZypperLocks(out string) []string {
	var names []string
	for _, l := range strings.Split(out, "\n") {
		cols := strings.Split(l, "|")
		if len(cols) < 3 || !allDigits(strings.TrimSpace(cols[0])) {
			continue
		}
		switch typ := strings.TrimSpace(cols[2]); typ {
		case "package", "(any)", "":
			if n := strings.TrimSpace(cols[1]); n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// AddPackageLocks implements PackageLocker.
func (z *zypper) AddPackageLocks(ctx context.Context, names ...string) error {
	return z.lockCommand(ctx, "addlock", "add the package lock", names)
}

// RemovePackageLocks implements PackageLocker. zypper reports a lock it did not find ("No
// lock has been removed.") with exit code 0.
func (z *zypper) RemovePackageLocks(ctx context.Context, names ...string) error {
	return z.lockCommand(ctx, "removelock", "remove the package lock", names)
}

func (z *zypper) lockCommand(ctx context.Context, verb, what string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	args := append([]string{"--non-interactive", verb, "-t", "package"}, names...)
	res, err := z.exec(ctx, zypperEnv(ctx), "zypper", args...)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return opFailure(what+" of", "zypper", names, res, "zypper "+verb+" "+strings.Join(names, " "))
	}
	return nil
}

// VersionLister is implemented by every back end: it tells which versions
// of a package the enabled repositories offer, when an install of one
// version failed (tdnf lists only the newest: it has no duplicates option).
type VersionLister interface {
	// Versions returns the versions (without release or revision, as
	// aadsshlogin's versions are written) the repositories offer, each
	// once, in the package manager's order.
	Versions(ctx context.Context, name string) ([]string, error)
}

// Versions implements VersionLister: apt-cache madison prints
// " name | version | source" for each version the sources offer.
func (a *apt) Versions(ctx context.Context, name string) ([]string, error) {
	res, err := a.exec(ctx, nil, "apt-cache", "madison", name)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, commandCause("apt-cache madison "+name, res)
	}
	var out []string
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		cols := strings.Split(l, "|")
		if len(cols) < 3 || strings.TrimSpace(cols[0]) != name {
			continue
		}
		out = appendVersion(out, strings.TrimSpace(cols[1]))
	}
	return out, nil
}

// Versions implements VersionLister with the list command Available uses,
// reading the version column of the repositories' lines.
func (y *yumLike) Versions(ctx context.Context, name string) ([]string, error) {
	res, err := y.list(ctx, name)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		low := strings.ToLower(res.Combined())
		if strings.Contains(low, "no matching") || strings.Contains(low, "no match for argument") {
			return nil, nil
		}
		return nil, commandCause(y.tool()+" list "+name, res)
	}
	var out []string
	for _, row := range listRows(string(res.Stdout), name) {
		if !installedRepo(row[2]) {
			out = appendVersion(out, row[1])
		}
	}
	return out, nil
}

// Versions implements VersionLister with the search Available uses.
func (z *zypper) Versions(ctx context.Context, name string) ([]string, error) {
	res, err := z.search(ctx, name)
	if err != nil {
		return nil, err
	}
	if res.ExitCode == 104 {
		return nil, nil
	}
	if res.ExitCode != 0 {
		return nil, commandCause("zypper search "+name, res)
	}
	var out []string
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		cols := strings.Split(l, "|")
		if len(cols) < 6 || strings.TrimSpace(cols[1]) != name {
			continue
		}
		if repo := strings.TrimSpace(cols[len(cols)-1]); repo == "" || repo == "(System Packages)" {
			continue
		}
		out = appendVersion(out, strings.TrimSpace(cols[3]))
	}
	return out, nil
}

// appendVersion adds an rpm or Debian version as aadsshlogin's versions
// are written: without epoch, release or Debian revision.
func appendVersion(list []string, v string) []string {
	if _, rest, ok := strings.Cut(v, ":"); ok {
		v = rest
	}
	if i := strings.LastIndexByte(v, '-'); i > 0 {
		v = v[:i]
	}
	if v == "" || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
