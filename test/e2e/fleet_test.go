package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/fixtures"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// Fleet parameters: FleetSize installs start at once behind one address,
// against one repository limited to fleetInstallsPerWindow fresh installs'
// worth of requests (as measured on one machine first) per fleetWindow:
// PMC's 4,000 per 5 minutes in small, so the fleet needs several windows
// and the test stays fast.
const (
	FleetSize              = 8
	fleetInstallsPerWindow = 2
	fleetWindow            = 10 * time.Second
	fleetDistro            = "debian-12"
	fleetReport            = "docs/fleet.md"
	fleetEnv               = "AADSSH_FLEET_RESULTS"
)

// fleetResult is what the isolated child measured, for the parent's report.
type fleetResult struct {
	Distro        string         `json:"distro"`
	Fresh         map[string]int `json:"fresh"`    // requests by kind of one fresh install (install + enable)
	Repeated      map[string]int `json:"repeated"` // a full converge on a machine that has aadsshlogin
	NoOp          map[string]int `json:"noop"`     // a repeated goal state: enable's fast path
	FreshSeconds  float64        `json:"fresh_seconds"`
	Size          int            `json:"size"`
	Limit         int            `json:"limit"`
	WindowSeconds float64        `json:"window_seconds"`
	Served        int            `json:"served"`
	Limited       int            `json:"limited"`
	Seconds       []float64      `json:"seconds"` // per VM: start of the goal state to its end
	WallSeconds   float64        `json:"wall_seconds"`
	Waited        int            `json:"waited"` // VMs whose status says they waited
	NoOpRequests  int            `json:"noop_requests"`
	AgentTimeout  float64        `json:"agent_timeout"`
}

// TestFleet starts FleetSize installs at once (one root each, one network
// namespace, one rate-limited repository) and requires all of them to
// converge within the agent's timeout. Before that it measures the requests
// of one machine alone. A passing run writes docs/fleet.md.
func TestFleet(t *testing.T) {
	results := ""
	if !sandbox.Isolated() {
		f, err := os.CreateTemp("", "aadssh-fleet-*.json")
		if err != nil {
			t.Fatal(err)
		}
		results = f.Name()
		f.Close()
		defer os.Remove(results)
		t.Setenv(fleetEnv, results)
	}
	start := time.Now()
	sandbox.RunIsolated(t, runFleet)
	if sandbox.Isolated() || t.Failed() || t.Skipped() {
		return
	}
	data, err := os.ReadFile(results)
	if err != nil || len(data) == 0 {
		t.Fatalf("the fleet child left no results: %v", err)
	}
	var r fleetResult
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	if err := writeFleetReport(r, start, time.Since(start)); err != nil {
		t.Fatalf("writing %s: %v", fleetReport, err)
	}
	t.Logf("wrote %s", fleetReport)
}

// kinds sorts the repository's requests into what the report counts.
func kinds(log []sandbox.RepoRequest) map[string]int {
	out := map[string]int{}
	for _, r := range log {
		k := "metadata"
		switch {
		case strings.Contains(r.Path, "/keys/"):
			k = "key"
		case strings.HasSuffix(r.Path, ".deb") || strings.HasSuffix(r.Path, ".rpm"):
			k = "package"
		}
		out[k]++
		out["total"]++
		if r.Status == 429 {
			out["429"]++
		}
	}
	return out
}

