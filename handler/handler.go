// Package handler is the extension's lifecycle: it reads what the agent
// hands over (handler/agent), runs the verb within the agent's time budget,
// and reports a status file, an event, a log, a short summary on
// stdout/stderr and an exit code.
package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/handler/agent"
	"github.com/aadsshlogin/handler/httpclient"
	"github.com/aadsshlogin/handler/imds"
	"github.com/aadsshlogin/handler/installer/pkgmgr"
	"github.com/aadsshlogin/handler/proxy"
	"github.com/aadsshlogin/handler/sysroot"
	"github.com/aadsshlogin/handler/throttle"
)

// Verb is a lifecycle command from HandlerManifest.json.
type Verb string

const (
	Install   Verb = "install"
	Enable    Verb = "enable"
	Disable   Verb = "disable"
	Update    Verb = "update"
	Uninstall Verb = "uninstall"
)

// operationName is the verb as it appears in the status file (as 1.0.2385.1
// wrote it); "" for an unknown verb.
func operationName(v Verb) string {
	switch v {
	case Install:
		return "Install"
	case Enable:
		return "Enable"
	case Disable:
		return "Disable"
	case Update:
		return "Update"
	case Uninstall:
		return "UnInstall"
	}
	return ""
}

// AgentTimeout is how long the agent lets each verb run before it kills the
// process group (waagent-contract.md §10).
func AgentTimeout(v Verb) time.Duration {
	switch v {
	case Enable, Uninstall:
		return 300 * time.Second
	default:
		return 900 * time.Second
	}
}

// Budget margins: work stops at timeout-workMargin so that rollback and the
// final status fit before timeout-hardMargin; the last hardMargin is slack
// for process exit and the agent's own 1 s polling.
const (
	workMargin = 75 * time.Second
	hardMargin = 10 * time.Second
)

// HandlerLockPath serialises every invocation of every version of the
// handler (the agent runs the old and the new version's commands back to
// back during an update). /run is cleared at boot, so a lock can never
// outlive a crash.
const HandlerLockPath = "/run/aadsshlogin-handler.lock"

// Options are the handler's explicit dependencies. Zero values get
// production defaults in Main.
type Options struct {
	Version string // handler version (from the build)
	Args    []string
	Getenv  func(string) string
	Stdout  io.Writer
	Stderr  io.Writer
	// ExeDir is the directory of the running binary; HandlerEnvironment.json
	// is looked up there and in its parent.
	ExeDir string
	Root   sysroot.Root
	Runner cmdrun.Runner
	Now    func() time.Time
	Arch   string // GOARCH style
	// HTTP downloads the signing key and probes the repository; it must
	// honour the proxy variables (main.go builds the production client).
	// There is no default: without one every download fails, so that no
	// test reaches a real repository by accident.
	HTTP *retryablehttp.Client
	// IMDS is the metadata client; nil builds the production one.
	IMDS *imds.Client
	// IdentityWindow is how long a missing managed identity is waited for
	// (a newly assigned identity takes a while to appear). Default 2 min.
	IdentityWindow   time.Duration
	IdentityInterval time.Duration
}

func (o *Options) defaults() {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.IdentityWindow == 0 {
		o.IdentityWindow = 2 * time.Minute
	}
	if o.IdentityInterval == 0 {
		o.IdentityInterval = 10 * time.Second
	}
}

// Main runs one verb and returns the exit code.
func Main(o Options) failure.Code {
	o.defaults()
	start := o.Now()
	if len(o.Args) < 2 {
		fmt.Fprintln(o.Stderr, "Usage: aadsshlogin-handler install|enable|disable|update|uninstall|version|doctor [--json]")
		return failure.UnknownVerb
	}
	arg := strings.ToLower(strings.TrimLeft(o.Args[1], "-"))
	if arg == "version" {
		fmt.Fprintln(o.Stdout, o.Version)
		return failure.OK
	}
	if arg == doctorVerb {
		return runDoctor(o)
	}
	verb := Verb(arg)
	if operationName(verb) == "" {
		fmt.Fprintf(o.Stderr, "Unknown command %q: the handler understands install, enable, disable, update and uninstall.\n", o.Args[1])
		return failure.UnknownVerb
	}

	env, err := agent.FindEnvironment(o.ExeDir)
	if err != nil {
		reportWithoutEnvironment(o, verb, err)
		return failure.CodeOf(err)
	}
	log, closer, lerr := agent.OpenLog(env.LogFolder, agent.LogOptions{})
	if closer != nil {
		defer closer.Close()
	}
	if lerr != nil {
		fmt.Fprintf(o.Stderr, "warning: logging to %s is not possible: %v\n", env.LogFolder, lerr)
	}
	entry := log.WithFields(logrus.Fields{"verb": string(verb), "version": o.Version})
	if o.Runner == nil {
		o.Runner = cmdrun.Exec{Log: entry, Getenv: o.Getenv}
	}

	timeout := AgentTimeout(verb)
	hard := start.Add(timeout - hardMargin)
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(timeout-workMargin))
	defer cancel()

	r := &run{
		opts:    o,
		verb:    verb,
		env:     env,
		log:     entry,
		events:  agent.NewEvents(env.EventsFolder, o.Version, o.Now),
		start:   start,
		hard:    hard,
		seq:     -1,
		summary: &summary{w: o.Stdout},
	}
	// The status, mrseq and event are written before the handler lock is
	// released, so the next operation (of any version) finds them complete
	// and no two runs write them at once.
	defer r.release()
	out := r.execute(ctx)
	return r.finish(out)
}

