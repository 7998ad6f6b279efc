// Package installer is the install transaction: signing key, repository
// definition, packages and verification, undone as a whole when any step
// fails, and the matching uninstall.
package installer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/beside"
	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/installer/keys"
	"github.com/aadsshlogin/handler/installer/pkgmgr"
	"github.com/aadsshlogin/handler/installer/repo"
	"github.com/aadsshlogin/handler/installer/verify"
	"github.com/aadsshlogin/handler/sysroot"
)

// Package names on packages.microsoft.com.
const (
	PackageName        = "aadsshlogin"
	SELinuxPackageName = "aadsshlogin-selinux"
)

// Config is everything one install or uninstall needs, passed in explicitly.
type Config struct {
	Root     sysroot.Root
	Runner   cmdrun.Runner
	Log      logrus.FieldLogger
	HTTP     *retryablehttp.Client // key and repository probes; honours proxies
	Packages pkgmgr.Manager
	Locks    pkgmgr.Locks
	Services pkgmgr.Services
	Platform distro.Platform
	Location repo.Location
	// Mirror is true when Location comes from the repositoryUrl setting:
	// then the image's own repository is never reused.
	Mirror bool
	// Pins are the trusted signing-key fingerprints.
	Pins []string
	// MarkerFound is true when the version marker existed before this run:
	// an extension (this handler or 1.0.2385.1) already manages the
	// packages, so those installed are not the administrator's own.
	MarkerFound bool
	// CustomPins is true when Pins come from the signingKeyFingerprints
	// setting: then every published key file the repository host serves is
	// fetched, and each pinned one is trusted (a mirror may sign with any).
	CustomPins bool
	// PackageVersion is the aadsshloginVersion setting: aadsshlogin is
	// installed at this version and held there (hold.go); "" for none.
	PackageVersion string
	// HandlerVersion and ConfigHash are recorded in the state.
	HandlerVersion string
	ConfigHash     string
	Now            func() time.Time
	// HardDeadline bounds clean-up (rollback, restarting services) after
	// ctx has run out; it must leave time for the final status before the
	// agent kills the process. Zero means 90 s after ctx ends.
	HardDeadline time.Time
}

// pauseAutoUpdates pauses the automatic-update units for the work that
// follows and returns the function that starts them again. Even when pausing
// was cut short (ctx ended), the units it did stop are started again; ctx
// may have run out by then, so the restart is bounded by the hard deadline.
func (c Config) pauseAutoUpdates(ctx context.Context, log logrus.FieldLogger) (resume func()) {
	restore, err := c.Services.PauseAutoUpdates(ctx, c.Packages.Kind())
	if err != nil {
		log.WithError(err).Warn("pausing automatic updates was cut short; continuing")
	}
	return func() {
		if restore == nil {
			return
		}
		rctx, cancel := c.cleanupContext(ctx)
		defer cancel()
		if rerr := restore(rctx); rerr != nil {
			log.WithError(rerr).Warn("could not restart automatic-update services")
		}
	}
}

// cleanupContext returns a context for undo work that outlives ctx but not
// the hard deadline.
func (c Config) cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.HardDeadline
	if d.IsZero() {
		d = time.Now().Add(90 * time.Second)
	}
	return context.WithDeadline(context.WithoutCancel(ctx), d)
}

// Result describes a successful install, for the status message.
type Result struct {
	Packages map[string]string // name -> version now installed
	RepoURL  string            // repository in use
	Reused   string            // the image's own repository id, when reused
	KeyFP    string            // fingerprints of the keys trusted for it
	Notes    []string          // decisions worth telling the user (flavor fallback, pinning)
	// Offer is what the repository said before anything was written, for
	// a release newer than the support table (nil otherwise).
	Offer *repo.Offer
}

