package pkgmgr

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
)

func out(s string, code int) cmdrun.FakeResponse {
	return cmdrun.FakeResponse{Result: cmdrun.Result{Stdout: []byte(s), ExitCode: code}}
}

func newManager(t *testing.T, kind Kind, f *cmdrun.Fake, env ...string) Manager {
	t.Helper()
	m, err := New(kind, Options{Runner: f, Root: "/nonexistent", Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind() != kind {
		t.Fatalf("Kind() = %s", m.Kind())
	}
	return m
}

func wantLines(t *testing.T, f *cmdrun.Fake, want ...string) {
	t.Helper()
	got := f.Lines()
	if !slices.Equal(got, want) {
		t.Errorf("commands:\n got %q\nwant %q", got, want)
	}
}

func TestNewRejectsUnknownKind(t *testing.T) {
	if _, err := New("pacman", Options{Runner: &cmdrun.Fake{}}); err == nil {
		t.Error("want error")
	}
	if _, err := New(Apt, Options{}); err == nil {
		t.Error("want error without runner")
	}
}

func TestAptInstalled(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		resp    cmdrun.FakeResponse
		version string
		ok      bool
	}{
		{out("aadsshlogin\tinstall ok installed\t1.0.031620001\n", 0), "1.0.031620001", true},
		{out("aadsshlogin\thold ok installed\t1.0.031620001\n", 0), "1.0.031620001", true},
		{out("aadsshlogin\tdeinstall ok config-files\t1.0.031620001\n", 0), "", false},
		{out("aadsshlogin\tinstall ok half-configured\t1.0.031620001\n", 0), "", false},
		{cmdrun.FakeResponse{Result: cmdrun.Result{Stderr: []byte("dpkg-query: no packages found matching aadsshlogin\n"), ExitCode: 1}}, "", false},
	}
	for _, c := range cases {
		f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"dpkg-query": c.resp}}
		got, err := newManager(t, Apt, f).Installed(ctx, "aadsshlogin")
		v, ok := got["aadsshlogin"]
		if err != nil || v != c.version || ok != c.ok || len(got) > 1 {
			t.Errorf("%q: got %q %v", c.resp.Result.Stdout, got, err)
		}
		wantLines(t, f, `dpkg-query -W -f=${Package}\t${Status}\t${Version}\n aadsshlogin`)
		if !slices.Contains(f.Calls[0].Env, "LC_ALL=C") {
			t.Errorf("env %q lacks LC_ALL=C", f.Calls[0].Env)
		}
	}
}

// TestAptInstalledMany: one dpkg-query answers for every name; a name dpkg
// does not know, a removed one, another architecture's instance and lines
// for names not asked about are told apart, and a real failure (exit 2) is
// an error, not "not installed".
func TestAptInstalledMany(t *testing.T) {
	ctx := context.Background()
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"dpkg-query": {Result: cmdrun.Result{
		Stdout: []byte("aadsshlogin\tinstall ok installed\t1.0.031620001\n" +
			"selinux-policy-default\tdeinstall ok config-files\t2:2.20221101-2\n" +
			"libpam-foo\tinstall ok installed\t1\n" +
			"libpam-foo\tinstall ok not-installed\t\n" +
			"other\tinstall ok installed\t9\n"),
		Stderr:   []byte("dpkg-query: no packages found matching aadlogin\n"),
		ExitCode: 1,
	}}}}
	got, err := newManager(t, Apt, f).Installed(ctx, "aadsshlogin", "aadlogin", "selinux-policy-default", "libpam-foo")
	want := map[string]string{"aadsshlogin": "1.0.031620001", "libpam-foo": "1"}
	if err != nil || !maps.Equal(got, want) {
		t.Errorf("got %q %v, want %q", got, err, want)
	}
	if len(f.Calls) != 1 {
		t.Errorf("ran %q, want one dpkg-query", f.Lines())
	}

	f = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"dpkg-query": {Result: cmdrun.Result{
		Stderr: []byte("dpkg-query: error: parsing file '/var/lib/dpkg/status' near line 12\n"), ExitCode: 2,
	}}}}
	if got, err := newManager(t, Apt, f).Installed(ctx, "aadsshlogin"); err == nil {
		t.Errorf("a broken status database gave %q and no error", got)
	}
}

