package pkgmgr

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
)

// apt drives apt-get, apt-cache, dpkg and dpkg-query (Debian, Ubuntu).
type apt struct{ base }

// aptEnv keeps apt, debconf and needrestart from ever asking a question:
// there is no terminal, and a prompt would hang until our deadline.
func aptEnv() []string {
	return []string{"DEBIAN_FRONTEND=noninteractive", "NEEDRESTART_MODE=a"}
}

// lockWaitMargin is kept from the context's deadline when telling apt how
// long to wait for its lock, so that apt gives up (and says who holds the
// lock) before we are killed.
const lockWaitMargin = 30 * time.Second

// defaultLockWait is apt's lock wait when the context has no deadline.
const defaultLockWait = 300

// lockTimeout is the value for -o DPkg::Lock::Timeout (apt ≥ 1.9.11; older
// apt ignores unknown -o options): the seconds left before our deadline,
// minus a margin.
func lockTimeout(ctx context.Context) string {
	dl, ok := ctx.Deadline()
	if !ok {
		return strconv.Itoa(defaultLockWait)
	}
	secs := int(time.Until(dl).Round(time.Second)/time.Second) - int(lockWaitMargin/time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.Itoa(secs)
}

// dpkgEntry is what dpkg knows of one package.
type dpkgEntry struct {
	status  string // "want ok state", e.g. "install ok installed"
	version string
}

// installed reports whether the status's last two words are "ok
// installed"; the first word is only the wanted state, so a held package
// ("hold ok installed") counts, while removed packages with leftover
// configuration ("deinstall ok config-files") and half-configured ones do
// not.
func (e dpkgEntry) installed() bool {
	f := strings.Fields(e.status)
	return len(f) == 3 && (f[0] == "install" || f[0] == "hold") && f[1] == "ok" && f[2] == "installed"
}

// known reports whether dpkg holds anything of the package (files or
// configuration), as opposed to remembering only its name.
func (e dpkgEntry) known() bool { return !strings.HasSuffix(e.status, "not-installed") }

// dpkgFormat is dpkg-query's output format: one line per package (and per
// architecture, for a package installed for several).
const dpkgFormat = `${Package}\t${Status}\t${Version}\n`

// statuses asks dpkg about all names in one dpkg-query run (each start of
// dpkg-query reads the whole status database). A name dpkg has never heard
// of has no entry. Of several architecture instances of one package, an
// installed one wins.
func (a *apt) statuses(ctx context.Context, names []string) (map[string]dpkgEntry, error) {
	if len(names) == 0 {
		return map[string]dpkgEntry{}, nil
	}
	res, err := a.exec(ctx, nil, "dpkg-query", append([]string{"-W", "-f=" + dpkgFormat}, names...)...)
	if err != nil {
		return nil, err
	}
	// Exit 1: some name matched nothing ("dpkg-query: no packages found
	// matching <name>"); the others are still listed.
	if res.ExitCode != 0 && res.ExitCode != 1 {
		return nil, commandCause("dpkg-query -W "+strings.Join(names, " "), res)
	}
	out := map[string]dpkgEntry{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || !slices.Contains(names, f[0]) {
			continue // a glob's other matches, or a blank line
		}
		e := dpkgEntry{status: strings.TrimSpace(f[1]), version: strings.TrimSpace(f[2])}
		if old, seen := out[f[0]]; seen && old.installed() {
			continue
		}
		out[f[0]] = e
	}
	return out, nil
}

// Installed implements Manager, with one dpkg-query for all names.
func (a *apt) Installed(ctx context.Context, names ...string) (map[string]string, error) {
	entries, err := a.statuses(ctx, names)
	if err != nil {
		return nil, err
	}
	versions := map[string]string{}
	for name, e := range entries {
		if e.installed() {
			versions[name] = e.version
		}
	}
	return versions, nil
}

// Refresh implements Manager. Only our source file is read (see scope.go),
// so every error printed is about our repository and a slow or broken
// distribution repository costs nothing; the other sources' lists are kept
// (APT::Get::List-Cleanup=0). Without a source file every source is
// refreshed.
func (a *apt) Refresh(ctx context.Context, repoID, sourceFile string) error {
	if sourceFile == "" {
		full, err := a.exec(ctx, aptEnv(), "apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout="+lockTimeout(ctx))
		if err != nil {
			return err
		}
		return refreshFailure("the configured repositories", "apt-get", full, "apt-get update")
	}
	res, err := a.exec(ctx, aptEnv(), "apt-get", "update", "-q",
		"-o", "Dir::Etc::sourcelist="+sourceFile,
		"-o", "Dir::Etc::sourceparts=-",
		"-o", "APT::Get::List-Cleanup=0",
		"-o", "DPkg::Lock::Timeout="+lockTimeout(ctx))
	if err != nil {
		return err
	}
	if err := refreshFailure("in "+sourceFile, "apt-get", res, "apt-get update"); err != nil {
		return err
	}
	a.ours = scope{repoID: repoID, sourceFile: sourceFile}
	return nil
}

// onlyOurs are the options that make apt-get or apt-cache see our source
// alone (and dpkg's installed packages), once Refresh has named it.
func (a *apt) onlyOurs() []string {
	if a.ours.sourceFile == "" {
		return nil
	}
	return []string{"-o", "Dir::Etc::sourcelist=" + a.ours.sourceFile, "-o", "Dir::Etc::sourceparts=-"}
}

// Available implements Manager: apt-cache policy prints "Candidate: (none)"
// for a package no repository offers, and nothing (or "N: Unable to locate
// package") for a name it does not know.
func (a *apt) Available(ctx context.Context, name string) (bool, error) {
	res, err := a.exec(ctx, nil, "apt-cache", append(a.onlyOurs(), "policy", name)...)
	if err != nil {
		return false, err
	}
	if res.ExitCode != 0 {
		return false, commandCause("apt-cache policy "+name, res)
	}
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		l = strings.TrimSpace(l)
		if c, ok := strings.CutPrefix(l, "Candidate:"); ok {
			c = strings.TrimSpace(c)
			return c != "" && c != "(none)", nil
		}
	}
	return false, nil
}