// Install converges the machine: the repository and key configured, the
// packages installed at the newest (or held) version, and SSH login with
// Entra ID verified. On failure every change this run made is undone and the
// returned error says so.
//
// The steps, in order: wait for the package manager's lock and repair an
// interrupted dpkg; configure the repository (keys and definition); refresh
// it; prepare the version hold; install the packages; verify the wiring;
// lock the held version; save the state. Two reads go on beside them: the
// repository's resolution (folder, offer, keys) from the start, and the
// query of what is installed from the moment the package manager is free.
func Install(ctx context.Context, c Config) (res *Result, err error) {
	t, err := c.begin()
	if err != nil {
		return nil, err
	}
	c = t.c // with the hold's view of the package manager
	defer c.pauseAutoUpdates(ctx, t.log)()
	defer t.undoOnFailure(ctx, &err)

	repository := beside.Start(func() resolution { return c.resolveRepository(ctx) })
	defer repository.Wait()
	if err := t.waitForPackageManager(ctx); err != nil {
		return nil, err
	}
	installed := beside.Start(func() answer { return t.queryInstalled(ctx) })
	defer installed.Wait()

	if err := t.configureRepository(ctx, repository.Wait()); err != nil {
		return nil, err
	}
	if err := t.refresh(ctx); err != nil {
		return nil, err
	}
	if err := t.learnInstalled(installed.Wait()); err != nil {
		return nil, err
	}
	if err := c.prepareHold(ctx, t.j, t.state, t.prev, t.res, t.hold); err != nil {
		return nil, err
	}
	if err := t.installPackages(ctx); err != nil {
		return nil, err
	}
	if err := t.verify(ctx); err != nil {
		return nil, err
	}
	if err := c.finishHold(ctx, t.j, t.state, t.res, t.hold); err != nil {
		return nil, err
	}
	if err := t.save(); err != nil {
		return nil, err
	}
	return t.res, nil
}

// transaction is one Install's working state: what it found, what it
// changed (the journal) and what it will report.
type transaction struct {
	c     Config
	log   logrus.FieldLogger
	j     *journal
	hold  *holdRun
	prev  *State // the last successful install's state; nil for none
	state *State // what this run builds up
	res   *Result
	def   repo.Definition

	before      map[string]string // installed before the install
	names       []string          // our packages, installed by this run
	preexisting []string          // those of them that were there before
}

// answer is the query of installed packages run beside the refresh.
type answer struct {
	versions map[string]string
	err      error
}

// begin plans the version hold, reads the previous state and starts the
// journal; it changes nothing.
func (c Config) begin() (*transaction, error) {
	log := c.Log.WithField("step", "install")
	hold, err := c.planHold()
	if err != nil {
		return nil, err
	}
	c.Packages = hold.manager(c.Packages)
	prev, perr := LoadState(c.Root)
	if perr != nil {
		log.WithError(perr).Warn("ignoring unreadable state; it will be rewritten")
	}
	state := &State{
		HandlerVersion: c.HandlerVersion,
		ConfigHash:     c.ConfigHash,
		Distro:         c.Platform.OS.ID + " " + c.Platform.OS.VersionID,
		PackageManager: c.Packages.Kind(),
		Packages:       map[string]string{},
		Backups:        map[string]string{},
	}
	if prev != nil {
		for k, v := range prev.Backups {
			state.Backups[k] = v
		}
		state.ImportedKeys = append(state.ImportedKeys, prev.ImportedKeys...)
		state.Preinstalled = append(state.Preinstalled, prev.Preinstalled...)
	}
	return &transaction{
		c: c, log: log, hold: hold, prev: prev, state: state,
		j:   &journal{root: c.Root, log: log, backups: StateDir + "/backup"},
		res: &Result{Packages: map[string]string{}},
	}, nil
}

// undoOnFailure rolls the journal back when *err is set, and says in the
// error whether the machine is as it was.
func (t *transaction) undoOnFailure(ctx context.Context, err *error) {
	if *err == nil {
		return
	}
	rctx, cancel := t.c.cleanupContext(ctx)
	defer cancel()
	changed := len(t.j.undo) > 0
	failed := t.j.rollback(rctx)
	*err = withRollbackNote(*err, changed, failed)
}

// waitForPackageManager waits for other package operations to end and
// repairs what an interrupted one left.
func (t *transaction) waitForPackageManager(ctx context.Context) error {
	if err := t.c.Locks.Wait(ctx, t.c.Packages.Kind()); err != nil {
		return err
	}
	return t.c.Packages.Repair(ctx)
}

// queryInstalled asks, in one query, whether SELinux policy is present and
// which of our packages are there. It runs beside the repository set-up
// and refresh: the package manager is idle and sound by then, and nothing
// before the install changes what is installed.
func (t *transaction) queryInstalled(ctx context.Context) answer {
	query := []string{SELinuxPackageName, PackageName}
	if t.c.Platform.SELinuxPolicyPackage != "" {
		query = append(query, t.c.Platform.SELinuxPolicyPackage)
	}
	v, err := t.c.Packages.Installed(ctx, query...)
	return answer{v, err}
}

