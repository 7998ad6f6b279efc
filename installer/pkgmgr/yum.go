package pkgmgr

import (
	"context"
	"strings"
)

// yumLike drives dnf, yum (3, or dnf behind the yum name on RHEL 8+) and
// tdnf (Azure Linux, CBL-Mariner), whose command lines agree on what we
// need. The program is the Kind's name.
type yumLike struct{ base }

func (y *yumLike) tool() string { return string(y.kind) }

// Installed implements Manager.
func (y *yumLike) Installed(ctx context.Context, names ...string) (map[string]string, error) {
	return y.rpmInstalled(ctx, names...)
}

// Refresh implements Manager: only our repository is enabled, so its
// failure cannot hide behind skip_if_unavailable or another repository's
// error, and the output is about it alone. dnf 4 with skip_if_unavailable
// reports a failed download and still exits 0, hence the output decides.
func (y *yumLike) Refresh(ctx context.Context, repoID, sourceFile string) error {
	var only []string
	if repoID != "" {
		only = []string{"--disablerepo=*", "--enablerepo=" + repoID}
	}
	switch y.kind {
	case Yum:
		// yum 3 has no --refresh; expiring our repository's cache first
		// makes makecache download its metadata again.
		if _, err := y.exec(ctx, nil, "yum", append([]string{"clean", "expire-cache"}, only...)...); err != nil {
			return err
		}
	}
	args := []string{"-y", "makecache"}
	if y.kind == Dnf {
		args = append(args, "--refresh")
	}
	args = append(args, only...)
	res, err := y.exec(ctx, nil, y.tool(), args...)
	if err != nil {
		return err
	}
	if err := refreshFailure(repoLabel(repoID), y.tool(), res, y.tool()+" makecache"); err != nil {
		return err
	}
	y.ours = scope{repoID: repoID, sourceFile: sourceFile}
	return nil
}

// onlyOurs enables our repository alone, once Refresh has named it (see
// scope.go). tdnf takes the same options (and '*' as a pattern).
func (y *yumLike) onlyOurs() []string {
	if y.ours.repoID == "" {
		return nil
	}
	return []string{"--disablerepo=*", "--enablerepo=" + y.ours.repoID}
}

func repoLabel(id string) string {
	if id == "" {
		return "the configured repositories"
	}
	return "'" + id + "'"
}

// Available implements Manager. "list --showduplicates" prints installed
// and available packages as "<name>.<arch> <version> <repo>"; installed
// ones show "@System"/"installed" or "@<repo>" for the repository they came
// from. A package counts as available when a line names a repository.
func (y *yumLike) Available(ctx context.Context, name string) (bool, error) {
	args := append([]string{"-q"}, y.onlyOurs()...)
	args = append(args, "list")
	if y.kind != Tdnf {
		args = append(args, "--showduplicates")
	}
	args = append(args, name)
	res, err := y.exec(ctx, nil, y.tool(), args...)
	if err != nil {
		return false, err
	}
	if res.ExitCode != 0 {
		// dnf/yum: "Error: No matching Packages to list"; tdnf:
		// "Error(1011) : No matching packages"; dnf 5: "No matching packages".
		low := strings.ToLower(res.Combined())
		if strings.Contains(low, "no matching") || strings.Contains(low, "no match for argument") {
			return false, nil
		}
		return false, commandCause(y.tool()+" list "+name, res)
	}
	return listOffers(string(res.Stdout), name), nil
}

// listOffers parses yum/dnf/tdnf list output. yum 3 wraps a line whose
// columns do not fit into 80 characters, putting version and repository on
// the next line, so a lone "<name>.<arch>" is joined with its successor.
func listOffers(out, name string) bool {
	var pending []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(pending) > 0 {
			f = append(pending, f...)
			pending = nil
		}
		if len(f) == 0 || !strings.HasPrefix(f[0], name+".") {
			continue
		}
		if len(f) < 3 {
			pending = f
			continue
		}
		switch repo := f[2]; repo {
		case "@System", "installed", "@commandline", "@anaconda", "System":
		default:
			return true
		}
	}
	return false
}

