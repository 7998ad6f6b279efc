package handler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/beside"
	"github.com/aadsshlogin/handler/checks"
	"github.com/aadsshlogin/handler/cloud"
	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/handler/agent"
	"github.com/aadsshlogin/handler/httpclient"
	"github.com/aadsshlogin/handler/imds"
	"github.com/aadsshlogin/handler/installer"
	"github.com/aadsshlogin/handler/installer/pkgmgr"
	"github.com/aadsshlogin/handler/installer/repo"
	"github.com/aadsshlogin/handler/installer/verify"
	"github.com/aadsshlogin/handler/proxy"
	"github.com/aadsshlogin/handler/settings"
	"github.com/aadsshlogin/handler/throttle"
	"github.com/aadsshlogin/handler/version"
)

// Thresholds for the pre-flight checks.
const (
	minFreeDisk = 200 << 20 // package downloads, unpacking and our state
)

// diskPaths are where packages and our state go.
func diskPaths() []string { return []string{"/var/cache", "/var/lib", "/usr"} }

// install: configure the repository and install the packages, unless a
// previous run already left exactly this configuration (agent retries).
func (r *run) install(ctx context.Context) outcome {
	// An identity the fast path finds missing gets the full run, with the
	// install's identity window.
	if out, ok := r.fastPath(); ok && out.err == nil {
		out.mrseq = false // mrseq records enables only
		return out
	}
	return r.converge(ctx)
}

// update: the agent runs it in the new version's directory after the old
// version's disable (upgrade), or in the old version's directory with
// VERSION set to the lower target version (downgrade, waagent-contract.md
// §9.7). The old version's uninstall runs right after it.
func (r *run) update(ctx context.Context) outcome {
	target := r.opts.Getenv("VERSION")
	if target != "" && version.Compare(target, r.opts.Version) < 0 {
		// Downgrade: we are the old (higher) version. Keep the packages and
		// hand the marker to the target version, so our own uninstall, which
		// runs next, keeps them, and the target's real uninstall later
		// removes them.
		if err := writeMarker(r.opts.Root, target); err != nil {
			return outcome{err: failure.New(failure.SystemStateInvalid, err, "Cannot write %s during the downgrade to %s. Check that /var/log is writable.", MarkerPath, target)}
		}
		r.log.WithField("target", target).Info("downgrade: packages kept, marker handed to the target version")
		return outcome{message: fmt.Sprintf("Downgrade to %s prepared: aadsshlogin stays installed.", target)}
	}
	return r.converge(ctx)
}

// enable runs after every goal state and every agent start. With nothing to
// do it only confirms the status, in milliseconds and without network;
// otherwise (new settings, something missing) it converges like install.
func (r *run) enable(ctx context.Context) outcome {
	if out, ok := r.fastPath(); ok {
		return out
	}
	return r.converge(ctx)
}

// disable leaves Entra ID login configured, as 1.0.2385.1 does: turning it
// off would lock users out of VMs they reach only with Entra ID, and the
// agent runs disable before every update.
func (r *run) disable(context.Context) outcome {
	return outcome{message: "Nothing to do: SSH login with Microsoft Entra ID stays configured until the extension is uninstalled."}
}