// outcome is what a verb produced.
type outcome struct {
	err       error             // nil: success
	message   string            // success message
	substatus []agent.Substatus // details and warnings
	noStatus  bool              // the verb must not write a status (skipped uninstall)
	quiet     bool              // nothing happened (no-op enable): no event
	mrseq     bool              // record seq in mrseq after the status is written
}

type run struct {
	opts    Options
	verb    Verb
	env     *agent.Environment
	log     *logrus.Entry
	events  *agent.Events
	start   time.Time
	hard    time.Time
	seq     int
	summary *summary
	// unlock releases the handler lock; nil when it is not held.
	unlock func() error
	waits  *throttle.Log // waits on the repository's 429/503 answers (installerConfig creates it)
	proxy  proxy.Proxy   // chosen by resolveProxy (converge); zero elsewhere
}

// release gives up the handler lock, if this run holds it.
func (r *run) release() {
	if r.unlock == nil {
		return
	}
	if err := r.unlock(); err != nil {
		r.log.WithError(err).Warn("releasing the handler lock")
	}
	r.unlock = nil
}

func (r *run) execute(ctx context.Context) (out outcome) {
	defer func() {
		// A bug must still end with a status and an exit code, never with a
		// panic trace as the only trace the user sees.
		if p := recover(); p != nil {
			r.log.WithField("panic", fmt.Sprint(p)).Error("internal error")
			out = outcome{err: fmt.Errorf("internal error: %v", p)}
		}
	}()
	seq, err := agent.RequestedSeq(r.opts.Getenv, r.env.ConfigFolder)
	if err != nil {
		return outcome{err: err}
	}
	r.seq = seq
	r.log = r.log.WithField("seq", seq)

	unlock, err := agent.Lock(ctx, r.opts.Root.Path(HandlerLockPath), fmt.Sprintf("%s %s seq %d", r.opts.Version, r.verb, seq), time.Second)
	if err != nil {
		return outcome{err: err}
	}
	r.unlock = unlock // released by Main after finish
	// The agent runs one of the two binaries the zip ships (the entry
	// script chooses by CPU): say which.
	r.log.WithField("arch", r.opts.Arch).Info("started")
	// A run the agent killed (timeout) may have left automatic updates
	// paused; whatever this verb does, start them again first.
	services := pkgmgr.Services{Runner: r.opts.Runner, Log: r.log, Root: r.opts.Root}
	if err := services.ResumeLeftovers(ctx); err != nil {
		r.log.WithError(err).Warn("could not restart automatic-update units left stopped")
	}
	switch r.verb {
	case Install:
		return r.install(ctx)
	case Update:
		return r.update(ctx)
	case Enable:
		return r.enable(ctx)
	case Disable:
		return r.disable(ctx)
	case Uninstall:
		return r.uninstall(ctx)
	}
	return outcome{err: failure.New(failure.UnknownVerb, nil, "Unknown command %q.", r.verb)}
}

