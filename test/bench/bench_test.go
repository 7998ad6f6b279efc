package bench

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/provenance"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// Knobs (environment), with the defaults make bench uses.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

var (
	aptPairs = envInt("AADSSH_BENCH_PAIRS", 11)     // fresh-install pairs on debian-12
	dnfPairs = envInt("AADSSH_BENCH_DNF_PAIRS", 11) // fresh-install pairs on rhel-9.4 (0: skip)
	noopRuns = envInt("AADSSH_BENCH_RUNS", 100)     // no-op enables of each kind
	repeats  = envInt("AADSSH_BENCH_REPEATS", 20)   // repeated installs
)

const (
	aptDistro   = "debian-12"
	dnfDistro   = "rhel-9.4"
	steadyDist  = "debian-12"
	failDistro  = "debian-12"
	warmupRuns  = 3
	sampleEvery = time.Millisecond
)

// TestBenchmarks measures everything docs/benchmarks.md reports, in one
// run. Only with AADSSH_BENCH=1 (make bench).
func TestBenchmarks(t *testing.T) {
	if !enabled() {
		t.Skipf("benchmarks run only with %s=1 (make bench)", BenchEnv)
	}
	start, startLoad := time.Now(), loadAverage()
	if !sandbox.Isolated() {
		// The isolated children inherit the environment: they leave their
		// figures in this folder.
		os.Setenv(outEnv, t.TempDir())
	}

	if want("install-apt") {
		t.Run("install-apt", func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				writeSection(t, "install-apt", runAB(t, aptDistro, aptPairs))
			})
		})
	}
	if dnfPairs > 0 && want("install-dnf") {
		t.Run("install-dnf", func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				writeSection(t, "install-dnf", runAB(t, dnfDistro, dnfPairs))
			})
		})
	}
	if slowAptRounds > 0 && want("slow-distro-apt") {
		t.Run("slow-distro-apt", func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				writeSection(t, "slow-distro-apt", runSlowDistro(t, aptDistro, slowAptRounds))
			})
		})
	}
	if slowDnfRounds > 0 && want("slow-distro-dnf") {
		t.Run("slow-distro-dnf", func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				writeSection(t, "slow-distro-dnf", runSlowDistro(t, dnfDistro, slowDnfRounds))
			})
		})
	}
	if want("steady") {
		t.Run("steady", func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				writeSection(t, "steady", runSteady(t))
			})
		})
	}
	// The IMDS case mostly waits (up to 2 minutes for an identity), so it
	// runs next to the repository cases; neither feeds a ratio.
	if want("failures") {
		t.Run("failures", func(t *testing.T) {
			t.Run("imds-down", func(t *testing.T) {
				t.Parallel()
				sandbox.RunIsolated(t, func(t *testing.T) {
					c := runFailure(t, "IMDS unreachable", "nothing listens on 169.254.169.254:80 (connection refused)",
						sandbox.NetworkOptions{IMDS: sandbox.IMDSOptions{Down: true}})
					writeSection(t, "fail-imds-down", c)
				})
			})
			t.Run("repository", func(t *testing.T) {
				t.Parallel()
				sandbox.RunIsolated(t, func(t *testing.T) {
					t.Run("503", func(t *testing.T) {
						c := runFailure(t, "repository unreachable (HTTP 503)", "the repository answers 503 to every request",
							sandbox.NetworkOptions{Repo: sandbox.RepoOptions{Status: map[string]int{"/": 503}}})
						writeSection(t, "fail-repo-503", c)
					})
					t.Run("wrong-cert", func(t *testing.T) {
						c := runFailure(t, "repository unreachable (untrusted certificate)", "the repository presents a certificate from another CA",
							sandbox.NetworkOptions{Repo: sandbox.RepoOptions{UseWrongCert: true}})
						writeSection(t, "fail-wrong-cert", c)
					})
				})
			})
		})
	}
	if sandbox.Isolated() {
		return
	}
	report(t, start, startLoad)
}