func (t *transaction) configureRepository(ctx context.Context, rs resolution) error {
	def, err := t.c.configureRepository(ctx, t.j, t.state, t.res, t.hold.inRepository(t.c.Packages.Kind(), rs))
	t.def = def
	return err
}

func (t *transaction) refresh(ctx context.Context) error {
	repoID := t.def.RepoID
	if t.def.Reuse {
		repoID = t.def.ReuseRepoID
	}
	return t.c.Packages.Refresh(ctx, repoID, t.def.Path)
}

func (t *transaction) learnInstalled(ans answer) error {
	if ans.err != nil {
		return fmt.Errorf("checking installed packages: %w", ans.err)
	}
	t.before = ans.versions
	return nil
}

// installPackages installs aadsshlogin-selinux (when the SELinux policy
// package is there) and aadsshlogin, in that order, so the main package's
// files get their labels (as the shipped extension orders it).
func (t *transaction) installPackages(ctx context.Context) error {
	c := t.c
	var pkgs []pkgmgr.Package
	if _, has := t.before[c.Platform.SELinuxPolicyPackage]; has && c.Platform.SELinuxPolicyPackage != "" {
		pkgs = append(pkgs, pkgmgr.Package{Name: SELinuxPackageName})
		t.state.SELinux = true
	}
	pkgs = append(pkgs, pkgmgr.Package{Name: PackageName, Version: t.hold.version})
	for i, p := range pkgs {
		_, had := t.before[p.Name]
		// Tell the back end what the query found, as long as it is still
		// true: a package present stays present, but an absent one may
		// have come in as a dependency of one installed before it.
		switch {
		case had:
			p.Presence = pkgmgr.Present
		case i == 0:
			p.Presence = pkgmgr.Absent
		}
		if err := c.installPackage(ctx, t.j, p, had); err != nil {
			return t.explainInstallFailure(ctx, p, err)
		}
		if had {
			t.preexisting = append(t.preexisting, p.Name)
			if t.prev == nil && !c.MarkerFound && !slices.Contains(t.state.Preinstalled, p.Name) {
				// Installed before any extension ran: the administrator's.
				t.state.Preinstalled = append(t.state.Preinstalled, p.Name)
			}
		}
		t.names = append(t.names, p.Name)
	}
	return nil
}

// explainInstallFailure turns a package-manager failure into its real
// cause where one can be told: an administrator's lock, a held version the
// repository lacks, or no such package for this release at all. Only now
// is the repository asked whether it offers the package (a query that
// would slow every successful install).
func (t *transaction) explainInstallFailure(ctx context.Context, p pkgmgr.Package, err error) error {
	if failure.CodeOf(err) != failure.PackageManagerFailed {
		return err
	}
	if lerr := t.hold.adminLockFailure(p.Name, err); lerr != nil {
		return lerr
	}
	if p.Version != "" {
		if verr := t.c.versionNotOffered(ctx, t.hold, t.res.RepoURL, err); verr != nil {
			return verr
		}
	}
	if ok, aerr := t.c.Packages.Available(ctx, p.Name); aerr == nil && !ok {
		return failure.New(failure.Unsupported, err,
			"The repository %s offers no %s package for %s. This distribution version is not supported yet; see https://aka.ms/AADSSHLogin for the supported list.",
			t.res.RepoURL, p.Name, t.c.Platform.OS.PrettyName)
	}
	return err
}

// verify checks that sshd, NSS, PAM (and SELinux) are wired, beside the
// query of what is now installed. A package that was installed before but
// is not wired was most likely interrupted while its scripts ran (a reboot
// mid-install), which rpm never repairs on its own: it is reinstalled once.
func (t *transaction) verify(ctx context.Context) error {
	c := t.c
	vopts := verify.Options{Runner: c.Runner, Root: c.Root, SELinux: t.state.SELinux}
	verified := beside.Start(func() error { return verify.Verify(ctx, vopts) })
	after, err := c.Packages.Installed(ctx, t.names...)
	verr := verified.Wait()
	for _, name := range t.names {
		v, has := after[name]
		if err != nil || !has {
			return failure.New(failure.PackageManagerFailed, err,
				"The package manager reported success, but %s is not installed afterwards. Run 'sudo %s' on the VM to see why.", name, installHint(c.Packages.Kind(), name))
		}
		t.state.Packages[name] = v
		t.res.Packages[name] = v
	}
	if verr != nil && len(t.preexisting) > 0 {
		t.log.WithError(verr).WithField("packages", t.preexisting).Warn("verification failed for packages installed earlier; reinstalling them once")
		if rerr := c.Packages.Reinstall(ctx, t.preexisting...); rerr != nil {
			t.log.WithError(rerr).Warn("reinstall failed")
		} else {
			verr = verify.Verify(ctx, vopts)
		}
	}
	return verr
}

