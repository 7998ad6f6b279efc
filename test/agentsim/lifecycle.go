package agentsim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Apply processes a goal state that wants h enabled with settings seq and
// publicSettings public, in the agent's order (handle_enable):
//   - HandlerState NotInstalled or FailedUpgrade: set up again (state
//     NotInstalled, extract, initialize), write the settings, then install
//     (UNINSTALL_CMD_EXIT_CODE=NOT_RUN; success -> Installed) — or, when
//     another version of the handler is installed, the update sequence;
//   - Installed or Enabled: write the settings only;
//   - then enable (success -> Enabled).
//
// It returns every command result in order, and the first failure as the
// agent reports it (*Error).
func (a *Agent) Apply(ctx context.Context, h *Handler, seq int, public any) ([]CommandResult, error) {
	return a.handleEnable(ctx, h, seq, func(t *Handler) error { return a.WriteSettings(t, seq, public) })
}

// ApplyWithoutSettings is Apply for a goal state without settings for the
// handler (legacy case): a 0-byte 0.settings and ConfigSequenceNumber=0.
func (a *Agent) ApplyWithoutSettings(ctx context.Context, h *Handler) ([]CommandResult, error) {
	return a.handleEnable(ctx, h, 0, func(t *Handler) error { return a.WriteEmptySettings(t, 0) })
}

// Restart simulates an agent restart or a reboot: the first goal state
// counts as new, so the handler is processed again with the current seq:
// enable for an installed handler (install first if it never installed).
// The settings file of seq is rewritten with its current content (null
// public settings if it does not exist).
func (a *Agent) Restart(ctx context.Context, h *Handler, seq int) ([]CommandResult, error) {
	write := func(t *Handler) error {
		hp, err := a.hostPath(a.settingsPath(t, seq))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(hp)
		if err != nil {
			return a.WriteSettings(t, seq, nil)
		}
		return a.writeFile(a.settingsPath(t, seq), b)
	}
	return a.handleEnable(ctx, h, seq, write)
}

// Update processes a goal state that asks for the version in newZip while
// old is installed. The new version is set up (HandlerState NotInstalled,
// extract, initialize, settings), then, as the agent does (contract
// §9.6/§9.7): old.disable only if old is Enabled; mrseq and every status
// file copied from old to new; update (new dir on upgrade; old dir on
// downgrade with VERSION and UPDATING_FROM both the new version); old
// uninstall; old directory and zip deleted; new install only with updateMode
// absent or UpdateWithInstall; new HandlerState Installed; new enable.
//
// Like the agent, the installed version is found by scanning LibDir (the
// highest version whose HandlerState is neither NotInstalled nor
// FailedUpgrade); old only has to name the same handler. If no version is
// installed any more (for example after a failed downgrade), the new
// version is simply installed and enabled. The new Handler is returned even
// on failure so that a later goal state can be simulated.
func (a *Agent) Update(ctx context.Context, old *Handler, newZip, newName, newVersion string, seq int, public any) (*Handler, []CommandResult, error) {
	nh, err := a.handlerFor(newZip, newName, newVersion)
	if err != nil {
		return nil, nil, err
	}
	if old != nil && old.Name != nh.Name {
		return nh, nil, fmt.Errorf("update from %s to %s: different handlers", old.Name, nh.Name)
	}
	results, err := a.Apply(ctx, nh, seq, public)
	return nh, results, err
}

// Disable processes a legacy "disabled" request: disable runs only if the
// handler is Enabled (success -> Installed). When nothing runs, the result
// is the zero CommandResult (Verb "").
func (a *Agent) Disable(ctx context.Context, h *Handler, seq int) (CommandResult, error) {
	if a.State(h) != Enabled {
		a.logf("%s: not enabled, disable skipped", h.FullName())
		return CommandResult{}, nil
	}
	r, err := a.disable(ctx, h, seq)
	if err != nil {
		a.setHandlerStatus(h, "NotReady", err.Message, err.Code)
		return r, err
	}
	return r, nil
}

// Uninstall processes a request to remove the handler: if Enabled, disable
// first (its failure aborts the uninstall and keeps the directory); then
// uninstall, whose failure is only recorded; then the handler directory
// and zip are deleted (the log folder is kept). Nothing runs for a handler
// that is NotInstalled; its directory is still deleted.
func (a *Agent) Uninstall(ctx context.Context, h *Handler, seq int) ([]CommandResult, error) {
	var results []CommandResult
	st := a.State(h)
	if st != NotInstalled {
		if st == Enabled {
			r, err := a.disable(ctx, h, seq)
			results = append(results, r)
			if err != nil {
				a.setHandlerStatus(h, "NotReady", err.Message, err.Code)
				return results, err
			}
		}
		r := a.Run(ctx, h, Uninstall, seq, nil)
		results = append(results, r)
		if r.Failed() {
			a.logf("%s: uninstall failed (ignored): %s", h.FullName(), r.AgentMessage)
		}
	}
	if err := a.removeHandler(h); err != nil {
		return results, err
	}
	return results, nil
}

