package installer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/installer/pkgmgr"
	"github.com/aadsshlogin/handler/installer/repo"
	"github.com/aadsshlogin/handler/version"
)

// Where a held version comes from.
const (
	holdFromSetting  = "setting"  // the aadsshloginVersion setting
	holdFromPlatform = "platform" // distro.Platform.PinnedVersion (SUSE before 15.6)
)

// holdRun is what one install does about holding aadsshlogin at a
// version, so that the administrator's own upgrades (apt upgrade, dnf
// upgrade, zypper update) do not move it:
//
//   - with the aadsshloginVersion setting, aadsshlogin is installed at that
//     version and held there on every back end but tdnf, which refuses the
//     setting. The setting wins over the built-in SUSE pin (it always names a
//     version: the administrator chose it);
//   - without it, the platform's pinned version (SUSE before 15.6) is
//     installed and held the same way;
//   - otherwise nothing is held, and holds of earlier runs are taken away.
//
// aadsshlogin-selinux is not held: packages.microsoft.com lists it with
// version numbers like aadsshlogin's, but not for every aadsshlogin version
// we know of, so holding it to the same number could make the install fail.
type holdRun struct {
	version string            // version to install; "" for the newest
	source  string            // holdFromSetting, holdFromPlatform or ""
	method  pkgmgr.HoldMethod // how this back end holds a package
	names   []string          // packages to hold; nil when nothing is held
	// adminLocked are names of names that already had a zypper lock this
	// handler did not add: the administrator's, left alone.
	adminLocked []string
}

// planHold decides the hold before anything is changed. The setting on a
// back end that cannot hold a version is refused as invalid settings.
func (c Config) planHold() (*holdRun, error) {
	kind := c.Packages.Kind()
	h := &holdRun{method: pkgmgr.HoldMethodFor(kind)}
	switch {
	case c.PackageVersion != "":
		if h.method == pkgmgr.HoldUnsupported {
			return nil, failure.New(failure.BadSettings, nil,
				"publicSettings.aadsshloginVersion is not supported on %s (package manager %s): %s cannot hold a package at a version without changing the distribution's own repository configuration. Remove the setting for this VM to install the newest aadsshlogin.",
				platformName(c), kind, kind)
		}
		h.version, h.source = c.PackageVersion, holdFromSetting
	case c.Platform.PinnedVersion != "":
		h.version, h.source = c.Platform.PinnedVersion, holdFromPlatform
	default:
		return h, nil
	}
	if h.method != pkgmgr.HoldUnsupported {
		h.names = []string{PackageName}
	}
	return h, nil
}

func platformName(c Config) string {
	if c.Platform.OS.PrettyName != "" {
		return c.Platform.OS.PrettyName
	}
	return strings.TrimSpace(c.Platform.OS.ID + " " + c.Platform.OS.VersionID)
}

// held reports whether this run holds anything.
func (h *holdRun) held() bool { return len(h.names) > 0 }

// manager returns the package manager our own commands go through: with
// our repository's exclude in place, dnf and yum must ignore it to install
// (or reinstall) the held version.
func (h *holdRun) manager(m pkgmgr.Manager) pkgmgr.Manager {
	if h.held() && h.method == pkgmgr.HoldRepoExclude {
		return pkgmgr.IgnoringRepoExcludes(m, repo.RepoID)
	}
	return m
}

// explanation says in the files we write why the package is held.
func (h *holdRun) explanation() string {
	if h.source == holdFromPlatform {
		return fmt.Sprintf("%s is held at %s because newer builds do not work before SUSE 15.6; the AADSSHLoginForLinux extension releases it when uninstalled.", strings.Join(h.names, ", "), h.version)
	}
	return fmt.Sprintf("%s is held at %s by the aadsshloginVersion setting of the AADSSHLoginForLinux extension; removing the setting or the extension releases it.", strings.Join(h.names, ", "), h.version)
}

// inRepository adds the exclude option to our own repository definition
// (dnf, yum). The image's own repository (tdnf) is never edited.
func (h *holdRun) inRepository(kind pkgmgr.Kind, rs resolution) resolution {
	if rs.err != nil || rs.def.Reuse || !h.held() || h.method != pkgmgr.HoldRepoExclude {
		return rs
	}
	content := slices.Clip(rs.def.Content)
	content = append(content, "# "+h.explanation()+"\n"+pkgmgr.RepoExclude(kind, h.names)...)
	rs.def.Content = content
	return rs
}

// record is the state entry for this run's hold.
func (h *holdRun) record() *Hold {
	return &Hold{Version: h.version, Source: h.source, Packages: slices.Clone(h.names), Method: string(h.method)}
}