// save records what the run did, and keeps its changes.
func (t *transaction) save() error {
	t.state.CompletedAt = t.c.now()
	if err := SaveState(t.c.Root, t.state); err != nil {
		return failure.New(failure.SystemStateInvalid, err,
			"Cannot save the extension's state in %s (the file system is full or read-only). Free space there and re-apply the extension.", StateDir)
	}
	t.j.commit()
	return nil
}

// resolution is what the network says about the repository before
// anything is written: the trusted key and the repository definition, or
// the image's own repository to reuse.
type resolution struct {
	def   repo.Definition
	key   *keys.Key
	offer *repo.Offer
	notes []string
	err   error
}

// resolveRepository chooses the repository folder, asks it whether it
// offers aadsshlogin when the release is newer than the support table, and
// downloads and pin-checks the signing keys. It only reads (files and the
// network), so it can run beside other work.
func (c Config) resolveRepository(ctx context.Context) resolution {
	p := c.Platform
	if !c.Mirror && (p.Family == distro.FamilyMariner || p.Family == distro.FamilyAzureLinux) {
		if id, ok := repo.FindReusable(c.Root, p); ok {
			return resolution{def: repo.Definition{Reuse: true, ReuseRepoID: id}}
		}
	}
	flavor, note, err := repo.ChooseFlavor(ctx, c.HTTP, p, c.Location)
	if err != nil {
		return resolution{err: err}
	}
	var notes []string
	if flavor != p.Flavor {
		notes = append(notes, note)
	}
	c.Log.WithFields(logrus.Fields{"flavor": flavor, "note": note}).Info("repository folder chosen")
	def, err := repo.Build(p, c.Location, flavor)
	if err != nil {
		return resolution{err: err}
	}
	var offer *repo.Offer
	if p.Listing == distro.Newer {
		// Never another release's packages: the repository of this
		// release must offer aadsshlogin, or nothing is changed.
		o, err := repo.Offers(ctx, c.HTTP, p, def)
		if err != nil {
			return resolution{err: err}
		}
		c.Log.WithFields(logrus.Fields{"url": o.URL, "offered": o.Offered, "why": o.Why}).Info("asked the repository of a release newer than the support table")
		if !o.Offered {
			return resolution{err: failure.New(failure.Unsupported, nil,
				"%s is newer than the releases in the extension's support table, and packages.microsoft.com has no aadsshlogin for it yet: %s %s. Nothing was changed on the VM. Use a supported release (see %s), or apply the extension again once Microsoft publishes aadsshlogin for this release.",
				describe(p), o.URL, o.Why, distro.LearnMoreURL)}
		}
		offer = &o
	}
	key, err := keys.FetchTrusted(ctx, c.HTTP, c.keySource(), c.Pins)
	if err != nil {
		return resolution{err: err}
	}
	return resolution{def: def, key: key, offer: offer, notes: notes}
}

// keySource names the key files to download for the repository. With the
// default pins and a release whose key the table names, that one file
// must be served. Otherwise (a mirror with its own pins, or a release newer
// than the table) every published key is asked for, the release's own
// first and then the newest, and the host may lack some of them.
func (c Config) keySource() keys.Source {
	src := keys.Source{Base: c.Location.Base}
	primary := c.Platform.KeyFile
	if primary != "" && !c.CustomPins {
		src.Files, src.AllRequired = []string{primary}, true
		return src
	}
	if primary != "" {
		src.Files = append(src.Files, primary)
	}
	files := keys.Files()
	for i := len(files) - 1; i >= 0; i-- {
		if files[i] != primary {
			src.Files = append(src.Files, files[i])
		}
	}
	return src
}

func describe(p distro.Platform) string {
	if p.OS.PrettyName != "" {
		return p.OS.PrettyName
	}
	return strings.TrimSpace(p.OS.ID + " " + p.OS.VersionID)
}