// onlyEnv limits a run to some sections (comma-separated names:
// install-apt, install-dnf, slow-distro-apt, slow-distro-dnf, steady,
// failures), for working on one of them. Such a run writes its partial
// report to the temporary folder, never to docs/benchmarks.md.
const onlyEnv = "AADSSH_BENCH_ONLY"

func want(section string) bool {
	only := os.Getenv(onlyEnv)
	if only == "" {
		return true
	}
	for _, s := range strings.Split(only, ",") {
		if strings.TrimSpace(s) == section {
			return true
		}
	}
	return false
}

// report gathers the sections, adds what the parent measures itself (sizes,
// in-process benchmarks) and writes docs/benchmarks.md.
func report(t *testing.T, start time.Time, startLoad string) {
	dir := os.Getenv(outEnv)
	z := harness.LoadZips(t)
	r := &Report{Machine: DescribeMachine(time.Now()), Version: z.CurrentVersion, LoadStart: startLoad, LoadEnd: loadAverage()}
	if stamp, err := provenance.Current(); err != nil {
		t.Errorf("finding the commit measured: %v", err)
	} else {
		r.Stamp = stamp
	}
	var apt, dnf ABResult
	if readSection(dir, "install-apt", &apt) {
		r.Apt = &apt
	} else {
		r.Missing = append(r.Missing, "fresh install on "+aptDistro)
	}
	if readSection(dir, "install-dnf", &dnf) {
		r.Dnf = &dnf
	} else {
		r.Missing = append(r.Missing, "fresh install on "+dnfDistro)
	}
	var slowApt, slowDnf SlowDistroResult
	if readSection(dir, "slow-distro-apt", &slowApt) {
		r.SlowApt = &slowApt
	} else {
		r.Missing = append(r.Missing, "install with a slow distribution repository on "+aptDistro)
	}
	if readSection(dir, "slow-distro-dnf", &slowDnf) {
		r.SlowDnf = &slowDnf
	} else {
		r.Missing = append(r.Missing, "install with a slow distribution repository on "+dnfDistro)
	}
	var st Steady
	if readSection(dir, "steady", &st) {
		r.Steady = &st
	} else {
		r.Missing = append(r.Missing, "no-op enable, repeated install and memory")
	}
	for _, name := range []string{"fail-imds-down", "fail-repo-503", "fail-wrong-cert"} {
		var c FailureCase
		if readSection(dir, name, &c) {
			r.Failures = append(r.Failures, c)
		} else {
			r.Missing = append(r.Missing, name)
		}
	}
	if s, err := zipSizes(z.Current); err != nil {
		t.Errorf("sizes: %v", err)
		r.Missing = append(r.Missing, "sizes")
	} else {
		r.Sizes = s
	}
	if os.Getenv(onlyEnv) == "" {
		gb, err := goBench()
		if err != nil {
			t.Errorf("in-process benchmarks: %v\n%s", err, gb)
			r.Missing = append(r.Missing, "in-process benchmarks")
		}
		r.GoBench = gb
	} else {
		r.Missing = append(r.Missing, "in-process benchmarks")
	}
	r.TotalTime = time.Since(start)

	doc := filepath.Join(moduleRoot(), "docs", "benchmarks.md")
	if os.Getenv(onlyEnv) != "" {
		doc = filepath.Join(os.TempDir(), "benchmarks-partial.md")
	}
	if err := os.WriteFile(doc, []byte(r.Markdown()), 0o644); err != nil {
		t.Errorf("writing %s: %v", doc, err)
	}
	fmt.Printf("\n%s\nWritten to %s (machine: %s, %d cores, %.1f GiB, Linux %s, %s).\n",
		Table(r.Rows()), doc, r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryGiB, r.Machine.Kernel, r.Machine.GoVersion)
}