// handleEnable is the agent's handle_enable for a single-config handler.
func (a *Agent) handleEnable(ctx context.Context, h *Handler, seq int, writeSettings func(*Handler) error) ([]CommandResult, error) {
	var results []CommandResult
	uninstallExit := NotRun
	st := a.State(h)
	a.logf("[Enable] %s: current handler state is %s", h.FullName(), strings.ToLower(string(st)))
	if st == NotInstalled || st == FailedUpgrade {
		if err := a.setup(h); err != nil {
			a.reportError(h, err)
			return results, err
		}
		if err := writeSettings(h); err != nil {
			return results, err
		}
		old, err := a.installedVersion(h)
		if err != nil {
			return results, err
		}
		switch {
		case old == nil:
			r, ierr := a.install(ctx, h, seq, NotRun)
			results = append(results, r)
			if ierr != nil {
				a.reportError(h, ierr)
				return results, ierr
			}
		case old.Version != h.Version:
			code, rs, uerr := a.updateSequence(ctx, old, h, seq)
			results = append(results, rs...)
			if uerr != nil {
				a.reportError(h, uerr)
				return results, uerr
			}
			uninstallExit = code
		}
	} else if err := writeSettings(h); err != nil {
		return results, err
	}
	r := a.Run(ctx, h, Enable, seq, map[string]string{EnvUninstallExitCode: uninstallExit})
	results = append(results, r)
	if e := r.asError(); e != nil {
		a.reportError(h, e)
		return results, e
	}
	if err := a.setHandlerState(h, Enabled); err != nil {
		return results, err
	}
	a.setHandlerStatus(h, "Ready", "Plugin enabled", 0)
	return results, nil
}

func (a *Agent) reportError(h *Handler, err error) {
	var ae *Error
	if errors.As(err, &ae) {
		a.setHandlerStatus(h, "NotReady", ae.Message, ae.Code)
		return
	}
	a.setHandlerStatus(h, "NotReady", err.Error(), CodeUnknownFailure)
}

// install runs install with UNINSTALL_CMD_EXIT_CODE; success -> Installed.
func (a *Agent) install(ctx context.Context, h *Handler, seq int, uninstallExit string) (CommandResult, *Error) {
	r := a.Run(ctx, h, Install, seq, map[string]string{EnvUninstallExitCode: uninstallExit})
	if e := r.asError(); e != nil {
		return r, e
	}
	if err := a.setHandlerState(h, Installed); err != nil {
		return r, &Error{Code: CodeUnknownFailure, Message: err.Error(), Err: err}
	}
	a.setHandlerStatus(h, "NotReady", "Plugin installed but not enabled", 0)
	return r, nil
}

// disable runs disable; success -> Installed.
func (a *Agent) disable(ctx context.Context, h *Handler, seq int) (CommandResult, *Error) {
	r := a.Run(ctx, h, Disable, seq, nil)
	if e := r.asError(); e != nil {
		return r, e
	}
	if err := a.setHandlerState(h, Installed); err != nil {
		return r, &Error{Code: CodeUnknownFailure, Message: err.Error(), Err: err}
	}
	a.setHandlerStatus(h, "NotReady", "Plugin disabled", 0)
	return r, nil
}

