// Package require decides what a test does when this machine lacks what it
// needs (root, a tool): skip on a developer's machine, fail in CI, where
// make test sets AADSSH_E2E_REQUIRED=1, so that a green run means every
// tier really ran.
package require

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Env is the variable make test (and so CI) sets to 1.
const Env = "AADSSH_E2E_REQUIRED"

// Required reports whether missing prerequisites fail tests.
func Required() bool { return os.Getenv(Env) == "1" }

// SkipOrFail skips the test with the message, or fails it when Required.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (%s=1, so this is a failure, not a skip)", msg, Env)
	}
	t.Skip(msg)
}

// Root requires the test to run as root.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root (%s)", why)
	}
}

// Tools requires every named command on the PATH.
func Tools(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		SkipOrFail(t, "needs %v on the PATH (scripts/setup.sh installs them)", missing)
	}
}
