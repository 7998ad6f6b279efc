package agentsim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDeployExtractsLikeTheAgent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o := manifestOpts{bom: true, extra: `"reportHeartbeat": "TRUE", "supportsMultipleExtensions": "yes", `, cont: `"true"`}
	// The manifest lives in a subdirectory only: the agent finds it anywhere.
	zp := f.writeZip(testName+"-1.2.3.zip", []zipEntry{
		{name: "bin/", mode: 0o755},
		{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o755},
		{name: "private.key", body: "k", mode: 0o600},
		{name: "meta/HandlerManifest.json", body: manifestJSON(o), mode: 0o644},
		{name: "handler.sh", body: "#!/bin/sh\n", mode: 0o755},
		{name: "link", body: "bin/tool", symlink: true},
		{name: "../escape.txt", body: "e", mode: 0o644},
		{name: "/abs/file.txt", body: "a", mode: 0o644},
	})
	h, err := f.a.Deploy(zp, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != testName || h.Version != "1.2.3" || h.Dir != f.dir("1.2.3") {
		t.Fatalf("handler = %+v", h)
	}
	dir := h.HostDir(f.a)
	for name, want := range map[string]os.FileMode{
		"bin/tool": 0o744, "private.key": 0o744, "handler.sh": 0o744, "link": 0o744,
		"meta/HandlerManifest.json": 0o744, "escape.txt": 0o744, "abs/file.txt": 0o744,
		"HandlerManifest.json": 0o644, "HandlerEnvironment.json": 0o644,
	} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want regular %v", name, fi.Mode(), want)
		}
	}
	if got := readFile(t, filepath.Join(dir, "link")); got != "bin/tool" {
		t.Errorf("symlink entry content = %q, want the target text", got)
	}
	if exists(filepath.Join(f.a.LibDir, "escape.txt")) {
		t.Error("a ../ entry escaped the handler directory")
	}
	man := readFile(t, filepath.Join(dir, "HandlerManifest.json"))
	if strings.HasPrefix(man, "\ufeff") || man != manifestJSON(manifestOpts{extra: o.extra, cont: o.cont}) {
		t.Errorf("manifest copy = %q", man)
	}
	m := h.Manifest
	if !m.ReportHeartbeat || m.SupportsMultipleExtensions || !m.ContinueOnUpdateFailure || m.Enable != "/handler.sh enable" {
		t.Errorf("manifest = %+v", m)
	}
	for d, want := range map[string]os.FileMode{
		filepath.Join(dir, "status"):                  0o700,
		filepath.Join(dir, "config"):                  0o700,
		filepath.Join(f.a.LogDir, testName):           0o755,
		filepath.Join(f.a.LogDir, testName, "events"): 0o700,
	} {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want dir %v", d, fi, err, want)
		}
	}
	logDir := filepath.Join(f.a.LogDir, testName)
	wantEnv := `[{"name": "` + testName + `", "version": 1.0, "handlerEnvironment": {"logFolder": "` + logDir +
		`", "configFolder": "` + dir + `/config", "statusFolder": "` + dir + `/status", "heartbeatFile": "` + dir +
		`/heartbeat.log", "eventsFolder": "` + logDir + `/events", "eventsFolder_preview": "` + logDir + `/events"}}]`
	if got := readFile(t, filepath.Join(dir, "HandlerEnvironment.json")); got != wantEnv {
		t.Errorf("HandlerEnvironment.json:\n got %s\nwant %s", got, wantEnv)
	}
	if st := f.a.State(h); st != NotInstalled {
		t.Errorf("state = %s", st)
	}
	if exists(filepath.Join(f.a.LibDir, testName+"__1.2.3.zip")) {
		t.Error("downloaded zip should be deleted after extraction")
	}
}

func TestDeployWithoutManifestFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	zp := f.writeZip(testName+"-1.0.zip", []zipEntry{{name: "x.sh", body: "x", mode: 0o755}})
	if _, err := f.a.Deploy(zp, "", ""); err == nil || !strings.Contains(err.Error(), "HandlerManifest.json not found") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseManifest(t *testing.T) {
	t.Parallel()
	cmds := `"installCommand": "i", "uninstallCommand": "u", "updateCommand": "up", "enableCommand": "e", "disableCommand": "d"`
	for _, tc := range []struct {
		name, json    string
		wantErr       bool
		withInstall   bool
		cont, hb, mce bool
	}{
		{name: "minimal", json: `[{"handlerManifest": {` + cmds + `}}]`, withInstall: true},
		{name: "bom", json: "\ufeff" + `[{"handlerManifest": {` + cmds + `}}]`, withInstall: true},
		{name: "string booleans", json: `[{"handlerManifest": {` + cmds + `, "continueOnUpdateFailure": "True", "reportHeartbeat": "TRUE", "supportsMultipleExtensions": "yes"}}]`, withInstall: true, cont: true, hb: true},
		{name: "numbers are not booleans", json: `[{"handlerManifest": {` + cmds + `, "continueOnUpdateFailure": 1}}]`, withInstall: true},
		{name: "UpdateWithoutInstall", json: `[{"handlerManifest": {` + cmds + `, "updateMode": "UpdateWithoutInstall"}}]`},
		{name: "updatewithinstall any case", json: `[{"handlerManifest": {` + cmds + `, "updateMode": "updatewithINSTALL"}}]`, withInstall: true},
		{name: "empty updateMode skips install", json: `[{"handlerManifest": {` + cmds + `, "updateMode": ""}}]`},
		{name: "null updateMode", json: `[{"handlerManifest": {` + cmds + `, "updateMode": null}}]`, withInstall: true},
		{name: "not an array", json: `{"handlerManifest": {` + cmds + `}}`, wantErr: true},
		{name: "empty array", json: `[]`, wantErr: true},
		{name: "no handlerManifest", json: `[{"name": "x"}]`, wantErr: true},
		{name: "missing command", json: `[{"handlerManifest": {"installCommand": "i", "uninstallCommand": "u", "updateCommand": "up", "enableCommand": "e"}}]`, wantErr: true},
		{name: "invalid JSON", json: `[{`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tc.json))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error, manifest %+v", m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.UpdateWithInstall() != tc.withInstall || m.ContinueOnUpdateFailure != tc.cont || m.ReportHeartbeat != tc.hb || m.SupportsMultipleExtensions != tc.mce {
				t.Errorf("manifest = %+v", m)
			}
			if m.Install != "i" || m.Disable != "d" {
				t.Errorf("commands = %+v", m)
			}
		})
	}
}

func TestApplyInstallEnableRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.a.BaseEnv = []string{"PATH=/usr/bin:/bin", "http_proxy=http://proxy:3128", EnvSeqNo + "=99"}
	h, err := f.a.Deploy(f.zip("1.0", manifestOpts{updateMode: "UpdateWithoutInstall"}), "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := f.a.Apply(ctx, h, 3, map[string]any{"b": 1, "a": "é"})
	if err != nil {
		t.Fatal(err)
	}
	dir := f.dir("1.0")
	assertCalls(t, f.calls(), []string{"1.0 install " + dir, "1.0 enable " + dir})
	if len(res) != 2 || res[0].Verb != Install || res[1].Verb != Enable || res[1].Seq != 3 {
		t.Fatalf("results = %+v", res)
	}
	// Agent values (BaseEnv) win over the per-command variables.
	base := map[string]string{"PATH": "/usr/bin:/bin", "http_proxy": "http://proxy:3128", EnvSeqNo: "99"}
	want := f.wantEnv("1.0", 3, map[string]string{EnvUninstallExitCode: NotRun})
	for k, v := range base {
		want[k] = v
	}
	assertEnv(t, "install", f.env(1), want)
	assertEnv(t, "enable", f.env(2), want)
	if res[0].Env[EnvSeqNo] != "3" || res[0].Env[EnvUninstallExitCode] != NotRun || res[0].Env["PATH"] != "" {
		t.Errorf("recorded agent variables = %v", res[0].Env)
	}
	if got := f.argv(1); strings.Join(got, " ") != dir+"/./handler.sh install" {
		t.Errorf("install argv = %q", got)
	}
	if got := f.argv(2); strings.Join(got, " ") != dir+"/handler.sh enable" {
		t.Errorf("enable argv = %q (leading / must be stripped)", got)
	}
	if res[0].Command != dir+"/./handler.sh install" {
		t.Errorf("command = %q", res[0].Command)
	}
	settings := readFile(t, filepath.Join(dir, "config", "3.settings"))
	if want := `{"runtimeSettings": [{"handlerSettings": {"publicSettings": {"a": "\u00e9", "b": 1}, "protectedSettings": null, "protectedSettingsCertThumbprint": null}}]}`; settings != want {
		t.Errorf("settings = %s\nwant %s", settings, want)
	}
	if st := f.a.State(h); st != Enabled {
		t.Errorf("state = %s", st)
	}
	if hs := f.a.HandlerStatus(h); !strings.Contains(hs, `"status": "Ready", "code": 0, "message": "Plugin enabled"`) {
		t.Errorf("HandlerStatus = %s", hs)
	}
	if !exists(filepath.Join(f.a.LogDir, testName, "CommandExecution.log")) {
		t.Error("no CommandExecution.log")
	}

	// A new goal state: settings then enable only, no disable.
	f.resetCalls()
	if _, err := f.a.Apply(ctx, h, 4, nil); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f.calls(), []string{"1.0 enable " + dir})
	if got := readFile(t, filepath.Join(dir, "config", "4.settings")); !strings.Contains(got, `"publicSettings": null`) {
		t.Errorf("settings = %s", got)
	}

	// Agent restart: enable again with the same seq, settings kept.
	f.resetCalls()
	if _, err := f.a.Restart(ctx, h, 4); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f.calls(), []string{"1.0 enable " + dir})
	if f.env(1)[EnvUninstallExitCode] != NotRun {
		t.Errorf("restart enable env = %v", f.env(1))
	}
}

