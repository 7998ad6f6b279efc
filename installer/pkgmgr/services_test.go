package pkgmgr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/sysroot"
)

func systemdRoot(t *testing.T) sysroot.Root {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	return sysroot.Root(dir)
}

func TestPauseAutoUpdatesStopsOnlyActiveUnits(t *testing.T) {
	inactive := cmdrun.FakeResponse{Result: cmdrun.Result{ExitCode: 3}}
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"systemctl is-active":                                     inactive,
		"systemctl is-active --quiet apt-daily.timer":             {},
		"systemctl is-active --quiet apt-daily-upgrade.service":   {},
		"systemctl is-active --quiet unattended-upgrades.service": {},
		// A unit that will not stop is left alone and not restarted.
		"systemctl stop unattended-upgrades.service": {Result: cmdrun.Result{ExitCode: 1, Stderr: []byte("Job failed")}},
	}}
	s := Services{Runner: f, Root: systemdRoot(t)}
	restore, err := s.PauseAutoUpdates(context.Background(), Apt)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"systemctl is-active --quiet apt-daily.timer",
		"systemctl stop apt-daily.timer",
		"systemctl is-active --quiet apt-daily-upgrade.timer",
		"systemctl is-active --quiet apt-daily.service",
		"systemctl is-active --quiet apt-daily-upgrade.service",
		"systemctl stop apt-daily-upgrade.service",
		"systemctl is-active --quiet unattended-upgrades.service",
		"systemctl stop unattended-upgrades.service",
	}
	if got := f.Lines(); !slices.Equal(got, want) {
		t.Fatalf("pause:\n got %q\nwant %q", got, want)
	}
	n := len(f.Calls)
	if err := restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.Lines()[n:]; !slices.Equal(got, []string{"systemctl start apt-daily-upgrade.service", "systemctl start apt-daily.timer"}) {
		t.Errorf("restore ran %q", got)
	}
}

func TestPauseAutoUpdatesDnfUnits(t *testing.T) {
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"systemctl is-active":                             {Result: cmdrun.Result{ExitCode: 3}},
		"systemctl is-active --quiet dnf-automatic.timer": {},
	}}
	restore, err := Services{Runner: f, Root: systemdRoot(t)}.PauseAutoUpdates(context.Background(), Dnf)
	if err != nil {
		t.Fatal(err)
	}
	if err := restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := f.Lines()
	if len(got) != 6 || got[1] != "systemctl stop dnf-automatic.timer" || got[4] != "systemctl is-active --quiet yum-cron.service" || got[5] != "systemctl start dnf-automatic.timer" {
		t.Errorf("commands %q", got)
	}
}

func TestPauseAutoUpdatesNothingToDo(t *testing.T) {
	ctx := context.Background()
	// No systemd running.
	f := &cmdrun.Fake{}
	restore, err := Services{Runner: f, Root: sysroot.Root(t.TempDir())}.PauseAutoUpdates(ctx, Apt)
	if err != nil || restore(ctx) != nil || len(f.Calls) != 0 {
		t.Errorf("no systemd: %v %q", err, f.Lines())
	}
	// zypper and tdnf have no units.
	for _, k := range []Kind{Zypper, Tdnf} {
		restore, err := Services{Runner: f, Root: systemdRoot(t)}.PauseAutoUpdates(ctx, k)
		if err != nil || restore(ctx) != nil || len(f.Calls) != 0 {
			t.Errorf("%s: %v %q", k, err, f.Lines())
		}
	}
	// No systemctl.
	f = &cmdrun.Fake{Strict: true}
	restore, err = Services{Runner: f, Root: systemdRoot(t)}.PauseAutoUpdates(ctx, Apt)
	if err != nil || restore(ctx) != nil || len(f.Calls) != 1 {
		t.Errorf("no systemctl: %v %q", err, f.Lines())
	}
}

func TestPauseAutoUpdatesRestoreReportsFailures(t *testing.T) {
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"systemctl is-active":                         {Result: cmdrun.Result{ExitCode: 3}},
		"systemctl is-active --quiet apt-daily.timer": {},
		"systemctl start apt-daily.timer":             {Result: cmdrun.Result{ExitCode: 5, Stderr: []byte("Unit not found")}},
	}}
	restore, err := Services{Runner: f, Root: systemdRoot(t)}.PauseAutoUpdates(context.Background(), Apt)
	if err != nil {
		t.Fatal(err)
	}
	err1 := restore(context.Background())
	if err1 == nil {
		t.Fatal("want error")
	}
	if err2 := restore(context.Background()); !errors.Is(err2, err1) {
		t.Errorf("second call: %v", err2)
	}
	starts := 0
	for _, l := range f.Lines() {
		if l == "systemctl start apt-daily.timer" {
			starts++
		}
	}
	if starts != 1 {
		t.Errorf("started %d times", starts)
	}
}

func TestPauseAutoUpdatesCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"systemctl stop apt-daily.timer": {Func: func(cmdrun.Cmd) (cmdrun.Result, error) { cancel(); return cmdrun.Result{}, nil }},
	}}
	restore, err := Services{Runner: f, Root: systemdRoot(t)}.PauseAutoUpdates(ctx, Apt)
	if err == nil {
		t.Fatal("want error after cancel")
	}
	n := len(f.Calls)
	if err := restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.Lines()[n:]; !slices.Equal(got, []string{"systemctl start apt-daily.timer"}) {
		t.Errorf("restore ran %q", got)
	}
}

// TestPausedUnitsSurviveAKilledRun: the agent's timeout kills the handler
// before restore; the next run starts the units the killed one stopped.
func TestPausedUnitsSurviveAKilledRun(t *testing.T) {
	root := systemdRoot(t)
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"systemctl is-active":                         {Result: cmdrun.Result{ExitCode: 3}},
		"systemctl is-active --quiet apt-daily.timer": {},
	}}
	if _, err := (Services{Runner: f, Root: root}).PauseAutoUpdates(context.Background(), Apt); err != nil {
		t.Fatal(err)
	}
	// killed here: restore never runs
	if !root.Exists(PausedUnitsFile) {
		t.Fatal("stopped units not recorded")
	}
	next := &cmdrun.Fake{}
	if err := (Services{Runner: next, Root: root}).ResumeLeftovers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := next.Lines(); !slices.Equal(got, []string{"systemctl start apt-daily.timer"}) {
		t.Errorf("resume ran %q", got)
	}
	if root.Exists(PausedUnitsFile) {
		t.Error("record kept after the units were started")
	}
	// Nothing recorded: nothing to do, no command.
	idle := &cmdrun.Fake{}
	if err := (Services{Runner: idle, Root: root}).ResumeLeftovers(context.Background()); err != nil || len(idle.Calls) != 0 {
		t.Errorf("idle resume: %v %v", err, idle.Lines())
	}
}
