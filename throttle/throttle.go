// Package throttle records the time a run spent waiting on a repository's
// rate limit or transient answers (HTTP 429 Too Many Requests, 503 Service
// Unavailable), so the status can say that an install succeeded only after
// waiting, and a failure can say how long it waited before giving up.
//
// Both retry loops of the handler write to one Log: the HTTP client's
// (signing key download, repository probes), which sees the Retry-After
// header, and the package-manager decorator's (pkgmgr.WithRetry), which
// recognises 429/503 in the package manager's output.
package throttle

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// PMCLimit is packages.microsoft.com's published rate limit, for messages.
const PMCLimit = "4,000 requests per 5 minutes per client address"

// Wait is one pause before a retry.
type Wait struct {
	Source string        // what was retried: "GET https://…/keys/microsoft.asc", "apt-get update"
	Status int           // the answer that caused it: 429 or 503 (0 when not known)
	Delay  time.Duration // how long the retry loop waited
}

// Log collects waits; it is safe for concurrent use, and a nil *Log
// records nothing.
type Log struct {
	mu    sync.Mutex
	waits []Wait
}

// Add records one wait.
func (l *Log) Add(w Wait) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waits = append(l.waits, w)
}

// Waits returns the waits recorded so far, in order.
func (l *Log) Waits() []Wait {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Wait(nil), l.waits...)
}

// Total is the number of waits and their summed delay.
func (l *Log) Total() (n int, d time.Duration) {
	for _, w := range l.Waits() {
		n++
		d += w.Delay
	}
	return n, d
}

// Summary says in one sentence fragment how often and how long the run
// waited, and on which answers: "waited 3 times (41 s in all) after HTTP
// 429 Too Many Requests (2) and 503 Service Unavailable (1) from the
// repository". It is "" when nothing was waited for.
func (l *Log) Summary() string {
	ws := l.Waits()
	if len(ws) == 0 {
		return ""
	}
	var total time.Duration
	counts := map[int]int{}
	for _, w := range ws {
		total += w.Delay
		counts[w.Status]++
	}
	codes := make([]int, 0, len(counts))
	for c := range counts {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s (%d)", StatusText(c), counts[c]))
	}
	times := "once"
	if len(ws) > 1 {
		times = fmt.Sprintf("%d times", len(ws))
	}
	return fmt.Sprintf("waited %s (%s in all) after %s from the repository",
		times, Seconds(total), strings.Join(parts, " and "))
}

// StatusText names an answer a retry loop waits on.
func StatusText(code int) string {
	switch code {
	case 429:
		return "HTTP 429 Too Many Requests"
	case 503:
		return "HTTP 503 Service Unavailable"
	case 0:
		return "a transient answer"
	}
	return fmt.Sprintf("HTTP %d", code)
}

// Seconds renders a duration for users: "0.4 s", "41 s".
func Seconds(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%d s", int(d.Round(time.Second).Seconds()))
}

// Transient reports whether an HTTP status is one the retry loops wait on:
// the repository's rate limit (429) or a passing overload (503).
func Transient(code int) bool { return code == 429 || code == 503 }

// Answer names an HTTP status for a failure message; the rate limit and
// a passing overload say what they are, since the fix is to wait, not to
// change the network.
func Answer(code int) string {
	switch code {
	case 429:
		return "HTTP 429 Too Many Requests (the repository's rate limit: packages.microsoft.com allows " + PMCLimit + "; the extension waited as long as its retry limits and time budget allow, so deploy VMs behind one address in smaller batches)"
	case 503:
		return "HTTP 503 Service Unavailable (the repository stayed overloaded for as long as the extension's retry limits and time budget allow)"
	}
	return fmt.Sprintf("HTTP %d", code)
}
