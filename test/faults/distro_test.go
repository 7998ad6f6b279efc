package faults

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/fixtures"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// distroDelay is how slowly the slow distribution repository answers each
// request; a full apt-get update or dnf metadata load makes several.
const distroDelay = 3 * time.Second

// TestDistributionRepository: the distribution's own repository (an
// Ubuntu archive, RHUI, SUSE's servers) is broken or slow (issue 10). With
// aadsshlogin's dependencies installed, the install neither fails nor
// slows, and asks that repository nothing; when a dependency is missing
// and that repository is broken, the install fails naming it (exit 27) and
// the machine is rolled back; once it answers again, the dependency comes
// from it.
func TestDistributionRepository(t *testing.T) {
	managers := []struct{ name, distro string }{{"apt", "debian-12"}, {"dnf", "rhel-9.4"}, {"zypper", "sles-15.6"}}
	var cases []faultCase
	for _, m := range managers {
		cases = append(cases,
			faultCase{
				Name: "distro-repo-403-" + m.name, Distro: m.distro,
				Fault:  "the distribution's repository (its own host and key, configured as the distribution does) answers 403 to everything; " + m.name,
				Expect: "install succeeds (exit 0) without asking that repository anything; the repository is left configured",
				Run:    distroHealthy(func(d *sandbox.DistroRepo) { d.SetStatus(http.StatusForbidden) }),
			},
			faultCase{
				Name: "distro-repo-unreachable-" + m.name, Distro: m.distro,
				Fault:  "nothing listens at the distribution repository's address (connection refused); " + m.name,
				Expect: "install succeeds (exit 0) without asking that repository anything",
				Run: distroHealthy(func(d *sandbox.DistroRepo) {
					if err := d.SetDown(true); err != nil {
						panic(err)
					}
				}),
			},
			faultCase{
				Name: "distro-repo-slow-" + m.name, Distro: m.distro,
				Fault:  "the distribution repository answers every request after 3 s; " + m.name,
				Expect: "install succeeds about as fast as the same install without that repository (≤ 1.5× + 10 s), asking it nothing",
				Run:    distroSlow,
			},
			faultCase{
				Name: "distro-repo-dependency-broken-" + m.name, Distro: m.distro,
				Fault:  "aadsshlogin " + fixtures.DependentVersion + " needs " + fixtures.DistroDepName + ", which only the distribution repository offers, and that repository answers 403; " + m.name,
				Expect: "exit 27 naming the distribution repository and its answer (not packages.microsoft.com), everything rolled back; once it answers, the next run installs the dependency from it",
				Run:    distroDependency,
			},
		)
	}
	runCases(t, cases)
}

// withDistro starts the distribution repository and configures it in the
// root.
func (f *fx) withDistro() *sandbox.DistroRepo {
	f.t.Helper()
	d := sandbox.StartDistroRepo(f.t, fixtures.GetDistro(f.t, f.Fx))
	f.Root.AddDistributionRepo(f.t, d)
	return d
}

// distroHealthy breaks the distribution repository with inject and
// requires a healthy install that never asked it.
func distroHealthy(inject func(d *sandbox.DistroRepo)) func(t *testing.T, f *fx) {
	return func(t *testing.T, f *fx) {
		d := f.withDistro()
		inject(d)
		res, exit := f.apply(0, f.pinned(), agentsim.Enable)
		if exit != 0 {
			t.Fatalf("install with a broken distribution repository: %v", harness.Verbs(res))
		}
		f.wantHealthy(0)
		if n := d.Requests(); n != 0 {
			t.Errorf("the distribution repository was asked %d times; the install needs nothing from it", n)
		}
		f.wantDistroConfigured()
	}
}

// wantDistroConfigured: the distribution's own definition is untouched.
func (f *fx) wantDistroConfigured() {
	f.t.Helper()
	file := sandbox.DistroYumRepo
	switch {
	case f.deb():
		file = sandbox.DistroAptList
	case f.Root.Spec.Manager == "zypper":
		file = sandbox.DistroZypperRepo
	}
	if !strings.Contains(f.Root.ReadFile(file), fixtures.DistroHost) {
		f.t.Errorf("the distribution repository definition %s was changed", file)
	}
}

