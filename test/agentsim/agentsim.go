// Package agentsim simulates the Azure Linux guest agent (WALinuxAgent 2.15)
// driving one single-config extension handler from its zip, the way
// production does: extraction, HandlerEnvironment.json, settings files,
// HandlerState, the per-verb environment, process-group timeouts, output
// capture and the exact install/enable/update/uninstall sequences.
//
// The agent can act on the host (Root == "") or on a throwaway root that the
// handler sees as "/" (commands then run chrooted). Every agent path (LibDir,
// LogDir, Handler.Dir, paths in messages and variables) is a path inside that
// root; host paths are derived from them with symlinks resolved inside the
// root, so the simulator never writes outside it.
//
// See README.md for what is reproduced and what is not.
package agentsim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Verb is a handler command named after its manifest key.
type Verb string

// The five manifest commands.
const (
	Install   Verb = "install"
	Enable    Verb = "enable"
	Disable   Verb = "disable"
	Update    Verb = "update"
	Uninstall Verb = "uninstall"
)

// HandlerState is the agent's persisted state of one handler version
// (<dir>/config/HandlerState).
type HandlerState string

// The values the agent writes.
const (
	NotInstalled  HandlerState = "NotInstalled"
	Installed     HandlerState = "Installed"
	Enabled       HandlerState = "Enabled"
	FailedUpgrade HandlerState = "FailedUpgrade"
)

// Environment variable names the agent sets (contract §6).
const (
	EnvExtensionPath     = "AZURE_GUEST_AGENT_EXTENSION_PATH"
	EnvExtensionVersion  = "AZURE_GUEST_AGENT_EXTENSION_VERSION"
	EnvSeqNo             = "ConfigSequenceNumber"
	EnvWireServer        = "AZURE_GUEST_AGENT_WIRE_PROTOCOL_ADDRESS"
	EnvSupportedFeatures = "AZURE_GUEST_AGENT_EXTENSION_SUPPORTED_FEATURES"
	EnvUninstallExitCode = "AZURE_GUEST_AGENT_UNINSTALL_CMD_EXIT_CODE"
	EnvDisableExitCode   = "AZURE_GUEST_AGENT_DISABLE_CMD_EXIT_CODE"
	EnvUpdatingFrom      = "AZURE_GUEST_AGENT_UPDATING_FROM_VERSION"
	EnvVersion           = "VERSION"

	// NotRun is the exit-code value of a command that did not run.
	NotRun = "NOT_RUN"

	// SupportedFeatures is the value of EnvSupportedFeatures: Python's
	// json.dumps of the feature list (default separators).
	SupportedFeatures = `[{"Key": "ExtensionTelemetryPipeline", "Value": "1.0"}]`
)

// Agent error codes (WA-EXC ExtensionErrorCodes, contract §10).
const (
	CodeProcessingError     = 1000 // uninstall (default code)
	CodeInstallFailed       = 1007
	CodeUpdateFailed        = 1008
	CodeEnableFailed        = 1009
	CodeDisableFailed       = 1010
	CodeScriptTimedOut      = 1011
	CodeStatusInvalid       = 1012
	CodeUnknownFailure      = -1
	defaultWireServer       = "168.63.129.16"
	defaultLibDir           = "/var/lib/waagent"
	defaultLogDir           = "/var/log/azure"
	defaultPath             = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	maxSymlinksInResolution = 40
)

// Agent is one simulated guest agent. The zero value is usable and has the
// production defaults; fields are read at each call.
type Agent struct {
	// Root is the host path of the target root the handler sees as "/";
	// "" means no chroot (host). Commands run with SysProcAttr.Chroot=Root
	// when set.
	Root string
	// LibDir is the agent's Lib.Dir inside the root (default /var/lib/waagent).
	LibDir string
	// LogDir is Extension.LogDir inside the root (default /var/log/azure).
	LogDir string
	// BaseEnv is the agent service's own environment ("KEY=value"), merged
	// on top of the per-command variables (agent values win). Default:
	// PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin.
	BaseEnv []string
	// Timeouts overrides the per-verb limits (install 900s, enable 300s,
	// disable 900s, update 900s, uninstall 300s).
	Timeouts map[Verb]time.Duration
	// WireServer is the value of AZURE_GUEST_AGENT_WIRE_PROTOCOL_ADDRESS
	// (default 168.63.129.16).
	WireServer string
	// SettleDelay is how long the agent waits after the shell exited before
	// it collects the exit code and output. The real agent waits 1 s (which
	// lets background children add output); the default 0 keeps tests fast.
	SettleDelay time.Duration
	// Log receives an optional trace of what the agent does (like waagent.log).
	Log io.Writer
}