// uninstall removes the packages, our repository definition and key, and
// our state — unless this is the old version's uninstall during an update.
func (r *run) uninstall(ctx context.Context) outcome {
	marker, err := readMarker(r.opts.Root)
	if err != nil {
		r.log.WithError(err).Warn("reading the version marker")
	}
	if marker != "" && marker != r.opts.Version {
		r.log.WithField("marker", marker).Info("uninstall during an update: packages kept")
		return outcome{noStatus: true, message: fmt.Sprintf("Version %s now manages the extension; nothing removed.", marker)}
	}
	st, serr := installer.LoadState(r.opts.Root)
	if serr != nil {
		r.log.WithError(serr).Warn("state unreadable; removing packages anyway")
	}
	var kind distro.PackageManager
	if st != nil {
		kind = st.PackageManager
	}
	if kind == "" {
		if p, err := r.detect(); err == nil {
			kind = p.PackageManager
		}
	}
	if kind == "" {
		// Nothing we can drive: there is nothing of ours to remove either.
		_ = installer.RemoveState(r.opts.Root)
		_ = r.opts.Root.RemoveIfExists(MarkerPath)
		return outcome{message: "Nothing to remove."}
	}
	cfg, err := r.installerConfig(distro.Platform{PackageManager: kind})
	if err != nil {
		return outcome{err: err}
	}
	sessions := r.entraSessions() // before the package (and /etc/aadpasswd) goes
	done, err := installer.Uninstall(ctx, cfg, st)
	if err != nil {
		return outcome{err: err, substatus: sessions}
	}
	if err := r.opts.Root.RemoveIfExists(MarkerPath); err != nil {
		r.log.WithError(err).Warn("removing the version marker")
	}
	msg := "aadsshlogin was removed; SSH login with Microsoft Entra ID is no longer configured on this VM."
	if !slices.Contains(done.Removed, installer.PackageName) {
		msg = "The extension's repository configuration was removed; aadsshlogin, which was installed before the extension, stays installed."
	}
	if len(done.Kept) > 0 {
		msg += " Kept, because it is not the extension's alone: " + strings.Join(done.Kept, " ")
		sessions = append(sessions, agent.Substatus{Name: "Kept", Status: agent.Success, Message: strings.Join(done.Kept, " ")})
	}
	return outcome{message: msg, substatus: sessions}
}

// fastPath reports success without touching anything when the last install
// by this version applied the same settings and its result is still there.
func (r *run) fastPath() (outcome, bool) {
	log := r.log.WithField("path", "fast")
	st, err := installer.LoadState(r.opts.Root)
	if err != nil || st == nil || st.HandlerVersion != r.opts.Version {
		return outcome{}, false
	}
	pub, err := r.publicSettings(context.Background())
	if err != nil {
		return outcome{}, false // the full path reports the settings error
	}
	if st.ConfigHash != configHash(pub) {
		log.Info("settings changed since the last install")
		return outcome{}, false
	}
	if !fileHasHash(r, st.RepoFile, st.RepoFileSHA256) || !fileHasHash(r, st.Keyring, st.KeyringSHA256) {
		log.Info("repository or key file changed since the last install")
		return outcome{}, false
	}
	if holdFile, holdHash := st.HoldFile(); !fileHasHash(r, holdFile, holdHash) {
		log.Info("the file holding aadsshlogin at its version changed since the last install")
		return outcome{}, false
	}
	if err := verify.Quick(r.opts.Root); err != nil {
		log.WithError(err).Info("quick verification failed; repairing")
		return outcome{}, false
	}
	out := outcome{mrseq: true, quiet: true, message: successMessage(st.Packages)}
	// Keep the details (repository, warnings) the last full run reported:
	// from this sequence number's status, or else from the last one enable
	// completed.
	for _, seq := range r.previousSeqs() {
		if rep, err := agent.ReadStatus(r.env.StatusFolder, seq); err == nil && rep.Status == agent.Success && len(rep.Substatus) > 0 {
			out.substatus = rep.Substatus
			break
		}
	}
	// The identity may have been removed since the install (handler/identity.go).
	warnings, ierr := r.fastIdentity(context.Background())
	if ierr != nil {
		log.WithError(ierr).Warn("the system-assigned managed identity is gone")
		return outcome{err: ierr}, true
	}
	out.substatus = append(withoutSubstatus(out.substatus, identitySubstatus), warnings...)
	return out, true
}

// previousSeqs lists the sequence numbers whose status may hold the last
// full run's details: this one, then the one in mrseq.
func (r *run) previousSeqs() []int {
	seqs := []int{r.seq}
	if last, ok, _ := agent.ReadMrseq(r.env.HandlerDir); ok && last != r.seq {
		seqs = append(seqs, last)
	}
	return seqs
}

func fileHasHash(r *run, path, hash string) bool {
	if path == "" {
		return true // nothing written (image's own repository reused)
	}
	data, err := r.opts.Root.ReadFile(path)
	if err != nil {
		return false
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:]) == hash
}

