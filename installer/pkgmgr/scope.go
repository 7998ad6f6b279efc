package pkgmgr

import (
	"regexp"
	"slices"
	"strings"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
)

// Our repository first (issue 10). aadsshlogin's dependencies are nearly
// always installed already, so the distribution's own repositories (an
// Ubuntu archive, RHUI, SUSE's update servers) are not needed for the
// install, and a broken or slow one must neither fail nor slow it. Refresh
// therefore refreshes our repository alone and remembers it; Install,
// Reinstall and Available then work with our repository and the installed
// packages only:
//
//   - apt: -o Dir::Etc::SourceList=<our list> -o Dir::Etc::SourceParts=-
//     (apt builds its cache from dpkg's status and the lists of the sources
//     it is given; APT::Get::List-Cleanup=0 on the update keeps the other
//     sources' lists, so the administrator's next apt command is unaffected);
//   - dnf, yum, tdnf: --disablerepo=* --enablerepo=<id>;
//   - zypper: install --repo <alias> (only that repository is loaded; the
//     installed packages still satisfy dependencies).
//
// Only when the package manager says that a dependency cannot be satisfied
// from what it sees does the back end fall back to every repository: apt
// refreshes them all (apt-get update), zypper refreshes them all, dnf loads
// them as it installs. If that fails and a repository other than ours was
// broken, the failure names that repository and its answer (exit 27), not
// packages.microsoft.com.

// scope is our repository as the last Refresh named it: the rpm repository
// id / zypper alias, or apt's source file.
type scope struct {
	repoID     string
	sourceFile string
}

func (s scope) set() bool { return s.repoID != "" || s.sourceFile != "" }

// depMissingPhrases mean the solver found a dependency that nothing it sees
// provides. Recorded in the sandbox (testdata/deps/) and in real roots
// (testdata/apt3/*install-depends.txt).
var depMissingPhrases = []string{
	"the following packages have unmet dependencies", // apt ≤ 2.x, apt 3 with Output-Version < 30
	"unsatisfied dependencies:",                      // apt 3 (Output-Version 30)
	"nothing provides",                               // dnf 4/5, zypper (libsolv), tdnf
	"no provider of",                                 // zypper for a capability
}

// yum 3: "Error: Package: x (repo)" followed by an indented "Requires: y".
var yumRequires = regexp.MustCompile(`(?m)^Error: Package: .*\n\s+Requires: `)

// depMissing reports whether a failed install's output says a dependency
// cannot be satisfied from the repositories the command could see. A lock
// or a download failure is never a missing dependency.
func depMissing(out string) bool {
	if c := classify(out); c == classLocked {
		return false
	}
	return firstLineWith(out, depMissingPhrases) != "" || yumRequires.MatchString(out)
}

var (
	aptDependsRE  = regexp.MustCompile(`(?m)^\s*\S+ : (?:Pre)?Depends: (\S+)`)
	nothingProvRE = regexp.MustCompile(`nothing provides '?([^'\s]+)'?`)
	yumRequiresRE = regexp.MustCompile(`(?m)^\s+Requires: (\S+)`)
)

// missingDeps lists the dependencies a failed install names as missing.
func missingDeps(out string) []string {
	var deps []string
	for _, re := range []*regexp.Regexp{aptDependsRE, nothingProvRE, yumRequiresRE} {
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			if !slices.Contains(deps, m[1]) {
				deps = append(deps, m[1])
			}
		}
	}
	return deps
}

// foreignProblem looks in a refresh's or install's output for a repository
// other than ours that could not be downloaded or verified, and returns its
// URL (or name) and the answer. Lines naming ours (its URL, id or source
// file) are left out, together with the indented lines that explain them.
func foreignProblem(out string, ours []string) (where, reason string) {
	var kept []string
	skipIndented := false
	for _, l := range strings.Split(out, "\n") {
		if skipIndented && strings.HasPrefix(l, " ") {
			continue
		}
		skipIndented = false
		if namesAny(l, ours) {
			skipIndented = true
			continue
		}
		kept = append(kept, l)
	}
	rest := strings.Join(kept, "\n")
	switch classify(rest) {
	case classUnreachable, classSignature:
	default:
		return "", ""
	}
	url, why := fetchProblem(rest)
	if url == "" {
		url = repoNamed(rest)
	}
	if why == "" {
		why = signatureLine(rest)
	}
	if url == "" && why == "" {
		return "", ""
	}
	if name := repoNamed(rest); name != "" && url != "" && !strings.Contains(name, "://") && !strings.Contains(url, name) {
		url = name + " (" + url + ")"
	}
	return orDefault(url, "a repository of the distribution"), why
}

// repoNamedRE finds the repository id or name dnf and zypper put in quotes
// ("repo 'rhui-baseos'", "Repository 'SLE-Module-Basesystem' is invalid",
// "Problem retrieving files from 'Basesystem'").
var repoNamedRE = regexp.MustCompile(`(?i)(?:repo(?:sitory)?|files from) '([^']+)'`)

func repoNamed(out string) string {
	if m := repoNamedRE.FindStringSubmatch(out); m != nil {
		return "'" + m[1] + "'"
	}
	return ""
}

func namesAny(line string, needles []string) bool {
	for _, n := range needles {
		if n != "" && strings.Contains(line, n) {
			return true
		}
	}
	return false
}

// distroRepoFailure is the failure of an install that needed a dependency
// from the distribution's repositories while one of them was broken.
func distroRepoFailure(tool string, pkgs []string, deps []string, where, reason string, res cmdrun.Result, reproduce string) error {
	need := "packages that are not installed"
	if len(deps) > 0 {
		need = "packages that are not installed (" + strings.Join(deps, ", ") + ")"
	}
	return failure.New(failure.PackageManagerFailed, commandCause(reproduce, res),
		"Installing %s needs %s, which only the distribution's own repositories provide, and the distribution repository %s failed with %s: %s. This is not a problem of packages.microsoft.com. Repair that repository on the VM (its URL, subscription or client certificate, firewall or proxy; 'sudo %s' shows the error) or install the missing packages, then re-apply the extension.",
		strings.Join(pkgs, " "), need, where, tool, strings.TrimSuffix(orDefault(reason, "download failed"), "."), reproduce)
}

// sourceURLs returns the URLs in our apt source file (one-line or deb822
// format), so that lines about our own repository can be told apart.
func (b *base) sourceURLs(file string) []string {
	if file == "" {
		return nil
	}
	data, err := b.root.ReadFile(file)
	if err != nil {
		return nil
	}
	var urls []string
	for _, u := range urlRE.FindAllString(string(data), -1) {
		urls = append(urls, strings.TrimRight(u, "/"))
	}
	return urls
}
