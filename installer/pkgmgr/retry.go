package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/clock"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/throttle"
)

// RetryPolicy bounds how a Manager from WithRetry re-runs an operation
// that failed because the repository answered HTTP 429 Too Many Requests
// (packages.microsoft.com's rate limit) or 503 Service Unavailable. The
// package managers do not pass the Retry-After header on, so the waits are
// a jittered exponential backoff.
//
// Bounds: one operation (refresh, availability query, install, reinstall)
// runs at most MaxAttempts times; the waits between runs grow from Base
// and never exceed Max each, so they add up to at most
// Base+2·Base+…+Max (10+20+40+80+120 = 270 s with the defaults), and a wait
// is only started when at least Reserve remains of the context's deadline
// after it. Each run makes the requests the package manager itself makes,
// including its own retries (recorded: apt 4 requests per file, dnf 4,
// zypper 1 on 429 and 4 on 503).
type RetryPolicy struct {
	MaxAttempts int           // runs of one operation in all (default 6)
	Base        time.Duration // ceiling of the first wait (default 10 s)
	Max         time.Duration // ceiling of any wait (default 120 s)
	Reserve     time.Duration // time the operation needs after a wait (default 30 s)

	// Now, Sleep and Jitter are the clock, the sleeper and the random
	// source (Jitter returns a uniformly random value in [0, n)); nil
	// selects time.Now, a timer that ends early with ctx, and
	// math/rand/v2.
	Now    func() time.Time
	Sleep  func(ctx context.Context, d time.Duration) error
	Jitter func(n int64) int64
	// Waits records every wait, for the status.
	Waits *throttle.Log
	Log   logrus.FieldLogger
}

// Default retry bounds (see RetryPolicy).
const (
	DefaultRetryAttempts = 6
	DefaultRetryBase     = 10 * time.Second
	DefaultRetryMax      = 120 * time.Second
	DefaultRetryReserve  = 30 * time.Second
)

// WithRetry returns m with its network operations (Refresh, Available,
// Install, Reinstall) re-run after a wait when they fail on a 429 or 503
// answer. Every other failure, including other HTTP errors such as 403 or
// 404, is returned at once. When the attempts or the time budget run out,
// the failure (exit code 20) names the rate limit and how long the run
// waited.
func WithRetry(m Manager, p RetryPolicy) Manager {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetryAttempts
	}
	if p.Base <= 0 {
		p.Base = DefaultRetryBase
	}
	if p.Max <= 0 {
		p.Max = DefaultRetryMax
	}
	if p.Max < p.Base {
		p.Max = p.Base
	}
	if p.Reserve <= 0 {
		p.Reserve = DefaultRetryReserve
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Sleep == nil {
		p.Sleep = clock.Sleep
	}
	if p.Jitter == nil {
		p.Jitter = rand.N[int64]
	}
	if p.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		p.Log = l
	}
	return &retrying{Manager: m, p: p}
}

type retrying struct {
	Manager
	p RetryPolicy
}

// Unwrap returns the back end the retries wrap (see As).
func (r *retrying) Unwrap() Manager { return r.Manager }

func (r *retrying) Refresh(ctx context.Context, repoID, sourceFile string) error {
	return r.do(ctx, "refresh the package list", func() error { return r.Manager.Refresh(ctx, repoID, sourceFile) })
}

func (r *retrying) Available(ctx context.Context, name string) (ok bool, err error) {
	err = r.do(ctx, "look up "+name, func() error {
		var e error
		ok, e = r.Manager.Available(ctx, name)
		return e
	})
	return ok, err
}

func (r *retrying) Install(ctx context.Context, pkgs ...Package) error {
	return r.do(ctx, "install "+strings.Join(names(pkgs), " "), func() error { return r.Manager.Install(ctx, pkgs...) })
}

func (r *retrying) Reinstall(ctx context.Context, pkgs ...string) error {
	return r.do(ctx, "reinstall "+strings.Join(pkgs, " "), func() error { return r.Manager.Reinstall(ctx, pkgs...) })
}