// configureRepository writes the signing key and the repository definition
// resolved before (or records the image's own repository) in state.
func (c Config) configureRepository(ctx context.Context, j *journal, state *State, res *Result, rs resolution) (repo.Definition, error) {
	if rs.err != nil {
		return repo.Definition{}, rs.err
	}
	def, key := rs.def, rs.key
	res.Notes = append(res.Notes, rs.notes...)
	res.Offer = rs.offer
	if def.Reuse {
		id := def.ReuseRepoID
		res.Reused, state.ReusedRepo = id, id
		res.RepoURL = "the image's own repository " + id
		res.Notes = append(res.Notes, "using the image's own repository "+id)
		return def, nil
	}
	res.KeyFP = strings.Join(key.Fingerprints, ", ")
	res.RepoURL = def.RepoURL

	keyData := key.Armored
	if c.Packages.Kind() == pkgmgr.Apt {
		keyData = key.Binary
	}
	// The keyring has our own dedicated name, so it is always ours.
	if _, err := j.writeFile(def.KeyringPath, keyData, 0o644, func([]byte) bool { return true }); err != nil {
		return repo.Definition{}, failure.New(failure.SystemStateInvalid, err, "Cannot write the signing key to %s. Check that the file system is writable and not full.", def.KeyringPath)
	}
	state.Keyring, state.KeyringSHA256 = def.KeyringPath, sha256Hex(keyData)

	if c.Packages.Kind() != pkgmgr.Apt {
		if err := c.importKeys(ctx, j, state, def.KeyringPath, key.Fingerprints); err != nil {
			return repo.Definition{}, err
		}
	}

	backup, err := j.writeFile(def.Path, def.Content, 0o644, func(old []byte) bool {
		return strings.HasPrefix(string(old), repo.Header)
	})
	if err != nil {
		return repo.Definition{}, failure.New(failure.SystemStateInvalid, err, "Cannot write the repository definition %s. Check that the file system is writable and not full.", def.Path)
	}
	if backup != "" {
		state.Backups[def.Path] = backup
		res.Notes = append(res.Notes, fmt.Sprintf("your previous %s was saved as %s and is restored on uninstall", def.Path, backup))
	}
	state.RepoFile, state.RepoFileSHA256, state.RepoURL = def.Path, sha256Hex(def.Content), def.RepoURL
	return def, nil
}

