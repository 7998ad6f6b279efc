package faults

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// TestHandlerEnvironment: what the agent hands over is broken, or the
// file systems the handler writes to are full or read-only. Files are
// written into the deployed handler directory and the install command is
// run the agent's way.
func TestHandlerEnvironment(t *testing.T) {
	// badInput writes name (relative to the handler directory) with data,
	// runs install and expects code with want in stderr and the status.
	badInput := func(name string, data []byte, code int, want ...string) func(t *testing.T, f *fx) {
		return func(t *testing.T, f *fx) {
			if err := f.Agent.WriteSettings(f.h, 0, f.pinned()); err != nil {
				t.Fatal(err)
			}
			f.Root.WriteFile(path.Join(f.h.Dir, name), string(data), 0o600)
			before := f.Root.Snapshot(t)
			r := f.run(agentsim.Install, 0)
			f.wantRunRefused(r, code, before, want...)
			f.recover(1)
		}
	}
	huge := append([]byte(`{"runtimeSettings": [{"handlerSettings": {"publicSettings": {"x": "`),
		bytes.Repeat([]byte("A"), 1<<20+100)...)
	huge = append(huge, `"}}}]}`...)
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(i*131 + 7)
	}
	protected := func(public []byte) string {
		return `{"runtimeSettings": [{"handlerSettings": {"publicSettings": ` + string(public) + `, "protectedSettings": "` +
			base64.StdEncoding.EncodeToString([]byte("0\x82\x01\x00not really CMS but never decrypted")) +
			`", "protectedSettingsCertThumbprint": "89ABCDEF0123456789ABCDEF0123456789ABCDEF"}}]}`
	}

	runCases(t, []faultCase{
		{
			Name:   "handler-environment-malformed",
			Fault:  "HandlerEnvironment.json is truncated JSON",
			Expect: "exit 54 naming the file, message on stderr and in an error status, machine unchanged",
			Run:    badInput("HandlerEnvironment.json", []byte(`[{"name": "x", "handlerEnvironment": {"logFolder": "/var/log/az`), 54, "HandlerEnvironment.json"),
		},
		{
			Name:   "settings-malformed",
			Fault:  "config/0.settings is truncated JSON",
			Expect: "exit 53 naming the settings file, machine unchanged",
			Run:    badInput("config/0.settings", []byte(`{"runtimeSettings": [{"handlerSettings": {"publicSettings": {"signingKeyFingerprints": [`), 53, "0.settings"),
		},
		{
			Name:   "settings-huge",
			Fault:  "config/0.settings is larger than 1 MiB",
			Expect: "exit 53 saying the file is too large, machine unchanged",
			Run:    badInput("config/0.settings", huge, 53, "1 MiB"),
		},
		{
			Name:   "settings-binary",
			Fault:  "config/0.settings is 4 KiB of binary garbage",
			Expect: "exit 53 naming the settings file, machine unchanged",
			Run:    badInput("config/0.settings", garbage, 53, "0.settings"),
		},
		{
			Name:   "protected-settings-certificate-missing",
			Fault:  "protected settings encrypted for a certificate the agent did not store",
			Expect: "success: no setting of ours is protected, so they are never decrypted and the missing certificate does not matter",
			Run: func(t *testing.T, f *fx) {
				public, err := json.Marshal(f.pinned())
				if err != nil {
					t.Fatal(err)
				}
				f.Root.WriteFile(path.Join(f.h.Dir, "config/0.settings"), protected(public), 0o600)
				if r := f.run(agentsim.Install, 0); r.ExitCode != 0 {
					t.Errorf("install exit code %d, want 0:\n%s", r.ExitCode, r.Output)
				}
				f.wantHealthy(0)
			},
		},
		{
			Name:   "config-folder-missing",
			Fault:  "the handler's config folder does not exist",
			Expect: "the settings cannot be known (defaults would silently ignore a mirror setting): exit 54 naming the folder, machine unchanged",
			Run: func(t *testing.T, f *fx) {
				f.Root.Remove(path.Join(f.h.Dir, "config"))
				before := f.Root.Snapshot(t)
				r := f.run(agentsim.Install, 0)
				f.wantRunRefused(r, 54, before, "configuration folder")
				if err := os.MkdirAll(f.Root.Path(path.Join(f.h.Dir, "config")), 0o700); err != nil {
					t.Fatal(err)
				}
				f.recover(1)
			},
		},
		{
			Name:   "status-folder-read-only",
			Fault:  "the status folder is a read-only bind mount",
			Expect: "exit 55 (not 0: the agent would show 'transitioning' forever), stderr says the status cannot be written",
			Run:    readOnlyStatus,
		},
		{
			Name:   "disk-full-var-cache",
			Fault:  "/var/cache is a full 64 KiB file system",
			Expect: "the pre-flight check refuses: exit 29 naming /var/cache, nothing changed",
			Run: func(t *testing.T, f *fx) {
				undo := f.fullFS("/var/cache")
				before := f.Root.Snapshot(t)
				res, exit := f.apply(0, f.pinned(), agentsim.Install)
				f.wantRefused(res, exit, 0, 29, before, "/var/cache")
				undo()
				f.recover(1)
			},
		},
		{
			Name:   "disk-full-sources-list-d",
			Fault:  "/etc/apt/sources.list.d is a full 64 KiB file system",
			Expect: "writing the repository file fails: exit 55 naming it, the key written before is removed again",
			Run: func(t *testing.T, f *fx) {
				undo := f.fullFS("/etc/apt/sources.list.d")
				before := f.Root.Snapshot(t)
				res, exit := f.apply(0, f.pinned(), agentsim.Install)
				f.wantRefused(res, exit, 0, 55, before, harness.AptList)
				undo()
				f.WantUnchanged(before)
				f.recover(1)
			},
		},
		{
			Name:   "disk-full-state-folder",
			Fault:  "/var/lib/aadsshlogin-handler (the handler's state) is a full 64 KiB file system",
			Expect: "saving the state fails after the packages went in: exit 55 (full file system), packages and files rolled back",
			Run: func(t *testing.T, f *fx) {
				undo := f.fullFS(harness.StateDir)
				before := f.Root.Snapshot(t)
				res, exit := f.apply(0, f.pinned(), agentsim.Install)
				f.wantRefused(res, exit, 0, 55, before, harness.StateDir)
				undo()
				f.WantUnchanged(before)
				f.recover(1)
			},
		},
	})
}