// Install implements Manager. apt-get install upgrades an installed package
// to the candidate, so install and upgrade are the same command. Existing
// configuration files are kept (--force-confold), new defaults taken where
// there is no local change (--force-confdef).
func (a *apt) Install(ctx context.Context, pkgs ...Package) error {
	if len(pkgs) == 0 {
		return nil
	}
	specs, pinned := eqSpecs(pkgs)
	var extra []string
	if pinned {
		// A pinned version may be older than the installed one; as an -o
		// option (not --allow-downgrades) it is ignored by apt < 1.1.
		extra = append(extra, "-o", "APT::Get::allow-downgrades=true")
	}
	extra = append(extra, specs...)
	reproduce := "apt-get install " + strings.Join(specs, " ")
	ours := a.onlyOurs()
	res, err := a.exec(ctx, aptEnv(), "apt-get", append(append(aptInstallArgs(ctx), ours...), extra...)...)
	if err != nil {
		return err
	}
	if res.ExitCode == 0 {
		return nil
	}
	if len(ours) == 0 || !depMissing(res.Combined()) {
		return opFailure("install", "apt-get", names(pkgs), res, reproduce)
	}
	// A dependency is not installed and our repository does not have it:
	// that is what the distribution's repositories are for.
	deps := missingDeps(res.Combined())
	a.log.WithField("missing", deps).Info("a dependency is not installed; refreshing every apt source and installing with all of them")
	update, err := a.exec(ctx, aptEnv(), "apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout="+lockTimeout(ctx))
	if err != nil {
		return err
	}
	if c := classify(update.Combined()); c == classLocked {
		return refreshFailure("the configured repositories", "apt-get", update, "apt-get update")
	}
	res, err = a.exec(ctx, aptEnv(), "apt-get", append(aptInstallArgs(ctx), extra...)...)
	if err != nil {
		return err
	}
	mine := append(a.sourceURLs(a.ours.sourceFile), a.ours.sourceFile)
	where, why := foreignProblem(update.Combined(), mine)
	if res.ExitCode == 0 {
		if where != "" {
			a.log.WithFields(map[string]any{"repository": where, "answer": why}).Warn("a distribution repository failed to refresh; the install succeeded without it")
		}
		return nil
	}
	if where == "" {
		where, why = foreignProblem(res.Combined(), mine)
	}
	if where != "" {
		both := cmdrun.Result{Stdout: []byte(update.Combined() + "\n" + res.Combined()), ExitCode: res.ExitCode}
		return distroRepoFailure("apt-get", names(pkgs), deps, where, why, both, "apt-get update && sudo "+reproduce)
	}
	return opFailure("install", "apt-get", names(pkgs), res, reproduce)
}