// prepareHold runs before the packages are installed: the apt preferences
// file is written (or, when nothing is held any more, our old one removed),
// so the install and later upgrades see it; zypper locks this handler
// added earlier are lifted so the install can move the version (finishHold
// puts them back). Every change goes through the journal.
func (c Config) prepareHold(ctx context.Context, j *journal, state, prev *State, res *Result, h *holdRun) error {
	switch h.method {
	case pkgmgr.HoldPreferences:
		path := pkgmgr.AptPreferencesPath
		if !h.held() {
			if data, err := c.Root.ReadFile(path); err == nil && aptPreferencesOurs(data) {
				if err := j.removeFile(path); err != nil {
					return failure.New(failure.SystemStateInvalid, err, "Cannot remove %s, which held aadsshlogin at a version. Check that the file system is writable.", path)
				}
			}
			return nil
		}
		content := pkgmgr.AptPreferences([]string{strings.TrimPrefix(repo.Header, "# "), h.explanation()}, h.names, h.version)
		backup, err := j.writeFile(path, content, 0o644, aptPreferencesOurs)
		if err != nil {
			return failure.New(failure.SystemStateInvalid, err, "Cannot write %s to hold aadsshlogin at %s. Check that the file system is writable and not full.", path, h.version)
		}
		if backup != "" {
			state.Backups[path] = backup
			res.Notes = append(res.Notes, fmt.Sprintf("your previous %s was saved as %s and is restored on uninstall", path, backup))
		}
		state.Hold = h.record()
		state.Hold.File, state.Hold.FileSHA256 = path, sha256Hex(content)
	case pkgmgr.HoldRepoExclude:
		if h.held() {
			state.Hold = h.record()
		}
	case pkgmgr.HoldLock:
		locker, ok := pkgmgr.As[pkgmgr.PackageLocker](c.Packages)
		if !ok {
			return nil
		}
		var ours []string
		if prev != nil && prev.Hold != nil {
			ours = prev.Hold.LocksAdded
		}
		if !h.held() && len(ours) == 0 {
			return nil // nothing to hold and nothing of ours: no query
		}
		current, err := locker.PackageLocks(ctx)
		if err != nil {
			return lockFailure("list zypper's package locks", "zypper locks", err)
		}
		var lift []string
		for _, n := range ours {
			if slices.Contains(current, n) {
				lift = append(lift, n)
			}
		}
		for _, n := range h.names {
			if slices.Contains(current, n) && !slices.Contains(ours, n) {
				h.adminLocked = append(h.adminLocked, n)
			}
		}
		if len(lift) > 0 {
			if err := locker.RemovePackageLocks(ctx, lift...); err != nil {
				return err
			}
			j.add("put back the package locks of "+strings.Join(lift, ", "), func(ctx context.Context) error {
				return locker.AddPackageLocks(ctx, lift...)
			})
		}
		if len(h.adminLocked) > 0 {
			c.Log.WithField("locks", h.adminLocked).Info("package locks the administrator set are left alone")
		}
	}
	return nil
}

// finishHold runs after the packages are installed and verified: zypper
// locks the held packages (except those the administrator had locked
// already), recorded in the journal and the state, and the status says how
// the package is held.
func (c Config) finishHold(ctx context.Context, j *journal, state *State, res *Result, h *holdRun) error {
	if h.version != "" {
		res.Notes = append(res.Notes, h.note(c))
	}
	if !h.held() || h.method != pkgmgr.HoldLock {
		return nil
	}
	locker, ok := pkgmgr.As[pkgmgr.PackageLocker](c.Packages)
	if !ok {
		return nil
	}
	var add []string
	for _, n := range h.names {
		if !slices.Contains(h.adminLocked, n) {
			add = append(add, n)
		}
	}
	if len(add) > 0 {
		if err := locker.AddPackageLocks(ctx, add...); err != nil {
			return err
		}
		j.add("remove the package locks of "+strings.Join(add, ", "), func(ctx context.Context) error {
			return locker.RemovePackageLocks(ctx, add...)
		})
	}
	state.Hold = h.record()
	state.Hold.LocksAdded = add
	return nil
}

// adminLockFailure explains a failed install of a package the
// administrator's own zypper lock holds; nil for any other package.
func (h *holdRun) adminLockFailure(name string, cause error) error {
	if !slices.Contains(h.adminLocked, name) {
		return nil
	}
	return failure.New(failure.PackageManagerFailed, cause,
		"%s is held by a zypper package lock this extension did not add (see 'sudo zypper locks'), so zypper cannot install version %s. The extension never removes your locks: remove it with 'sudo zypper removelock %s' and re-apply the extension, or install that version yourself.",
		name, h.version, name)
}

// note tells the status how aadsshlogin is held.
func (h *holdRun) note(c Config) string {
	var how string
	switch {
	case !h.held():
		how = ""
	case h.method == pkgmgr.HoldPreferences:
		how = " and held there by " + pkgmgr.AptPreferencesPath
	case h.method == pkgmgr.HoldRepoExclude:
		how = " and held there by excludepkgs in " + repo.YumRepoPath
		if c.Packages.Kind() == pkgmgr.Yum {
			how = " and held there by exclude in " + repo.YumRepoPath
		}
	case len(h.adminLocked) > 0:
		how = " and held there by your own zypper package lock"
	default:
		how = " and locked against updates (zypper locks)"
	}
	if h.source == holdFromPlatform {
		return fmt.Sprintf("%s pinned to %s (SUSE before 15.6)%s", PackageName, h.version, how)
	}
	s := fmt.Sprintf("%s %s installed as the aadsshloginVersion setting asks%s", PackageName, h.version, how)
	if p := c.Platform.PinnedVersion; p != "" && p != h.version {
		s += fmt.Sprintf("; the setting overrides %s, the version this handler installs before SUSE 15.6", p)
	}
	return s
}