// distroSlow measures the install without the distribution repository,
// then removes aadsshlogin and the handler's state and measures the same
// full run with a slow distribution repository configured.
func distroSlow(t *testing.T, f *fx) {
	start := time.Now()
	res, exit := f.apply(0, f.pinned(), agentsim.Enable)
	baseline := time.Since(start)
	if exit != 0 {
		t.Fatalf("baseline install: %v", harness.Verbs(res))
	}
	ctx := context.Background()
	if f.deb() {
		f.Root.MustExec(t, nil, "dpkg", "--purge", "aadsshlogin")
	} else {
		f.Root.MustExec(t, nil, "rpm", "-e", "aadsshlogin")
	}
	f.Root.Remove(harness.StateDir + "/state.json")
	if _, _, code := f.Root.Exec(ctx, nil, "true"); code != 0 {
		t.Fatal("root unusable")
	}

	d := f.withDistro()
	d.SetDelay(distroDelay)
	start = time.Now()
	res, exit = f.apply(1, f.pinned(), agentsim.Enable)
	slow := time.Since(start)
	if exit != 0 {
		t.Fatalf("install with a slow distribution repository: %v", harness.Verbs(res))
	}
	f.wantHealthy(1)
	t.Logf("full run without the distribution repository %s, with it answering in %s per request %s (%.2f×); it was asked %d times",
		baseline.Round(time.Millisecond), distroDelay, slow.Round(time.Millisecond), slow.Seconds()/baseline.Seconds(), d.Requests())
	if n := d.Requests(); n != 0 {
		t.Errorf("the slow distribution repository was asked %d times", n)
	}
	if bound := baseline*3/2 + 10*time.Second; slow > bound {
		t.Errorf("install took %s with a slow distribution repository, over %s (baseline %s)", slow, bound, baseline)
	}
}

// distroDependency serves the repository whose aadsshlogin needs a package
// only the distribution offers, breaks the distribution repository, and
// expects a refusal naming it; then heals it and expects the fallback to
// install the dependency from it.
func distroDependency(t *testing.T, f *fx) {
	set := fixtures.GetDistro(t, f.Fx)
	f.Net.Repo.SetOptions(sandbox.RepoOptions{HostDirs: map[string]string{pmcHost: set.DependentRepoDir}})
	d := f.withDistro()
	d.SetStatus(http.StatusForbidden)
	before := f.Root.Snapshot(t)
	res, exit := f.apply(0, f.pinned(), agentsim.Install)
	want := []string{fixtures.DistroHost, fixtures.DistroDepName}
	if f.Root.Spec.Manager != "zypper" {
		// zypper hides the HTTP status behind "Valid metadata not found".
		want = append(want, "403")
	}
	st := f.wantRefused(res, exit, 0, 27, before, want...)
	t.Logf("status: %s", st.Message)
	f.logHandlerCauses()
	if v := f.Installed(fixtures.DistroDepName); v != "" {
		t.Errorf("%s %s left installed", fixtures.DistroDepName, v)
	}

	d.SetStatus(0)
	res, exit = f.apply(1, f.pinned(), agentsim.Enable)
	if exit != 0 {
		t.Fatalf("the run after the distribution repository healed: %v", harness.Verbs(res))
	}
	if got := f.Installed("aadsshlogin"); got != fixtures.DependentVersion {
		t.Errorf("aadsshlogin %q installed, want %s", got, fixtures.DependentVersion)
	}
	if got := f.Installed(fixtures.DistroDepName); got == "" {
		t.Errorf("%s not installed from the distribution repository", fixtures.DistroDepName)
	}
	if d.Requests() == 0 {
		t.Error("the distribution repository was never asked, yet the dependency is installed")
	}
	f.wantUnitsActive()
}

// logHandlerCauses logs the handler log's failure causes (the package
// manager's own output), which the classification is checked against.
func (f *fx) logHandlerCauses() {
	log := f.Root.ReadFile("/var/log/azure/" + harness.HandlerName + "/handler.log")
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "exited with code") {
			f.t.Logf("handler log: %s", l)
		}
	}
}
