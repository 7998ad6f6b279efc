// Package cmdrun runs external commands (package managers, sshd, systemctl)
// behind a small interface so that callers can be tested with a fake and the
// production runner can log every command the same way.
package cmdrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Cmd describes one command to run.
type Cmd struct {
	// Name is the program (looked up in PATH when it has no slash).
	Name string
	// Args are the arguments after Name.
	Args []string
	// Env holds extra "KEY=value" entries added to the environment every
	// command starts from (see Environment); later entries win.
	Env []string
	// Stdin is the standard input; nil means /dev/null, so no command can
	// ever wait for a prompt.
	Stdin io.Reader
	// Dir is the working directory; empty means the handler's.
	Dir string
	// Timeout bounds this command in addition to the context; zero means
	// only the context's deadline applies.
	Timeout time.Duration
	// Sensitive marks a command whose output may hold secrets (openssl
	// decrypting protected settings): Exec never logs its output, only
	// that it ran and how it ended.
	Sensitive bool
}

// String renders the command line for logs and messages.
func (c Cmd) String() string {
	parts := append([]string{c.Name}, c.Args...)
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, " \t\"'$\\") {
			parts[i] = fmt.Sprintf("%q", p)
		}
	}
	return strings.Join(parts, " ")
}

// Result is what a command produced. ExitCode is -1 when the command was
// killed by a signal or by its deadline.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	Duration time.Duration
}

// Combined returns stdout and stderr joined, trimmed, for messages.
func (r Result) Combined() string {
	return strings.TrimSpace(string(r.Stdout) + "\n" + string(r.Stderr))
}

// ErrNotFound is returned (wrapped) when the program does not exist.
var ErrNotFound = errors.New("command not found")

// Runner runs commands. Run returns a non-nil error only when the command
// could not be started, or was stopped by the context or its timeout; a
// command that ran and exited non-zero returns err == nil and a non-zero
// Result.ExitCode, so callers decide what a code means.
type Runner interface {
	Run(ctx context.Context, c Cmd) (Result, error)
}

// Exec is the production Runner: it runs commands with os/exec, in their own
// process group (so a timeout kills the whole tree), logging each command
// and its outcome.
type Exec struct {
	Log logrus.FieldLogger
	// Getenv reads the handler's environment for the variables commands
	// inherit (see Environment); nil means os.Getenv.
	Getenv func(string) string
}

// Inherited lists the variables a command takes from the handler's
// environment: the search path, the home and temporary directories, and the
// proxy settings in both spellings (apt, dnf's libcurl and zypper honour
// them, as our own downloads do). Nothing else is passed on. The agent's
// environment is the agent service's and the agent's own (it is written in
// Python), and variables such as LD_PRELOAD, LD_LIBRARY_PATH, PYTHONPATH,
// PYTHONHOME, PERL5LIB or BASH_ENV change how a package manager, its
// plug-ins and the maintainer scripts it runs are loaded.
var Inherited = []string{
	"PATH", "HOME", "TMPDIR",
	"http_proxy", "https_proxy", "no_proxy",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
}

// DefaultPath is the search path of commands when the handler has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Environment returns the environment every command starts from: the
// Inherited variables that getenv has a value for (PATH defaults to
// DefaultPath), and LANG=C. The locale is not inherited: C exists on every
// system (a LANG naming a locale the image lacks makes every perl
// maintainer script complain), and it is the language of the output the
// handler reads.
func Environment(getenv func(string) string) []string {
	env := make([]string, 0, len(Inherited)+1)
	for _, k := range Inherited {
		v := getenv(k)
		if k == "PATH" && v == "" {
			v = DefaultPath
		}
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return append(env, "LANG=C")
}

// Run implements Runner.
func (e Exec) Run(ctx context.Context, c Cmd) (Result, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	getenv := e.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cmd.Env = append(Environment(getenv), c.Env...)
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin // nil reads from os.DevNull
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &stdout, max: maxCapture}
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: maxCapture}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Kill the whole process group: package managers fork helpers
		// (dpkg, maintainer scripts, gpg) that must not outlive us.
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	log := e.logger().WithField("cmd", c.String())
	log.Debug("running")
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: cmd.ProcessState.ExitCode(), Duration: time.Since(start)}
	if cmd.ProcessState == nil {
		res.ExitCode = -1
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		err = nil // ran and exited non-zero: the caller interprets the code
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist):
		log.WithError(err).Warn("command not found")
		return res, fmt.Errorf("%s: %w", c.Name, ErrNotFound)
	case ctx.Err() != nil:
		log.WithField("after", res.Duration.Round(time.Millisecond)).Warn("command stopped by deadline")
		return res, fmt.Errorf("%s stopped after %s: %w", c.Name, res.Duration.Round(time.Second), ctx.Err())
	default:
		log.WithError(err).Warn("command could not run")
		return res, fmt.Errorf("running %s: %w", c.Name, err)
	}
	entry := log.WithFields(logrus.Fields{"exit": res.ExitCode, "took": res.Duration.Round(time.Millisecond)})
	switch {
	case res.ExitCode != 0 && c.Sensitive:
		entry.Info("command failed (its output may hold secrets and is not logged)")
	case res.ExitCode != 0:
		entry.WithField("output", tail(res.Combined(), 2000)).Info("command failed")
	default:
		entry.Debug("command succeeded")
	}
	return res, nil
}

func (e Exec) logger() logrus.FieldLogger {
	if e.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		return l
	}
	return e.Log
}

// maxCapture bounds what we keep of each stream: package managers can print
// megabytes, and only the tail matters for messages.
const maxCapture = 1 << 20

type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			p = p[:room]
		}
		l.buf.Write(p)
	}
	return n, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// Tail returns at most the last n bytes of s, for messages.
func Tail(s string, n int) string { return tail(s, n) }