func TestAptRefresh(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const src = "/etc/apt/sources.list.d/microsoft-prod.list"
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"apt-get update -q -o Dir": out(fixture(t, "apt-update-ok.txt"), 0),
	}}
	m := newManager(t, Apt, f, "APT_CONFIG=/tmp/x")
	if err := m.Refresh(ctx, "microsoft-prod", src); err != nil {
		t.Fatal(err)
	}
	// Our source alone, and nothing else: no full update first.
	got := f.Lines()
	if len(got) != 1 || !strings.HasPrefix(got[0], "apt-get update -q -o Dir::Etc::sourcelist="+src+" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 -o DPkg::Lock::Timeout=5") {
		t.Errorf("commands %q", got)
	}
	env := f.Calls[0].Env
	if !slices.Contains(env, "DEBIAN_FRONTEND=noninteractive") || env[len(env)-1] != "APT_CONFIG=/tmp/x" {
		t.Errorf("env %q", env)
	}

	// Our own repository failing is reported.
	f.Responses["apt-get update -q -o Dir"] = out(fixture(t, "apt-update-nopubkey.txt"), 100)
	wantFailure(t, m.Refresh(ctx, "microsoft-prod", src), failure.UntrustedKey, "NO_PUBKEY", src)
	f.Responses["apt-get update -q -o Dir"] = out(fixture(t, "apt-update-resolve.txt"), 0)
	wantFailure(t, m.Refresh(ctx, "microsoft-prod", src), failure.RepositoryUnreachable, "Temporary failure resolving")
}

func TestAptLockTimeoutFollowsDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	if got := lockTimeout(ctx); got != "70" {
		t.Errorf("lockTimeout = %s, want 70", got)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if got := lockTimeout(short); got != "1" {
		t.Errorf("lockTimeout = %s, want 1", got)
	}
	if got := lockTimeout(context.Background()); got != "300" {
		t.Errorf("lockTimeout = %s, want 300", got)
	}
}

func TestAptAvailable(t *testing.T) {
	for name, want := range map[string]bool{"apt-policy-available.txt": true, "apt-policy-none.txt": false} {
		f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"apt-cache policy": out(fixture(t, name), 0)}}
		got, err := newManager(t, Apt, f).Available(context.Background(), "aadsshlogin")
		if err != nil || got != want {
			t.Errorf("%s: %v %v", name, got, err)
		}
		wantLines(t, f, "apt-cache policy aadsshlogin")
	}
	f := &cmdrun.Fake{}
	if got, _ := newManager(t, Apt, f).Available(context.Background(), "nosuch"); got {
		t.Error("empty output should be unavailable")
	}
}