// versionNotOffered explains a failed install of a held version that the
// repositories do not offer (exit 51, like a distribution the repository
// has no package for), naming the versions they do offer. It returns nil
// when that is not the reason or cannot be told; then the install's own
// error stands.
func (c Config) versionNotOffered(ctx context.Context, h *holdRun, repoURL string, cause error) error {
	vl, ok := pkgmgr.As[pkgmgr.VersionLister](c.Packages)
	if !ok || h.version == "" {
		return nil
	}
	offered, err := vl.Versions(ctx, PackageName)
	if err != nil {
		c.Log.WithError(err).Warn("listing the versions the repository offers")
		return nil
	}
	if len(offered) == 0 || slices.Contains(offered, h.version) {
		return nil // no package at all (Available's message) or another cause
	}
	slices.SortFunc(offered, func(a, b string) int { return version.Compare(b, a) })
	const show = 8
	list := strings.Join(offered[:min(show, len(offered))], ", ")
	if len(offered) > show {
		list += fmt.Sprintf(" and %d older", len(offered)-show)
	}
	c.Log.WithFields(logrus.Fields{"version": h.version, "offered": offered}).Warn("held version not offered")
	if h.source == holdFromPlatform {
		return failure.New(failure.Unsupported, cause,
			"The repository %s does not offer %s %s, the version that works before SUSE 15.6; it offers %s. Set aadsshloginVersion to a version that works on this release.",
			repoURL, PackageName, h.version, list)
	}
	return failure.New(failure.Unsupported, cause,
		"The repository %s does not offer %s %s (the aadsshloginVersion setting); it offers %s. Set aadsshloginVersion to one of these, or remove it to install the newest.",
		repoURL, PackageName, h.version, list)
}

// releaseHold takes away, before the packages are removed, what holds them:
// the zypper locks this handler added (a locked package cannot be removed)
// and our apt preferences file. The dnf exclude goes with the repository
// file.
//
// A zypper lock this handler did not add stays, and zypper then refuses to
// remove the package ("conflicting requests"): the uninstall stops before,
// saying whose lock it is and how to remove it.
func (c Config) releaseHold(ctx context.Context, st *State, names ...string) error {
	switch pkgmgr.HoldMethodFor(c.Packages.Kind()) {
	case pkgmgr.HoldLock:
		locker, ok := pkgmgr.As[pkgmgr.PackageLocker](c.Packages)
		if !ok {
			return nil
		}
		if st != nil && st.Hold != nil && len(st.Hold.LocksAdded) > 0 {
			if err := locker.RemovePackageLocks(ctx, st.Hold.LocksAdded...); err != nil {
				return err
			}
		}
		current, err := locker.PackageLocks(ctx)
		if err != nil {
			return lockFailure("list zypper's package locks", "zypper locks", err)
		}
		var locked []string
		for _, n := range names {
			if slices.Contains(current, n) {
				locked = append(locked, n)
			}
		}
		if len(locked) == 0 {
			return nil
		}
		installed, err := c.Packages.Installed(ctx, locked...)
		if err != nil {
			return err
		}
		locked = slices.DeleteFunc(locked, func(n string) bool { _, ok := installed[n]; return !ok })
		if len(locked) > 0 {
			return failure.New(failure.PackageManagerFailed, nil,
				"%s cannot be removed: a zypper package lock this extension did not add holds it (see 'sudo zypper locks'), and the extension never removes your locks. Remove it with 'sudo zypper removelock %s' and uninstall the extension again, or keep the package and its lock.",
				strings.Join(locked, " and "), strings.Join(locked, " "))
		}
	case pkgmgr.HoldPreferences:
		// Our header identifies the file even when the state is lost.
		path := pkgmgr.AptPreferencesPath
		if data, err := c.Root.ReadFile(path); err == nil && aptPreferencesOurs(data) {
			if err := c.Root.RemoveIfExists(path); err != nil {
				return failure.New(failure.SystemStateInvalid, err, "Cannot remove %s, which holds aadsshlogin at a version. Check that the file system is writable.", path)
			}
		}
	}
	return nil
}

// aptPreferencesOurs reports whether a preferences file is the one we
// write (its first line carries our header as an Explanation).
func aptPreferencesOurs(data []byte) bool {
	return strings.HasPrefix(string(data), "Explanation: "+strings.TrimPrefix(repo.Header, "# "))
}

func lockFailure(what, cmd string, err error) error {
	if failure.CodeOf(err) != failure.Internal {
		return err
	}
	return failure.New(failure.PackageManagerFailed, err, "Could not %s. Run 'sudo %s' on the VM to see why.", what, cmd)
}