func TestApplyWithoutSettings(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h, err := f.a.Deploy(f.zip("1.0", manifestOpts{}), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.ApplyWithoutSettings(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(f.dir("1.0"), "config", "0.settings"))
	if err != nil || fi.Size() != 0 {
		t.Fatalf("0.settings: %v %v", fi, err)
	}
	if f.env(1)[EnvSeqNo] != "0" {
		t.Errorf("seq = %q", f.env(1)[EnvSeqNo])
	}
}

func TestInstallFailureRetriesInstall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h, err := f.a.Deploy(f.zip("1.0", manifestOpts{}), "", "")
	if err != nil {
		t.Fatal(err)
	}
	f.setExit("1.0", Install, 52)
	f.setFile("err.1.0.install", "unsupported distro\n")
	res, err := f.a.Apply(context.Background(), h, 0, map[string]any{})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeInstallFailed {
		t.Fatalf("err = %v", err)
	}
	want := "[ExtensionOperationError] Non-zero exit code: 52, " + f.dir("1.0") + "/./handler.sh install\n[stdout]\n\n\n[stderr]\nunsupported distro\n"
	if ae.Message != want || res[0].AgentMessage != want {
		t.Errorf("message = %q\nwant %q", ae.Message, want)
	}
	if len(res) != 1 || f.a.State(h) != NotInstalled {
		t.Fatalf("results %d, state %s", len(res), f.a.State(h))
	}
	if hs := f.a.HandlerStatus(h); !strings.Contains(hs, `"status": "NotReady", "code": 1007`) {
		t.Errorf("HandlerStatus = %s", hs)
	}
	// The next goal state sets up again and installs again.
	f.clearExit("1.0", Install)
	f.resetCalls()
	if _, err := f.a.Apply(context.Background(), h, 1, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f.calls(), []string{"1.0 install " + f.dir("1.0"), "1.0 enable " + f.dir("1.0")})
}

func TestEnableFailureKeepsInstalled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h, err := f.a.Deploy(f.zip("1.0", manifestOpts{}), "", "")
	if err != nil {
		t.Fatal(err)
	}
	f.setExit("1.0", Enable, 3)
	if _, err := f.a.Apply(context.Background(), h, 0, nil); err == nil {
		t.Fatal("no error")
	}
	if st := f.a.State(h); st != Installed {
		t.Fatalf("state = %s", st)
	}
	f.clearExit("1.0", Enable)
	f.resetCalls()
	if _, err := f.a.Apply(context.Background(), h, 1, nil); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f.calls(), []string{"1.0 enable " + f.dir("1.0")})
}