// updateSequence is _update_extension_handler_and_return_if_failed followed
// by update_with_install. It returns the old uninstall's exit code for the
// new version's enable.
func (a *Agent) updateSequence(ctx context.Context, old, nh *Handler, seq int) (string, []CommandResult, error) {
	var results []CommandResult
	// continueOnUpdateFailure comes from the NEW version's manifest.
	oldCommand := func(r CommandResult, e *Error) (string, error) {
		if e == nil {
			return "0", nil
		}
		cont := false
		if m, err := a.loadManifest(nh); err == nil {
			cont = m.ContinueOnUpdateFailure
		}
		msg := fmt.Sprintf("%s; ContinueOnUpdate: %s", e.Message, pyBool(cont))
		a.logf("%s: %s", old.FullName(), msg)
		if !cont {
			return "", &Error{Code: CodeUpdateFailed, Message: "[ExtensionUpdateError] " + msg, Err: e.Err}
		}
		return r.exitCodeForEnv(), nil
	}

	disableExit := NotRun
	if a.State(old) == Enabled {
		r, e := a.disable(ctx, old, seq)
		results = append(results, r)
		code, err := oldCommand(r, e)
		if err != nil {
			return "", results, err
		}
		disableExit = code
	}
	if err := a.copyStatusFiles(old, nh); err != nil {
		return "", results, err
	}
	if versionGreater(nh.Version, old.Version) {
		r := a.Run(ctx, nh, Update, seq, map[string]string{
			EnvVersion:         nh.Version,
			EnvUpdatingFrom:    old.Version,
			EnvDisableExitCode: disableExit,
		})
		results = append(results, r)
		if e := r.asError(); e != nil {
			_ = a.setHandlerState(nh, FailedUpgrade)
			return "", results, e
		}
	} else {
		// Downgrade: the OLD version's update runs, in its own directory,
		// with VERSION and UPDATING_FROM both the new (lower) version.
		r := a.Run(ctx, old, Update, seq, map[string]string{
			EnvVersion:         nh.Version,
			EnvUpdatingFrom:    nh.Version,
			EnvDisableExitCode: disableExit,
		})
		results = append(results, r)
		if e := r.asError(); e != nil {
			_ = a.setHandlerState(old, FailedUpgrade)
			return "", results, e
		}
	}
	r := a.Run(ctx, old, Uninstall, seq, nil)
	results = append(results, r)
	uninstallExit, err := oldCommand(r, r.asError())
	if err != nil {
		return "", results, err
	}
	if err := a.removeHandler(old); err != nil {
		return "", results, err
	}
	m, err := a.loadManifest(nh)
	if err != nil {
		return "", results, err
	}
	if m.UpdateWithInstall() {
		r, e := a.install(ctx, nh, seq, uninstallExit)
		results = append(results, r)
		if e != nil {
			return "", results, e
		}
	} else {
		a.logf("%s: UpdateWithInstall not set, install skipped", nh.FullName())
	}
	if err := a.setHandlerState(nh, Installed); err != nil {
		return "", results, err
	}
	return uninstallExit, results, nil
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// copyStatusFiles copies old/mrseq and every regular file of old/status into
// the new version (shutil.copy2: content, mode and mtime).
func (a *Agent) copyStatusFiles(old, nh *Handler) error {
	src, err := a.hostPath(path.Join(old.Dir, "mrseq"))
	if err != nil {
		return err
	}
	if fi, err := os.Stat(src); err == nil && fi.Mode().IsRegular() {
		dst, err := a.hostPath(path.Join(nh.Dir, "mrseq"))
		if err != nil {
			return err
		}
		if err := copyFile(src, dst, 0, true); err != nil {
			return fmt.Errorf("migrating mrseq: %w", err)
		}
	}
	oldStatus, err := a.hostPath(path.Join(old.Dir, "status"))
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(oldStatus)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing old status folder: %w", err)
	}
	for _, e := range entries {
		src, err := a.hostPath(path.Join(old.Dir, "status", e.Name()))
		if err != nil {
			return err
		}
		if fi, err := os.Stat(src); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		dst, err := a.hostPath(path.Join(nh.Dir, "status", e.Name()))
		if err != nil {
			return err
		}
		if err := copyFile(src, dst, 0, true); err != nil {
			return fmt.Errorf("copying status file %s: %w", e.Name(), err)
		}
	}
	return nil
}

// removeHandler deletes the zip and the handler directory.
func (a *Agent) removeHandler(h *Handler) error {
	zipHost, err := a.hostPath(a.zipPath(h.Name, h.Version))
	if err != nil {
		return err
	}
	if err := os.Remove(zipHost); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", zipHost, err)
	}
	dirHost, err := a.hostPath(h.Dir)
	if err != nil {
		return err
	}
	a.logf("removing %s", h.Dir)
	if err := os.RemoveAll(dirHost); err != nil {
		return fmt.Errorf("removing %s: %w", h.Dir, err)
	}
	return nil
}

// installedVersion is the agent's get_installed_version: the highest version
// of the handler under LibDir whose HandlerState is neither NotInstalled nor
// FailedUpgrade (h itself is NotInstalled at this point).
func (a *Agent) installedVersion(h *Handler) (*Handler, error) {
	libHost, err := a.hostPath(a.libDir())
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(libHost)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", a.libDir(), err)
	}
	var best *Handler
	var bestV []int
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), h.Name+"-") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(libHost, e.Name())); err != nil || !fi.IsDir() {
			continue
		}
		m := matchHandlerName(e.Name(), "")
		if m == nil || m[1] != h.Name {
			continue
		}
		cand := &Handler{Name: m[1], Version: m[2], Dir: path.Join(a.libDir(), e.Name())}
		if st := a.State(cand); st == NotInstalled || st == FailedUpgrade {
			continue
		}
		v, err := parseVersion(m[2])
		if err != nil {
			continue
		}
		if best == nil || compareVersions(v, bestV) > 0 {
			best, bestV = cand, v
		}
	}
	if best != nil {
		if man, err := a.loadManifest(best); err == nil {
			best.Manifest = man
		}
	}
	return best, nil
}

func parseVersion(s string) ([]int, error) {
	if s == "" {
		return nil, errors.New("empty version")
	}
	parts := strings.Split(s, ".")
	v := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("version %q is not dotted digits", s)
		}
		v[i] = n
	}
	return v, nil
}

// compareVersions compares like Python tuples (a shorter prefix is lower).
func compareVersions(x, y []int) int {
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] != y[i] {
			if x[i] < y[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(x) < len(y):
		return -1
	case len(x) > len(y):
		return 1
	}
	return 0
}

// versionGreater reports x > y for dotted numeric versions.
func versionGreater(x, y string) bool {
	vx, err1 := parseVersion(x)
	vy, err2 := parseVersion(y)
	if err1 != nil || err2 != nil {
		return x > y
	}
	return compareVersions(vx, vy) > 0
}