func TestAptInstall(t *testing.T) {
	ctx := context.Background()
	f := &cmdrun.Fake{}
	m := newManager(t, Apt, f)
	if err := m.Install(ctx, Package{Name: "aadsshlogin-selinux"}, Package{Name: "aadsshlogin"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Install(ctx, Package{Name: "aadsshlogin", Version: "1.0.031620001"}); err != nil {
		t.Fatal(err)
	}
	wantLines(t, f,
		"apt-get install -y -q -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef -o DPkg::Lock::Timeout=300 aadsshlogin-selinux aadsshlogin",
		"apt-get install -y -q -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef -o DPkg::Lock::Timeout=300 -o APT::Get::allow-downgrades=true aadsshlogin=1.0.031620001")
	if !slices.Contains(f.Calls[0].Env, "NEEDRESTART_MODE=a") {
		t.Errorf("env %q", f.Calls[0].Env)
	}
	f.Responses = map[string]cmdrun.FakeResponse{"apt-get install": out(fixture(t, "apt-install-notfound.txt"), 100)}
	wantFailure(t, m.Install(ctx, Package{Name: "aadsshlogin"}), failure.PackageManagerFailed,
		"Failed to install aadsshlogin with apt-get (exit code 100): Unable to locate package aadsshlogin. To see the full error, run on the VM: sudo apt-get install aadsshlogin")
	f.Responses = map[string]cmdrun.FakeResponse{"apt-get install": out(fixture(t, "apt-install-lock.txt"), 100)}
	wantFailure(t, m.Install(ctx, Package{Name: "aadsshlogin"}), failure.PackageManagerLocked, "unattended-upgr")
}

func TestRunnerErrors(t *testing.T) {
	f := &cmdrun.Fake{Strict: true}
	wantFailure(t, newManager(t, Apt, f).Install(context.Background(), Package{Name: "x"}), failure.PackageManagerFailed, "'apt-get' is not available")
	f = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"dnf": {Err: context.DeadlineExceeded, Result: cmdrun.Result{ExitCode: -1}}}}
	wantFailure(t, newManager(t, Dnf, f).Refresh(context.Background(), "r", ""), failure.TimeBudgetExceeded, "'dnf -y makecache --refresh' did not finish")
}

func TestAptRemove(t *testing.T) {
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		`dpkg-query -W -f=${Package}\t${Status}\t${Version}\n aadsshlogin aadsshlogin-selinux`: {Result: cmdrun.Result{
			Stdout: []byte("aadsshlogin\tdeinstall ok config-files\t1.0\n"), ExitCode: 1}},
	}}
	m := newManager(t, Apt, f)
	if err := m.Remove(context.Background(), "aadsshlogin", "aadsshlogin-selinux"); err != nil {
		t.Fatal(err)
	}
	got := f.Lines()
	if len(got) != 2 || got[1] != "apt-get purge -y -q -o DPkg::Lock::Timeout=300 aadsshlogin" {
		t.Errorf("commands %q", got)
	}
	// Nothing installed: no purge at all.
	f = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"dpkg-query": {Result: cmdrun.Result{ExitCode: 1}}}}
	if err := newManager(t, Apt, f).Remove(context.Background(), "aadsshlogin"); err != nil || len(f.Calls) != 1 {
		t.Errorf("err %v, calls %q", err, f.Lines())
	}
}

func TestAptRepair(t *testing.T) {
	ctx := context.Background()
	// Healthy database: only the audit runs.
	f := &cmdrun.Fake{}
	if err := newManager(t, Apt, f).Repair(ctx); err != nil {
		t.Fatal(err)
	}
	wantLines(t, f, "dpkg --audit")

	// Broken, then repaired.
	audits := 0
	f = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"dpkg --audit": {Func: func(cmdrun.Cmd) (cmdrun.Result, error) {
			audits++
			if audits == 1 {
				return cmdrun.Result{Stdout: []byte(fixture(t, "dpkg-audit.txt"))}, nil
			}
			return cmdrun.Result{}, nil
		}},
	}}
	if err := newManager(t, Apt, f).Repair(ctx); err != nil {
		t.Fatal(err)
	}
	wantLines(t, f, "dpkg --audit", "dpkg --configure -a --force-confold --force-confdef", "dpkg --audit")

	// Still broken.
	f = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"dpkg --audit":     out(fixture(t, "dpkg-audit.txt"), 1),
		"dpkg --configure": out("dpkg: error processing package aadsshlogin (--configure):\n subprocess returned error exit status 1\n", 1),
	}}
	wantFailure(t, newManager(t, Apt, f).Repair(ctx), failure.PackageManagerFailed, "dpkg --configure -a", "only half configured")
}