// converge is the full install: checks that change nothing, then the
// install transaction, which always refreshes the repository and moves
// aadsshlogin to the newest (or held) version. The steps, in order: the
// settings and the platform (51, 53), memory, disk and the obsolete
// packages (28, 29, 23), the cloud and the identity (22, 24), the version
// marker, the transaction (installer.Install), and the warnings that join
// the status. Beside them run the transitioning status and the sshd
// warnings (they only read), and the trust store is warmed for the first
// download.
func (r *run) converge(ctx context.Context) outcome {
	httpclient.WarmTrustStore()
	// Every return waits for the transitioning status, so the final one,
	// written after converge returns, always lands after it.
	transitioning := beside.Start(r.writeTransitioning)
	defer transitioning.Wait()

	pub, p, cfg, pre, err := r.preflight(ctx)
	if err != nil {
		return outcome{err: err}
	}
	sshd := beside.Start(func() []checks.Warning {
		return checks.SSHDWarnings(ctx, r.opts.Runner, r.opts.Root, pre.OpenSSHVersion())
	})
	defer sshd.Wait() // never leave a probe running behind us

	cl, subs, err := r.cloudAndIdentity(ctx)
	if err != nil {
		return outcome{err: err}
	}
	r.configure(&cfg, pub, cl)
	res, err := r.installWithMarker(ctx, cfg)
	subs = append(subs, warningSubstatus(sshd.Wait())...)
	if msg := r.proxy.Describe(); msg != "" {
		subs = append(subs, agent.Substatus{Name: "Proxy", Status: agent.Success, Message: msg})
	}
	if err != nil {
		if sub, ok := r.rateLimitSubstatus(agent.Error); ok {
			subs = append(subs, sub)
		}
		if failure.CodeOf(err) == failure.RepositoryUnreachable {
			subs = append(subs, r.diagnose(ctx, cfg.Location, cl))
		}
		return outcome{err: err, substatus: subs}
	}
	subs = append(subs, r.afterInstall(ctx, p, res)...)
	subs = append([]agent.Substatus{{Name: "Repository", Status: agent.Success, Message: repoMessage(res)}}, subs...)
	r.summary.say("Repository: %s.", repoMessage(res))
	return outcome{message: successMessage(res.Packages), substatus: subs, mrseq: r.verb == Enable}
}

// writeTransitioning writes the transitioning status. Its fsyncs are the
// run's first, and may wait for the file system to flush what the agent
// has just unpacked: it runs beside the checks.
func (r *run) writeTransitioning() struct{} {
	rep := agent.Report{
		Operation: operationName(r.verb), Status: agent.Transitioning,
		Message: "Installing aadsshlogin and configuring SSH login with Microsoft Entra ID.",
	}
	if err := agent.WriteStatus(r.env.StatusFolder, r.seq, rep, r.opts.Now()); err != nil {
		r.log.WithError(err).Warn("writing the transitioning status")
	}
	return struct{}{}
}

// preflight reads the settings, detects the platform and runs the checks
// that refuse before any change: memory, disk, the obsolete packages (one
// package query also tells the OpenSSH version).
func (r *run) preflight(ctx context.Context) (settings.Public, distro.Platform, installer.Config, checks.Preflight, error) {
	var (
		cfg installer.Config
		pre checks.Preflight
	)
	pub, err := r.publicSettings(ctx)
	if err != nil {
		return pub, distro.Platform{}, cfg, pre, err
	}
	p, err := r.detect()
	if err != nil {
		return pub, p, cfg, pre, err
	}
	r.log = r.log.WithFields(logrus.Fields{"distro": p.OS.ID + " " + p.OS.VersionID, "pm": string(p.PackageManager)})
	r.summary.say("Detected %s; package manager %s.", describe(p), p.PackageManager)
	if err := r.resolveProxy(ctx, pub); err != nil {
		return pub, p, cfg, pre, err
	}
	if err := checks.Memory(r.opts.Root, checks.DefaultMinMemory); err != nil {
		return pub, p, cfg, pre, err
	}
	if err := checks.DiskSpace(r.opts.Root, diskPaths(), minFreeDisk); err != nil {
		return pub, p, cfg, pre, err
	}
	if cfg, err = r.installerConfig(p); err != nil {
		return pub, p, cfg, pre, err
	}
	if pre, err = checks.QueryPreflight(ctx, cfg.Packages); err != nil {
		return pub, p, cfg, pre, err
	}
	return pub, p, cfg, pre, pre.Obsolete(p.PackageManager)
}

