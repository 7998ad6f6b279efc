package pkgmgr

import (
	"context"
	"slices"
	"strings"

	"github.com/aadsshlogin/handler/cmdrun"
)

// yumLike drives dnf, yum (3, or dnf behind the yum name on RHEL 8+) and
// tdnf (Azure Linux, CBL-Mariner), whose command lines agree on what we
// need. The program is the Kind's name.
type yumLike struct {
	base
	// excludesOff names the repository whose exclude option our own
	// commands ignore (IgnoringRepoExcludes in pin.go); "" for none.
	excludesOff string
}

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
	res, err := y.list(ctx, name)
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

// list runs "list [--showduplicates] name" (tdnf has no such option).
func (y *yumLike) list(ctx context.Context, name string) (cmdrun.Result, error) {
	args := append(append([]string{"-q"}, y.excludeArgs()...), y.onlyOurs()...)
	args = append(args, "list")
	if y.kind != Tdnf {
		args = append(args, "--showduplicates")
	}
	args = append(args, name)
	return y.exec(ctx, nil, y.tool(), args...)
}

// listOffers parses yum/dnf/tdnf list output: a line naming a repository
// offers the package.
func listOffers(out, name string) bool {
	for _, row := range listRows(out, name) {
		if !installedRepo(row[2]) {
			return true
		}
	}
	return false
}

// listRows returns the "<name>.<arch> <version> <repository>" rows of
// yum/dnf/tdnf list output for name. yum 3 wraps a line whose columns do
// not fit into 80 characters, putting version and repository on the next
// line, so a lone "<name>.<arch>" is joined with its successor.
func listRows(out, name string) [][]string {
	var rows [][]string
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
		rows = append(rows, f)
	}
	return rows
}

// installedRepo reports whether a list row's repository column means the
// installed package rather than a repository that offers it.
func installedRepo(repo string) bool {
	switch repo {
	case "@System", "installed", "@commandline", "@anaconda", "System":
		return true
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
	reproduce := y.reproduce(verb, specs)
	ours := y.onlyOurs()
	head := append(append([]string{"-y"}, y.excludeArgs()...), verb)
	res, err := y.exec(ctx, nil, y.tool(), append(append(slices.Clone(head), ours...), specs...)...)
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
	res, err = y.exec(ctx, nil, y.tool(), append(head, specs...)...)
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
	args := append(append(append([]string{"-y"}, y.excludeArgs()...), "reinstall"), y.onlyOurs()...)
	res, err := y.exec(ctx, nil, y.tool(), append(args, names...)...)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return opFailure("reinstall", y.tool(), names, res, y.reproduce("reinstall", names))
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

// reproduce is the command a user runs to see a failure's full output.
func (y *yumLike) reproduce(verb string, specs []string) string {
	return strings.Join(append(append(append([]string{y.tool()}, y.excludeArgs()...), verb), specs...), " ")
}
