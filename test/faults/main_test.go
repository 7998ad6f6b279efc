// Package faults is the fault-injection suite (issue 5): each case injects
// one fault into an isolated machine (a distro look-alike root, the fake
// metadata service and repository, the agent simulator driving the built
// zip), and checks the exit code, the status, what is left on disk, and that
// the next normal run succeeds.
//
// Every case runs in its own isolated child process (sandbox.RunIsolated).
// The child appends one JSON line with its result to the file named by
// ResultsEnv; after a full run (no -run/-skip filter) the parent writes
// docs/reliability.md from those lines.
package faults

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/provenance"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// ResultsEnv names the file the isolated children append their result rows
// to; the parent sets it, the children inherit it.
const ResultsEnv = "AADSSH_FAULTS_RESULTS"

// reportPath is the generated table, relative to the module root.
const reportPath = "docs/reliability.md"

func TestMain(m *testing.M) { os.Exit(mainWithReport(m)) }

func mainWithReport(m *testing.M) int {
	if sandbox.Isolated() {
		return harness.Main(m)
	}
	flag.Parse()
	// Cases limit their own concurrency (see heavy in cases_test.go): the
	// metadata-service cases mostly wait for the handler's 2-minute
	// identity window and must not queue behind the CPU-bound ones, so
	// the testing package's own limit is lifted unless the caller set it.
	if !flagSet("test.parallel") {
		_ = flag.Set("test.parallel", "64")
	}
	f, err := os.CreateTemp("", "aadssh-faults-*.jsonl")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults: results file:", err)
		return 1
	}
	results := f.Name()
	_ = f.Close()
	defer os.Remove(results)
	os.Setenv(ResultsEnv, results)

	code := harness.Main(m)

	if why := partialRun(); why != "" {
		fmt.Fprintf(os.Stderr, "faults: %s not regenerated (%s)\n", reportPath, why)
		return code
	}
	if err := writeReport(results); err != nil {
		fmt.Fprintf(os.Stderr, "faults: writing %s: %v\n", reportPath, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// partialRun says why this run does not cover the whole suite ("" when it
// does): the table is only ever generated from a complete run.
func partialRun() string {
	for _, name := range []string{"test.run", "test.skip", "test.list"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return "-" + strings.TrimPrefix(name, "test.") + " " + f.Value.String()
		}
	}
	if f := flag.Lookup("test.failfast"); f != nil && f.Value.String() == "true" {
		return "-failfast"
	}
	started.mu.Lock()
	defer started.mu.Unlock()
	if len(started.cases) == 0 {
		return "no case ran"
	}
	for name, c := range started.cases {
		if c.skipped {
			return "case " + name + " was skipped"
		}
	}
	return ""
}

// row is one line of the results file and of the table.
type row struct {
	Case     string  `json:"case"`
	Fault    string  `json:"fault"`
	Expect   string  `json:"expect"`
	Passed   bool    `json:"passed"`
	Seconds  float64 `json:"seconds"`
	Recorded bool    `json:"-"`
}

// started lists, in the parent, every case handed to an isolated child, so
// a child that died before recording its row still shows up as failed.
var started = struct {
	mu    sync.Mutex
	cases map[string]*startedCase
}{cases: map[string]*startedCase{}}

type startedCase struct {
	fault, expect string
	skipped       bool
}

func noteStarted(name string, c faultCase) *startedCase {
	started.mu.Lock()
	defer started.mu.Unlock()
	s := &startedCase{fault: c.Fault, expect: c.Expect}
	started.cases[name] = s
	return s
}

// recordResult appends the case's row to the results file (child side).
func recordResult(t *testing.T, c faultCase, start time.Time) {
	path := os.Getenv(ResultsEnv)
	if path == "" {
		return
	}
	r := row{Case: t.Name(), Fault: c.Fault, Expect: c.Expect, Passed: !t.Failed() && !t.Skipped(),
		Seconds: time.Since(start).Seconds()}
	data, _ := json.Marshal(r)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Logf("faults: cannot record the result: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(data, '\n')); err != nil {
		t.Logf("faults: cannot record the result: %v", err)
	}
}

func readRows(path string) (map[string]row, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rows := map[string]row{}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var r row
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("results line %q: %w", line, err)
		}
		r.Recorded = true
		rows[r.Case] = r
	}
	return rows, nil
}

func writeReport(results string) error {
	rows, err := readRows(results)
	if err != nil {
		return err
	}
	started.mu.Lock()
	for name, c := range started.cases {
		if _, ok := rows[name]; !ok {
			rows[name] = row{Case: name, Fault: c.fault, Expect: c.expect}
		}
	}
	started.mu.Unlock()
	var list []row
	passed := 0
	for _, r := range rows {
		list = append(list, r)
		if r.Passed {
			passed++
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Case < list[j].Case })

	var b strings.Builder
	b.WriteString("# Reliability: fault-injection results\n\n")
	b.WriteString("<!-- Generated file: do not edit. Regenerate with `go test ./test/faults` (a full run, no -run filter). -->\n\n")
	stamp, err := provenance.Current()
	if err != nil {
		return fmt.Errorf("finding the commit the report describes: %w", err)
	}
	b.WriteString(stamp.Marker() + "\n\n")
	fmt.Fprintf(&b, "Generated by `go test ./test/faults` (`make test` runs it) from %s on %s.\n\n", stamp.Sentence(), time.Now().UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString("Each case injects one fault into an isolated machine (a distribution look-alike root, the fake\n")
	b.WriteString("metadata service and packages.microsoft.com, the agent simulator running the built zip) and checks the\n")
	b.WriteString("exit code, the status file, what is left on disk, and that the next normal run succeeds.\n\n")
	fmt.Fprintf(&b, "**%d of %d cases passed.**\n\n", passed, len(list))
	b.WriteString("| Case | Fault | Expected behaviour | Result | Duration |\n|---|---|---|---|---:|\n")
	for _, r := range list {
		result := "pass"
		switch {
		case !r.Recorded:
			result = "**fail** (no result recorded)"
		case !r.Passed:
			result = "**fail**"
		}
		dur := "–"
		if r.Recorded {
			dur = fmt.Sprintf("%.1f s", r.Seconds)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(r.Case), cell(r.Fault), cell(r.Expect), result, dur)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, reportPath), []byte(b.String()), 0o644)
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}