// TestAptRepairReadsDpkgFiles: dpkg's own files decide whether dpkg runs
// at all. A settled database costs no process; a package in an unfinished
// state asks dpkg --audit; a pending journal is repaired even when dpkg
// --audit, which reads through it, reports nothing (apt would refuse to
// run), and a journal still pending afterwards is a failure.
func TestAptRepairReadsDpkgFiles(t *testing.T) {
	ctx := context.Background()
	const settled = "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nDescription: x\n more\n\n" +
		"Package: old\nStatus: deinstall ok config-files\n\nPackage: gone\nStatus: purge ok not-installed\n\n" +
		"Package: held\nStatus: hold ok installed\n"
	setup := func(t *testing.T, status string, journal ...string) (string, func(f *cmdrun.Fake) Manager) {
		t.Helper()
		root := t.TempDir()
		admin := filepath.Join(root, "var/lib/dpkg")
		if err := os.MkdirAll(filepath.Join(admin, "updates"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(admin, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, j := range journal {
			if err := os.WriteFile(filepath.Join(admin, "updates", j), []byte("Package: x\nStatus: install ok installed\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return admin, func(f *cmdrun.Fake) Manager {
			m, err := New(Apt, Options{Runner: f, Root: sysroot.Root(root)})
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}

	t.Run("settled", func(t *testing.T) {
		// dpkg's "tmp.i" is not a journal entry.
		_, mk := setup(t, settled, "tmp.i")
		f := &cmdrun.Fake{}
		if err := mk(f).Repair(ctx); err != nil || len(f.Calls) != 0 {
			t.Errorf("err %v, commands %q; want none", err, f.Lines())
		}
	})
	for name, status := range map[string]string{
		"half-configured":  settled + "\nPackage: aadsshlogin\nStatus: install ok half-configured\n",
		"reinstreq":        settled + "\nPackage: aadsshlogin\nStatus: install reinstreq half-installed\n",
		"triggers-pending": settled + "\nPackage: man-db\nStatus: install ok installed\nTriggers-Pending: /usr/share/man\n",
		"garbled":          "Package: x\nStatus: install\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, mk := setup(t, status)
			f := &cmdrun.Fake{}
			if err := mk(f).Repair(ctx); err != nil {
				t.Fatal(err)
			}
			wantLines(t, f, "dpkg --audit")
		})
	}
	t.Run("journal", func(t *testing.T) {
		admin, mk := setup(t, settled, "0000", "0001")
		f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
			"dpkg --configure": {Func: func(cmdrun.Cmd) (cmdrun.Result, error) {
				// dpkg folds the journal into the status file.
				for _, j := range []string{"0000", "0001"} {
					if err := os.Remove(filepath.Join(admin, "updates", j)); err != nil {
						t.Error(err)
					}
				}
				return cmdrun.Result{}, nil
			}},
		}}
		if err := mk(f).Repair(ctx); err != nil {
			t.Fatal(err)
		}
		wantLines(t, f, "dpkg --audit", "dpkg --configure -a --force-confold --force-confdef", "dpkg --audit")
	})
	t.Run("journal stays", func(t *testing.T) {
		_, mk := setup(t, settled, "0000")
		f := &cmdrun.Fake{}
		wantFailure(t, mk(f).Repair(ctx), failure.PackageManagerFailed, "dpkg --configure -a", "journal of an interrupted run")
	})
}

func TestAptKeysAreNoops(t *testing.T) {
	f := &cmdrun.Fake{}
	m := newManager(t, Apt, f)
	if m.ImportKey(context.Background(), "/etc/apt/keyrings/microsoft.gpg") != nil || m.RemoveKey(context.Background(), "BC52") != nil || len(f.Calls) != 0 {
		t.Errorf("apt key handling ran %q", f.Lines())
	}
}

func TestRpmInstalled(t *testing.T) {
	const q = "rpm -q --qf %{NAME}\\t%{VERSION}-%{RELEASE}\\n "
	for _, kind := range []Kind{Dnf, Yum, Tdnf, Zypper} {
		f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
			q + "aadsshlogin": out("aadsshlogin\t1.0.029280001-1\naadsshlogin\t1.0.031620001-1\n", 0),
			q + "other":       out("package other is not installed\n", 1),
			q + "aadlogin aadsshlogin selinux-policy-targeted": out(
				"package aadlogin is not installed\naadsshlogin\t1.0.031620001-1\nselinux-policy-targeted\t38.1.35-2.el9\n", 1),
			q + "broken": {Result: cmdrun.Result{
				Stdout: []byte("package broken is not installed\n"), ExitCode: 1,
				Stderr: []byte("error: rpmdb: BDB0113 Thread/process 1234 failed: BDB1507 Thread died in Berkeley DB library\n"),
			}},
			q + "odd": out("something else entirely\n", 1),
		}}
		m := newManager(t, kind, f)
		got, err := m.Installed(context.Background(), "aadsshlogin")
		if got["aadsshlogin"] != "1.0.031620001-1" || len(got) != 1 || err != nil {
			t.Errorf("%s: %q %v", kind, got, err)
		}
		if got, err := m.Installed(context.Background(), "other"); len(got) != 0 || err != nil {
			t.Errorf("%s other: %q %v", kind, got, err)
		}
		got, err = m.Installed(context.Background(), "aadlogin", "aadsshlogin", "selinux-policy-targeted")
		want := map[string]string{"aadsshlogin": "1.0.031620001-1", "selinux-policy-targeted": "38.1.35-2.el9"}
		if !maps.Equal(got, want) || err != nil {
			t.Errorf("%s many: %q %v", kind, got, err)
		}
		for _, name := range []string{"broken", "odd"} {
			if got, err := m.Installed(context.Background(), name); err == nil {
				t.Errorf("%s %s: %q and no error", kind, name, got)
			}
		}
	}
}

