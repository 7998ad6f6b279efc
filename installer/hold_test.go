package installer

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/installer/pkgmgr"
	"github.com/aadsshlogin/handler/installer/repo"
	"github.com/aadsshlogin/handler/sysroot"
	"github.com/aadsshlogin/handler/version"
)

func holdConfig(t *testing.T, kind pkgmgr.Kind, f *cmdrun.Fake) Config {
	t.Helper()
	root := sysroot.Root(t.TempDir())
	log := logrus.New()
	log.SetOutput(io.Discard)
	m, err := pkgmgr.New(kind, pkgmgr.Options{Runner: f, Root: root, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return Config{Root: root, Runner: f, Log: log, Packages: m,
		Platform: distro.Platform{OS: distro.OSRelease{ID: "x", VersionID: "1", PrettyName: "X 1"}}}
}

func fakeOut(s string, code int) cmdrun.FakeResponse {
	return cmdrun.FakeResponse{Result: cmdrun.Result{Stdout: []byte(s), ExitCode: code}}
}

func TestPlanHold(t *testing.T) {
	cases := []struct {
		kind             pkgmgr.Kind
		setting, pinned  string
		version, source  string
		held             bool
		code             failure.Code
		messageFragments []string
	}{
		{kind: pkgmgr.Apt},
		{kind: pkgmgr.Apt, setting: "1.0.030000001", version: "1.0.030000001", source: holdFromSetting, held: true},
		{kind: pkgmgr.Dnf, setting: "1.0.030000001", version: "1.0.030000001", source: holdFromSetting, held: true},
		{kind: pkgmgr.Zypper, pinned: "1.0.027980001", version: "1.0.027980001", source: holdFromPlatform, held: true},
		// The setting wins over the built-in SUSE pin.
		{kind: pkgmgr.Zypper, setting: "1.0.031620001", pinned: "1.0.027980001", version: "1.0.031620001", source: holdFromSetting, held: true},
		{kind: pkgmgr.Tdnf},
		{kind: pkgmgr.Tdnf, setting: "1.0.030000001", code: failure.BadSettings,
			messageFragments: []string{"publicSettings.aadsshloginVersion is not supported on X 1 (package manager tdnf)", "Remove the setting"}},
	}
	for _, c := range cases {
		cfg := holdConfig(t, c.kind, &cmdrun.Fake{})
		cfg.PackageVersion, cfg.Platform.PinnedVersion = c.setting, c.pinned
		h, err := cfg.planHold()
		if c.code != 0 {
			if failure.CodeOf(err) != c.code {
				t.Errorf("%+v: error %v, want code %d", c, err, c.code)
			}
			for _, f := range c.messageFragments {
				if !strings.Contains(failure.MessageOf(err), f) {
					t.Errorf("%+v: message %q lacks %q", c, failure.MessageOf(err), f)
				}
			}
			continue
		}
		if err != nil || h.version != c.version || h.source != c.source || h.held() != c.held {
			t.Errorf("%+v: got %+v %v", c, h, err)
		}
		if h.held() && !slices.Equal(h.names, []string{PackageName}) {
			t.Errorf("%+v: holds %q, want aadsshlogin only (aadsshlogin-selinux is not held)", c, h.names)
		}
	}
}

// TestHoldInRepository: dnf and yum get the exclude in our own section,
// with the reason as a comment; nothing held, another back end or the
// image's own repository leave the definition as it was.
func TestHoldInRepository(t *testing.T) {
	def := repo.Definition{Path: repo.YumRepoPath, Content: []byte(repo.Header + "\n[packages-microsoft-com-prod]\nsslverify=1\n"), RepoID: repo.RepoID}
	held := &holdRun{version: "1.0.030000001", source: holdFromSetting, method: pkgmgr.HoldRepoExclude, names: []string{PackageName}}

	got := string(held.inRepository(pkgmgr.Dnf, resolution{def: def}).def.Content)
	if !strings.HasPrefix(got, string(def.Content)) || !strings.HasSuffix(got, "\nexcludepkgs=aadsshlogin\n") ||
		!strings.Contains(got, "# aadsshlogin is held at 1.0.030000001 by the aadsshloginVersion setting") {
		t.Errorf("dnf repository:\n%s", got)
	}
	if got := string(held.inRepository(pkgmgr.Yum, resolution{def: def}).def.Content); !strings.HasSuffix(got, "\nexclude=aadsshlogin\n") {
		t.Errorf("yum repository:\n%s", got)
	}
	if string(def.Content) != repo.Header+"\n[packages-microsoft-com-prod]\nsslverify=1\n" {
		t.Error("the resolved definition was modified in place")
	}
	for _, rs := range []resolution{
		{def: repo.Definition{Reuse: true, ReuseRepoID: "azurelinux-official-ms-non-oss"}},
		{err: failure.New(failure.RepositoryUnreachable, nil, "x")},
	} {
		if got := held.inRepository(pkgmgr.Dnf, rs); got.def.Content != nil {
			t.Errorf("changed %+v", rs)
		}
	}
	notHeld := &holdRun{method: pkgmgr.HoldRepoExclude}
	if got := notHeld.inRepository(pkgmgr.Dnf, resolution{def: def}); string(got.def.Content) != string(def.Content) {
		t.Error("nothing held, yet the repository changed")
	}
}

// TestAptHold: the preferences file is written before the install, its
// hash recorded; a run without a hold removes our file (rollback puts it
// back) but never a file of the administrator's; uninstall removes ours.
func TestAptHold(t *testing.T) {
	ctx := context.Background()
	c := holdConfig(t, pkgmgr.Apt, &cmdrun.Fake{})
	c.PackageVersion = "1.0.030000001"
	h, _ := c.planHold()
	j := &journal{root: c.Root, log: c.Log, backups: StateDir + "/backup"}
	state := &State{Backups: map[string]string{}}
	res := &Result{}
	if err := c.prepareHold(ctx, j, state, nil, res, h); err != nil {
		t.Fatal(err)
	}
	data, err := c.Root.ReadFile(pkgmgr.AptPreferencesPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{"Explanation: Managed by the AADSSHLoginForLinux VM extension", "Package: aadsshlogin\nPin: version 1.0.030000001\nPin-Priority: 1001\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("preferences lack %q:\n%s", want, text)
		}
	}
	if state.Hold == nil || state.Hold.File != pkgmgr.AptPreferencesPath || state.Hold.FileSHA256 != sha256Hex(data) ||
		state.Hold.Version != "1.0.030000001" || state.Hold.Method != string(pkgmgr.HoldPreferences) || state.Hold.Source != holdFromSetting {
		t.Errorf("state %+v", state.Hold)
	}
	if err := c.finishHold(ctx, j, state, res, h); err != nil {
		t.Fatal(err)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "held there by "+pkgmgr.AptPreferencesPath) {
		t.Errorf("notes %q", res.Notes)
	}
	j.commit()

	// The setting removed: our file goes, and comes back on rollback.
	c.PackageVersion = ""
	h, _ = c.planHold()
	state = &State{Backups: map[string]string{}}
	if err := c.prepareHold(ctx, j, state, nil, &Result{}, h); err != nil {
		t.Fatal(err)
	}
	if c.Root.Exists(pkgmgr.AptPreferencesPath) || state.Hold != nil {
		t.Errorf("hold left: file %v, state %+v", c.Root.Exists(pkgmgr.AptPreferencesPath), state.Hold)
	}
	j.rollback(ctx)
	if got, _ := c.Root.ReadFile(pkgmgr.AptPreferencesPath); string(got) != text {
		t.Errorf("rollback did not restore the preferences: %q", got)
	}

	if err := c.releaseHold(ctx, nil); err != nil || c.Root.Exists(pkgmgr.AptPreferencesPath) {
		t.Errorf("uninstall left our preferences file (even without state, the header says it is ours): %v", err)
	}
	admin := []byte("Package: aadsshlogin\nPin: version 1.0.0\nPin-Priority: 1001\n")
	c.Root.WriteFileAtomic(pkgmgr.AptPreferencesPath, admin, 0o644)
	if err := c.prepareHold(ctx, j, &State{Backups: map[string]string{}}, nil, &Result{}, h); err != nil {
		t.Fatal(err)
	}
	if err := c.releaseHold(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Root.ReadFile(pkgmgr.AptPreferencesPath); string(got) != string(admin) {
		t.Errorf("the administrator's own file was changed: %q", got)
	}
}

// TestZypperHold: the SUSE pin locks aadsshlogin after the install and
// records the lock as ours; the next run lifts our lock for the install
// (rollback puts it back) and locks again; a lock the administrator set is
// neither lifted, nor added again, nor recorded, nor removed by uninstall.
func TestZypperHold(t *testing.T) {
	ctx := context.Background()
	locks := []string{}
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"zypper --non-interactive locks": {Func: func(cmdrun.Cmd) (cmdrun.Result, error) {
			if len(locks) == 0 {
				return cmdrun.Result{Stdout: []byte("There are no package locks defined.\n")}, nil
			}
			out := "# | Name | Type | Repository\n--+---+---+---\n"
			for i, l := range locks {
				out += string(rune('1'+i)) + " | " + l + " | package | (any)\n"
			}
			return cmdrun.Result{Stdout: []byte(out)}, nil
		}},
		"zypper --non-interactive addlock": {Func: func(c cmdrun.Cmd) (cmdrun.Result, error) {
			for _, n := range c.Args[4:] {
				if !slices.Contains(locks, n) {
					locks = append(locks, n)
				}
			}
			return cmdrun.Result{}, nil
		}},
		"rpm -q": fakeOut("aadsshlogin\t1.0.027980001-1\n", 0),
		"zypper --non-interactive removelock": {Func: func(c cmdrun.Cmd) (cmdrun.Result, error) {
			locks = slices.DeleteFunc(locks, func(n string) bool { return slices.Contains(c.Args[4:], n) })
			return cmdrun.Result{}, nil
		}},
	}}
	c := holdConfig(t, pkgmgr.Zypper, f)
	c.Platform.PinnedVersion = "1.0.027980001"
	run := func(prev *State) (*State, *journal, *Result, error) {
		h, err := c.planHold()
		if err != nil {
			t.Fatal(err)
		}
		j := &journal{root: c.Root, log: c.Log, backups: StateDir + "/backup"}
		state, res := &State{Backups: map[string]string{}}, &Result{}
		if err := c.prepareHold(ctx, j, state, prev, res, h); err != nil {
			return nil, j, res, err
		}
		return state, j, res, c.finishHold(ctx, j, state, res, h)
	}

	st, _, res, err := run(nil)
	if err != nil || !slices.Equal(locks, []string{"aadsshlogin"}) || st.Hold == nil || !slices.Equal(st.Hold.LocksAdded, []string{"aadsshlogin"}) {
		t.Fatalf("first run: %v, locks %q, state %+v", err, locks, st.Hold)
	}
	if !strings.Contains(res.Notes[0], "aadsshlogin pinned to 1.0.027980001 (SUSE before 15.6) and locked against updates (zypper locks)") {
		t.Errorf("note %q", res.Notes)
	}

	// A later run whose install fails: our lock was lifted for the
	// install and rollback puts it back.
	f.Calls = nil
	h, _ := c.planHold()
	j := &journal{root: c.Root, log: c.Log, backups: StateDir + "/backup"}
	if err := c.prepareHold(ctx, j, &State{}, st, &Result{}, h); err != nil {
		t.Fatal(err)
	}
	if len(locks) != 0 {
		t.Errorf("our lock was not lifted for the install: %q", locks)
	}
	j.rollback(ctx)
	if !slices.Equal(locks, []string{"aadsshlogin"}) {
		t.Errorf("rollback did not put our lock back: %q", locks)
	}

	// Uninstall removes the lock we added.
	if err := c.releaseHold(ctx, st, PackageName, SELinuxPackageName); err != nil || len(locks) != 0 {
		t.Errorf("uninstall: %v, locks %q", err, locks)
	}

	// The administrator's own lock.
	locks = []string{"aadsshlogin"}
	f.Calls = nil
	st, _, res, err = run(nil)
	if err != nil || st.Hold == nil || len(st.Hold.LocksAdded) != 0 || !slices.Equal(locks, []string{"aadsshlogin"}) {
		t.Fatalf("admin lock: %v, state %+v, locks %q", err, st.Hold, locks)
	}
	for _, l := range f.Lines() {
		if strings.Contains(l, "addlock") || strings.Contains(l, "removelock") {
			t.Errorf("the administrator's lock was touched: %s", l)
		}
	}
	if !strings.Contains(res.Notes[0], "held there by your own zypper package lock") {
		t.Errorf("note %q", res.Notes)
	}
	// Uninstall cannot remove a package the administrator's lock holds:
	// it says so, and the lock stays.
	err = c.releaseHold(ctx, st, PackageName, SELinuxPackageName)
	if failure.CodeOf(err) != failure.PackageManagerFailed || !strings.Contains(failure.MessageOf(err), "'sudo zypper removelock aadsshlogin'") ||
		!slices.Equal(locks, []string{"aadsshlogin"}) {
		t.Errorf("uninstall with the administrator's lock: %v, locks %q", err, locks)
	}
	h, _ = c.planHold()
	h.adminLocked = []string{PackageName}
	if err := h.adminLockFailure(PackageName, nil); !strings.Contains(failure.MessageOf(err), "zypper cannot install version 1.0.027980001") {
		t.Errorf("install with the administrator's lock: %v", err)
	}
	if err := h.adminLockFailure(SELinuxPackageName, nil); err != nil {
		t.Errorf("a package without a lock: %v", err)
	}

	// Nothing held and nothing of ours: zypper is not even asked.
	c.Platform.PinnedVersion = ""
	f.Calls = nil
	if _, _, _, err := run(nil); err != nil || len(f.Calls) != 0 {
		t.Errorf("no hold ran %q (%v)", f.Lines(), err)
	}
	// Nothing held any more, our earlier lock: lifted for good.
	locks = []string{"aadsshlogin"}
	st, j, _, err = run(&State{Hold: &Hold{LocksAdded: []string{"aadsshlogin"}}})
	if err != nil || len(locks) != 0 || st.Hold != nil {
		t.Errorf("released hold: %v, locks %q, state %+v", err, locks, st.Hold)
	}
}

// TestVersionNotOffered: a held version the repository does not offer is
// exit 51 naming the versions it does offer, newest first; a version it
// offers (the failure has another cause) or a package it does not offer
// at all leave the install's own error.
func TestVersionNotOffered(t *testing.T) {
	ctx := context.Background()
	madison := "aadsshlogin | 1.0.030000001 | https://x bookworm/main amd64 Packages\n" +
		"aadsshlogin | 1.0.031620001 | https://x bookworm/main amd64 Packages\n" +
		"aadsshlogin | 1.0.9 | https://x bookworm/main amd64 Packages\n"
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"apt-cache madison": fakeOut(madison, 0)}}
	c := holdConfig(t, pkgmgr.Apt, f)
	cause := failure.New(failure.PackageManagerFailed, nil, "apt failed")
	h := &holdRun{version: "1.0.029999999", source: holdFromSetting, method: pkgmgr.HoldPreferences, names: []string{PackageName}}
	err := c.versionNotOffered(ctx, h, "https://packages.microsoft.com/repos/x", cause)
	if failure.CodeOf(err) != failure.Unsupported {
		t.Fatalf("got %v", err)
	}
	want := "The repository https://packages.microsoft.com/repos/x does not offer aadsshlogin 1.0.029999999 (the aadsshloginVersion setting); it offers 1.0.031620001, 1.0.030000001, 1.0.9."
	if !strings.HasPrefix(failure.MessageOf(err), want) {
		t.Errorf("message %q\nwant prefix %q", failure.MessageOf(err), want)
	}
	h.version = "1.0.030000001"
	if err := c.versionNotOffered(ctx, h, "r", cause); err != nil {
		t.Errorf("an offered version: %v", err)
	}
	f.Responses["apt-cache madison"] = fakeOut("", 0)
	h.version = "1.0.029999999"
	if err := c.versionNotOffered(ctx, h, "r", cause); err != nil {
		t.Errorf("no package at all: %v", err)
	}
}

func TestCompareDotted(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"1.0.031620001", "1.0.030000001", 1}, {"1.0.9", "1.0.10", -1}, {"2.0", "2.0.0", 0}, {"1.0.0", "1.0.0", 0}} {
		if got := version.Compare(c.a, c.b); got != c.want {
			t.Errorf("compareDotted(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