func runFleet(t *testing.T) {
	spec := sandbox.Distros[fleetDistro]
	fx := fixtures.Get(t)
	n := sandbox.StartNetwork(t, fx, sandbox.NetworkOptions{IMDS: sandbox.IMDSOptions{AzEnvironment: "AzurePublicCloud"}})
	img := sandbox.ImageFor(t, spec)
	zips := harness.LoadZips(t)
	newVM := func() (*harness.World, *agentsim.Handler) {
		root := sandbox.NewRoot(t, img, spec, n)
		w := &harness.World{T: t, Fx: fx, Net: n, Root: root, Zips: zips, Agent: &agentsim.Agent{Root: root.Dir}}
		return w, w.Deploy(zips.Current, zips.CurrentVersion)
	}
	res := fleetResult{Distro: fleetDistro, Size: FleetSize, WindowSeconds: fleetWindow.Seconds()}

	// One machine alone, no limit: requests per install.
	w, h := newVM()
	res.AgentTimeout = w.Agent.Timeout(agentsim.Install).Seconds()
	n.Repo.ResetLog()
	t0 := time.Now()
	w.MustApply(h, 0, w.Pinned())
	res.FreshSeconds = time.Since(t0).Seconds()
	w.WantStatus(h, 0, "success", 0)
	res.Fresh = kinds(n.Repo.Log())
	// A full converge where aadsshlogin is already there: the recorded
	// state is gone (as after a failed quick check or a settings change).
	n.Repo.ResetLog()
	w.Root.Remove(harness.StateDir + "/state.json")
	w.MustApply(h, 1, w.Pinned())
	w.WantStatus(h, 1, "success", 0)
	res.Repeated = kinds(n.Repo.Log())
	n.Repo.ResetLog()
	w.MustApply(h, 1, w.Pinned())
	res.NoOp = kinds(n.Repo.Log())
	if res.Fresh["total"] == 0 || res.NoOp["total"] != 0 {
		t.Fatalf("requests: fresh %v, no-op enable %v (want > 0 and 0)", res.Fresh, res.NoOp)
	}

	// The fleet: FleetSize machines at once, one rate-limited repository.
	type vm struct {
		w *harness.World
		h *agentsim.Handler
	}
	vms := make([]vm, FleetSize)
	for i := range vms {
		vms[i].w, vms[i].h = newVM()
	}
	res.Limit = fleetInstallsPerWindow * res.Fresh["total"]
	limit := &sandbox.RateLimit{Limit: res.Limit, Window: fleetWindow}
	n.Repo.SetOptions(sandbox.RepoOptions{RateLimit: limit})
	n.Repo.ResetLog()
	res.Seconds = make([]float64, FleetSize)
	errs := make([]error, FleetSize)
	var wg sync.WaitGroup
	wallStart := time.Now()
	for i := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), vms[i].w.Agent.Timeout(agentsim.Install)+time.Minute)
			defer cancel()
			s := time.Now()
			out, err := vms[i].w.Agent.Apply(ctx, vms[i].h, 0, vms[i].w.Pinned())
			res.Seconds[i] = time.Since(s).Seconds()
			if err != nil {
				errs[i] = fmt.Errorf("vm %d: %w (%v)", i, err, harness.Verbs(out))
			}
		}()
	}
	wg.Wait()
	res.WallSeconds = time.Since(wallStart).Seconds()
	res.Served, res.Limited = limit.Served(), limit.Limited()
	for i, v := range vms {
		if errs[i] != nil {
			t.Errorf("%v", errs[i])
			continue
		}
		st := v.w.WantStatus(v.h, 0, "success", 0)
		if s, ok := st.Find("RateLimit"); ok && strings.Contains(s.Message, "waited") {
			res.Waited++
			t.Logf("vm %d: %s", i, s.Message)
		}
		if res.Seconds[i] > res.AgentTimeout {
			t.Errorf("vm %d converged after %.0f s, beyond the agent's timeout (%.0f s)", i, res.Seconds[i], res.AgentTimeout)
		}
	}
	if res.Limited == 0 {
		t.Errorf("the fleet never met the limit (%d requests served): the test proves nothing about it", res.Served)
	}
	// Every VM's next goal state is a no-op enable: no request at all.
	n.Repo.ResetLog()
	for _, v := range vms {
		v.w.MustApply(v.h, 0, v.w.Pinned())
	}
	res.NoOpRequests = len(n.Repo.Log())
	if res.NoOpRequests != 0 {
		t.Errorf("%d repository requests for %d no-op enables", res.NoOpRequests, FleetSize)
	}
	t.Logf("fleet: %+v", res)
	if path := os.Getenv(fleetEnv); path != "" && !t.Failed() {
		data, _ := json.Marshal(res)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeFleetReport writes docs/fleet.md from one passing run.
func writeFleetReport(r fleetResult, started time.Time, took time.Duration) error {
	top := moduleTop()
	commit := gitOut(top, "rev-parse", "--short", "HEAD")
	dirty := "clean"
	if gitOut(top, "status", "--porcelain", "--untracked-files=no") != "" {
		dirty = "dirty (uncommitted changes to tracked files)"
	}
	secs := append([]float64(nil), r.Seconds...)
	sort.Float64s(secs)
	median := (secs[(len(secs)-1)/2] + secs[len(secs)/2]) / 2
	fresh := r.Fresh["total"]
	const pmcLimit, pmcWindow = 4000, 300.0
	perWindow := pmcLimit / fresh

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# A fleet behind one address and PMC's rate limit\n\n")
	p("<!-- Generated file: do not edit. Regenerate with `go test ./test/e2e -run '^TestFleet$'` (a passing run writes it). -->\n\n")
	p("Generated by `go test ./test/e2e -run '^TestFleet$'` on %s from commit `%s` (working tree %s); the run took %s.\n\n",
		started.UTC().Format("2006-01-02 15:04 UTC"), commit, dirty, took.Round(time.Second))
	p("packages.microsoft.com (PMC) answers 429 Too Many Requests past %d,000 requests per 5 minutes per client address. A scale set or an Azure Policy remediation behind one NAT address shares that budget. This page says what one install asks of it (measured), what %d installs at once against a repository that limits like PMC did (measured), and what that means for larger fleets (computed from the measured figures; not measured).\n\n", pmcLimit/1000, r.Size)

	p("## Requests per install (measured)\n\n")
	p("One %s look-alike alone, the built extension driven by the agent simulator, every request to the fake PMC counted (the metadata service is not PMC and is not counted):\n\n", r.Distro)
	p("| Goal state | Key | Metadata | Packages | Total |\n|---|---:|---:|---:|---:|\n")
	row := func(name string, m map[string]int) {
		p("| %s | %d | %d | %d | %d |\n", name, m["key"], m["metadata"], m["package"], m["total"])
	}
	row("fresh install (install + enable on a new machine)", r.Fresh)
	row("repeated full converge (aadsshlogin installed, recorded state gone: what a failed quick check or changed settings cost)", r.Repeated)
	row("no-op enable (the same goal state again; agent restarts, other extensions' goal states)", r.NoOp)
	p("\nThe fresh install took %.1f s.\n\n", r.FreshSeconds)

	p("## %d installs at once (measured)\n\n", r.Size)
	p("%d machines (%s look-alikes, one root each) in one network namespace start their first goal state at the same moment against one repository limited to %d requests per %.0f s (%d fresh installs' worth, as measured above; a fixed window over all of them, 429 with Retry-After past the limit), so the fleet needs at least %d windows.\n\n", r.Size, r.Distro, r.Limit, r.WindowSeconds, fleetInstallsPerWindow, (r.Size*fresh+r.Limit-1)/r.Limit)
	p("| Measure | Value |\n|---|---:|\n")
	p("| machines converged (exit 0, status success) | %d of %d |\n", r.Size, r.Size)
	p("| machines whose status says they waited (RateLimit substatus) | %d |\n", r.Waited)
	p("| requests served | %d |\n", r.Served)
	p("| 429 answers | %d |\n", r.Limited)
	p("| requests per install, retries included | %.1f |\n", float64(r.Served+r.Limited)/float64(r.Size))
	p("| time to converge per machine: fastest / median / slowest | %.1f s / %.1f s / %.1f s |\n", secs[0], median, secs[len(secs)-1])
	p("| time until the last machine converged | %.1f s |\n", r.WallSeconds)
	p("| agent's install timeout | %.0f s |\n", r.AgentTimeout)
	p("| requests for the %d no-op enables that followed | %d |\n\n", r.Size, r.NoOpRequests)

	p("## What a fleet needs from PMC's limit (computed, not measured)\n\n")
	p("From the measured %d requests per fresh install: PMC's %s requests per 5 minutes serve %d ÷ %d = **%d fresh installs per 5-minute window** from one address without a single 429. A fleet of N machines behind one address needs N × %d requests; when they all start at once, the last one can finish no earlier than in window ⌈N × %d ÷ %d⌉:\n\n",
		fresh, "4,000", pmcLimit, fresh, perWindow, fresh, fresh, pmcLimit)
	p("| N machines | Requests (N × %d) | 5-minute windows needed | All at once? |\n|---:|---:|---:|---|\n", fresh)
	ns := []int{50, 100, 500, perWindow, 1000, 2 * perWindow, 5000}
	sort.Ints(ns)
	for _, N := range slices.Compact(ns) {
		req := N * fresh
		win := (req + pmcLimit - 1) / pmcLimit
		fits := "yes"
		if win > 2 {
			fits = "no: deploy in batches"
		} else if win == 2 {
			fits = "yes, some wait one window"
		}
		p("| %d | %d | %d | %s |\n", N, req, win, fits)
	}
	p("\nThe handler's waits for one package-manager operation add up to at most 270 s, less than one window (bounds below), and the install budget is 825 s: a fleet that needs more than 2 windows from one address should be deployed in batches of at most %d machines per 5 minutes (a scale set's rolling upgrade batch size, or a remediation task per subnet). The test pins the fixture keys with the signingKeyFingerprints setting, which downloads both published key files; with the default settings one key file is downloaded, one request fewer (not measured here).\n", perWindow)
	p("\nA no-op enable makes no request (measured above), so agent restarts and other extensions' goal states cost nothing. A repeated full converge costs %d requests. The arithmetic assumes nothing else behind the same address uses PMC; retries after a 429 add requests (bounded below).\n\n", r.Repeated["total"])

	p("## How the handler waits, and its bounds (design, not measured)\n\n")
	p("- **Its own downloads** (signing keys, repository probes): a 429 or 503 is retried at most 4 times (5 requests per file). Retry-After (seconds or HTTP date) is honoured in full plus up to a quarter more at random; when it points past the verb's time budget the handler stops at once and reports the answer. Without Retry-After: full-jitter backoff from 0.5 s up to 8 s.\n")
	p("- **The package managers** (apt, dnf/yum/tdnf, zypper) do not pass Retry-After on; the handler recognises 429/503 in their output (recordings in `installer/pkgmgr/testdata/throttle/`) and re-runs the refresh or install: at most 6 runs per operation, waits drawn at random between half and all of 10, 20, 40, 80, 120 s (at most 270 s in all), never a wait that leaves less than 30 s of the budget. Each run makes the package manager's own requests and retries (recorded: apt 4 requests per file, dnf 4, zypper 1 on 429 and 4 on 503).\n")
	p("- Other 4xx answers are never retried. When the limits or the budget run out the install fails with exit code 20 (repository unreachable, as for any download failure; the message says it is the rate limit), a message naming HTTP 429 (and PMC's limit) or 503, a `RateLimit` substatus saying how often and how long it waited, and the machine rolled back. After a success that needed waiting the `RateLimit` substatus (warning) says so.\n")

	return os.WriteFile(filepath.Join(top, fleetReport), []byte(b.String()), 0o644)
}

func moduleTop() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

func gitOut(dir string, args ...string) string {
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
