package pkgmgr

import (
	"context"
	"strings"

	"github.com/aadsshlogin/handler/cmdrun"
)

// zypper drives zypper (SUSE). Keys are never auto-imported
// (--gpg-auto-import-keys): the only trusted key is the one we imported
// with rpm after checking its fingerprint.
type zypper struct{ base }

// zypperEnv makes libzypp wait for its lock (held by another zypper or
// PackageKit) until shortly before our deadline instead of failing at once.
func zypperEnv(ctx context.Context) []string {
	return []string{"ZYPP_LOCK_TIMEOUT=" + lockTimeout(ctx)}
}

// zypperOK reports whether a zypper exit code means success: 100–103 are
// informational (updates or a reboot needed, zypper itself updated), and
// 106 means some repository was skipped, which install tolerates because
// the result is checked afterwards.
func zypperOK(code int) bool {
	return code == 0 || (code >= 100 && code <= 103) || code == 106
}

// Installed implements Manager.
func (z *zypper) Installed(ctx context.Context, names ...string) (map[string]string, error) {
	return z.rpmInstalled(ctx, names...)
}

// Refresh implements Manager, forcing a download of our repository only.
func (z *zypper) Refresh(ctx context.Context, repoID, sourceFile string) error {
	args := []string{"--non-interactive", "refresh", "-f"}
	if repoID != "" {
		args = append(args, "-r", repoID)
	}
	res, err := z.exec(ctx, zypperEnv(ctx), "zypper", args...)
	if err != nil {
		return err
	}
	if err := refreshFailure(repoLabel(repoID), "zypper", res, "zypper refresh -f "+repoID); err != nil {
		return err
	}
	z.ours = scope{repoID: repoID, sourceFile: sourceFile}
	return nil
}

// onlyOurs makes install and search load our repository alone (and the
// installed packages), once Refresh has named it (see scope.go).
func (z *zypper) onlyOurs() []string {
	if z.ours.repoID == "" {
		return nil
	}
	return []string{"--repo", z.ours.repoID}
}

// Available implements Manager. search -s prints a table
// "S | Name | Type | Version | Arch | Repository"; installed packages no
// repository offers show "(System Packages)". Exit 104 means no match.
func (z *zypper) Available(ctx context.Context, name string) (bool, error) {
	res, err := z.search(ctx, name)
	if err != nil {
		return false, err
	}
	if res.ExitCode == 104 {
		return false, nil
	}
	if res.ExitCode != 0 {
		return false, commandCause("zypper search "+name, res)
	}
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		cols := strings.Split(l, "|")
		if len(cols) < 6 || strings.TrimSpace(cols[1]) != name {
			continue
		}
		if repo := strings.TrimSpace(cols[len(cols)-1]); repo != "" && repo != "(System Packages)" {
			return true, nil
		}
	}
	return false, nil
}

// search lists every version of the package, installed or offered.
func (z *zypper) search(ctx context.Context, name string) (cmdrun.Result, error) {
	args := append([]string{"--non-interactive", "--quiet", "search"}, z.onlyOurs()...)
	return z.exec(ctx, zypperEnv(ctx), "zypper", append(args, "-x", "-s", "-t", "package", name)...)
}

// Install implements Manager. zypper install upgrades an installed package
// to the best candidate; a pinned version may be older, which needs
// --oldpackage.
func (z *zypper) Install(ctx context.Context, pkgs ...Package) error {
	if len(pkgs) == 0 {
		return nil
	}
	var opts []string
	specs, pinned := eqSpecs(pkgs)
	if pinned {
		opts = append(opts, "--oldpackage")
	}
	reproduce := "zypper install " + strings.Join(specs, " ")
	ours := z.onlyOurs()
	res, err := z.exec(ctx, zypperEnv(ctx), "zypper", append(append(append([]string{"--non-interactive", "install"}, ours...), opts...), specs...)...)
	if err != nil {
		return err
	}
	if !zypperOK(res.ExitCode) && len(ours) > 0 && depMissing(res.Combined()) {
		res, err = z.withAll(ctx, pkgs, append(opts, specs...), res, reproduce)
		if err != nil {
			return err
		}
	}
	if !zypperOK(res.ExitCode) {
		return opFailure("install", "zypper", names(pkgs), res, reproduce)
	}
	if res.ExitCode == 106 {
		z.log.WithField("output", tailLines(res.Combined(), 20)).Warn("zypper skipped a repository during install")
	}
	return nil
}