// cloudAndIdentity finds the cloud (its repository host) and requires the
// system-assigned managed identity. Arc-enabled servers always have an
// identity (the Arc agent's himds), and no Azure IMDS to ask.
func (r *run) cloudAndIdentity(ctx context.Context) (cloud.Cloud, []agent.Substatus, error) {
	cl := cloud.Public()
	if checks.IsArc(r.opts.Root) {
		r.summary.say("Azure Arc-enabled server: skipping the Azure metadata checks.")
		return cl, []agent.Substatus{{Name: "Platform", Status: agent.Success, Message: "Azure Arc-enabled server"}}, nil
	}
	var subs []agent.Substatus
	client := r.imds()
	if env, err := client.AzEnvironment(ctx); err != nil {
		r.log.WithError(err).Warn("cloud not detected; assuming Azure public cloud")
	} else if c, known := cloud.ForAzEnvironment(env); known {
		cl = c
	} else {
		subs = append(subs, agent.Substatus{Name: "Cloud", Status: agent.Warning,
			Message: fmt.Sprintf("Unknown Azure environment %q; using the Azure public cloud's endpoints.", env)})
	}
	if err := client.CheckIdentity(ctx, r.opts.IdentityWindow, r.opts.IdentityInterval); err != nil {
		return cl, subs, err
	}
	r.summary.say("System-assigned managed identity present (%s).", cl.Name)
	return cl, subs, nil
}

// resolveProxy decides the proxy of this run (package proxy): the
// httpProxy setting with the protected settings' credentials, the agent's
// HttpProxy in /etc/waagent.conf, or the inherited variables. The
// protected settings are decrypted only when the setting asks for a proxy.
func (r *run) resolveProxy(ctx context.Context, pub settings.Public) error {
	in := proxy.Inputs{Root: r.opts.Root, Getenv: r.opts.Getenv, Setting: pub.HTTPProxy}
	if pub.HTTPProxy != "" {
		hs, err := r.handlerSettings()
		if err != nil {
			return err
		}
		raw, err := hs.Protected(ctx)
		if err != nil {
			return err
		}
		prot, err := settings.ParseProtected(raw)
		if err != nil {
			return err
		}
		in.User, in.Password = prot.HTTPProxyUsername, prot.HTTPProxyPassword
	}
	p, err := proxy.Resolve(in)
	if err != nil {
		return failure.New(failure.BadSettings, err,
			"The machine's proxy configuration cannot be used: %s. Fix it, or give the proxy in the extension's httpProxy setting, then re-apply the extension.", err)
	}
	r.proxy = p
	if !p.None() {
		r.log.WithFields(logrus.Fields{"proxy": p.Redacted(), "from": p.Source}).Info("proxy chosen")
		r.summary.say("%s", p.Describe())
	}
	return nil
}

// configure gives the installer what the settings and the cloud decide.
func (r *run) configure(cfg *installer.Config, pub settings.Public, cl cloud.Cloud) {
	cfg.Location = repo.Location{Base: cl.RepositoryBase, Prefix: cl.RepositoryPrefix}
	if pub.RepositoryURL != "" {
		cfg.Location, cfg.Mirror = repo.Location{Base: pub.RepositoryURL}, true
	}
	cfg.Pins, cfg.CustomPins = pub.Fingerprints(), pub.CustomPins()
	cfg.PackageVersion = pub.AADSSHLoginVersion
	cfg.ConfigHash = configHash(pub)
}

// installWithMarker writes the version marker before changing anything
// (the shipped extension's order), runs the transaction, and puts the old
// marker back when the transaction is undone.
func (r *run) installWithMarker(ctx context.Context, cfg installer.Config) (*installer.Result, error) {
	oldMarker, _ := readMarker(r.opts.Root)
	cfg.MarkerFound = oldMarker != ""
	if err := writeMarker(r.opts.Root, r.opts.Version); err != nil {
		return nil, failure.New(failure.SystemStateInvalid, err, "Cannot write %s. Check that /var/log is writable and not full.", MarkerPath)
	}
	res, err := installer.Install(ctx, cfg)
	if err != nil {
		if oldMarker != "" {
			_ = writeMarker(r.opts.Root, oldMarker)
		} else {
			_ = r.opts.Root.RemoveIfExists(MarkerPath)
		}
	}
	return res, err
}

