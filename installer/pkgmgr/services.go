package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/sysroot"
)

// Services pauses the distribution's automatic-update units while we
// install, so they do not grab the package manager's lock in the middle of
// our work (AAL#1318), and starts them again afterwards: leaving them
// stopped would silently end security updates.
type Services struct {
	Runner cmdrun.Runner
	Log    logrus.FieldLogger
	// Root is where /run/systemd/system is looked for; "" means "/".
	Root sysroot.Root
}

// autoUpdateUnits lists the units per package manager. Timers come first
// so that they cannot start a service again after we stopped it.
func autoUpdateUnits(kind Kind) []string {
	switch kind {
	case Apt:
		return []string{"apt-daily.timer", "apt-daily-upgrade.timer", "apt-daily.service",
			"apt-daily-upgrade.service", "unattended-upgrades.service"}
	case Dnf, Yum:
		return []string{"dnf-automatic.timer", "dnf-automatic-install.timer",
			"dnf-automatic-download.timer", "yum-cron.service"}
	}
	return nil
}

// stopTimeout bounds one systemctl stop: stopping apt-daily-upgrade.service
// waits for a running upgrade, which must not eat the whole budget; the
// lock wait afterwards handles an upgrade that keeps running.
const stopTimeout = 90 * time.Second

// PauseAutoUpdates stops those of kind's automatic-update units that are
// active and returns a function that starts exactly those again. Without
// systemd (no systemctl, or /run/systemd/system missing: not booted with
// systemd, e.g. in a container) there is nothing to do. restore is safe to
// call more than once; only the first call acts. A unit that fails to stop
// is logged and left alone; err is non-nil only when ctx ended, and then
// restore still restarts what was stopped.
func (s Services) PauseAutoUpdates(ctx context.Context, kind Kind) (restore func(context.Context) error, err error) {
	log := s.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	noop := func(context.Context) error { return nil }
	units := autoUpdateUnits(kind)
	if len(units) == 0 || s.Runner == nil {
		return noop, nil
	}
	if !s.Root.Exists("/run/systemd/system") {
		log.Debug("systemd is not running; no automatic-update units to pause")
		return noop, nil
	}
	// Units a killed run stopped are still ours to start again.
	stopped := s.leftovers()
	for _, u := range units {
		if slices.Contains(stopped, u) {
			continue
		}
		res, err := s.Runner.Run(ctx, cmdrun.Cmd{Name: "systemctl", Args: []string{"is-active", "--quiet", u}})
		if errors.Is(err, cmdrun.ErrNotFound) {
			return noop, nil
		}
		if err != nil {
			return s.restorer(log, stopped), fmt.Errorf("checking %s: %w", u, err)
		}
		if res.ExitCode != 0 {
			continue // inactive or not installed
		}
		// Record the unit before stopping it: if the agent kills us before
		// restore runs, the next run finds the record and starts it again.
		if err := s.record(append(stopped, u)); err != nil {
			log.WithError(err).WithField("unit", u).Warn("cannot record the unit; leaving it running")
			continue
		}
		res, err = s.Runner.Run(ctx, cmdrun.Cmd{Name: "systemctl", Args: []string{"stop", u}, Timeout: stopTimeout})
		if err != nil && ctx.Err() != nil {
			stopped = append(stopped, u) // may have stopped: restore starts it
			return s.restorer(log, stopped), fmt.Errorf("stopping %s: %w", u, err)
		}
		if err != nil || res.ExitCode != 0 {
			log.WithError(err).WithField("unit", u).WithField("output", res.Combined()).Warn("could not stop automatic-update unit; continuing")
			_ = s.record(stopped)
			continue
		}
		log.WithField("unit", u).Info("paused automatic-update unit")
		stopped = append(stopped, u)
	}
	return s.restorer(log, stopped), nil
}

// restorer returns the once-only function that starts units again, in
// reverse order so services come back before the timers that trigger them.
func (s Services) restorer(log logrus.FieldLogger, stopped []string) func(context.Context) error {
	var once sync.Once
	var result error
	return func(ctx context.Context) error {
		once.Do(func() {
			var errs []error
			for i := len(stopped) - 1; i >= 0; i-- {
				u := stopped[i]
				res, err := s.Runner.Run(ctx, cmdrun.Cmd{Name: "systemctl", Args: []string{"start", u}})
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("starting %s: %w", u, err))
				case res.ExitCode != 0:
					errs = append(errs, fmt.Errorf("starting %s: exit code %d: %s", u, res.ExitCode, res.Combined()))
				default:
					log.WithField("unit", u).Info("resumed automatic-update unit")
				}
			}
			result = errors.Join(errs...)
			if result == nil {
				_ = s.Root.RemoveIfExists(PausedUnitsFile)
			}
		})
		return result
	}
}

// PausedUnitsFile records the units a run stopped until it starts them
// again. It lives in /run, so a reboot (which starts every unit anyway)
// forgets it.
const PausedUnitsFile = "/run/aadsshlogin-handler.paused-units"

func (s Services) record(units []string) error {
	if len(units) == 0 {
		return s.Root.RemoveIfExists(PausedUnitsFile)
	}
	return s.Root.WriteFileAtomic(PausedUnitsFile, []byte(strings.Join(units, "\n")+"\n"), 0o600)
}

func (s Services) leftovers() []string {
	data, err := s.Root.ReadFile(PausedUnitsFile)
	if err != nil {
		return nil
	}
	var units []string
	for _, u := range strings.Fields(string(data)) {
		if strings.HasSuffix(u, ".timer") || strings.HasSuffix(u, ".service") {
			units = append(units, u)
		}
	}
	return units
}

// ResumeLeftovers starts the units that a run killed before it could
// restore them had stopped (the agent's timeout kills the whole process
// group). Cheap when there is nothing to do: one failed file read.
func (s Services) ResumeLeftovers(ctx context.Context) error {
	units := s.leftovers()
	if len(units) == 0 || s.Runner == nil {
		return nil
	}
	log := s.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	log.WithField("units", units).Warn("an interrupted run left automatic-update units stopped; starting them")
	return s.restorer(log, units)(ctx)
}