// aptInstallArgs are the options of every apt-get install: non-interactive,
// keep locally changed configuration files, wait for dpkg's lock only as
// long as the budget allows.
func aptInstallArgs(ctx context.Context) []string {
	return []string{"install", "-y", "-q",
		"-o", "Dpkg::Options::=--force-confold",
		"-o", "Dpkg::Options::=--force-confdef",
		"-o", "DPkg::Lock::Timeout=" + lockTimeout(ctx)}
}

// Reinstall implements Manager.
func (a *apt) Reinstall(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		return nil
	}
	args := append(append(append(aptInstallArgs(ctx), a.onlyOurs()...), "--reinstall"), names...)
	res, err := a.exec(ctx, aptEnv(), "apt-get", args...)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return opFailure("reinstall", "apt-get", names, res, "apt-get install --reinstall "+strings.Join(names, " "))
	}
	return nil
}

// Remove implements Manager. Packages dpkg still knows in any state are
// purged, so leftover configuration (state "config-files") goes too.
func (a *apt) Remove(ctx context.Context, names ...string) error {
	entries, err := a.statuses(ctx, names)
	if err != nil {
		return err
	}
	var present []string
	for _, n := range names {
		if e, ok := entries[n]; ok && e.known() {
			present = append(present, n)
		}
	}
	if len(present) == 0 {
		return nil
	}
	args := append([]string{"purge", "-y", "-q", "-o", "DPkg::Lock::Timeout=" + lockTimeout(ctx)}, present...)
	res, err := a.exec(ctx, aptEnv(), "apt-get", args...)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return opFailure("remove", "apt-get", present, res, "apt-get purge "+strings.Join(present, " "))
	}
	return nil
}

// Repair implements Manager. An interrupted dpkg run (power loss, a killed
// unattended-upgrade) makes every apt-get install fail with "dpkg was
// interrupted, you must manually run 'dpkg --configure -a'"; we do that
// for the user, keeping their configuration files.
//
// dpkg's own files decide first (see dpkgState): when they show a settled
// database, which is nearly always, no process runs. Otherwise dpkg --audit
// gives the authoritative answer. A pending journal alone also needs the
// repair: apt refuses to run while one exists, yet dpkg --audit reads
// through it and may find nothing wrong.
func (a *apt) Repair(ctx context.Context) error {
	st := a.dpkgState()
	if st == dpkgSettled {
		return nil
	}
	report, err := a.audit(ctx)
	if err != nil {
		return err
	}
	if report == "" && st != dpkgJournalPending {
		return nil
	}
	why := tailLines(report, 20)
	if why == "" {
		why = "journal of an interrupted dpkg run pending in " + a.dpkgAdminDir() + "/updates"
	}
	a.log.WithField("audit", why).Warn("dpkg database needs repair; running dpkg --configure -a")
	res, err := a.exec(ctx, aptEnv(), "dpkg", "--configure", "-a", "--force-confold", "--force-confdef")
	if err != nil {
		return err
	}
	if res.ExitCode != 0 && classify(res.Combined()) == classLocked {
		return opFailure("repair", "dpkg", []string{"the package database"}, res, "dpkg --configure -a")
	}
	after, err := a.audit(ctx)
	if err != nil {
		return err
	}
	if after == "" && a.dpkgState() == dpkgJournalPending {
		after = "the journal of an interrupted run is still pending"
	}
	if after != "" {
		return failure.New(failure.PackageManagerFailed, commandCause("dpkg --configure -a", res),
			"The package database is broken and 'dpkg --configure -a' could not repair it (dpkg --audit: %s). Run 'sudo dpkg --configure -a' on the VM, fix what it reports, and re-apply the extension.",
			strings.TrimSuffix(clip(firstMeaningful(after), 200), "."))
	}
	return nil
}