// importKeys makes the rpm database trust every key of the keyring file
// that it does not trust yet, and records each of those (by its whole
// fingerprint) for rollback and uninstall: a key that was there before is
// left alone, and no imported key is forgotten.
func (c Config) importKeys(ctx context.Context, j *journal, state *State, path string, fps []string) error {
	trusted, err := c.Packages.TrustedKeys(ctx)
	if err != nil {
		return fmt.Errorf("listing the keys the rpm database trusts: %w", err)
	}
	var missing []string
	for _, fp := range fps {
		if _, ok := trusted[fp]; !ok {
			missing = append(missing, fp)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// Recorded before the import: an import cut short may have brought in
	// some of the keys; removing one that is absent is no error.
	for _, fp := range missing {
		j.add("remove imported key "+fp, func(ctx context.Context) error { return c.Packages.RemoveKey(ctx, fp) })
	}
	// One import brings in every key of the file (one armored block each).
	if err := c.Packages.ImportKey(ctx, path); err != nil {
		return err
	}
	for _, fp := range missing {
		if !slices.Contains(state.ImportedKeys, fp) {
			state.ImportedKeys = append(state.ImportedKeys, fp)
		}
	}
	return nil
}

// installPackage installs or upgrades one package and records how to undo
// it: a package this run installed (had is false) is removed again on
// failure; a package that was there before is left alone (1.0.2385.1
// removed it, leaving a VM that worked before without Entra login).
func (c Config) installPackage(ctx context.Context, j *journal, p pkgmgr.Package, had bool) error {
	if !had {
		// Recorded before the install: a half-done install may have left
		// the package unpacked.
		j.add("remove "+p.Name, func(ctx context.Context) error { return c.Packages.Remove(ctx, p.Name) })
	}
	return c.Packages.Install(ctx, p)
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Uninstalled says what an uninstall left in place on purpose, for the
// status.
type Uninstalled struct {
	Removed []string // packages removed
	Kept    []string // what stays, one sentence each
}

// Uninstall removes the packages, the repository definition and keys we
// added (putting back users' files we had replaced) and our state. What was
// not ours stays: packages the administrator had installed before the
// extension, and keys that another repository definition on the machine
// uses (packages-microsoft-prod, dotnet, PowerShell, Defender for Endpoint
// are signed with the same Microsoft keys).
func Uninstall(ctx context.Context, c Config, st *State) (Uninstalled, error) {
	var out Uninstalled
	log := c.Log.WithField("step", "uninstall")
	kind := c.Packages.Kind()
	defer c.pauseAutoUpdates(ctx, log)()
	if err := c.Locks.Wait(ctx, kind); err != nil {
		return out, err
	}
	// aadsshlogin first: it depends on nothing, but its removal scripts
	// unwire sshd/NSS/PAM before the SELinux module goes away.
	var remove []string
	for _, name := range []string{PackageName, SELinuxPackageName} {
		if st != nil && slices.Contains(st.Preinstalled, name) {
			out.Kept = append(out.Kept, fmt.Sprintf("%s stays installed: it was installed before the extension.", name))
			continue
		}
		remove = append(remove, name)
	}
	// A held package cannot be removed (zypper locks).
	if err := c.releaseHold(ctx, st, remove...); err != nil {
		return out, err
	}
	if len(remove) > 0 {
		if err := c.Packages.Remove(ctx, remove...); err != nil {
			return out, err
		}
		out.Removed = remove
	}
	var errs []error
	if st != nil {
		if st.RepoFile != "" {
			if data, err := c.Root.ReadFile(st.RepoFile); err == nil && strings.HasPrefix(string(data), repo.Header) {
				errs = append(errs, c.Root.RemoveIfExists(st.RepoFile))
			}
		}
		if st.Keyring != "" {
			errs = append(errs, c.Root.RemoveIfExists(st.Keyring))
		}
		used := keysUsedElsewhere(c.Root, log, st.RepoFile)
		for _, fp := range st.ImportedKeys {
			if where, ok := used[fp]; ok {
				out.Kept = append(out.Kept, fmt.Sprintf("signing key %s stays trusted: %s uses it.", fp, where))
				continue
			}
			if err := c.Packages.RemoveKey(ctx, fp); err != nil {
				log.WithError(err).WithField("key", fp).Warn("could not remove imported key")
			}
		}
		for target, backup := range st.Backups {
			errs = append(errs, restoreUsersFile(c.Root, log, target, backup))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, failure.New(failure.SystemStateInvalid, err, "The packages were removed, but some repository files could not be cleaned up. See the handler log for the file names.")
	}
	return out, RemoveState(c.Root)
}

// restoreUsersFile puts the user's file that an install replaced back at
// target, unless target now holds a file that is not ours either: then the
// user has written their own since, and it stays (the older copy goes).
func restoreUsersFile(root sysroot.Root, log logrus.FieldLogger, target, backup string) error {
	data, err := root.ReadFile(backup)
	if err != nil {
		return fmt.Errorf("restoring %s: %w", target, err)
	}
	current, cerr := root.ReadFile(target)
	if cerr == nil && !strings.HasPrefix(string(current), repo.Header) {
		log.WithFields(logrus.Fields{"file": target, "backup": backup}).Info("the file is the user's again; kept it and dropped the older copy")
		return root.RemoveIfExists(backup)
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(root.Path(backup)); err == nil {
		mode = fi.Mode().Perm() // the backup kept the user's mode
	}
	if err := root.WriteFileAtomic(target, data, mode); err != nil {
		return err
	}
	log.WithField("file", target).Info("restored the user's own file")
	return root.RemoveIfExists(backup)
}

// withRollbackNote appends to the user message whether the machine was put
// back as it was, keeping the code.
func withRollbackNote(err error, changed bool, failed []string) error {
	if !changed {
		return err
	}
	note := " Nothing was left changed on the VM: every change of this run was undone."
	if len(failed) > 0 {
		note = fmt.Sprintf(" Some changes could not be undone (%s); see the handler log.", strings.Join(failed, "; "))
	}
	var fe *failure.Error
	if errors.As(err, &fe) {
		return &failure.Error{Code: fe.Code, Msg: fe.Msg + note, Err: err}
	}
	return &failure.Error{Code: failure.CodeOf(err), Msg: failure.MessageOf(err) + note, Err: err}
}

func installHint(kind pkgmgr.Kind, name string) string {
	switch kind {
	case pkgmgr.Apt:
		return "apt-get install " + name
	case pkgmgr.Zypper:
		return "zypper install " + name
	default:
		return string(kind) + " install " + name
	}
}