func zipSizes(path string) (*Sizes, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	s := &Sizes{Zip: st.Size(), Binaries: map[string]int64{}, Compressed: map[string]int64{}}
	for _, f := range zr.File {
		if strings.HasPrefix(f.Name, "bin/") && !strings.HasSuffix(f.Name, "/") {
			s.Binaries[f.Name] = int64(f.UncompressedSize64)
			s.Compressed[f.Name] = int64(f.CompressedSize64)
		}
	}
	if len(s.Binaries) == 0 {
		return nil, fmt.Errorf("no bin/ entries in %s", path)
	}
	return s, nil
}

// goBench runs the in-process benchmarks with Go's own harness.
func goBench() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goBin, "test", "-run=^$", "-bench=.", "-benchmem", "-count=1",
		"./handler", "./handler/agent", "./settings", "./distro", "./checks")
	cmd.Dir = moduleRoot()
	out, err := cmd.CombinedOutput()
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if l == "PASS" || strings.TrimSpace(l) == "" {
			continue
		}
		keep = append(keep, strings.TrimRight(l, " \t"))
	}
	return strings.Join(keep, "\n") + "\n", err
}

// ---------------------------------------------------------------------------
// Fresh install: the handler (A) against the bare package manager (B).

func managerOf(w *harness.World) string {
	if w.Root.Spec.Family == "deb" {
		return "apt"
	}
	return "dnf"
}

// handlerFiles are the files the handler writes that the bare path copies.
func handlerFiles(family string) []string {
	if family == "deb" {
		return []string{harness.AptList, harness.AptKeyring}
	}
	return []string{harness.YumRepo, harness.RPMKey}
}

func bareCommands(family string) (setup, refresh, install []string) {
	if family == "deb" {
		return nil, []string{"apt-get", "update"}, []string{"apt-get", "install", "-y", "aadsshlogin"}
	}
	return []string{"rpm", "--import", harness.RPMKey}, []string{"dnf", "-y", "makecache"}, []string{"dnf", "-y", "install", "aadsshlogin"}
}

// sshdProbe is the handler's sshd -T check, with the throwaway host key it
// makes when the image has none.
const sshdProbe = `sshd -T -C user=root,host=localhost,addr=127.0.0.1 >/dev/null 2>&1 || ` +
	`{ d=$(mktemp -d) && ssh-keygen -q -t ed25519 -N "" -f "$d/k" && sshd -T -C user=root,host=localhost,addr=127.0.0.1 -h "$d/k" >/dev/null; rm -rf "$d"; }`

// extraStep is one command the handler's install runs beyond the bare
// path, with a short label for the report.
type extraStep struct {
	label string
	argv  []string
}

// extraSteps are the package-manager and sshd commands the handler's
// install runs beyond the bare path. dpkg --audit runs only when dpkg's
// files show an interrupted run, and the OpenSSH version comes from the
// package query, so neither is replayed on apt. The rpm look-alikes run
// Debian's sshd, which their rpm database does not know: there the handler
// asks sshd -V, as it would on a machine with a hand-built sshd.
func extraSteps(family string) []extraStep {
	sshdT := extraStep{"sshd -T -C user=…,host=localhost,addr=127.0.0.1 (with a throwaway host key when the image has none)", []string{"sh", "-c", sshdProbe}}
	if family == "deb" {
		// The targeted refresh of our source and the availability query
		// run only when something failed, so they are not replayed.
		return []extraStep{
			{"dpkg-query -W aadlogin aadlogin-selinux openssh-server openssh (obsolete packages, OpenSSH version)", []string{"dpkg-query", "-W", "aadlogin", "aadlogin-selinux", "openssh-server", "openssh"}},
			{"dpkg-query -W aadsshlogin-selinux aadsshlogin selinux-policy-default (before)", []string{"dpkg-query", "-W", "aadsshlogin-selinux", "aadsshlogin", "selinux-policy-default"}},
			{"dpkg-query -W aadsshlogin (after)", []string{"dpkg-query", "-W", "aadsshlogin"}},
			sshdT,
		}
	}
	return []extraStep{
		{"rpm -q aadlogin aadlogin-selinux openssh-server openssh (obsolete packages, OpenSSH version)", []string{"rpm", "-q", "aadlogin", "aadlogin-selinux", "openssh-server", "openssh"}},
		{"sshd -V (no openssh-server rpm in the look-alike)", []string{"sshd", "-V"}},
		{"rpm -q gpg-pubkey-… (the key)", []string{"rpm", "-q", "gpg-pubkey-19703ddb"}},
		{"rpm -q aadsshlogin-selinux aadsshlogin selinux-policy-targeted (before)", []string{"rpm", "-q", "aadsshlogin-selinux", "aadsshlogin", "selinux-policy-targeted"}},
		{"rpm -q aadsshlogin (after)", []string{"rpm", "-q", "aadsshlogin"}},
		sshdT,
	}
}