func TestYumFamilyRefresh(t *testing.T) {
	cases := map[Kind][]string{
		Dnf:  {"dnf -y makecache --refresh --disablerepo=* --enablerepo=packages-microsoft-com-prod"},
		Yum:  {"yum clean expire-cache --disablerepo=* --enablerepo=packages-microsoft-com-prod", "yum -y makecache --disablerepo=* --enablerepo=packages-microsoft-com-prod"},
		Tdnf: {"tdnf -y makecache --disablerepo=* --enablerepo=packages-microsoft-com-prod"},
	}
	for kind, want := range cases {
		f := &cmdrun.Fake{}
		m := newManager(t, kind, f)
		if err := m.Refresh(context.Background(), "packages-microsoft-com-prod", ""); err != nil {
			t.Fatal(err)
		}
		wantLines(t, f, want...)
	}
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"dnf -y makecache": out(fixture(t, "dnf-makecache-skipped.txt"), 0)}}
	wantFailure(t, newManager(t, Dnf, f).Refresh(context.Background(), "packages-microsoft-com-prod", ""), failure.RepositoryUnreachable, "Status code: 404")
}

func TestYumFamilyAvailable(t *testing.T) {
	cases := []struct {
		kind    Kind
		fixture string
		exit    int
		want    bool
	}{
		{Dnf, "dnf-list.txt", 0, true},
		{Dnf, "dnf-list-installed-only.txt", 0, false},
		{Yum, "yum-list-wrapped.txt", 0, true},
		{Dnf, "dnf-list-nomatch.txt", 1, false},
		{Dnf, "dnf-install-nomatch.txt", 1, false},
		{Tdnf, "tdnf-install-nomatch.txt", 1011, false},
	}
	for _, c := range cases {
		f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{string(c.kind) + " -q list": out(fixture(t, c.fixture), c.exit)}}
		got, err := newManager(t, c.kind, f).Available(context.Background(), "aadsshlogin")
		if got != c.want || err != nil {
			t.Errorf("%s %s: %v %v", c.kind, c.fixture, got, err)
		}
	}
	f := &cmdrun.Fake{}
	newManager(t, Tdnf, f).Available(context.Background(), "aadsshlogin")
	newManager(t, Yum, f).Available(context.Background(), "aadsshlogin")
	wantLines(t, f, "tdnf -q list aadsshlogin", "yum -q list --showduplicates aadsshlogin")
}