// installEnabled deploys and enables version v (seq 1) and clears the record.
func (f *fixture) installEnabled(v string, o manifestOpts) *Handler {
	f.t.Helper()
	h, err := f.a.Deploy(f.zip(v, o), "", "")
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.a.Apply(context.Background(), h, 1, map[string]any{}); err != nil {
		f.t.Fatal(err)
	}
	f.resetCalls()
	return h
}

func TestUpgradeWithoutInstall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.installEnabled("1.0", manifestOpts{})
	// The old version's enable wrote status/1.status and mrseq; add another.
	if err := os.WriteFile(filepath.Join(f.dir("1.0"), "status", "0.status"), []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	nh, res, err := f.a.Update(context.Background(), old, f.zip("2.0", manifestOpts{updateMode: "UpdateWithoutInstall"}), "", "", 2, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := f.dir("1.0"), f.dir("2.0")
	assertCalls(t, f.calls(), []string{"1.0 disable " + d1, "2.0 update " + d2, "1.0 uninstall " + d1, "2.0 enable " + d2})
	if len(res) != 4 {
		t.Fatalf("results = %d", len(res))
	}
	assertEnv(t, "old disable", f.env(1), f.wantEnv("1.0", 2, nil))
	assertEnv(t, "update", f.env(2), f.wantEnv("2.0", 2, map[string]string{EnvVersion: "2.0", EnvUpdatingFrom: "1.0", EnvDisableExitCode: "0"}))
	assertEnv(t, "old uninstall", f.env(3), f.wantEnv("1.0", 2, nil))
	assertEnv(t, "new enable", f.env(4), f.wantEnv("2.0", 2, map[string]string{EnvUninstallExitCode: "0"}))
	if exists(d1) {
		t.Error("old directory not removed")
	}
	if got := readFile(t, filepath.Join(d2, "status", "0.status")); got != "[]" {
		t.Errorf("copied status = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(d2, "status", "0.status")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("copied status mode: %v %v", fi, err)
	}
	if !exists(filepath.Join(d2, "status", "1.status")) {
		t.Error("status/1.status not copied")
	}
	if st := f.a.State(nh); st != Enabled {
		t.Errorf("new state = %s", st)
	}
	if !exists(filepath.Join(d2, "config", "2.settings")) || exists(filepath.Join(d2, "config", "1.settings")) {
		t.Error("only the current settings belong in the new config folder")
	}
}

func TestUpgradeCopiesMrseqBeforeUpdate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.installEnabled("1.0", manifestOpts{})
	// The new version's update records whether mrseq is already there.
	o := manifestOpts{}
	zp := f.writeZip(testName+"-2.0.zip", []zipEntry{
		{name: "HandlerManifest.json", body: strings.Replace(manifestJSON(o), `"handler.sh update"`, `"check.sh"`, 1)},
		{name: "handler.sh", body: strings.ReplaceAll(strings.ReplaceAll(fakeScript, "@REC@", f.rec), "@VER@", "2.0")},
		{name: "check.sh", body: "#!/bin/sh\ncat mrseq > '" + f.rec + "/mrseq-at-update'\n"},
	})
	if _, _, err := f.a.Update(context.Background(), old, zp, "", "", 2, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(f.rec, "mrseq-at-update")); got != "1\n" {
		t.Errorf("mrseq seen by update = %q", got)
	}
}

func TestUpgradeWithInstall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.installEnabled("1.0", manifestOpts{})
	_, _, err := f.a.Update(context.Background(), old, f.zip("1.1", manifestOpts{}), "", "", 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := f.dir("1.0"), f.dir("1.1")
	assertCalls(t, f.calls(), []string{"1.0 disable " + d1, "1.1 update " + d2, "1.0 uninstall " + d1, "1.1 install " + d2, "1.1 enable " + d2})
	assertEnv(t, "install", f.env(4), f.wantEnv("1.1", 5, map[string]string{EnvUninstallExitCode: "0"}))
}

func TestDowngradeRunsOldUpdate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.installEnabled("2.0", manifestOpts{updateMode: "UpdateWithoutInstall"})
	nh, _, err := f.a.Update(context.Background(), old, f.zip("1.0", manifestOpts{updateMode: "UpdateWithInstall"}), "", "", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := f.dir("1.0"), f.dir("2.0")
	assertCalls(t, f.calls(), []string{"2.0 disable " + d2, "2.0 update " + d2, "2.0 uninstall " + d2, "1.0 install " + d1, "1.0 enable " + d1})
	// The quirk: the old (higher) version's update, both versions = new.
	assertEnv(t, "downgrade update", f.env(2), f.wantEnv("2.0", 2, map[string]string{EnvVersion: "1.0", EnvUpdatingFrom: "1.0", EnvDisableExitCode: "0"}))
	if f.a.State(nh) != Enabled || exists(d2) {
		t.Errorf("state %s, old dir exists %v", f.a.State(nh), exists(d2))
	}
}

func TestDottedNumericVersionOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.installEnabled("1.9", manifestOpts{updateMode: "UpdateWithoutInstall"})
	if _, _, err := f.a.Update(context.Background(), old, f.zip("1.10", manifestOpts{updateMode: "UpdateWithoutInstall"}), "", "", 2, nil); err != nil {
		t.Fatal(err)
	}
	// 1.10 > 1.9: the new version's update runs (an upgrade).
	if got := f.calls()[1]; got != "1.10 update "+f.dir("1.10") {
		t.Errorf("update call = %q", got)
	}
}

func TestUpdateFailureThenRetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.installEnabled("1.0", manifestOpts{})
	f.setExit("2.0", Update, 5)
	zp := f.zip("2.0", manifestOpts{updateMode: "UpdateWithoutInstall", cont: "true"})
	nh, res, err := f.a.Update(context.Background(), old, zp, "", "", 2, nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeUpdateFailed || !strings.HasPrefix(ae.Message, "[ExtensionOperationError] Non-zero exit code: 5, "+f.dir("2.0")+"/handler.sh update\n") {
		t.Fatalf("err = %#v", err)
	}
	d1, d2 := f.dir("1.0"), f.dir("2.0")
	assertCalls(t, f.calls(), []string{"1.0 disable " + d1, "2.0 update " + d2})
	if len(res) != 2 {
		t.Fatalf("results = %d", len(res))
	}
	if f.a.State(nh) != FailedUpgrade || f.a.State(old) != Installed || !exists(d1) {
		t.Fatalf("new %s, old %s, old dir %v", f.a.State(nh), f.a.State(old), exists(d1))
	}
	// Next goal state: the update path repeats; old is no longer Enabled.
	f.clearExit("2.0", Update)
	f.resetCalls()
	if _, _, err := f.a.Update(context.Background(), old, zp, "", "", 3, nil); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f.calls(), []string{"2.0 update " + d2, "1.0 uninstall " + d1, "2.0 enable " + d2})
	assertEnv(t, "retried update", f.env(1), f.wantEnv("2.0", 3, map[string]string{EnvVersion: "2.0", EnvUpdatingFrom: "1.0", EnvDisableExitCode: NotRun}))
	if f.a.State(nh) != Enabled || exists(d1) {
		t.Errorf("state %s, old dir %v", f.a.State(nh), exists(d1))
	}
}

func TestDowngradeUpdateFailureMarksOld(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.installEnabled("2.0", manifestOpts{})
	f.setExit("2.0", Update, 9)
	nh, _, err := f.a.Update(context.Background(), old, f.zip("1.0", manifestOpts{}), "", "", 2, nil)
	if err == nil {
		t.Fatal("no error")
	}
	if f.a.State(old) != FailedUpgrade || f.a.State(nh) != NotInstalled {
		t.Fatalf("old %s, new %s", f.a.State(old), f.a.State(nh))
	}
	// No version counts as installed any more: the next goal state installs.
	f.resetCalls()
	if _, err := f.a.Apply(context.Background(), nh, 3, nil); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f.calls(), []string{"1.0 install " + f.dir("1.0"), "1.0 enable " + f.dir("1.0")})
}