// withAll is the fallback when our repository alone leaves a dependency
// unsatisfied: refresh every repository, then install with all of them.
// It returns the install's result, or the failure naming a broken
// distribution repository.
func (z *zypper) withAll(ctx context.Context, pkgs []Package, args []string, first cmdrun.Result, reproduce string) (cmdrun.Result, error) {
	deps := missingDeps(first.Combined())
	z.log.WithField("missing", deps).Info("a dependency is not installed; refreshing every repository and installing with all of them")
	refresh, err := z.exec(ctx, zypperEnv(ctx), "zypper", "--non-interactive", "refresh")
	if err != nil {
		return cmdrun.Result{}, err
	}
	if classify(refresh.Combined()) == classLocked {
		return cmdrun.Result{}, refreshFailure("the configured repositories", "zypper", refresh, "zypper refresh")
	}
	res, err := z.exec(ctx, zypperEnv(ctx), "zypper", append([]string{"--non-interactive", "install"}, args...)...)
	if err != nil {
		return res, err
	}
	mine := append(z.sourceURLs(z.ours.sourceFile), "'"+z.ours.repoID+"'")
	where, why := foreignProblem(refresh.Combined(), mine)
	if zypperOK(res.ExitCode) {
		if where != "" {
			z.log.WithFields(map[string]any{"repository": where, "answer": why}).Warn("a repository failed to refresh; the install succeeded without it")
		}
		return res, nil
	}
	if where == "" {
		where, why = foreignProblem(res.Combined(), mine)
	}
	if where != "" {
		both := cmdrun.Result{Stdout: []byte(refresh.Combined() + "\n" + res.Combined()), ExitCode: res.ExitCode}
		return res, distroRepoFailure("zypper", names(pkgs), deps, where, why, both, "zypper refresh && sudo "+reproduce)
	}
	return res, nil
}

// Reinstall implements Manager: install --force reinstalls the installed
// version.
func (z *zypper) Reinstall(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		return nil
	}
	args := append(append([]string{"--non-interactive", "install"}, z.onlyOurs()...), "--force")
	res, err := z.exec(ctx, zypperEnv(ctx), "zypper", append(args, names...)...)
	if err != nil {
		return err
	}
	if !zypperOK(res.ExitCode) {
		return opFailure("reinstall", "zypper", names, res, "zypper install --force "+strings.Join(names, " "))
	}
	return nil
}

// Remove implements Manager.
func (z *zypper) Remove(ctx context.Context, names ...string) error {
	present, err := z.installedOnly(ctx, names)
	if err != nil || len(present) == 0 {
		return err
	}
	// Removing needs no repository: --no-refresh keeps a broken one from
	// being asked.
	res, err := z.exec(ctx, zypperEnv(ctx), "zypper", append([]string{"--non-interactive", "--no-refresh", "remove"}, present...)...)
	if err != nil {
		return err
	}
	if !zypperOK(res.ExitCode) {
		return opFailure("remove", "zypper", present, res, "zypper remove "+strings.Join(present, " "))
	}
	return nil
}

// Repair implements Manager: nothing to finish with rpm.
func (z *zypper) Repair(context.Context) error { return nil }

// ImportKey implements Manager.
func (z *zypper) ImportKey(ctx context.Context, path string) error { return z.rpmImportKey(ctx, path) }

// RemoveKey implements Manager.
func (z *zypper) RemoveKey(ctx context.Context, fingerprint string) error {
	return z.rpmRemoveKey(ctx, fingerprint)
}

// TrustedKeys implements Manager.
func (z *zypper) TrustedKeys(ctx context.Context) (map[string]string, error) {
	return z.rpmTrustedKeys(ctx)
}