// afterInstall gathers the warnings only a finished install can give: the
// SELinux domain (aad_permissions is loaded only now), a release outside
// Microsoft's table, and waits on the repository's rate limit.
func (r *run) afterInstall(ctx context.Context, p distro.Platform, res *installer.Result) []agent.Substatus {
	var subs []agent.Substatus
	say := func(s agent.Substatus) {
		r.summary.say("%s", s.Message)
		subs = append(subs, s)
	}
	if _, ok := res.Packages[installer.SELinuxPackageName]; ok {
		for _, s := range warningSubstatus(checks.SELinuxWarnings(ctx, r.opts.Runner, r.opts.Root)) {
			say(s)
		}
	}
	if p.Unlisted() {
		say(agent.Substatus{Name: "Release", Status: agent.Warning, Message: releaseWarning(p, res)})
	}
	if sub, ok := r.rateLimitSubstatus(agent.Warning); ok {
		say(sub)
	}
	return subs
}

func warningSubstatus(ws []checks.Warning) []agent.Substatus {
	out := make([]agent.Substatus, 0, len(ws))
	for _, w := range ws {
		out = append(out, agent.Substatus{Name: w.Name, Status: agent.Warning, Message: w.Message})
	}
	return out
}

// installerConfig builds the installer's dependencies for a platform.
func (r *run) installerConfig(p distro.Platform) (installer.Config, error) {
	kind := p.PackageManager
	mgr, err := pkgmgr.New(kind, pkgmgr.Options{Runner: r.opts.Runner, Root: r.opts.Root, Log: r.log, Env: r.proxy.Env()})
	if err != nil {
		return installer.Config{}, err
	}
	if r.waits == nil {
		r.waits = &throttle.Log{}
	}
	// 429 and 503 from the repository are waited out within the budget
	// (docs/fleet.md has the bounds).
	mgr = pkgmgr.WithRetry(mgr, pkgmgr.RetryPolicy{Waits: r.waits, Log: r.log})
	return installer.Config{
		Root:           r.opts.Root,
		Runner:         r.opts.Runner,
		Log:            r.log,
		HTTP:           httpclient.WithWaits(httpclient.WithProxy(r.httpClient(), r.proxy.Func()), r.waits),
		Packages:       mgr,
		Locks:          pkgmgr.Locks{Root: r.opts.Root, Log: r.log},
		Services:       pkgmgr.Services{Runner: r.opts.Runner, Log: r.log, Root: r.opts.Root},
		Platform:       p,
		HandlerVersion: r.opts.Version,
		Now:            r.opts.Now,
		HardDeadline:   r.hard,
	}, nil
}

// rateLimitSubstatus says how often and how long this run waited on the
// repository's 429/503 answers; false when it did not.
func (r *run) rateLimitSubstatus(status agent.State) (agent.Substatus, bool) {
	sum := r.waits.Summary()
	if sum == "" {
		return agent.Substatus{}, false
	}
	msg := "The extension " + sum + "."
	if status != agent.Error {
		msg = "aadsshlogin was installed, but the extension first " + sum + "."
	}
	msg += " packages.microsoft.com allows " + throttle.PMCLimit + "; many VMs installing behind one address reach it (docs/fleet.md in the extension's source says what a fleet needs)."
	return agent.Substatus{Name: "RateLimit", Status: status, Message: msg}, true
}

func (r *run) imds() *imds.Client {
	if r.opts.IMDS != nil {
		return r.opts.IMDS
	}
	return imds.New(r.log)
}

func (r *run) detect() (distro.Platform, error) {
	osr, err := distro.Detect(r.opts.Root)
	if err != nil {
		return distro.Platform{}, err
	}
	return distro.Resolve(osr, r.opts.Arch)
}

// publicSettings loads and validates this sequence number's public
// settings. A missing settings file means defaults: the agent always writes
// one before install and enable, and the old version's commands during an
// update may run with a sequence number it has no file for.
func (r *run) publicSettings(context.Context) (settings.Public, error) {
	hs, err := r.handlerSettings()
	if err != nil {
		return settings.Public{}, err
	}
	return settings.ParsePublic(hs.Public)
}

