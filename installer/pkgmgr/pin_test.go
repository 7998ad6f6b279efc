package pkgmgr

import (
	"context"
	"slices"
	"testing"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
)

func TestHoldMethodFor(t *testing.T) {
	for kind, want := range map[Kind]HoldMethod{
		Apt: HoldPreferences, Dnf: HoldRepoExclude, Yum: HoldRepoExclude, Zypper: HoldLock, Tdnf: HoldUnsupported, "pacman": HoldUnsupported,
	} {
		if got := HoldMethodFor(kind); got != want {
			t.Errorf("%s: %q, want %q", kind, got, want)
		}
	}
}

func TestAptPreferences(t *testing.T) {
	got := string(AptPreferences([]string{"Managed by us.", "Held by the setting."}, []string{"aadsshlogin", "other"}, "1.0.030000001"))
	want := `Explanation: Managed by us.
Explanation: Held by the setting.
Package: aadsshlogin
Pin: version 1.0.030000001
Pin-Priority: 1001

Explanation: Managed by us.
Explanation: Held by the setting.
Package: other
Pin: version 1.0.030000001
Pin-Priority: 1001
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestRepoExclude(t *testing.T) {
	names := []string{"aadsshlogin", "aadsshlogin-selinux"}
	if got := RepoExclude(Dnf, names); got != "excludepkgs=aadsshlogin,aadsshlogin-selinux\n" {
		t.Errorf("dnf: %q", got)
	}
	if got := RepoExclude(Yum, names); got != "exclude=aadsshlogin aadsshlogin-selinux\n" {
		t.Errorf("yum: %q", got)
	}
}

// TestIgnoringRepoExcludes: with our repository's exclude in place, the
// install, upgrade, reinstall and availability commands of dnf and yum
// pass --disableexcludes for that repository only, and the reproduce hint
// of a failure says so; the manager it came from is left as it was, and the
// other back ends are returned unchanged.
func TestIgnoringRepoExcludes(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []Kind{Dnf, Yum} {
		tool := string(kind)
		f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
			"rpm -q": out("aadsshlogin\t1.0.031620001-1\n", 0),
			tool + " -q --disableexcludes=packages-microsoft-com-prod list": out(fixture(t, "dnf-list.txt"), 0),
		}}
		plain := newManager(t, kind, f)
		m := IgnoringRepoExcludes(plain, "packages-microsoft-com-prod")
		if err := m.Install(ctx, Package{Name: "aadsshlogin", Version: "1.0.030000001"}); err != nil {
			t.Fatal(err)
		}
		if err := m.Install(ctx, Package{Name: "aadsshlogin"}); err != nil {
			t.Fatal(err)
		}
		if err := m.Reinstall(ctx, "aadsshlogin"); err != nil {
			t.Fatal(err)
		}
		if ok, err := m.Available(ctx, "aadsshlogin"); !ok || err != nil {
			t.Errorf("available: %v %v", ok, err)
		}
		if err := plain.Install(ctx, Package{Name: "aadsshlogin", Version: "1.0.030000001"}); err != nil {
			t.Fatal(err)
		}
		wantLines(t, f,
			tool+" -y --disableexcludes=packages-microsoft-com-prod install aadsshlogin-1.0.030000001",
			"rpm -q --qf %{NAME}\\t%{VERSION}-%{RELEASE}\\n aadsshlogin",
			tool+" -y --disableexcludes=packages-microsoft-com-prod upgrade aadsshlogin",
			tool+" -y --disableexcludes=packages-microsoft-com-prod reinstall aadsshlogin",
			tool+" -q --disableexcludes=packages-microsoft-com-prod list --showduplicates aadsshlogin",
			tool+" -y install aadsshlogin-1.0.030000001")

		f.Responses[tool+" -y --disableexcludes"] = out(fixture(t, "dnf-install-nomatch.txt"), 1)
		wantFailure(t, m.Install(ctx, Package{Name: "aadsshlogin", Version: "9.9.9"}), failure.PackageManagerFailed,
			"sudo "+tool+" --disableexcludes=packages-microsoft-com-prod install aadsshlogin-9.9.9")
	}
	for _, kind := range []Kind{Apt, Zypper, Tdnf} {
		m := newManager(t, kind, &cmdrun.Fake{})
		if got := IgnoringRepoExcludes(m, "packages-microsoft-com-prod"); got != m {
			t.Errorf("%s: a new manager for a back end without repository excludes", kind)
		}
	}
}

func TestZypperPackageLocks(t *testing.T) {
	ctx := context.Background()
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"zypper --non-interactive locks": out(fixture(t, "zypper-locks.txt"), 0),
	}}
	m := newManager(t, Zypper, f).(PackageLocker)
	got, err := m.PackageLocks(ctx)
	if err != nil || !slices.Equal(got, []string{"aadssh*", "aadsshlogin"}) {
		t.Errorf("locks %q %v (the patch lock is not a package lock)", got, err)
	}
	if err := m.AddPackageLocks(ctx, "aadsshlogin"); err != nil {
		t.Fatal(err)
	}
	if err := m.RemovePackageLocks(ctx, "aadsshlogin", "aadsshlogin-selinux"); err != nil {
		t.Fatal(err)
	}
	if err := m.AddPackageLocks(ctx); err != nil {
		t.Fatal(err)
	}
	wantLines(t, f,
		"zypper --non-interactive locks",
		"zypper --non-interactive addlock -t package aadsshlogin",
		"zypper --non-interactive removelock -t package aadsshlogin aadsshlogin-selinux")
	if !slices.Contains(f.Calls[1].Env, "ZYPP_LOCK_TIMEOUT=300") {
		t.Errorf("env %q", f.Calls[1].Env)
	}

	f.Responses["zypper --non-interactive locks"] = out(fixture(t, "zypper-locks-none.txt"), 0)
	if got, err := m.PackageLocks(ctx); err != nil || len(got) != 0 {
		t.Errorf("no locks: %q %v", got, err)
	}
	f.Responses["zypper --non-interactive locks"] = out("", 1)
	if _, err := m.PackageLocks(ctx); err == nil {
		t.Error("a failing zypper locks gave no error")
	}
	f.Responses["zypper --non-interactive addlock"] = cmdrun.FakeResponse{Result: cmdrun.Result{Stderr: []byte(fixture(t, "zypper-addlock-nofile.txt")), ExitCode: 4}}
	wantFailure(t, m.AddPackageLocks(ctx, "aadsshlogin"), failure.PackageManagerFailed,
		"Failed to add the package lock of aadsshlogin with zypper (exit code 4)", "Cannot open file /etc/zypp/locks", "sudo zypper addlock aadsshlogin")
}

// TestVersions: each back end lists the versions its repositories offer,
// written as aadsshlogin's versions are (no release), without the
// installed copy.
func TestVersions(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		kind     Kind
		prefix   string
		fixture  string
		exit     int
		want     []string
		wantLine string
	}{
		{Apt, "apt-cache madison", "apt-madison.txt", 0, []string{"1.0.031620001", "1.0.030000001"}, "apt-cache madison aadsshlogin"},
		{Apt, "apt-cache madison", "", 0, nil, ""},
		{Dnf, "dnf -q list", "dnf-list.txt", 0, []string{"1.0.029280001", "1.0.031620001"}, "dnf -q list --showduplicates aadsshlogin"},
		{Dnf, "dnf -q list", "dnf-list-installed-only.txt", 0, nil, ""},
		{Dnf, "dnf -q list", "dnf-list-nomatch.txt", 1, nil, ""},
		{Yum, "yum -q list", "yum-list-wrapped.txt", 0, []string{"1.0.031620001"}, ""},
		{Zypper, "zypper --non-interactive --quiet search", "zypper-search.txt", 0, []string{"1.0.031620001"}, "zypper --non-interactive --quiet search -x -s -t package aadsshlogin"},
		{Zypper, "zypper --non-interactive --quiet search", "zypper-search-system.txt", 0, nil, ""},
		{Zypper, "zypper --non-interactive --quiet search", "", 104, nil, ""},
	}
	for _, c := range cases {
		text := ""
		if c.fixture != "" {
			text = fixture(t, c.fixture)
		}
		f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{c.prefix: out(text, c.exit)}}
		got, err := newManager(t, c.kind, f).(VersionLister).Versions(ctx, "aadsshlogin")
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s %s: %q %v, want %q", c.kind, c.fixture, got, err, c.want)
		}
		if c.wantLine != "" {
			wantLines(t, f, c.wantLine)
		}
	}
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{"zypper": out("System management is locked", 7)}}
	if _, err := newManager(t, Zypper, f).(VersionLister).Versions(ctx, "aadsshlogin"); err == nil {
		t.Error("a failing search gave no error")
	}
	for in, want := range map[string]string{"2:1.0.1-3": "1.0.1", "1.0.031620001": "1.0.031620001", "1.0.031620001-1.el9": "1.0.031620001"} {
		if got := appendVersion(nil, in); !slices.Equal(got, []string{want}) {
			t.Errorf("appendVersion(%q) = %q", in, got)
		}
	}
}