func TestOldUninstallFailureWithoutContinue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.installEnabled("1.0", manifestOpts{})
	f.setExit("1.0", Uninstall, 3)
	zp := f.zip("2.0", manifestOpts{updateMode: "UpdateWithoutInstall"})
	nh, _, err := f.a.Update(context.Background(), old, zp, "", "", 2, nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeUpdateFailed ||
		!strings.HasPrefix(ae.Message, "[ExtensionUpdateError] [ExtensionOperationError] Non-zero exit code: 3, "+f.dir("1.0")+"/handler.sh uninstall\n") ||
		!strings.HasSuffix(ae.Message, "; ContinueOnUpdate: False") {
		t.Fatalf("err = %#v", err)
	}
	if !exists(f.dir("1.0")) || f.a.State(nh) != NotInstalled || f.a.State(old) != Installed {
		t.Fatalf("old dir %v, new %s, old %s", exists(f.dir("1.0")), f.a.State(nh), f.a.State(old))
	}
	if hs := f.a.HandlerStatus(nh); !strings.Contains(hs, `"code": 1008`) || !strings.Contains(hs, "ContinueOnUpdate: False") {
		t.Errorf("new HandlerStatus = %s", hs)
	}
	// The update path repeats on the next goal state.
	f.clearExit("1.0", Uninstall)
	f.resetCalls()
	if _, _, err := f.a.Update(context.Background(), old, zp, "", "", 3, nil); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f.calls(), []string{"2.0 update " + f.dir("2.0"), "1.0 uninstall " + f.dir("1.0"), "2.0 enable " + f.dir("2.0")})
}

func TestOldFailuresWithContinuePassExitCodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.installEnabled("1.0", manifestOpts{})
	f.setExit("1.0", Disable, 4)
	f.setExit("1.0", Uninstall, 7)
	nh, _, err := f.a.Update(context.Background(), old, f.zip("2.0", manifestOpts{cont: "true"}), "", "", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := f.dir("1.0"), f.dir("2.0")
	assertCalls(t, f.calls(), []string{"1.0 disable " + d1, "2.0 update " + d2, "1.0 uninstall " + d1, "2.0 install " + d2, "2.0 enable " + d2})
	if got := f.env(2)[EnvDisableExitCode]; got != "4" {
		t.Errorf("DISABLE exit code = %q", got)
	}
	if got := f.env(4)[EnvUninstallExitCode]; got != "7" {
		t.Errorf("install UNINSTALL exit code = %q", got)
	}
	if got := f.env(5)[EnvUninstallExitCode]; got != "7" {
		t.Errorf("enable UNINSTALL exit code = %q", got)
	}
	if exists(d1) || f.a.State(nh) != Enabled {
		t.Errorf("old dir %v, state %s", exists(d1), f.a.State(nh))
	}
}

func TestOldDisableFailureWithoutContinue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old := f.installEnabled("1.0", manifestOpts{})
	f.setExit("1.0", Disable, 4)
	_, _, err := f.a.Update(context.Background(), old, f.zip("2.0", manifestOpts{cont: `"false"`}), "", "", 2, nil)
	if err == nil || !strings.HasSuffix(err.Error(), "; ContinueOnUpdate: False") {
		t.Fatalf("err = %v", err)
	}
	assertCalls(t, f.calls(), []string{"1.0 disable " + f.dir("1.0")})
	if f.a.State(old) != Enabled {
		t.Errorf("old state = %s", f.a.State(old))
	}
}

func TestDisableAndUninstall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := f.installEnabled("1.0", manifestOpts{})
	ctx := context.Background()

	// Disable failure keeps Enabled; uninstall aborts and keeps the dir.
	f.setExit("1.0", Disable, 6)
	if _, err := f.a.Disable(ctx, h, 2); err == nil {
		t.Fatal("disable: no error")
	}
	if f.a.State(h) != Enabled {
		t.Fatalf("state = %s", f.a.State(h))
	}
	res, err := f.a.Uninstall(ctx, h, 2)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeDisableFailed || len(res) != 1 || !exists(f.dir("1.0")) {
		t.Fatalf("uninstall: %v, %d results, dir %v", err, len(res), exists(f.dir("1.0")))
	}
	f.clearExit("1.0", Disable)

	// Disable succeeds -> Installed; a second disable does nothing.
	f.resetCalls()
	r, err := f.a.Disable(ctx, h, 2)
	if err != nil || r.Verb != Disable || f.a.State(h) != Installed {
		t.Fatalf("disable: %v %+v %s", err, r, f.a.State(h))
	}
	if r, err := f.a.Disable(ctx, h, 2); err != nil || r.Verb != "" {
		t.Fatalf("second disable ran: %+v %v", r, err)
	}

	// Uninstall of an Installed handler: no disable; failure is ignored.
	f.setExit("1.0", Uninstall, 1)
	f.resetCalls()
	res, err = f.a.Uninstall(ctx, h, 3)
	if err != nil || len(res) != 1 || !res[0].Failed() {
		t.Fatalf("uninstall: %v %+v", err, res)
	}
	assertCalls(t, f.calls(), []string{"1.0 uninstall " + f.dir("1.0")})
	assertEnv(t, "uninstall", f.env(1), f.wantEnv("1.0", 3, nil))
	if exists(f.dir("1.0")) || f.a.State(h) != NotInstalled {
		t.Error("handler dir not removed")
	}
	if !exists(filepath.Join(f.a.LogDir, testName, "events")) {
		t.Error("log folder must be kept")
	}
}

func TestUninstallEnabledRunsDisableFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := f.installEnabled("1.0", manifestOpts{})
	// A zip left in LibDir is deleted with the handler.
	zipCopy := filepath.Join(f.a.LibDir, testName+"__1.0.zip")
	if err := os.WriteFile(zipCopy, []byte("zip"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Uninstall(context.Background(), h, 1); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f.calls(), []string{"1.0 disable " + f.dir("1.0"), "1.0 uninstall " + f.dir("1.0")})
	if exists(zipCopy) || exists(f.dir("1.0")) {
		t.Error("zip or directory left")
	}
}

func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// A zombie waiting for a non-reaping init is dead too.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Long enough for a loaded machine to reach the echoes before the kill.
	f.a.Timeouts = map[Verb]time.Duration{Enable: 1500 * time.Millisecond}
	slow := "#!/bin/sh\nsleep 1000 &\necho $! > '" + f.rec + "/bgpid'\necho started\necho oops >&2\nsleep 1000\n"
	zp := f.writeZip(testName+"-1.0.zip", []zipEntry{
		{name: "HandlerManifest.json", body: manifestJSON(manifestOpts{enableCmd: "slow.sh"})},
		{name: "slow.sh", body: slow},
	})
	h, err := f.a.Deploy(zp, "", "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := f.a.Run(context.Background(), h, Enable, 0, nil)
	if !r.TimedOut || r.ErrorCode != CodeScriptTimedOut || time.Since(start) > 5*time.Second {
		t.Fatalf("result = %+v", r)
	}
	want := "[ExtensionError] Timeout(1.5): " + f.dir("1.0") + "/slow.sh\n[stdout]\nstarted\n\n\n[stderr]\noops\n"
	if r.AgentMessage != want {
		t.Errorf("message = %q\nwant %q", r.AgentMessage, want)
	}
	pidText := strings.TrimSpace(readFile(t, filepath.Join(f.rec, "bgpid")))
	pid, err := strconv.Atoi(pidText)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL) // our own child; do not leak it
			t.Fatalf("background grandchild %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBackgroundChildrenAreNotWaitedFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bg := "#!/bin/sh\nsleep 30 &\necho $! > '" + f.rec + "/bgpid'\nexit 0\n"
	zp := f.writeZip(testName+"-1.0.zip", []zipEntry{
		{name: "HandlerManifest.json", body: manifestJSON(manifestOpts{enableCmd: "bg.sh"})},
		{name: "bg.sh", body: bg},
	})
	h, err := f.a.Deploy(zp, "", "")
	if err != nil {
		t.Fatal(err)
	}
	r := f.a.Run(context.Background(), h, Enable, 0, nil)
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, filepath.Join(f.rec, "bgpid"))))
	if pid > 0 {
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	}
	if r.Failed() || r.Duration > 5*time.Second {
		t.Fatalf("result = %+v", r)
	}
	if processGone(pid) {
		t.Error("background child should survive a normal exit")
	}
}

func TestRunOutputCaps(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h, err := f.a.Deploy(f.zip("1.0", manifestOpts{}), "", "")
	if err != nil {
		t.Fatal(err)
	}
	f.setFile("out.1.0.disable", strings.Repeat("a", 5000)+"END")
	f.setFile("err.1.0.disable", strings.Repeat("b", 4000))
	f.setExit("1.0", Disable, 2)
	r := f.a.Run(context.Background(), h, Disable, 0, nil)
	wantOut := "[stdout]\n" + strings.Repeat("a", 1590) + "\n\n[stderr]\n" + strings.Repeat("b", 1590)
	if r.Output != wantOut {
		t.Errorf("output (%d chars) wrong; END must not appear (only the first 3200 bytes are read): %q...", len(r.Output), r.Output[:40])
	}
	if want := "[ExtensionOperationError] Non-zero exit code: 2, " + f.dir("1.0") + "/handler.sh disable\n" + wantOut; r.AgentMessage != want {
		t.Errorf("message wrong")
	}
	if r.ExitCode != 2 || r.ErrorCode != CodeDisableFailed {
		t.Errorf("exit %d code %d", r.ExitCode, r.ErrorCode)
	}
}