func runAB(t *testing.T, distro string, pairs int) ABResult {
	res := ABResult{Distro: distro}
	var files map[string][]byte // what the handler wrote in its first root
	for i := 0; i < pairs; i++ {
		p := ABPair{Order: "AB"}
		if i%2 == 1 {
			p.Order = "BA"
		}
		for _, side := range p.Order {
			name := fmt.Sprintf("pair%d-%c", i+1, side)
			ok := t.Run(name, func(t *testing.T) {
				w := harness.NewWorld(t, distro, sandbox.NetworkOptions{})
				res.Manager = managerOf(w)
				if side == 'A' {
					files = handlerSide(t, w, &p, files)
				} else {
					bareSide(t, w, &res, &p, files)
				}
			})
			if !ok {
				t.Fatalf("%s failed; stopping the comparison", name)
			}
		}
		p.Ratio = p.Install / p.BareTotal
		p.RatioEnable = p.InstallEnable / p.BareTotal
		t.Logf("pair %d (%s): handler install %.2fs (+enable %.2fs), bare %.2fs (refresh %.2fs, install %.2fs), ratio %.2f; extra commands %.2fs",
			i+1, p.Order, p.Install, p.InstallEnable, p.BareTotal, p.BareRefresh, p.BareInstall, p.Ratio, p.BareExtra)
		res.Pairs = append(res.Pairs, p)
	}
	return res
}

func handlerSide(t *testing.T, w *harness.World, p *ABPair, files map[string][]byte) map[string][]byte {
	h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
	results := w.MustApply(h, 0, w.Pinned())
	var install, enable time.Duration
	for _, r := range results {
		switch r.Verb {
		case agentsim.Install:
			install = r.Duration
		case agentsim.Enable:
			enable = r.Duration
		}
	}
	if install == 0 || enable == 0 {
		t.Fatalf("expected install and enable, ran %v", harness.Verbs(results))
	}
	if w.Installed("aadsshlogin") == "" {
		t.Fatal("aadsshlogin not installed by the handler")
	}
	p.Install, p.InstallEnable = install.Seconds(), (install + enable).Seconds()
	if files == nil {
		files = map[string][]byte{}
		for _, f := range handlerFiles(w.Root.Spec.Family) {
			data, err := os.ReadFile(w.Root.Path(f))
			if err != nil {
				t.Fatalf("the handler did not write %s: %v", f, err)
			}
			files[f] = data
		}
	}
	return files
}