// finish writes the status, mrseq and event, prints the summary and maps
// the outcome to the exit code. It runs while the handler lock is still
// held (when the run got it: a run that found the lock busy reports that
// without it, and the atomic writes keep the holder's files intact).
func (r *run) finish(out outcome) failure.Code {
	code := failure.CodeOf(out.err)
	if out.err != nil && errors.Is(out.err, context.DeadlineExceeded) && code == failure.Internal {
		out.err = failure.New(failure.TimeBudgetExceeded, out.err,
			"The %s operation did not finish within its time budget (%s) and was stopped; nothing is left half-done. Re-apply the extension; if it happens again, check the VM's network speed to the package repository.",
			r.verb, AgentTimeout(r.verb)-workMargin)
		code = failure.TimeBudgetExceeded
	}
	seq := r.seq
	if seq < 0 {
		seq = 0
	}
	rep := agent.Report{Operation: operationName(r.verb), Substatus: out.substatus}
	if out.err != nil {
		rep.Status, rep.Code, rep.Message = agent.Error, int(code), failure.MessageOf(out.err)
		rep.Substatus = append(rep.Substatus, agent.Substatus{Name: code.Name(), Status: agent.Error, Code: int(code), Message: fmt.Sprintf("exit code %d (%s)", code, code.Name())})
		r.log.WithError(out.err).WithField("code", int(code)).Error("failed")
	} else {
		rep.Status, rep.Message = agent.Success, out.message
		r.log.WithField("took", r.opts.Now().Sub(r.start).Round(time.Millisecond)).Info("succeeded")
	}
	if !out.noStatus {
		if err := agent.WriteStatus(r.env.StatusFolder, seq, rep, r.opts.Now()); err != nil {
			r.log.WithError(err).Error("writing the status file")
			if out.err == nil {
				// Without a status the agent would show the operation as
				// transitioning forever: fail, so it reports our message.
				out.err = failure.New(failure.SystemStateInvalid, err,
					"The operation succeeded, but its status file cannot be written in %s (read-only or full file system). Fix the file system and re-apply the extension.", r.env.StatusFolder)
				code = failure.SystemStateInvalid
				out.mrseq = false
			}
		}
	}
	if out.err == nil && out.mrseq && r.seq >= 0 {
		if err := agent.WriteMrseq(r.env.HandlerDir, r.seq); err != nil {
			r.log.WithError(err).Warn("writing mrseq")
		}
	}
	level, msg := agent.LevelInformational, fmt.Sprintf("%s succeeded: %s", r.verb, out.message)
	if out.err != nil {
		level, msg = agent.LevelError, fmt.Sprintf("%s failed with exit code %d (%s): %s", r.verb, code, code.Name(), failure.MessageOf(out.err))
	}
	if !out.quiet { // a no-op enable after every goal state is not news
		if err := r.events.Write(level, string(r.verb), msg, fmt.Sprintf("%s-%d", r.verb, seq)); err != nil {
			r.log.WithError(err).Debug("event not written")
		}
	}
	// The agent shows the tail of stdout and stderr (about 1590 characters
	// each) to the user: keep the decisive sentence last.
	if out.err != nil {
		fmt.Fprintf(r.opts.Stderr, "%s failed (exit code %d, %s): %s\n", r.verb, code, code.Name(), failure.MessageOf(out.err))
	} else {
		fmt.Fprintf(r.opts.Stdout, "%s succeeded: %s\n", r.verb, out.message)
	}
	return code
}

// reportWithoutEnvironment handles a missing or malformed
// HandlerEnvironment.json: there is no log or status folder to trust, so
// the message goes to stderr, and to a status file only if the agent's
// usual status folder next to us exists.
func reportWithoutEnvironment(o Options, verb Verb, err error) {
	msg := failure.MessageOf(err)
	fmt.Fprintf(o.Stderr, "%s failed (exit code %d, %s): %s\n", verb, failure.CodeOf(err), failure.CodeOf(err).Name(), msg)
	for _, dir := range []string{o.ExeDir, filepath.Dir(o.ExeDir)} {
		statusDir := filepath.Join(dir, "status")
		if st, serr := os.Stat(statusDir); serr == nil && st.IsDir() {
			seq := 0
			if s := o.Getenv("ConfigSequenceNumber"); s != "" {
				fmt.Sscanf(s, "%d", &seq)
			}
			code := failure.CodeOf(err)
			_ = agent.WriteStatus(statusDir, seq, agent.Report{
				Operation: operationName(verb), Status: agent.Error, Code: int(code), Message: msg,
			}, o.Now())
			return
		}
	}
}

// errNoHTTPClient fails every download of a handler run without
// Options.HTTP.
var errNoHTTPClient = errors.New("no HTTP client was given to the handler (Options.HTTP)")

type refuseAll struct{}

func (refuseAll) RoundTrip(*http.Request) (*http.Response, error) { return nil, errNoHTTPClient }

// httpClient is Options.HTTP logging to this run's log, or, without one, a
// client whose every request fails with errNoHTTPClient.
func (r *run) httpClient() *retryablehttp.Client {
	if r.opts.HTTP == nil {
		c := httpclient.New(httpclient.Options{RetryMax: -1})
		c.HTTPClient.Transport = refuseAll{}
		return c
	}
	return httpclient.WithLog(r.opts.HTTP, r.log)
}

// summary prints short progress lines on stdout (they end up in the
// agent's CommandExecution.log).
type summary struct{ w io.Writer }

func (s *summary) say(format string, args ...any) {
	fmt.Fprintf(s.w, format+"\n", args...)
}