func TestFormatOutput(t *testing.T) {
	t.Parallel()
	rep := strings.Repeat
	for _, tc := range []struct {
		name         string
		out, err     string
		wantO, wantE string
	}{
		{"short", "hello\n", "", "hello\n", ""},
		{"sum just below cap", rep("o", 3000), rep("e", 199), rep("o", 3000), rep("e", 199)},
		{"short stdout donates", rep("o", 100), rep("e", 3200), rep("o", 100), rep("e", 3080)},
		{"short stderr donates", rep("o", 3200), rep("e", 300), rep("o", 2880), rep("e", 300)},
		{"both long", rep("o", 2000) + "O", rep("e", 2000) + "E", rep("o", 1589) + "O", rep("e", 1589) + "E"},
		{"invalid utf-8 escaped", "a\xffb", "\xe2\x82", `a\xffb`, `\xe2\x82`},
		{"only first 3200 bytes", rep("o", 3200) + "TAIL", "", rep("o", 3180), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FormatOutput([]byte(tc.out), []byte(tc.err))
			want := "[stdout]\n" + tc.wantO + "\n\n[stderr]\n" + tc.wantE
			if got != want {
				t.Errorf("got %d chars, want %d: %q", len(got), len(want), got[:min(len(got), 60)])
			}
		})
	}
}

func TestContextCancelKillsCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	zp := f.writeZip(testName+"-1.0.zip", []zipEntry{
		{name: "HandlerManifest.json", body: manifestJSON(manifestOpts{enableCmd: "slow.sh"})},
		{name: "slow.sh", body: "#!/bin/sh\nsleep 1000\n"},
	})
	h, err := f.a.Deploy(zp, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r := f.a.Run(ctx, h, Enable, 0, nil)
	if !errors.Is(r.Err, context.DeadlineExceeded) || r.TimedOut {
		t.Fatalf("result = %+v", r)
	}
}

func TestPyJSON(t *testing.T) {
	t.Parallel()
	got, err := pyDumpsGo(map[string]any{"z": []any{1.5, 1e-5, 1e16, 100.0, "\"q\"\n<>&", true, nil}, "a": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a": {}, "z": [1.5, 1e-05, 10000000000000000, 100, "\"q\"\n<>&", true, null]}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	for lit, want := range map[string]string{"1.0": "1.0", "1e2": "100.0", "0.0001": "0.0001", "-2.50": "-2.5", "12": "12", "-0": "0", "1.5e300": "1.5e+300"} {
		if got := pyNumber(lit); got != want {
			t.Errorf("pyNumber(%s) = %s, want %s", lit, got, want)
		}
	}
	if got := pyString("é😀\x7f"); got != `"\u00e9\ud83d\ude00\u007f"` {
		t.Errorf("pyString = %s", got)
	}
}

func TestNameVersionFromZip(t *testing.T) {
	t.Parallel()
	n, v, err := NameVersionFromZip("/x/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux-1.0.2385.1.zip")
	if err != nil || n != "Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux" || v != "1.0.2385.1" {
		t.Fatalf("%q %q %v", n, v, err)
	}
	if _, _, err := NameVersionFromZip("handler.zip"); err == nil {
		t.Error("no error for a name without version")
	}
}

func TestResolveInRootStaysInside(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/real", filepath.Join(root, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../..", filepath.Join(root, "real", "up")); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"/abs/x":           filepath.Join(root, "real", "x"),
		"/real/up/etc/y":   filepath.Join(root, "etc", "y"),
		"/../../etc/z":     filepath.Join(root, "etc", "z"),
		"/var/lib/waagent": filepath.Join(root, "var", "lib", "waagent"),
	} {
		got, err := resolveInRoot(root, in)
		if err != nil || got != want {
			t.Errorf("resolveInRoot(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
}
