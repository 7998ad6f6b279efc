package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/fixtures"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// A realistic machine (issue 10, item 5): the root also has the
// distribution's own repository configured, and it answers slowly.
var (
	slowAptRounds = envInt("AADSSH_BENCH_SLOW_PAIRS", 7)     // rounds on debian-12 (0: skip)
	slowDnfRounds = envInt("AADSSH_BENCH_SLOW_DNF_PAIRS", 5) // rounds on rhel-9.4 (0: skip)
)

// slowDistroDelay is how long the distribution repository takes to answer
// each request: a distant or overloaded mirror.
const slowDistroDelay = 2 * time.Second

// runSlowDistro measures, on one kind of root, rounds of three runs, each
// in a new root: S = the handler's install with the slow distribution
// repository configured, C = the same install on a root without it, M =
// the administrator's commands on a root with the slow repository. The
// order alternates SCM, MCS, … so that S and C are adjacent and swap, and
// M runs first or last.
func runSlowDistro(t *testing.T, distro string, rounds int) SlowDistroResult {
	fx := fixtures.Get(t)
	d := sandbox.StartDistroRepo(t, fixtures.GetDistro(t, fx))
	d.SetDelay(slowDistroDelay)
	res := SlowDistroResult{Distro: distro, DelaySeconds: slowDistroDelay.Seconds()}
	var files map[string][]byte // what the handler wrote, for the administrator
	for i := 0; i < rounds; i++ {
		r := SlowDistroRound{Order: "SCM"}
		if i%2 == 1 {
			r.Order = "MCS"
		}
		for _, side := range r.Order {
			name := fmt.Sprintf("round%d-%c", i+1, side)
			ok := t.Run(name, func(t *testing.T) {
				w := harness.NewWorld(t, distro, sandbox.NetworkOptions{})
				res.Manager = managerOf(w)
				if side != 'C' {
					w.Root.AddDistributionRepo(t, d)
				}
				before := d.Requests()
				switch side {
				case 'S':
					r.Slow, files = slowHandlerSide(t, w, files)
					r.SlowRequests = d.Requests() - before
				case 'C':
					r.Clean, files = slowHandlerSide(t, w, files)
				case 'M':
					adminSide(t, w, &res, &r, files)
					r.AdminRequests = d.Requests() - before
				}
			})
			if !ok {
				t.Fatalf("%s failed; stopping the comparison", name)
			}
		}
		r.Ratio = r.Slow / r.Clean
		r.AdminRatio = r.Slow / r.Admin
		t.Logf("round %d (%s): handler install with the slow distribution repository %.2fs (%d requests to it), without %.2fs, ratio %.2f; administrator %.2fs (refresh %.2fs, install %.2fs, %d requests), handler/administrator %.2f",
			i+1, r.Order, r.Slow, r.SlowRequests, r.Clean, r.Ratio, r.Admin, r.AdminRefresh, r.AdminInstall, r.AdminRequests, r.AdminRatio)
		res.Rounds = append(res.Rounds, r)
	}
	return res
}

// slowHandlerSide runs the handler's install + enable and returns the
// install command's duration, and the files it wrote (the first time).
func slowHandlerSide(t *testing.T, w *harness.World, files map[string][]byte) (float64, map[string][]byte) {
	var p ABPair
	files = handlerSide(t, w, &p, files)
	return p.Install, files
}

// adminCommands is what an administrator types once the repository file
// and key are in place: apt refreshes every source and installs; dnf
// loads every enabled repository's metadata as part of the install.
func adminCommands(family string) (setup, refresh, install []string) {
	if family == "deb" {
		return nil, []string{"apt-get", "update"}, []string{"apt-get", "install", "-y", "aadsshlogin"}
	}
	return []string{"rpm", "--import", harness.RPMKey}, nil, []string{"dnf", "-y", "install", "aadsshlogin"}
}

// adminSide writes the handler's repository file and key byte for byte,
// then runs the administrator's commands, timing the whole.
func adminSide(t *testing.T, w *harness.World, res *SlowDistroResult, r *SlowDistroRound, files map[string][]byte) {
	if files == nil {
		t.Fatal("the administrator needs the handler's files: the first round must run the handler first")
	}
	setup, refresh, install := adminCommands(w.Root.Spec.Family)
	res.AdminCommands = commandLines(setup, refresh, install)
	start := time.Now()
	writeRootFiles(t, w, files)
	timedExec(t, w, setup)
	r.AdminRefresh = timedExec(t, w, refresh).Seconds()
	r.AdminInstall = timedExec(t, w, install).Seconds()
	r.Admin = time.Since(start).Seconds()
	if w.Installed("aadsshlogin") == "" {
		t.Fatal("aadsshlogin not installed by the administrator's commands")
	}
}
