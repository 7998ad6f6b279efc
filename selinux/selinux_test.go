package selinux

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/sysroot"
)

// fakeChecker answers the context check as the kernel would, and records
// the contexts asked.
type fakeChecker struct {
	err   error
	asked []string
}

func (f *fakeChecker) CheckContext(c string) error {
	f.asked = append(f.asked, c)
	return f.err
}

// The kernel's answers, as Kernel returns them.
var (
	defined     error = nil
	notDefined        = classifyWrite("system_u:system_r:sshd_session_t:s0", &fs.PathError{Op: "write", Path: "/sys/fs/selinux/context", Err: syscall.EINVAL})
	denied            = &fs.PathError{Op: "write", Path: "/sys/fs/selinux/context", Err: syscall.EACCES}
	noSelinuxfs       = &fs.PathError{Op: "open", Path: "/sys/fs/selinux/context", Err: syscall.ENOENT}
)

// recorded maps the files under testdata/<machine>/out to the commands
// whose standard output they hold; "<file>.exit" holds a non-zero exit
// code. Commands without a file are not installed (the fake is strict).
var recorded = map[string]string{
	"getenforce": "getenforce",
	"semodule-l": "semodule -l",
	"seinfo-t":   "seinfo -t sshd_session_t",
}

func machine(t *testing.T, name string) (sysroot.Root, *cmdrun.Fake) {
	t.Helper()
	dir := filepath.Join("testdata", name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	f := &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{}}
	for file, cmd := range recorded {
		out, err := os.ReadFile(filepath.Join(dir, "out", file))
		if err != nil {
			continue
		}
		res := cmdrun.Result{Stdout: out}
		if code, err := os.ReadFile(filepath.Join(dir, "out", file+".exit")); err == nil {
			res = cmdrun.Result{Stderr: out, ExitCode: int(code[0] - '0')}
		}
		f.Responses[cmd] = cmdrun.FakeResponse{Result: res}
	}
	return sysroot.Root(filepath.Join(dir, "root")), f
}