// Handler is one version of the handler as the agent sees it.
type Handler struct {
	Name    string
	Version string
	// Dir is the in-root handler directory <LibDir>/<Name>-<Version>.
	Dir      string
	Manifest Manifest

	// zip is the host path of the package the handler was deployed from;
	// the agent "downloads" it again when it sets the handler up again.
	zip string
}

// HostDir returns the host path of h.Dir.
func (h *Handler) HostDir(a *Agent) string {
	p, err := a.hostPath(h.Dir)
	if err != nil {
		return filepath.Join(a.Root, filepath.FromSlash(h.Dir))
	}
	return p
}

// FullName is "<Name>-<Version>", the agent's name for one handler version.
func (h *Handler) FullName() string { return h.Name + "-" + h.Version }

// Error is a failure as the agent would report it in the handler status.
type Error struct {
	// Code is the agent's error code (1007 install, 1008 update, 1009
	// enable, 1010 disable, 1011 timeout, 1000 uninstall, -1 generic).
	Code int
	// Message is the handler status message, e.g.
	// "[ExtensionOperationError] Non-zero exit code: 3, <dir>/<cmd>\n[stdout]...".
	Message string
	// Err is an underlying simulator error (e.g. a command could not be
	// started), if any.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Terminal reports whether an extension status is terminal for the agent
// (success or error).
func Terminal(status string) bool { return status == "success" || status == "error" }

func (a *Agent) libDir() string {
	if a.LibDir == "" {
		return defaultLibDir
	}
	return a.LibDir
}

func (a *Agent) logDir() string {
	if a.LogDir == "" {
		return defaultLogDir
	}
	return a.LogDir
}

func (a *Agent) wireServer() string {
	if a.WireServer == "" {
		return defaultWireServer
	}
	return a.WireServer
}

func (a *Agent) baseEnv() []string {
	if a.BaseEnv == nil {
		return []string{defaultPath}
	}
	return a.BaseEnv
}

// Timeout returns the limit the agent applies to verb.
func (a *Agent) Timeout(verb Verb) time.Duration {
	if d, ok := a.Timeouts[verb]; ok && d > 0 {
		return d
	}
	switch verb {
	case Enable, Uninstall:
		return 300 * time.Second
	default:
		return 900 * time.Second
	}
}

func (a *Agent) logf(format string, args ...any) {
	if a.Log == nil {
		return
	}
	fmt.Fprintf(a.Log, "%s agentsim: %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), fmt.Sprintf(format, args...))
}

func (a *Agent) handlerDir(name, version string) string {
	return path.Join(a.libDir(), name+"-"+version)
}

func (a *Agent) zipPath(name, version string) string {
	return path.Join(a.libDir(), name+"__"+version+".zip")
}

func (a *Agent) handlerLogDir(name string) string { return path.Join(a.logDir(), name) }

// hostPath maps an in-root absolute path to a host path. With a Root, every
// symlink met on the way is resolved inside the root (as the handler, which
// is chrooted, would see it), so the result never leaves the root.
func (a *Agent) hostPath(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("agent path %q is not absolute", p)
	}
	if a.Root == "" {
		return path.Clean(p), nil
	}
	return resolveInRoot(a.Root, p)
}

func resolveInRoot(root, p string) (string, error) {
	queue := splitPath(p)
	cur := "/"
	links := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		hp := filepath.Join(root, filepath.FromSlash(next))
		fi, err := os.Lstat(hp)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				cur = next
				continue
			}
			return "", fmt.Errorf("resolving %s in %s: %w", p, root, err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		links++
		if links > maxSymlinksInResolution {
			return "", fmt.Errorf("resolving %s in %s: too many symbolic links", p, root)
		}
		target, err := os.Readlink(hp)
		if err != nil {
			return "", fmt.Errorf("resolving %s in %s: %w", p, root, err)
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		queue = append(splitPath(target), queue...)
	}
	return filepath.Join(root, filepath.FromSlash(cur)), nil
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}