// Install implements Manager. "install" leaves an installed package alone
// when no version is given, so those are upgraded with "upgrade" instead;
// a pinned version goes through "install name-version", which dnf also
// uses to downgrade.
func (y *yumLike) Install(ctx context.Context, pkgs ...Package) error {
	var install, upgrade, unknown []string
	for _, p := range pkgs {
		if p.Version == "" && p.Presence == PresenceUnknown {
			unknown = append(unknown, p.Name)
		}
	}
	installed, err := y.rpmInstalled(ctx, unknown...)
	if err != nil {
		return err
	}
	for _, p := range pkgs {
		if p.Version != "" {
			install = append(install, p.Name+"-"+p.Version)
			continue
		}
		_, present := installed[p.Name]
		if p.Presence == Present || present {
			upgrade = append(upgrade, p.Name)
		} else {
			install = append(install, p.Name)
		}
	}
	for _, step := range []struct {
		verb  string
		specs []string
	}{{"install", install}, {"upgrade", upgrade}} {
		if len(step.specs) == 0 {
			continue
		}
		if err := y.step(ctx, step.verb, step.specs); err != nil {
			return err
		}
	}
	return nil
}

// step runs one install or upgrade with our repository alone, and with
// every enabled repository when a dependency is missing (see scope.go).
func (y *yumLike) step(ctx context.Context, verb string, specs []string) error {
	reproduce := y.tool() + " " + verb + " " + strings.Join(specs, " ")
	ours := y.onlyOurs()
	res, err := y.exec(ctx, nil, y.tool(), append(append([]string{"-y", verb}, ours...), specs...)...)
	if err != nil {
		return err
	}
	if res.ExitCode == 0 {
		return nil
	}
	if len(ours) == 0 || !depMissing(res.Combined()) {
		return opFailure(verb, y.tool(), specs, res, reproduce)
	}
	deps := missingDeps(res.Combined())
	y.log.WithField("missing", deps).Info("a dependency is not installed; installing with every enabled repository")
	res, err = y.exec(ctx, nil, y.tool(), append([]string{"-y", verb}, specs...)...)
	if err != nil {
		return err
	}
	if res.ExitCode == 0 {
		return nil
	}
	// dnf names the repository ("repo 'id'") and the URL; ours is left out.
	mine := append(y.sourceURLs(y.ours.sourceFile), "'"+y.ours.repoID+"'")
	if where, why := foreignProblem(res.Combined(), mine); where != "" {
		return distroRepoFailure(y.tool(), specs, deps, where, why, res, reproduce)
	}
	return opFailure(verb, y.tool(), specs, res, reproduce)
}

// Reinstall implements Manager.
func (y *yumLike) Reinstall(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		return nil
	}
	res, err := y.exec(ctx, nil, y.tool(), append(append([]string{"-y", "reinstall"}, y.onlyOurs()...), names...)...)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return opFailure("reinstall", y.tool(), names, res, y.tool()+" reinstall "+strings.Join(names, " "))
	}
	return nil
}

// Remove implements Manager.
func (y *yumLike) Remove(ctx context.Context, names ...string) error {
	present, err := y.installedOnly(ctx, names)
	if err != nil || len(present) == 0 {
		return err
	}
	// Removing needs no repository: dnf and yum would still load every
	// enabled one, and fail on a broken one. tdnf keeps its command line
	// (not verified against a real tdnf).
	args := []string{"-y", "remove"}
	if y.kind != Tdnf {
		args = append(args, "--disablerepo=*")
	}
	res, err := y.exec(ctx, nil, y.tool(), append(args, present...)...)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return opFailure("remove", y.tool(), present, res, y.tool()+" remove "+strings.Join(present, " "))
	}
	return nil
}

// Repair implements Manager: rpm has no half-configured state to finish.
func (y *yumLike) Repair(context.Context) error { return nil }

// ImportKey implements Manager.
func (y *yumLike) ImportKey(ctx context.Context, path string) error {
	return y.rpmImportKey(ctx, path)
}

// RemoveKey implements Manager.
func (y *yumLike) RemoveKey(ctx context.Context, fingerprint string) error {
	return y.rpmRemoveKey(ctx, fingerprint)
}

// TrustedKeys implements Manager.
func (y *yumLike) TrustedKeys(ctx context.Context) (map[string]string, error) {
	return y.rpmTrustedKeys(ctx)
}