func TestDetectRecordedMachines(t *testing.T) {
	cases := []struct {
		name    string
		machine string
		kernel  error
		edit    func(f *cmdrun.Fake)
		mode    Mode
		session Answer
		module  Answer
		covered Answer
		by      string
		cmds    string // commands run, joined by "|"
	}{
		{name: "RHEL 9 enforcing: no sshd_session_t", machine: "rhel9-enforcing", kernel: notDefined,
			mode: Enforcing, session: No},
		{name: "RHEL 9, context check denied: seinfo says no", machine: "rhel9-enforcing", kernel: denied,
			mode: Enforcing, session: No, cmds: "seinfo -t sshd_session_t"},
		{name: "RHEL 10 enforcing, shipped module", machine: "rhel10-enforcing", kernel: defined,
			mode: Enforcing, session: Yes, module: Yes, covered: No, cmds: "semodule -l"},
		{name: "RHEL 10, context check denied: seinfo says yes", machine: "rhel10-enforcing", kernel: denied,
			mode: Enforcing, session: Yes, module: Yes, covered: No, cmds: "seinfo -t sshd_session_t|semodule -l"},
		{name: "RHEL 10, fixed aad_permissions", machine: "rhel10-enforcing-fixed-module", kernel: defined,
			mode: Enforcing, session: Yes, module: Yes, covered: Yes, by: "aad_permissions", cmds: "semodule -l"},
		{name: "RHEL 10, administrator's module from audit2allow", machine: "rhel10-enforcing-local-module", kernel: defined,
			mode: Enforcing, session: Yes, module: Yes, covered: Yes, by: "my-sshd", cmds: "semodule -l"},
		{name: "RHEL 10, semanage permissive stop-gap", machine: "rhel10-enforcing-stopgap", kernel: defined,
			mode: Enforcing, session: Yes, module: Yes, covered: Yes, by: "permissive_sshd_session_t makes sshd_session_t permissive", cmds: "semodule -l"},
		{name: "RHEL 10 before selinux-policy 42.1.18-4.el10_2.2: permissive in the ssh module", machine: "rhel10-enforcing-old-policy", kernel: defined,
			mode: Enforcing, session: Yes, module: Yes, covered: Yes, by: "ssh makes sshd_session_t permissive", cmds: "semodule -l"},
		{name: "RHEL 10 permissive", machine: "rhel10-permissive", kernel: defined,
			mode: Permissive, session: Yes, module: Yes, covered: No, cmds: "semodule -l"},
		{name: "SELinux disabled", machine: "rhel10-disabled", kernel: noSelinuxfs,
			mode: Disabled, cmds: "getenforce"},
		{name: "no SELinux tools, no selinuxfs", machine: "debian-no-tools", kernel: noSelinuxfs,
			mode: ModeUnknown, cmds: "getenforce"},
		{name: "context check denied, no setools", machine: "rhel10-enforcing", kernel: denied,
			edit: func(f *cmdrun.Fake) { delete(f.Responses, "seinfo -t sshd_session_t") },
			mode: Enforcing, session: Unknown, cmds: "seinfo -t sshd_session_t"},
		{name: "seinfo cannot load the policy", machine: "rhel10-enforcing", kernel: denied,
			edit: func(f *cmdrun.Fake) {
				f.Responses["seinfo -t sshd_session_t"] = cmdrun.FakeResponse{Result: cmdrun.Result{
					Stderr: []byte("Unable to locate an SELinux policy to load.\n"), ExitCode: 1}}
			},
			mode: Enforcing, session: Unknown, cmds: "seinfo -t sshd_session_t"},
		{name: "no semodule", machine: "rhel10-enforcing", kernel: defined,
			edit: func(f *cmdrun.Fake) { delete(f.Responses, "semodule -l") },
			mode: Enforcing, session: Yes, module: Unknown, covered: Unknown, cmds: "semodule -l"},
		{name: "semodule cannot read the store", machine: "rhel10-enforcing", kernel: defined,
			edit: func(f *cmdrun.Fake) {
				f.Responses["semodule -l"] = cmdrun.FakeResponse{Result: cmdrun.Result{ExitCode: 1,
					Stderr: []byte("libsemanage.semanage_direct_list_all: Error while scanning directory /var/lib/selinux/targeted/active/modules. (Permission denied).\nsemodule:  Failed!\n")}}
			},
			mode: Enforcing, session: Yes, module: Unknown, covered: Unknown, cmds: "semodule -l"},
		{name: "module store unreadable", machine: "rhel10-enforcing-no-store", kernel: defined,
			mode: Enforcing, session: Yes, module: Yes, covered: Unknown, cmds: "semodule -l"},
		{name: "aad_permissions not loaded (before the install)", machine: "rhel10-enforcing", kernel: defined,
			edit: func(f *cmdrun.Fake) {
				f.Responses["semodule -l"] = cmdrun.FakeResponse{Result: cmdrun.Result{Stdout: []byte("abrt\nbase\nssh\n")}}
			},
			mode: Enforcing, session: Yes, module: No, covered: Unknown, cmds: "semodule -l"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, f := machine(t, c.machine)
			if c.edit != nil {
				c.edit(f)
			}
			checker := &fakeChecker{err: c.kernel}
			rep := Probe{Runner: f, Root: root, Contexts: checker}.Detect(context.Background())
			if rep.Mode != c.mode || rep.SessionDomain != c.session || rep.Module != c.module || rep.Covered != c.covered {
				t.Errorf("got %s", rep)
			}
			if !strings.Contains(rep.CoveredBy, c.by) || (c.by == "") != (rep.CoveredBy == "") {
				t.Errorf("covered by %q, want %q", rep.CoveredBy, c.by)
			}
			if got := strings.Join(f.Lines(), "|"); got != c.cmds {
				t.Errorf("commands %q, want %q", got, c.cmds)
			}
			if c.mode == Enforcing || c.mode == Permissive {
				if len(checker.asked) != 1 || checker.asked[0] != "system_u:system_r:sshd_session_t:s0" {
					t.Errorf("asked %q", checker.asked)
				}
			} else if len(checker.asked) != 0 {
				t.Errorf("asked the kernel with SELinux %s", c.mode)
			}
			for _, call := range f.Calls {
				if call.Timeout <= 0 {
					t.Errorf("%s has no timeout", call.Name)
				}
			}
			t.Log(rep)
		})
	}
}

