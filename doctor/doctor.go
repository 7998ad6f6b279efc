// Package doctor diagnoses the whole chain an Entra ID SSH login depends
// on, read-only: the managed identity and the metadata service, the cloud's
// sign-in and RBAC endpoints, the repository, the packages, sshd, NSS, PAM,
// SELinux, sudo, the clock, logged-in Entra users and the handler's own
// state. It is the verb `aadsshlogin-handler doctor` (docs/doctor.md).
//
// The checks are the handler's own: the identity check is imds.Identity,
// the network probes checks.Probe (the install's network diagnosis), the
// sshd warnings checks.SSHDWarnings, the wiring verify.NSS/PAM/SSHD (the
// post-install verification), SELinux selinux.Probe with checks.SELinuxWarningsFrom; this package
// only runs them side by side and turns their answers into pass, warn,
// fail or skip with a fix.
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aadsshlogin/handler/checks"
	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/imds"
	"github.com/aadsshlogin/handler/sysroot"
)

// Status is a check's verdict.
type Status string

// The verdicts. Fail means a determined blocker of Entra logins; what
// cannot be determined on this machine is Skip (or Warn), never Fail.
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Check is one line of the report.
type Check struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix says what to do; set for warn and fail.
	Fix string `json:"fix"`
}

// Report is the whole diagnosis.
type Report struct {
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Checks   []Check   `json:"checks"`
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Count returns how many checks have status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// WriteJSON writes the report as one JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// WriteText writes the report for people: one line per check, the fix
// under each warning and failure, a summary last.
func (r Report) WriteText(w io.Writer) error {
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.Name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "aadsshlogin-handler doctor %s\n\n", r.Version)
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", strings.ToUpper(string(c.Status)), width, c.Name, c.Message)
		if c.Fix != "" && (c.Status == Warn || c.Status == Fail) {
			fmt.Fprintf(&b, "      %-*s  fix: %s\n", width, "", c.Fix)
		}
	}
	fmt.Fprintf(&b, "\n%d passed, %d warnings, %d failed, %d skipped (%s).\n",
		r.Count(Pass), r.Count(Warn), r.Count(Fail), r.Count(Skip), r.Duration)
	if r.Failed() {
		b.WriteString("At least one check failed: Entra ID logins do not work until it is fixed.\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// Options are the doctor's dependencies.
type Options struct {
	Version string
	Root    sysroot.Root
	Runner  cmdrun.Runner
	// IMDS is the metadata client (never proxied).
	IMDS *imds.Client
	// Dialer resolves and connects for the endpoint probes; nil is the
	// system's.
	Dialer checks.Dialer
	Now    func() time.Time
	Arch   string
	// StatusFolder and HandlerDir come from HandlerEnvironment.json; empty
	// when doctor does not run from the extension's folder.
	StatusFolder string
	HandlerDir   string
	// CheckTimeout bounds each check (default 10 s); Timeout the whole
	// run (default 25 s).
	CheckTimeout time.Duration
	Timeout      time.Duration
}

// Default time bounds: a check that cannot answer in 10 s reports so, and
// the whole run ends within 30 s even when everything hangs.
const (
	DefaultCheckTimeout = 10 * time.Second
	DefaultTimeout      = 25 * time.Second
)

// Run runs every check concurrently and returns them in a fixed order.
func Run(ctx context.Context, o Options) Report {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	start := o.Now()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	e := newEnv(ctx, o)
	list := e.checks()
	out := make([]Check, len(list))
	var wg sync.WaitGroup
	for i, c := range list {
		wg.Go(func() {
			out[i] = e.runOne(ctx, c)
		})
	}
	wg.Wait()
	return Report{Version: o.Version, Started: start, Duration: o.Now().Sub(start).Round(time.Millisecond).String(), Checks: out}
}

// check is one named check function.
type check struct {
	name string
	fn   func(ctx context.Context) Check
}

// runOne runs a check under its timeout; a check that does not return in
// time is reported as skipped (undetermined), and its goroutine is left to
// finish on its own (every probe it runs is bounded by ctx).
func (e *env) runOne(ctx context.Context, c check) Check {
	cctx, cancel := context.WithTimeout(ctx, e.o.CheckTimeout)
	defer cancel()
	done := make(chan Check, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- Check{Status: Skip, Message: fmt.Sprintf("the check failed internally (%v)", p)}
			}
		}()
		done <- c.fn(cctx)
	}()
	var res Check
	select {
	case res = <-done:
	case <-cctx.Done():
		res = Check{Status: Skip, Message: fmt.Sprintf("no answer within %s; this could not be determined", e.o.CheckTimeout)}
	}
	res.Name = c.name
	return res
}
