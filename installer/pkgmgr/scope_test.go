package pkgmgr

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
)

// TestDepMissing: the dependency failures of every manager are told apart
// from other failures, and the missing names are found.
func TestDepMissing(t *testing.T) {
	for name, want := range map[string]string{
		"apt-install-depends.txt":            "libcurl4",
		"apt3/install-depends.txt":           "libaadssh-missing",
		"apt3/v30-install-depends.txt":       "libaadssh-missing",
		"dnf-install-depends.txt":            "libcurl.so.4()(64bit)",
		"deps/zypper-install-distro-403.txt": "libaadstandin-dep",
		"deps/apt-install-distro-403.txt":    "libaadstandin-dep",
	} {
		out := fixture(t, name)
		if !depMissing(out) {
			t.Errorf("%s: not a missing dependency", name)
		}
		if got := missingDeps(out); !slices.Contains(got, want) {
			t.Errorf("%s: missing %q, want %s", name, got, want)
		}
	}
	for _, name := range []string{"apt-install-notfound.txt", "apt-install-lock.txt", "dnf-install-nomatch.txt", "apt-install-fetch404.txt"} {
		if depMissing(fixture(t, name)) {
			t.Errorf("%s: taken for a missing dependency", name)
		}
	}
}

// TestForeignProblem: the recorded failures name the distribution
// repository and its answer; our own repository's lines are left out.
func TestForeignProblem(t *testing.T) {
	cases := []struct {
		fixture string
		ours    []string
		want    []string
	}{
		{"deps/apt-install-distro-403.txt", []string{"https://packages.microsoft.com/repos/microsoft-debian-bookworm-prod"}, []string{"http://archive.distro.test/debian", "403  Forbidden"}},
		{"deps/dnf-install-distro-403.txt", []string{"'packages-microsoft-com-prod'"}, []string{"'distro-test'", "http://archive.distro.test/rpm/repodata/repomd.xml", "403"}},
		{"deps/zypper-install-distro-403.txt", []string{"'packages-microsoft-com-prod'"}, []string{"'Distribution Test'", "http://archive.distro.test/rpm", "denied"}},
	}
	for _, c := range cases {
		where, why := foreignProblem(fixture(t, c.fixture), c.ours)
		got := where + " " + why
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", c.fixture, got, w)
			}
		}
	}
	// Our repository failing is not a distribution repository's problem.
	if where, _ := foreignProblem(fixture(t, "apt-update-403.txt"), []string{"https://packages.microsoft.com"}); where != "" {
		t.Errorf("our own 403 taken for a distribution repository: %q", where)
	}
}

// TestScopedInstallFallsBack: after Refresh, dnf installs from our
// repository alone; a missing dependency makes it try every repository, and
// a broken distribution repository is named (exit 27).
func TestScopedInstallFallsBack(t *testing.T) {
	ctx := context.Background()
	f := &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
		"rpm -q": out("package aadsshlogin is not installed\n", 1),
		"dnf -y install --disablerepo=* --enablerepo=packages-microsoft-com-prod": out(fixture(t, "dnf-install-depends.txt"), 1),
		"dnf -y install aadsshlogin": out(fixture(t, "deps/dnf-install-distro-403.txt"), 1),
	}}
	m := newManager(t, Dnf, f)
	if err := m.Refresh(ctx, "packages-microsoft-com-prod", ""); err != nil {
		t.Fatal(err)
	}
	err := m.Install(ctx, Package{Name: "aadsshlogin"})
	wantFailure(t, err, failure.PackageManagerFailed, "'distro-test'", "403", "libcurl.so.4()(64bit)", "not a problem of packages.microsoft.com")
	want := []string{
		"dnf -y makecache --refresh --disablerepo=* --enablerepo=packages-microsoft-com-prod",
		"rpm -q --qf %{NAME}\\t%{VERSION}-%{RELEASE}\\n aadsshlogin",
		"dnf -y install --disablerepo=* --enablerepo=packages-microsoft-com-prod aadsshlogin",
		"dnf -y install aadsshlogin",
	}
	wantLines(t, f, want...)

	// Dependencies installed: one command, our repository only.
	f = &cmdrun.Fake{}
	m = newManager(t, Apt, f)
	if err := m.Refresh(ctx, "", "/etc/apt/sources.list.d/microsoft-prod.list"); err != nil {
		t.Fatal(err)
	}
	if err := m.Install(ctx, Package{Name: "aadsshlogin", Presence: Absent}); err != nil {
		t.Fatal(err)
	}
	if got := f.Lines(); len(got) != 2 || !strings.Contains(got[1], "-o Dir::Etc::sourcelist=/etc/apt/sources.list.d/microsoft-prod.list -o Dir::Etc::sourceparts=- aadsshlogin") {
		t.Errorf("commands %q", got)
	}
}
