// Package provenance records which commit a generated document (the fault
// suite's docs/reliability.md, the benchmarks' docs/benchmarks.md, the fleet
// test's docs/fleet.md) was generated from, so that a test can tell when a
// document no longer describes the code.
package provenance

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// CodePaths are the production code a generated document describes:
// everything the handler and its zip are built from, that is the whole
// repository except the tests, the documentation and CI (pathspecs for
// git, relative to the repository's top). A new package is covered without
// being listed.
var CodePaths = []string{
	".",
	":(exclude)test", ":(exclude)docs", ":(exclude).ci", ":(exclude)*.md",
	":(exclude)*_test.go", ":(exclude)*/testdata/*",
}

// Stamp is where a generated document came from.
type Stamp struct {
	Commit string // full hash of HEAD
	Dirty  bool   // the code (CodePaths) differed from HEAD
}

var marker = regexp.MustCompile(`<!-- generated-from: ([0-9a-f]{40})( dirty)? -->`)

// Marker is the machine-readable line a document carries.
func (s Stamp) Marker() string {
	d := ""
	if s.Dirty {
		d = " dirty"
	}
	return fmt.Sprintf("<!-- generated-from: %s%s -->", s.Commit, d)
}

// Sentence says it for readers: "commit abc1234" (with uncommitted changes
// to the code, when dirty).
func (s Stamp) Sentence() string {
	if s.Dirty {
		return fmt.Sprintf("commit %s with uncommitted changes to the code", s.Commit[:12])
	}
	return "commit " + s.Commit[:12]
}

// Top is the repository's top folder (from this file's location).
func Top() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func git(args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", Top()}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Current stamps a document generated now.
func Current() (Stamp, error) {
	head, err := git("rev-parse", "HEAD")
	if err != nil {
		return Stamp{}, err
	}
	status, err := git(append([]string{"status", "--porcelain", "--"}, CodePaths...)...)
	if err != nil {
		return Stamp{}, err
	}
	return Stamp{Commit: head, Dirty: status != ""}, nil
}

// Parse finds the stamp in a document.
func Parse(doc string) (Stamp, bool) {
	m := marker.FindStringSubmatch(doc)
	if m == nil {
		return Stamp{}, false
	}
	return Stamp{Commit: m[1], Dirty: m[2] != ""}, true
}

// Committed returns a document as HEAD has it (not the working tree's
// copy, which a test run may be rewriting right now).
func Committed(path string) (string, error) {
	return git("show", "HEAD:"+path)
}

// Stale says why a document stamped s no longer describes HEAD's code, or
// "" when it does: it was generated from uncommitted code, or the code
// changed in a commit after the one it was generated from.
func Stale(s Stamp) (string, error) {
	if s.Dirty {
		return fmt.Sprintf("it was generated from uncommitted changes on top of %s", s.Commit[:12]), nil
	}
	last, err := git(append([]string{"log", "-1", "--format=%H", "--"}, CodePaths...)...)
	if err != nil {
		return "", err
	}
	if last == "" {
		return "", nil
	}
	if _, err := git("merge-base", "--is-ancestor", last, s.Commit); err != nil {
		if strings.Contains(err.Error(), "exit status 1") { // not an ancestor
			return fmt.Sprintf("the code changed in %s, after %s it was generated from", last[:12], s.Commit[:12]), nil
		}
		return "", err
	}
	return "", nil
}
