package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// BenchEnv=1 turns the measuring test on (make bench). Without it the
// package's tests are cheap: no zip is built and TestBenchmarks skips.
const BenchEnv = "AADSSH_BENCH"

// outEnv names the folder where each isolated section leaves its figures
// for the parent process, which writes the report.
const outEnv = "AADSSH_BENCH_OUT"

func enabled() bool { return os.Getenv(BenchEnv) == "1" }

// TestMain builds the extension zip once, in the parent process and only
// when the benchmarks run, and hands it to the isolated children the way
// harness.Main does (only the current version is needed here).
func TestMain(m *testing.M) {
	if !enabled() || sandbox.Isolated() || os.Getenv(harness.ZipsEnv) != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "aadssh-bench-zips-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	z, err := buildZip(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the extension zip:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	data, _ := json.Marshal(z)
	os.Setenv(harness.ZipsEnv, string(data))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildZip runs scripts/package.sh (what make package runs) into dir.
func buildZip(dir string) (harness.Zips, error) {
	top := moduleRoot()
	raw, err := os.ReadFile(filepath.Join(top, "VERSION"))
	if err != nil {
		return harness.Zips{}, err
	}
	version := strings.TrimSpace(string(raw))
	cmd := exec.Command("sh", filepath.Join(top, "scripts/package.sh"), dir)
	cmd.Dir = top
	cmd.Env = append(os.Environ(), "PACKAGE_VERSION="+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		return harness.Zips{}, fmt.Errorf("%v\n%s", err, out)
	}
	return harness.Zips{Current: filepath.Join(dir, harness.HandlerName+"-"+version+".zip"), CurrentVersion: version}, nil
}

// moduleRoot finds the folder holding go.mod above the working directory.
func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// writeSection stores one section's figures for the parent.
func writeSection(t *testing.T, name string, v any) {
	t.Helper()
	dir := os.Getenv(outEnv)
	if dir == "" {
		t.Fatalf("%s is not set", outEnv)
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readSection loads a section's figures; false when the section left none.
func readSection(dir, name string, v any) bool {
	data, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return false
	}
	return json.Unmarshal(data, v) == nil
}
