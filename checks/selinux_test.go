package checks

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/selinux"
	"github.com/aadsshlogin/handler/sysroot"
)

func TestSELinuxWarningDecision(t *testing.T) {
	failing := selinux.Report{Mode: selinux.Enforcing, SessionDomain: selinux.Yes, Module: selinux.Yes, Covered: selinux.No}
	cases := []struct {
		name string
		edit func(r *selinux.Report)
		want bool
	}{
		{"enforcing, sshd_session_t, module not covering it", func(*selinux.Report) {}, true},
		{"module store unreadable: assumed not covered", func(r *selinux.Report) { r.Covered = selinux.Unknown }, true},
		{"covered", func(r *selinux.Report) { r.Covered, r.CoveredBy = selinux.Yes, "aad_permissions" }, false},
		{"permissive", func(r *selinux.Report) { r.Mode = selinux.Permissive }, false},
		{"disabled", func(r *selinux.Report) { r.Mode = selinux.Disabled }, false},
		{"mode unknown", func(r *selinux.Report) { r.Mode = selinux.ModeUnknown }, false},
		{"no sshd_session_t (RHEL 9)", func(r *selinux.Report) { r.SessionDomain = selinux.No }, false},
		{"sshd_session_t unknown", func(r *selinux.Report) { r.SessionDomain = selinux.Unknown }, false},
		{"module not loaded", func(r *selinux.Report) { r.Module = selinux.No }, false},
		{"module list unknown", func(r *selinux.Report) { r.Module = selinux.Unknown }, false},
	}
	for _, c := range cases {
		rep := failing
		c.edit(&rep)
		ws := selinuxWarnings(rep)
		if got := len(ws) == 1; got != c.want || len(ws) > 1 {
			t.Errorf("%s: %d warnings", c.name, len(ws))
		}
	}
}

func TestSELinuxWarningMessage(t *testing.T) {
	rep := selinux.Report{Mode: selinux.Enforcing, SessionDomain: selinux.Yes, Module: selinux.Yes, Covered: selinux.No}
	ws := selinuxWarnings(rep)
	if len(ws) != 1 || ws[0].Name != "SELinux" {
		t.Fatalf("%+v", ws)
	}
	msg := ws[0].Message
	for _, frag := range []string{
		"Entra ID logins will fail at the first login on this VM",
		"SELinux is enforcing", "sshd_session_t", "aad_permissions module of aadsshlogin-selinux does not cover yet",
		"Azure/azure-linux-extensions#2208",
		"'semanage permissive -a sshd_session_t'",
		"ausearch -m AVC -ts today --raw | grep sshd_session_t | audit2allow -M aad_sshd_session && semodule -i aad_sshd_session.pp && semanage permissive -d sshd_session_t",
		"docs/selinux.md",
	} {
		if !strings.Contains(msg, frag) {
			t.Errorf("message lacks %q: %s", frag, msg)
		}
	}
	// The module name the recipe builds is the one the detector recognises
	// as the administrator's fix, so the warning goes away once it is loaded.
	if !strings.Contains(msg, "-M "+selinux.LocalModuleName+" ") || !strings.Contains(msg, "-a "+selinux.SessionDomain) {
		t.Error("recipe names differ from the detector's")
	}
	rep.Covered = selinux.Unknown
	unknown := selinuxWarnings(rep)[0].Message
	if !strings.Contains(unknown, "did not cover up to version 1.0.034210009 (the installed module could not be read to check)") {
		t.Error(unknown)
	}
	// The portal shows a few hundred characters comfortably; stay well
	// below the verification message's bound.
	for _, m := range []string{msg, unknown} {
		if n := len([]rune(m)); n > 800 {
			t.Errorf("message has %d characters", n)
		}
	}
}

// Through the production path: the recorded RHEL machines of the selinux
// package, where the context file is absent, so the kernel cannot be asked
// and seinfo answers.
func TestSELinuxWarningsRecorded(t *testing.T) {
	for name, want := range map[string]int{
		"rhel10-enforcing":              1,
		"rhel10-enforcing-no-store":     0, // no seinfo recorded: sshd_session_t unknown
		"rhel10-enforcing-fixed-module": 0,
		"rhel10-permissive":             0,
		"rhel9-enforcing":               0,
		"rhel10-disabled":               0,
		"debian-no-tools":               0,
	} {
		dir := filepath.Join("..", "selinux", "testdata", name)
		f := &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{}}
		for file, cmd := range map[string]string{"getenforce": "getenforce", "semodule-l": "semodule -l", "seinfo-t": "seinfo -t sshd_session_t"} {
			if out, err := os.ReadFile(filepath.Join(dir, "out", file)); err == nil {
				f.Responses[cmd] = cmdrun.FakeResponse{Result: cmdrun.Result{Stdout: out}}
			}
		}
		ws := SELinuxWarnings(context.Background(), f, sysroot.Root(filepath.Join(dir, "root")))
		if len(ws) != want {
			t.Errorf("%s: %d warnings %v", name, len(ws), warningNames(ws))
		}
	}
}