func bareSide(t *testing.T, w *harness.World, res *ABResult, p *ABPair, files map[string][]byte) {
	if files == nil {
		t.Fatal("the bare path needs the handler's files: the first pair must run A first")
	}
	ctx := context.Background()
	setup, refresh, install := bareCommands(w.Root.Spec.Family)
	res.BareCommands = commandLines(setup, refresh, install)

	start := time.Now()
	writeRootFiles(t, w, files)
	timedExec(t, w, setup)
	p.BareSetup = time.Since(start).Seconds()
	p.BareRefresh = timedExec(t, w, refresh).Seconds()
	p.BareInstall = timedExec(t, w, install).Seconds()
	p.BareTotal = time.Since(start).Seconds()
	if w.Installed("aadsshlogin") == "" {
		t.Fatal("aadsshlogin not installed by the bare path")
	}

	res.ExtraSteps = nil
	extraStart := time.Now()
	for _, c := range extraSteps(w.Root.Spec.Family) {
		res.ExtraSteps = append(res.ExtraSteps, c.label)
		one := time.Now()
		w.Root.Exec(ctx, nil, c.argv...) // exit codes do not matter: only the time
		p.ExtraEach = append(p.ExtraEach, time.Since(one).Seconds())
	}
	p.BareExtra = time.Since(extraStart).Seconds()
}

// timedExec runs argv in w's root and returns how long it took; a nil argv
// runs nothing and takes no time, a failing command ends the test.
func timedExec(t *testing.T, w *harness.World, argv []string) time.Duration {
	t.Helper()
	if argv == nil {
		return 0
	}
	start := time.Now()
	out, errOut, code := w.Root.Exec(context.Background(), nil, argv...)
	d := time.Since(start)
	if code != 0 {
		t.Fatalf("%s: exit %d\n%s\n%s", strings.Join(argv, " "), code, out, errOut)
	}
	return d
}

// commandLines are the commands that are not nil, as the report shows them.
func commandLines(cmds ...[]string) []string {
	var out []string
	for _, c := range cmds {
		if c != nil {
			out = append(out, strings.Join(c, " "))
		}
	}
	return out
}

// writeRootFiles writes the handler's files (path in the root → content)
// into w's root byte for byte, in path order.
func writeRootFiles(t *testing.T, w *harness.World, files map[string][]byte) {
	t.Helper()
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		if err := os.MkdirAll(filepath.Dir(w.Root.Path(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(w.Root.Path(f), files[f], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// ---------------------------------------------------------------------------
// The installed handler: no-op enable, repeated install, memory per verb.

// directRun is one start of the handler binary without the agent's shell.
type directRun struct {
	d        time.Duration
	cpu      time.Duration // user + system time of the handler (and waited-for children)
	exit     int
	hwmKB    int64
	maxrssKB int64
	samples  int
	output   string
}

// runDirect starts the handler binary chrooted into the root, with cwd
// the handler directory and the agent's environment, as the entry script
// would exec it. With sample, /proc/<pid>/status is polled for VmHWM.
func runDirect(t *testing.T, w *harness.World, h *agentsim.Handler, env []string, verb string, sample bool) directRun {
	t.Helper()
	sandbox.MustBeIsolated(t)
	bin := h.Dir + "/bin/aadsshlogin-handler-" + runtime.GOARCH
	cmd := exec.Command(bin, verb)
	cmd.Dir = h.Dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: w.Root.Dir, Setsid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s %s: %v", bin, verb, err)
	}
	var r directRun
	done := make(chan struct{})
	sampled := make(chan struct{})
	if sample {
		// The root has its own /proc for this PID namespace.
		status := w.Root.Path(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		go func() {
			defer close(sampled)
			for {
				if kb, ok := vmHWM(status); ok {
					r.hwmKB = max(r.hwmKB, kb)
					r.samples++
				}
				select {
				case <-done:
					return
				case <-time.After(sampleEvery):
				}
			}
		}()
	} else {
		close(sampled)
	}
	err := cmd.Wait()
	r.d = time.Since(start)
	close(done)
	<-sampled
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%s %s: %v", bin, verb, err)
		}
	}
	r.exit = cmd.ProcessState.ExitCode()
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxrssKB = ru.Maxrss
	}
	r.output = out.String()
	return r
}

// vmHWM reads the VmHWM line (kB) of a /proc/<pid>/status file; false when
// the process is gone or already a zombie (its memory map released).
func vmHWM(path string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb, err == nil
		}
	}
	return 0, false
}