// A root without selinuxfs (a chroot, or /sys not mounted) falls back to
// getenforce; a non-MLS policy gets a context without a level.
func TestDetectModeFallbackAndNonMLS(t *testing.T) {
	root := sysroot.Root(t.TempDir())
	f := &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{
		"getenforce":  {Result: cmdrun.Result{Stdout: []byte("Enforcing\n")}},
		"semodule -l": {Result: cmdrun.Result{Stdout: []byte("base\n")}},
	}}
	checker := &fakeChecker{}
	rep := Probe{Runner: f, Root: root, Contexts: checker}.Detect(context.Background())
	if rep.Mode != Enforcing || rep.SessionDomain != Yes || rep.Module != No {
		t.Errorf("got %s", rep)
	}
	if err := root.WriteFileAtomic("/sys/fs/selinux/mls", []byte("0"), 0o444); err != nil {
		t.Fatal(err)
	}
	// Junk in the enforce file: getenforce decides.
	if err := root.WriteFileAtomic("/sys/fs/selinux/enforce", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	checker.asked = nil
	rep = Probe{Runner: f, Root: root, Contexts: checker}.Detect(context.Background())
	if rep.Mode != Enforcing || len(checker.asked) != 1 || checker.asked[0] != "system_u:system_r:sshd_session_t" {
		t.Errorf("got %s, asked %q", rep, checker.asked)
	}
	if !strings.Contains(rep.String(), `/sys/fs/selinux/enforce holds "x"`) {
		t.Errorf("notes: %s", rep)
	}
}

func TestKernelCheckContext(t *testing.T) {
	root := sysroot.Root(t.TempDir())
	k := Kernel{Root: root}
	err := k.CheckContext("system_u:system_r:sshd_session_t:s0")
	if err == nil || errors.Is(err, ErrInvalidContext) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no selinuxfs: %v", err)
	}
	// A plain file takes the write: the kernel's "valid" answer.
	if err := root.WriteFileAtomic("/sys/fs/selinux/context", nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := k.CheckContext("system_u:system_r:sshd_session_t:s0"); err != nil {
		t.Fatal(err)
	}
	if data, _ := root.ReadFile("/sys/fs/selinux/context"); string(data) != "system_u:system_r:sshd_session_t:s0\x00" {
		t.Errorf("wrote %q", data)
	}
	if err := classifyWrite("c", &fs.PathError{Op: "write", Err: syscall.EINVAL}); !errors.Is(err, ErrInvalidContext) {
		t.Errorf("EINVAL: %v", err)
	}
	if err := classifyWrite("c", &fs.PathError{Op: "write", Err: syscall.EACCES}); errors.Is(err, ErrInvalidContext) || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("EACCES: %v", err)
	}
}