func TestYumFamilyInstall(t *testing.T) {
	for _, kind := range []Kind{Dnf, Yum, Tdnf} {
		tool := string(kind)
		f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
			"rpm -q --qf %{NAME}\\t%{VERSION}-%{RELEASE}\\n aadsshlogin-selinux aadsshlogin": out("package aadsshlogin-selinux is not installed\naadsshlogin\t1.0.029280001-1\n", 1),
		}}
		m := newManager(t, kind, f)
		if err := m.Install(context.Background(), Package{Name: "aadsshlogin-selinux"}, Package{Name: "aadsshlogin"}, Package{Name: "curl", Version: "8.5.0-1"}); err != nil {
			t.Fatal(err)
		}
		got := f.Lines()
		want := []string{"rpm -q --qf %{NAME}\\t%{VERSION}-%{RELEASE}\\n aadsshlogin-selinux aadsshlogin",
			tool + " -y install aadsshlogin-selinux curl-8.5.0-1", tool + " -y upgrade aadsshlogin"}
		if !slices.Equal(got, want) {
			t.Errorf("%s: commands %q", kind, got)
		}

		// What the caller already knows is not asked again; only the
		// unknown package is.
		f = &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{
			"rpm -q --qf %{NAME}\\t%{VERSION}-%{RELEASE}\\n other": out("other\t1-1\n", 0),
			tool + " -y install": out("", 0),
			tool + " -y upgrade": out("", 0),
		}}
		m = newManager(t, kind, f)
		if err := m.Install(context.Background(), Package{Name: "aadsshlogin-selinux", Presence: Absent},
			Package{Name: "aadsshlogin", Presence: Present}, Package{Name: "other"}); err != nil {
			t.Fatal(err)
		}
		want = []string{"rpm -q --qf %{NAME}\\t%{VERSION}-%{RELEASE}\\n other",
			tool + " -y install aadsshlogin-selinux", tool + " -y upgrade aadsshlogin other"}
		if got := f.Lines(); !slices.Equal(got, want) {
			t.Errorf("%s with presence known: commands %q", kind, got)
		}
	}
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"rpm":            out("package aadsshlogin is not installed", 1),
		"dnf -y install": out(fixture(t, "dnf-install-nomatch.txt"), 1),
	}}
	wantFailure(t, newManager(t, Dnf, f).Install(context.Background(), Package{Name: "aadsshlogin"}), failure.PackageManagerFailed,
		"Failed to install aadsshlogin with dnf (exit code 1): No match for argument: aadsshlogin. To see the full error, run on the VM: sudo dnf install aadsshlogin")
}

func TestYumFamilyRemove(t *testing.T) {
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"rpm -q --qf %{NAME}\\t%{VERSION}-%{RELEASE}\\n aadsshlogin-selinux aadsshlogin": out("package aadsshlogin-selinux is not installed\naadsshlogin\t1.0-1\n", 1),
		"rpm -q --qf %{NAME}\\t%{VERSION}-%{RELEASE}\\n aadsshlogin":                     out("aadsshlogin\t1.0-1\n", 0),
	}}
	if err := newManager(t, Tdnf, f).Remove(context.Background(), "aadsshlogin-selinux", "aadsshlogin"); err != nil {
		t.Fatal(err)
	}
	if got := f.Lines(); got[len(got)-1] != "tdnf -y remove aadsshlogin" {
		t.Errorf("commands %q", got)
	}
	f.Responses["tdnf -y remove"] = out("Error(1525) : rpm transaction failed\n", 1525)
	wantFailure(t, newManager(t, Tdnf, f).Remove(context.Background(), "aadsshlogin"), failure.PackageManagerFailed, "Failed to remove aadsshlogin with tdnf (exit code 1525)", "sudo tdnf remove aadsshlogin")
}