// agentEnv is the environment the agent gave a command, as a list, with
// the agent's own PATH on top (what the entry script passes on).
func agentEnv(vars map[string]string, extra ...string) []string {
	m := map[string]string{}
	for k, v := range vars {
		m[k] = v
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	m["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runSteady(t *testing.T) Steady {
	ctx := context.Background()
	s := Steady{Distro: steadyDist}
	w := harness.NewWorld(t, steadyDist, sandbox.NetworkOptions{})
	h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
	results := w.MustApply(h, 0, w.Pinned())
	last := results[len(results)-1]
	if last.Verb != agentsim.Enable || last.ExitCode != 0 {
		t.Fatalf("install + enable ran %v", harness.Verbs(results))
	}
	env := agentEnv(last.Env)
	// IMDS: every request, which must all be token requests (the fast
	// path's one identity check per enable).
	counts := func() (repo, imds int) { return len(w.Net.Repo.Requests()), len(w.Net.IMDS.Requests()) }
	tokens := w.Net.IMDS.TokenRequests
	statusFile := w.Root.Path(h.Dir + "/status/0.status")
	statusBefore, err := os.ReadFile(statusFile)
	if err != nil {
		t.Fatalf("no status for seq 0: %v", err)
	}
	agentEnable := func() agentsim.CommandResult {
		r := w.Agent.Run(ctx, h, agentsim.Enable, 0, map[string]string{agentsim.EnvUninstallExitCode: agentsim.NotRun})
		if r.Failed() {
			t.Fatalf("no-op enable failed: %s", r.AgentMessage)
		}
		return r
	}
	directEnable := func() directRun {
		r := runDirect(t, w, h, env, "enable", false)
		if r.exit != 0 {
			t.Fatalf("no-op enable (binary) exit %d: %s", r.exit, r.output)
		}
		return r
	}

	// The floor: the same start with a verb the handler refuses at once.
	startOnly := func() directRun {
		r := runDirect(t, w, h, env, "no-such-verb", false)
		if r.exit == 0 {
			t.Fatalf("unknown verb succeeded: %s", r.output)
		}
		return r
	}

	// No-op enable: the kinds alternate, after a short warm-up.
	for range warmupRuns {
		agentEnable()
		directEnable()
		startOnly()
	}
	repo0, imds0 := counts()
	tokens0 := tokens()
	for range noopRuns {
		s.NoopEnableAgentMS = append(s.NoopEnableAgentMS, msOf(agentEnable().Duration))
		d := directEnable()
		s.NoopEnableBinaryMS = append(s.NoopEnableBinaryMS, msOf(d.d))
		s.NoopEnableCPUMS = append(s.NoopEnableCPUMS, msOf(d.cpu))
		f := startOnly()
		s.StartFloorMS = append(s.StartFloorMS, msOf(f.d))
		s.StartFloorCPUMS = append(s.StartFloorCPUMS, msOf(f.cpu))
	}
	repo1, imds1 := counts()
	s.NoopRepoRequests, s.NoopIMDSRequests, s.NoopEnables = repo1-repo0, imds1-imds0, 2*noopRuns
	if s.NoopRepoRequests != 0 || s.NoopIMDSRequests != s.NoopEnables || tokens()-tokens0 != s.NoopEnables {
		t.Errorf("%d no-op enables made %d repository requests (want 0) and %d IMDS requests, %d of them token requests (want one token request each)",
			s.NoopEnables, s.NoopRepoRequests, s.NoopIMDSRequests, tokens()-tokens0)
	}
	statusAfter, _ := os.ReadFile(statusFile)
	s.NoopStatusUnchanged = bytes.Equal(statusBefore, statusAfter)
	w.WantStatus(h, 0, "success", 0)
	t.Logf("no-op enable: agent median %.1f ms, binary median %.1f ms", Median(s.NoopEnableAgentMS), Median(s.NoopEnableBinaryMS))

	// Repeated install (agent retry) with everything in place.
	for range repeats {
		r := w.Agent.Run(ctx, h, agentsim.Install, 0, map[string]string{agentsim.EnvUninstallExitCode: agentsim.NotRun})
		if r.Failed() {
			t.Fatalf("repeated install failed: %s", r.AgentMessage)
		}
		s.RepeatInstallS = append(s.RepeatInstallS, r.Duration.Seconds())
	}
	repo2, imds2 := counts()
	s.RepeatRepoRequests, s.RepeatIMDSRequests = repo2-repo1, imds2-imds1
	if s.RepeatRepoRequests != 0 {
		t.Errorf("repeated installs reached the repository: %v", w.Net.Repo.Requests()[repo1:])
	}
	t.Logf("repeated install: median %.3f s", Median(s.RepeatInstallS))

	// Peak memory per verb, the binary started directly.
	cur := w.Zips.CurrentVersion
	steps := []struct {
		verb, what string
		children   bool
		extra      []string
	}{
		{"enable", "installed, same seq: no-op", false, nil},
		{"install", "installed: nothing to do", false, nil},
		{"disable", "leaves login configured", false, nil},
		{"update", "upgrade step: full converge (refresh + install)", true,
			[]string{"VERSION=" + cur, agentsim.EnvUpdatingFrom + "=" + cur, agentsim.EnvDisableExitCode + "=0"}},
		{"uninstall", "removes the packages", true, nil},
		{"install", "fresh: key, repository, packages, verification", true, nil},
		{"enable", "first enable after install", false, nil},
	}
	for _, st := range steps {
		r := runDirect(t, w, h, agentEnv(last.Env, st.extra...), st.verb, true)
		if r.exit != 0 {
			t.Errorf("%s (%s): exit %d\n%s", st.verb, st.what, r.exit, r.output)
		}
		if r.samples == 0 {
			t.Errorf("%s: no memory sample taken", st.verb)
		}
		s.Memory = append(s.Memory, MemRun{Verb: st.verb, What: st.what, Exit: r.exit, Seconds: r.d.Seconds(),
			VmHWMKB: r.hwmKB, MaxRSSKB: r.maxrssKB, Samples: r.samples, Children: st.children})
		t.Logf("memory %s (%s): VmHWM %d kB, wait4 maxrss %d kB, %d samples, %s", st.verb, st.what, r.hwmKB, r.maxrssKB, r.samples, r.d.Round(time.Millisecond))
	}
	if w.Installed("aadsshlogin") == "" {
		t.Error("aadsshlogin missing after the fresh install of the memory runs")
	}
	return s
}

// ---------------------------------------------------------------------------
// Unreachable dependencies.

func runFailure(t *testing.T, name, setup string, o sandbox.NetworkOptions) FailureCase {
	w := harness.NewWorld(t, failDistro, o)
	h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
	results, err := w.Apply(h, 0, w.Pinned())
	if err == nil {
		t.Fatalf("%s: the install succeeded", name)
	}
	var inst *agentsim.CommandResult
	for i := range results {
		if results[i].Verb == agentsim.Install {
			inst = &results[i]
		}
	}
	if inst == nil {
		t.Fatalf("%s: install did not run: %v", name, harness.Verbs(results))
	}
	st := w.Agent.ReadStatus(h, 0)
	c := FailureCase{Name: name, Setup: setup, Seconds: inst.Duration.Seconds(), Exit: inst.ExitCode,
		Status: st.Status, Code: st.Code, Message: st.Message, TimedOut: inst.TimedOut}
	t.Logf("%s: exit %d after %s, status %s/%d", name, c.Exit, inst.Duration.Round(time.Millisecond), c.Status, c.Code)
	return c
}