func TestParseGetenforce(t *testing.T) {
	for in, want := range map[string]Mode{
		"Enforcing\n": Enforcing, "Permissive\n": Permissive, "Disabled\n": Disabled,
		"  enforcing ": Enforcing, "": ModeUnknown, "getenforce: command not found": ModeUnknown,
	} {
		if got := ParseGetenforce([]byte(in)); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

func TestParseSeinfoType(t *testing.T) {
	for in, want := range map[string]Answer{
		"\nTypes: 1\n   sshd_session_t\n":                           Yes,
		"\nTypes: 1\n   type sshd_session_t, domain, ssh_server;\n": Yes,
		"\nTypes: 1\n   type sshd_session_t;\n":                     Yes,
		"\nTypes: 0\n":                                              No,
		"\nTypes: 1\n   sshd_session_tx\n":                          Unknown,
		"\nTypes: 1\n   type sshd_session_tx;\n":                    Unknown,
		"Unable to locate an SELinux policy to load.\n":             Unknown,
		"\nPermissive Types: 0\n":                                   Unknown,
		"":                                                          Unknown,
	} {
		if got := ParseSeinfoType([]byte(in), SessionDomain); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

func TestParseModuleList(t *testing.T) {
	mods := ParseModuleList([]byte("aad_permissions\t1.0\nabrt\t1.4.1\n\n  ssh  \npermissive_sshd_session_t\n"))
	for _, name := range []string{"aad_permissions", "abrt", "ssh", "permissive_sshd_session_t"} {
		if !mods[name] {
			t.Errorf("%s missing from %v", name, mods)
		}
	}
	if len(mods) != 4 || mods["1.0"] {
		t.Errorf("%v", mods)
	}
	out, err := os.ReadFile("testdata/rhel10-enforcing/out/semodule-l")
	if err != nil {
		t.Fatal(err)
	}
	if mods := ParseModuleList(out); !mods[ModuleName] || !mods["ssh"] || mods[PermissiveModuleName] {
		t.Errorf("recorded list: %d modules", len(mods))
	}
}

func TestPolicyType(t *testing.T) {
	root := sysroot.Root(t.TempDir())
	if got := policyType(root); got != "targeted" {
		t.Errorf("no config: %s", got)
	}
	for cfg, want := range map[string]string{
		"SELINUX=enforcing\nSELINUXTYPE=mls\n":     "mls",
		"SELINUXTYPE = \"minimum\"\n":              "minimum",
		"#SELINUXTYPE=mls\nSELINUXTYPE=targeted\n": "targeted",
		"SELINUXTYPE=../../etc\n":                  "targeted",
		"SELINUXTYPE=\n":                           "targeted",
	} {
		if err := root.WriteFileAtomic(selinuxConfig, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := policyType(root); got != want {
			t.Errorf("%q: %s, want %s", cfg, got, want)
		}
	}
}

// The highest priority wins and a disabled module does not count: an ssh
// module overridden at 400 without its permissive statements, and a
// disabled permissive module, leave sshd_session_t enforced.
func TestStorePrioritiesAndDisabled(t *testing.T) {
	root := sysroot.Root(t.TempDir())
	dir := storeRoot + "/targeted/active/modules"
	for p, data := range map[string]string{
		dir + "/100/ssh/cil":                        "(type sshd_session_t)\n(typepermissive sshd_session_t)\n",
		dir + "/400/ssh/cil":                        "(type sshd_session_t)\n",
		dir + "/400/aad_permissions/cil":            "(type aadpasswd_file_t)\n(allow sshd_t aadpasswd_file_t (file (read)))\n",
		dir + "/400/permissive_sshd_session_t/cil":  "(typepermissive sshd_session_t)\n",
		dir + "/disabled/permissive_sshd_session_t": "",
		dir + "/400/notes/README":                   "not a module\n",
		dir + "/abc/odd/cil":                        "(typepermissive sshd_session_t)\n",
	} {
		if err := root.WriteFileAtomic(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var rep Report
	if got, by := (Probe{Root: root}).storeCoverage(&rep); got != No || by != "" {
		t.Errorf("got %s %q; %s", got, by, rep)
	}
	// Enabled again (the marker removed): it counts.
	if err := root.RemoveIfExists(dir + "/disabled/permissive_sshd_session_t"); err != nil {
		t.Fatal(err)
	}
	if got, by := (Probe{Root: root}).storeCoverage(&rep); got != Yes || by != "permissive_sshd_session_t makes sshd_session_t permissive" {
		t.Errorf("got %s %q", got, by)
	}
}

// A store module that is neither bzip2 nor text, or a damaged bzip2 stream,
// is skipped; aad_permissions itself unreadable makes the answer Unknown.
func TestStoreDamagedModules(t *testing.T) {
	root := sysroot.Root(t.TempDir())
	dir := storeRoot + "/targeted/active/modules"
	write := func(p, data string) {
		t.Helper()
		if err := root.WriteFileAtomic(dir+p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("/400/aad_permissions/cil", "BZh9 damaged")
	var rep Report
	if got, _ := (Probe{Root: root}).storeCoverage(&rep); got != Unknown || !strings.Contains(rep.String(), "decompressing") {
		t.Errorf("got %s; %s", got, rep)
	}
	write("/400/aad_permissions/cil", "(type aadpasswd_file_t)\n(allow sshd_t aadpasswd_file_t (file (read)))\n")
	write("/400/broken/cil", "BZh9 damaged")
	write("/400/zz-fix/cil", "(allow sshd_session_t aadpasswd_file_t (file (read)))\n")
	rep = Report{}
	if got, by := (Probe{Root: root}).storeCoverage(&rep); got != Yes || by != "zz-fix" || !strings.Contains(rep.String(), "broken") {
		t.Errorf("got %s %q; %s", got, by, rep)
	}
}