// wantRunRefused checks a refused command run with f.run: its exit code,
// the message on stderr, an error status with the code (and want), and the
// machine unchanged.
func (f *fx) wantRunRefused(r agentsim.CommandResult, code int, before sandbox.Snapshot, want ...string) {
	f.t.Helper()
	if r.ExitCode != code {
		f.t.Errorf("install exit code %d, want %d", r.ExitCode, code)
	}
	_, stderr, _ := strings.Cut(r.Output, "[stderr]")
	if !strings.Contains(stderr, "exit code ") {
		f.t.Errorf("stderr does not explain the failure:\n%s", r.Output)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			f.t.Errorf("stderr does not contain %q:\n%s", w, r.Output)
		}
	}
	st := f.Agent.ReadStatus(f.h, 0)
	if st.Status != "error" || st.Code != code {
		f.t.Errorf("status = %s/%d %q, want error/%d", st.Status, st.Code, st.Message, code)
	}
	for _, w := range want {
		if !strings.Contains(st.Message, w) {
			f.t.Errorf("status message does not contain %q: %q", w, st.Message)
		}
	}
	f.WantUnchanged(before)
	f.wantNoLeftovers()
}

func readOnlyStatus(t *testing.T, f *fx) {
	if err := f.Agent.WriteSettings(f.h, 0, f.pinned()); err != nil {
		t.Fatal(err)
	}
	dir := f.Root.Path(path.Join(f.h.Dir, "status"))
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			mounted = false
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	}
	t.Cleanup(unmount)
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	if err := os.WriteFile(dir+"/probe", nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("status folder is writable after the read-only remount (%v)", err)
	}
	r := f.run(agentsim.Install, 0)
	if r.TimedOut || r.ExitCode < 0 || r.Err != nil {
		t.Fatalf("the handler did not exit with a code: exit %d, timed out %v, %v", r.ExitCode, r.TimedOut, r.Err)
	}
	_, stderr, _ := strings.Cut(r.Output, "[stderr]")
	if !strings.Contains(stderr, "status") {
		t.Errorf("stderr does not say that the status cannot be written:\n%s", r.Output)
	}
	if r.ExitCode != 55 {
		t.Errorf("install with a read-only status folder: exit %d, want 55", r.ExitCode)
	}
	unmount()
	if st := f.Agent.ReadStatus(f.h, 0); !st.Missing {
		t.Errorf("a status file for seq 0 exists although the folder was read-only: %s", st.Status)
	}
	f.recover(1)
}

// fullFS mounts a 64 KiB tmpfs over dir (inside the root) and fills it; the
// returned function unmounts it. The directory is created first, so the
// snapshot taken afterwards already has it.
func (f *fx) fullFS(dir string) (undo func()) {
	f.t.Helper()
	host := f.Root.Path(dir)
	if err := os.MkdirAll(host, 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", host, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0755"); err != nil {
		f.t.Fatalf("mounting a tmpfs on %s: %v", dir, err)
	}
	mounted := true
	undo = func() {
		if mounted {
			mounted = false
			if err := unix.Unmount(host, 0); err != nil {
				f.t.Errorf("unmount %s: %v", dir, err)
			}
		}
	}
	f.t.Cleanup(undo)
	fill, err := os.Create(host + "/.filler")
	if err != nil {
		f.t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := fill.Write(chunk); err != nil {
			break
		}
	}
	_ = fill.Close()
	return undo
}