// do runs op until it succeeds, fails for another reason than a 429/503,
// or the attempts or the time budget run out.
func (r *retrying) do(ctx context.Context, what string, op func() error) error {
	var (
		waited time.Duration
		waits  int
	)
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		code, ok := throttledStatus(err)
		if !ok {
			return err
		}
		log := r.p.Log.WithFields(logrus.Fields{"status": code, "attempt": attempt, "operation": what})
		if attempt >= r.p.MaxAttempts {
			log.Warn("repository still throttling; attempts exhausted")
			return r.giveUp(err, what, code, waits, waited, fmt.Sprintf("after %d attempts", attempt))
		}
		ceiling := min(r.p.Base<<(attempt-1), r.p.Max)
		if ceiling <= 0 { // shifted past the range
			ceiling = r.p.Max
		}
		wait := ceiling/2 + time.Duration(r.p.Jitter(int64(ceiling/2)+1))
		if dl, has := ctx.Deadline(); has && r.p.Now().Add(wait+r.p.Reserve).After(dl) {
			log.Warn("repository still throttling; no time left to wait")
			return r.giveUp(err, what, code, waits, waited, "when the extension's time budget ran out")
		}
		log.WithField("wait", wait).Info("repository throttling; waiting before the next attempt")
		r.p.Waits.Add(throttle.Wait{Source: string(r.Kind()) + ": " + what, Status: code, Delay: wait})
		if serr := r.p.Sleep(ctx, wait); serr != nil {
			return r.giveUp(err, what, code, waits, waited, "when the extension's time budget ran out")
		}
		waits++
		waited += wait
	}
}

// giveUp is the failure after the last attempt: exit code 20 with the
// rate limit (or the overload) named, and what the run did about it.
func (r *retrying) giveUp(last error, what string, code int, waits int, waited time.Duration, when string) error {
	url, _ := fetchProblem(last.Error())
	where := "the repository"
	if url != "" {
		where = url
	}
	did := "did not wait (no time left)"
	if waits > 0 {
		did = fmt.Sprintf("waited %d times (%s in all)", waits, throttle.Seconds(waited))
	}
	advice := "The repository is overloaded; re-apply the extension later."
	if code == 429 {
		advice = "packages.microsoft.com allows " + throttle.PMCLimit + ": when many VMs install behind one address (a scale set, an Azure Policy remediation behind NAT), deploy them in smaller batches, then re-apply the extension."
	}
	return failure.New(failure.RepositoryUnreachable, last,
		"Could not %s with %s: %s kept answering %s; the extension %s and gave up %s. %s",
		what, r.Kind(), where, throttle.StatusText(code), did, when, advice)
}

// throttledAnswer finds a 429 or 503 answer in package-manager output, in
// the forms recorded in testdata/throttle/ (apt: "429  Too Many Requests",
// dnf: "Status code: 429", zypper: "HTTP response: 429" and "returned
// error: 429"), and zypper's "is temporarily unaccessible", which is all it
// prints after its own retries of a 503.
var throttledAnswer = regexp.MustCompile(`(?i)\b(429|503)\s+(?:too many requests|service unavailable)|(?:status code|http response|returned error):? (429|503)\b|(temporarily unaccessible)`)

// throttledStatus reports whether err (a package-manager failure, whose
// cause carries the command's output) comes from a 429 or 503 answer, and
// which. A lock or another failure is never taken for one.
func throttledStatus(err error) (int, bool) {
	var fe *failure.Error
	if errors.As(err, &fe) && fe.Code == failure.PackageManagerLocked {
		return 0, false
	}
	m := throttledAnswer.FindStringSubmatch(err.Error())
	switch {
	case m == nil:
		return 0, false
	case m[1] == "429" || m[2] == "429":
		return 429, true
	case m[3] != "":
		return 503, true
	}
	return 503, true
}
