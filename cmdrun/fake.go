package cmdrun

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Fake is a Runner for tests: it records every command and answers from
// Responses, matched by the longest prefix of the rendered command line.
type Fake struct {
	mu sync.Mutex
	// Responses maps a command-line prefix (e.g. "apt-get install") to a
	// result. Unmatched commands succeed with empty output unless Strict.
	Responses map[string]FakeResponse
	// Strict makes unmatched commands return ErrNotFound.
	Strict bool
	// Calls records every command, in order.
	Calls []Cmd
}

// FakeResponse is one scripted answer.
type FakeResponse struct {
	Result Result
	Err    error
	// Func, when set, computes the answer (and can change state).
	Func func(Cmd) (Result, error)
	// Delay makes the command take this long; a context that ends first
	// stops it the way Exec does (error wrapping ctx.Err()).
	Delay time.Duration
}

// Run implements Runner.
func (f *Fake) Run(ctx context.Context, c Cmd) (Result, error) {
	f.mu.Lock()
	f.Calls = append(f.Calls, c)
	line := strings.Join(append([]string{c.Name}, c.Args...), " ")
	best := ""
	var resp FakeResponse
	found := false
	for prefix, r := range f.Responses {
		if strings.HasPrefix(line, prefix) && len(prefix) >= len(best) {
			best, resp, found = prefix, r, true
		}
	}
	strict := f.Strict
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Result{ExitCode: -1}, err
	}
	if !found {
		if strict {
			return Result{ExitCode: -1}, fmt.Errorf("%s: %w", c.Name, ErrNotFound)
		}
		return Result{}, nil
	}
	if resp.Delay > 0 {
		timer := time.NewTimer(resp.Delay)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return Result{ExitCode: -1}, fmt.Errorf("%s stopped: %w", c.Name, ctx.Err())
		case <-timer.C:
		}
	}
	if resp.Func != nil {
		return resp.Func(c)
	}
	return resp.Result, resp.Err
}

// Lines returns the recorded command lines.
func (f *Fake) Lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.Calls))
	for i, c := range f.Calls {
		out[i] = strings.Join(append([]string{c.Name}, c.Args...), " ")
	}
	return out
}
