package agentsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// CommandResult is the outcome of one handler command.
type CommandResult struct {
	Verb    Verb
	Version string
	Seq     int

	// ExitCode is the shell's exit status; -N when it died from signal N
	// (Python's returncode). Meaningless when TimedOut.
	ExitCode int
	TimedOut bool
	Duration time.Duration
	// Output is the agent's formatted "[stdout]\n...\n\n[stderr]\n..." block.
	Output string
	// Env holds the variables the agent set for the command (the set it
	// logs), before its own environment (Agent.BaseEnv) is merged on top.
	Env map[string]string
	// Command is the command line as the agent runs and reports it:
	// "<dir>/<cmd>" with the manifest command's leading "/" stripped.
	Command string
	// AgentMessage is what the agent reports on failure (empty on success):
	// "[ExtensionOperationError] Non-zero exit code: N, <dir>/<cmd>\n<output>"
	// or "[ExtensionError] Timeout(<s>): <dir>/<cmd>\n<output>".
	AgentMessage string
	// ErrorCode is the agent's error code of a failure: 1011 on timeout,
	// else the verb's code (1007 install, 1009 enable, 1010 disable, 1008
	// update, 1000 uninstall); 0 on success.
	ErrorCode int
	// Err is set when the command could not be run at all (manifest
	// unreadable, shell not startable, context cancelled).
	Err error
}

// Failed reports whether the agent sees the command as failed.
func (r CommandResult) Failed() bool { return r.Err != nil || r.TimedOut || r.ExitCode != 0 }

// exitCodeForEnv is the value the agent passes on for a failed old-version
// command in an update with continueOnUpdateFailure: the exit code of a
// non-zero exit, the error code (1011) of a timeout.
func (r CommandResult) exitCodeForEnv() string {
	switch {
	case r.TimedOut:
		return strconv.Itoa(CodeScriptTimedOut)
	case r.Err != nil:
		return strconv.Itoa(r.ErrorCode)
	}
	return strconv.Itoa(r.ExitCode)
}

// asError is the error the agent raises for a failed command.
func (r CommandResult) asError() *Error {
	if !r.Failed() {
		return nil
	}
	msg := r.AgentMessage
	if msg == "" && r.Err != nil {
		msg = "[ExtensionError] " + r.Err.Error()
	}
	return &Error{Code: r.ErrorCode, Message: msg, Err: r.Err}
}

func verbErrorCode(v Verb) int {
	switch v {
	case Install:
		return CodeInstallFailed
	case Enable:
		return CodeEnableFailed
	case Disable:
		return CodeDisableFailed
	case Update:
		return CodeUpdateFailed
	}
	return CodeProcessingError
}

// maxOutput is the agent's TELEMETRY_MESSAGE_MAX_LEN.
const maxOutput = 3200

// Run executes one manifest command the agent's way: /bin/sh -c
// "<dir>/<cmd>" (leading "/" of cmd stripped), cwd <dir>, new session and
// process group, stdin /dev/null, stdout and stderr into unlinked temporary
// files in the handler directory, the per-command variables (common set
// plus extra; the common set wins over extra) with BaseEnv merged on top,
// the verb's timeout enforced by SIGKILL to the whole process group.
// Background children are not waited for.
func (a *Agent) Run(ctx context.Context, h *Handler, verb Verb, seq int, extra map[string]string) CommandResult {
	res := CommandResult{Verb: verb, Version: h.Version, Seq: seq, ErrorCode: verbErrorCode(verb)}
	fail := func(err error) CommandResult {
		res.ExitCode = -1
		res.Err = err
		var ae *Error
		if errors.As(err, &ae) {
			res.ErrorCode = ae.Code
			res.AgentMessage = ae.Message
		} else {
			res.AgentMessage = "[ExtensionError] " + err.Error()
		}
		a.logf("%s %s: %v", h.FullName(), verb, err)
		return res
	}
	m, err := a.loadManifest(h)
	if err != nil {
		return fail(err)
	}
	h.Manifest = m
	cmdText, err := m.Command(verb)
	if err != nil {
		return fail(err)
	}
	// os.path.join(base_dir, cmd.lstrip("/")): no normalisation.
	res.Command = h.Dir + "/" + strings.TrimLeft(cmdText, "/")

	env := make(map[string]string, len(extra)+5)
	for k, v := range extra {
		env[k] = v
	}
	env[EnvExtensionPath] = h.Dir
	env[EnvExtensionVersion] = h.Version
	env[EnvWireServer] = a.wireServer()
	env[EnvSeqNo] = strconv.Itoa(seq)
	env[EnvSupportedFeatures] = SupportedFeatures
	res.Env = env
	merged := make(map[string]string, len(env)+len(a.baseEnv()))
	for k, v := range env {
		merged[k] = v
	}
	for _, kv := range a.baseEnv() {
		k, v, _ := strings.Cut(kv, "=")
		merged[k] = v
	}
	envList := make([]string, 0, len(merged))
	for k, v := range merged {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)

	dirHost, err := a.hostPath(h.Dir)
	if err != nil {
		return fail(err)
	}
	stdout, err := unlinkedTemp(dirHost)
	if err != nil {
		return fail(err)
	}
	defer stdout.Close()
	stderr, err := unlinkedTemp(dirHost)
	if err != nil {
		return fail(err)
	}
	defer stderr.Close()

	envJSON, _ := json.Marshal(env)
	a.cmdLog(h, fmt.Sprintf("Executing command: %s with environment variables: %s", res.Command, envJSON))
	a.logf("%s: running %s (timeout %s)", h.FullName(), res.Command, a.Timeout(verb))

	cmd := exec.Command("/bin/sh", "-c", res.Command)
	cmd.Dir = h.Dir
	cmd.Env = envList
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if a.Root != "" {
		cmd.SysProcAttr.Chroot = a.Root
	} else {
		cmd.Dir = dirHost
	}
	timeout := a.Timeout(verb)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("starting %s: %w", res.Command, err))
	}
	pgid := cmd.Process.Pid

	type outcome int
	const (
		exited outcome = iota
		timedOut
		cancelled
	)
	done := make(chan struct{})
	result := make(chan outcome, 1)
	go func() {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-done:
			result <- exited
		case <-timer.C:
			// os.killpg(pgid, SIGKILL): no SIGTERM first.
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			result <- timedOut
		case <-ctx.Done():
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			result <- cancelled
		}
	}()
	waitErr := cmd.Wait()
	close(done)
	how := <-result
	res.Duration = time.Since(start)

	res.ExitCode = -1
	if ps := cmd.ProcessState; ps != nil {
		res.ExitCode = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = -int(ws.Signal())
		}
	}
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		res.Err = fmt.Errorf("waiting for %s: %w", res.Command, waitErr)
	}
	if how == exited && a.SettleDelay > 0 {
		time.Sleep(a.SettleDelay)
	}
	res.Output = formatOutput(readHead(stdout), readHead(stderr))

	switch how {
	case timedOut:
		res.TimedOut = true
		res.ErrorCode = CodeScriptTimedOut
		res.AgentMessage = fmt.Sprintf("[ExtensionError] Timeout(%s): %s\n%s", formatSeconds(timeout), res.Command, res.Output)
	case cancelled:
		res.Err = fmt.Errorf("%s: %w", res.Command, ctx.Err())
		res.AgentMessage = "[ExtensionError] " + res.Err.Error()
	default:
		if res.ExitCode != 0 {
			res.AgentMessage = fmt.Sprintf("[ExtensionOperationError] Non-zero exit code: %d, %s\n%s", res.ExitCode, res.Command, res.Output)
		}
	}
	if !res.Failed() {
		res.ErrorCode = 0
	}
	a.cmdLog(h, "Command: "+res.Command+"\n"+dropEmptyLines(res.Output))
	a.logf("%s %s: exit %d timedOut=%v after %s", h.FullName(), verb, res.ExitCode, res.TimedOut, res.Duration.Round(time.Millisecond))
	return res
}