// dpkgDBState is what dpkg's files say about its database without running
// dpkg.
type dpkgDBState int

const (
	dpkgUnknown        dpkgDBState = iota // unreadable or unusual: ask dpkg --audit
	dpkgSettled                           // no journal, every package in a final state
	dpkgJournalPending                    // an interrupted run left updates/NNNN files
)

// dpkgState reads the dpkg database the way apt does before it agrees to
// run: a file with an all-digit name in updates/ is the journal of an
// interrupted dpkg run (apt's "dpkg was interrupted"). Without one, the
// database is settled when every package's Status is "<want> ok
// installed", "... config-files" or "... not-installed": no half-installed,
// unpacked, half-configured or trigger-waiting package and no
// reinstall-required flag, which is what dpkg --audit reports on (besides
// missing file lists, which do not stop apt). Anything unexpected, such as
// an unreadable file, answers dpkgUnknown so that dpkg itself is asked.
func (a *apt) dpkgState() dpkgDBState {
	dir := a.dpkgAdminDir()
	entries, err := os.ReadDir(filepath.Join(dir, "updates"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return dpkgUnknown
	}
	for _, e := range entries {
		if allDigits(e.Name()) {
			return dpkgJournalPending
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return dpkgUnknown
	}
	if !statusSettled(data) {
		return dpkgUnknown
	}
	return dpkgSettled
}

// dpkgAdminDir is dpkg's database directory as dpkg sees it: DPKG_ADMINDIR
// when our environment sets it (dpkg honours it), else the root's
// /var/lib/dpkg.
func (a *apt) dpkgAdminDir() string {
	for _, kv := range a.env {
		if v, ok := strings.CutPrefix(kv, "DPKG_ADMINDIR="); ok && v != "" {
			return v
		}
	}
	return a.root.Path("/var/lib/dpkg")
}

// statusSettled reports whether every Status field of a dpkg status file
// names a final state with no error flag, and no package has triggers
// pending or awaited.
func statusSettled(data []byte) bool {
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("Status:")):
			f := strings.Fields(string(line[len("Status:"):]))
			if len(f) != 3 || f[1] != "ok" {
				return false
			}
			switch f[2] {
			case "installed", "config-files", "not-installed":
			default:
				return false
			}
		case bytes.HasPrefix(line, []byte("Triggers-Pending:")), bytes.HasPrefix(line, []byte("Triggers-Awaited:")):
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// audit returns dpkg --audit's report, "" when the database is sound. dpkg
// < 1.17 exits 0 even when it reports problems, so the text decides.
func (a *apt) audit(ctx context.Context) (string, error) {
	res, err := a.exec(ctx, nil, "dpkg", "--audit")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

func firstMeaningful(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(l); t != "" {
			return t
		}
	}
	return ""
}

// ImportKey implements Manager: nothing to do, sources reference the
// keyring with signed-by=.
func (a *apt) ImportKey(context.Context, string) error { return nil }

// RemoveKey implements Manager: nothing to do (see ImportKey).
func (a *apt) RemoveKey(context.Context, string) error { return nil }

// TrustedKeys implements Manager: apt trusts keys per source (signed-by=).
func (a *apt) TrustedKeys(context.Context) (map[string]string, error) {
	return map[string]string{}, nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