func TestZypper(t *testing.T) {
	ctx := context.Background()
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"zypper --non-interactive --quiet search": out(fixture(t, "zypper-search.txt"), 0),
		"rpm -q": out("aadsshlogin\t1.0-1\n", 0),
	}}
	m := newManager(t, Zypper, f)
	if err := m.Refresh(ctx, "packages-microsoft-com-prod", ""); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Available(ctx, "aadsshlogin"); !ok || err != nil {
		t.Errorf("available: %v %v", ok, err)
	}
	if err := m.Install(ctx, Package{Name: "aadsshlogin"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Install(ctx, Package{Name: "aadsshlogin", Version: "1.0.029280001-1"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, "aadsshlogin"); err != nil {
		t.Fatal(err)
	}
	got := f.Lines()
	want := []string{
		"zypper --non-interactive refresh -f -r packages-microsoft-com-prod",
		"zypper --non-interactive --quiet search --repo packages-microsoft-com-prod -x -s -t package aadsshlogin",
		"zypper --non-interactive install --repo packages-microsoft-com-prod aadsshlogin",
		"zypper --non-interactive install --repo packages-microsoft-com-prod --oldpackage aadsshlogin=1.0.029280001-1",
		"rpm -q --qf %{NAME}\\t%{VERSION}-%{RELEASE}\\n aadsshlogin",
		"zypper --non-interactive --no-refresh remove aadsshlogin",
	}
	if !slices.Equal(got, want) {
		t.Errorf("commands:\n got %q\nwant %q", got, want)
	}
	if !slices.Contains(f.Calls[0].Env, "ZYPP_LOCK_TIMEOUT=300") {
		t.Errorf("env %q", f.Calls[0].Env)
	}
	for _, c := range []struct {
		fixture string
		exit    int
		want    bool
	}{{"zypper-search-system.txt", 0, false}, {"zypper-search.txt", 0, true}} {
		f.Responses["zypper --non-interactive --quiet search"] = out(fixture(t, c.fixture), c.exit)
		if ok, err := m.Available(ctx, "aadsshlogin"); ok != c.want || err != nil {
			t.Errorf("%s: %v %v", c.fixture, ok, err)
		}
	}
	f.Responses["zypper --non-interactive --quiet search"] = out("No matching items found.\n", 104)
	if ok, err := m.Available(ctx, "aadsshlogin"); ok || err != nil {
		t.Errorf("104: %v %v", ok, err)
	}
	f.Responses["zypper --non-interactive install"] = out("Installing: aadsshlogin\n", 103)
	if err := m.Install(ctx, Package{Name: "aadsshlogin"}); err != nil {
		t.Errorf("exit 103 is success: %v", err)
	}
	f.Responses["zypper --non-interactive install"] = out(fixture(t, "zypper-install-locked.txt"), 7)
	wantFailure(t, m.Install(ctx, Package{Name: "aadsshlogin"}), failure.PackageManagerLocked, "pid 4711 (zypper)")
	f.Responses["zypper --non-interactive refresh"] = out(fixture(t, "zypper-refresh-unknownkey.txt"), 4)
	wantFailure(t, m.Refresh(ctx, "packages-microsoft-com-prod", ""), failure.UntrustedKey, "'packages-microsoft-com-prod'")
}

// The recordings come from Debian's rpm 4.18 (rpm --dbpath … -q gpg-pubkey
// --qf '%{NAME}-%{VERSION}-%{RELEASE}\n%{DESCRIPTION}\n') after importing
// Microsoft's two keys; the collision file adds, first, a user's key whose
// entry was renamed to Microsoft's 32-bit short id (be1229cf), as a real
// collision would be named.
const (
	msFP     = "BC528686B50D79E339D3721CEB3E94ADBE1229CF"
	ms2025FP = "AA86F75E427A19DD33346403EE4D7792F748182B"
	userFP   = "18A8F59D885312E59D0F261E35154CFC390DA5EB"
)

func TestRpmKeys(t *testing.T) {
	ctx := context.Background()
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"rpm -q gpg-pubkey": out(fixture(t, "rpm-q-gpg-pubkey-short-id-collision.txt"), 0),
	}}
	m := newManager(t, Dnf, f)
	if err := m.ImportKey(ctx, "/etc/pki/rpm-gpg/microsoft.asc"); err != nil {
		t.Fatal(err)
	}
	trusted, err := m.TrustedKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		userFP:   "gpg-pubkey-be1229cf-6b12c50c",
		msFP:     "gpg-pubkey-be1229cf-5631588c",
		ms2025FP: "gpg-pubkey-f748182b-6554862c",
	}
	if !reflect.DeepEqual(trusted, want) {
		t.Fatalf("trusted keys %v, want %v", trusted, want)
	}
	// Removal matches the whole fingerprint: the user's key, which shares
	// the short id, stays.
	if err := m.RemoveKey(ctx, "BC52 8686 B50D 79E3 39D3  721C EB3E 94AD BE12 29CF"); err != nil {
		t.Fatal(err)
	}
	wantLines(t, f,
		"rpm --import /etc/pki/rpm-gpg/microsoft.asc",
		"rpm -q gpg-pubkey --qf %{NAME}-%{VERSION}-%{RELEASE}\\n%{DESCRIPTION}\\n",
		"rpm -q gpg-pubkey --qf %{NAME}-%{VERSION}-%{RELEASE}\\n%{DESCRIPTION}\\n",
		"rpm -e gpg-pubkey-be1229cf-5631588c")

	// A key that is not there: nothing is erased.
	f = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"rpm -q gpg-pubkey": out(fixture(t, "rpm-q-gpg-pubkey-two-microsoft-keys.txt"), 0)}}
	if err := newManager(t, Dnf, f).RemoveKey(ctx, userFP); err != nil || len(f.Calls) != 1 {
		t.Errorf("absent key: %v %q", err, f.Lines())
	}

	f = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"rpm -q gpg-pubkey": out("package gpg-pubkey is not installed\n", 1)}}
	if err := newManager(t, Zypper, f).RemoveKey(ctx, msFP); err != nil || len(f.Calls) != 1 {
		t.Errorf("no keys: %v %q", err, f.Lines())
	}
	if k, err := newManager(t, Zypper, f).TrustedKeys(ctx); err != nil || len(k) != 0 {
		t.Errorf("no keys: %v %v", k, err)
	}
	// Short ids and garbage are refused before any command runs.
	for _, bad := range []string{"not-a-key", "BE1229CF", "EB3E94ADBE1229CF"} {
		f = &cmdrun.Fake{}
		if err := newManager(t, Zypper, f).RemoveKey(ctx, bad); err == nil || len(f.Calls) != 0 {
			t.Errorf("%q accepted: %v %q", bad, err, f.Lines())
		}
	}
	// A broken database is an error, not "no keys".
	f = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"rpm -q gpg-pubkey": out("error: rpmdb: BDB0113 Thread/process 1/2 failed\n", 1)}}
	if _, err := newManager(t, Dnf, f).TrustedKeys(ctx); err == nil {
		t.Error("a broken rpm database gave no error")
	}
	f = &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"rpm --import": out("error: /tmp/k.asc: key 1 import failed.\n", 1)}}
	wantFailure(t, newManager(t, Tdnf, f).ImportKey(ctx, "/tmp/k.asc"), failure.UntrustedKey, "key 1 import failed")
}