func unlinkedTemp(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "tmp")
	if err != nil {
		return nil, fmt.Errorf("creating output file in %s: %w", dir, err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlinking %s: %w", f.Name(), err)
	}
	return f, nil
}

// readHead reads the first 3200 bytes of f and decodes them as UTF-8 with
// Python's "backslashreplace" (each invalid byte becomes \xNN).
func readHead(f *os.File) []rune {
	buf := make([]byte, maxOutput)
	n, err := f.ReadAt(buf, 0)
	if err != nil && n == 0 {
		return nil
	}
	return decodeBackslashReplace(buf[:n])
}

func decodeBackslashReplace(b []byte) []rune {
	out := make([]rune, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			for _, c := range fmt.Sprintf(`\x%02x`, b[0]) {
				out = append(out, c)
			}
			b = b[1:]
			continue
		}
		out = append(out, r)
		b = b[size:]
	}
	return out
}

// formatOutput is the agent's format_stdout_stderr: the template
// "[stdout]\n{0}\n\n[stderr]\n{1}" within 3200 characters; each stream keeps
// up to 1590 characters from its tail; a short stream donates its unused
// share to the other.
func formatOutput(stdout, stderr []rune) string {
	const template = "[stdout]\n{0}\n\n[stderr]\n{1}"
	maxEach := (maxOutput - len(template) + 6) / 2 // 1590
	tail := func(r []rune, n int) string {
		if n >= len(r) {
			return string(r)
		}
		return string(r[len(r)-n:])
	}
	build := func(o, e string) string { return "[stdout]\n" + o + "\n\n[stderr]\n" + e }
	lo, le := len(stdout), len(stderr)
	switch {
	case lo+le < maxOutput:
		return build(string(stdout), string(stderr))
	case lo < maxEach:
		return build(string(stdout), tail(stderr, min(maxEach+maxEach-lo, le)))
	case le < maxEach:
		return build(tail(stdout, min(maxEach+maxEach-le, lo)), string(stderr))
	default:
		return build(tail(stdout, maxEach), tail(stderr, maxEach))
	}
}

// FormatOutput exposes the agent's output formatting for tests of the
// handler's own messages: stdout and stderr as the agent would capture them
// (only the first 3200 bytes of each are read).
func FormatOutput(stdout, stderr []byte) string {
	if len(stdout) > maxOutput {
		stdout = stdout[:maxOutput]
	}
	if len(stderr) > maxOutput {
		stderr = stderr[:maxOutput]
	}
	return formatOutput(decodeBackslashReplace(stdout), decodeBackslashReplace(stderr))
}

func formatSeconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

func dropEmptyLines(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// cmdLog appends to <LogDir>/<Name>/CommandExecution.log roughly like the
// agent's logger (timestamp, level, "[Name-Version]" prefix).
func (a *Agent) cmdLog(h *Handler, msg string) {
	hp, err := a.hostPath(path.Join(a.handlerLogDir(h.Name), "CommandExecution.log"))
	if err != nil {
		return
	}
	f, err := os.OpenFile(hp, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s INFO ExtHandler [%s] %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), h.FullName(), msg)
}