// handlerSettings reads this sequence number's settings file. Its protected
// settings stay encrypted until something calls Protected on the result
// (nothing does yet): decrypting needs the certificate the agent stored,
// and a run that does not use them must not fail when it is missing.
func (r *run) handlerSettings() (*agent.HandlerSettings, error) {
	if st, err := os.Stat(r.env.ConfigFolder); err != nil || !st.IsDir() {
		// The agent creates the folder before any command: without it the
		// settings the user gave cannot be known, and defaults would
		// silently ignore them.
		return nil, failure.New(failure.BadEnvironment, err,
			"The configuration folder %s named in HandlerEnvironment.json does not exist, so the extension's settings cannot be read. Reinstall the extension.", r.env.ConfigFolder)
	}
	return agent.LoadSettings(r.env.ConfigFolder, r.seqOrZero(), agent.OpenSSL{Runner: r.opts.Runner, CertDir: r.env.LibDir()})
}

func (r *run) seqOrZero() int {
	if r.seq < 0 {
		return 0
	}
	return r.seq
}

// configHash identifies the effective repository settings, so enable can
// tell whether anything changed since the last install.
func configHash(p settings.Public) string {
	h := sha256.New()
	fmt.Fprintf(h, "repositoryUrl=%s\n", p.RepositoryURL)
	for _, fp := range p.Fingerprints() {
		fmt.Fprintf(h, "fingerprint=%s\n", fp)
	}
	// Only when set, so that the hash of installs without the setting
	// stays what earlier versions recorded.
	if p.AADSSHLoginVersion != "" {
		fmt.Fprintf(h, "aadsshloginVersion=%s\n", p.AADSSHLoginVersion)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// diagnose explains a download failure: which endpoint fails and how.
func (r *run) diagnose(ctx context.Context, loc repo.Location, cl cloud.Cloud) agent.Substatus {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	eps := []checks.Endpoint{{Name: "repository", URL: loc.Base + "/"}}
	if cl.LoginHost != "" {
		eps = append(eps, checks.Endpoint{Name: "Entra ID login", URL: "https://" + cl.LoginHost + "/"})
	}
	if cl.PASHost != "" {
		eps = append(eps, checks.Endpoint{Name: "PAS", URL: "https://" + cl.PASHost + "/"})
	}
	text := checks.DiagnoseVia(dctx, eps, nil, r.proxy.Func())
	r.log.WithField("diagnosis", text).Info("network diagnosis")
	return agent.Substatus{Name: "NetworkDiagnosis", Status: agent.Error, Message: text}
}

func describe(p distro.Platform) string {
	if p.OS.PrettyName != "" {
		return p.OS.PrettyName
	}
	return p.OS.ID + " " + p.OS.VersionID
}

// releaseWarning says that the release is outside Microsoft's published
// support table, and why it was installed all the same.
func releaseWarning(p distro.Platform, res *installer.Result) string {
	switch p.Listing {
	case distro.Newer:
		why := res.RepoURL + " offers aadsshlogin"
		if res.Offer != nil {
			why = res.Offer.URL + " " + res.Offer.Why
		}
		return fmt.Sprintf("%s is newer than the releases in Microsoft's published support table (%s). aadsshlogin was installed because this release's own repository offers it (%s); Microsoft may not support SSH login with Microsoft Entra ID on this release yet.",
			describe(p), distro.LearnMoreURL, why)
	default:
		return fmt.Sprintf("%s is not in Microsoft's published support table (%s); aadsshlogin was installed from %s, the repository of the release it rebuilds. Microsoft may not support SSH login with Microsoft Entra ID on this release yet.",
			describe(p), distro.LearnMoreURL, res.RepoURL)
	}
}

func successMessage(pkgs map[string]string) string {
	v := pkgs[installer.PackageName]
	msg := "SSH login with Microsoft Entra ID is configured: aadsshlogin " + v + " is installed and wired into sshd, NSS and PAM."
	if sv, ok := pkgs[installer.SELinuxPackageName]; ok {
		msg += " SELinux policy module aadsshlogin-selinux " + sv + " is registered."
	}
	return msg
}

func repoMessage(res *installer.Result) string {
	parts := []string{res.RepoURL}
	if res.KeyFP != "" {
		parts = append(parts, "signing key "+res.KeyFP)
	}
	parts = append(parts, res.Notes...)
	return strings.Join(parts, "; ")
}
