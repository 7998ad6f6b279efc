// Package harness is shared by the end-to-end tests, the fault suite, the
// benchmarks and the demo: it builds the extension zips, and gives each
// isolated test a World — a distro look-alike root, the fake outside world
// (metadata service, repositories) and an agent simulator managing the
// extension in it.
package harness

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/test/sandbox"
)

const (
	HandlerName   = "Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux"
	LegacyVersion = "1.0.2385.1"
	ZipsEnv       = "AADSSH_E2E_ZIPS"
)

// Zips are the packages under test.
type Zips struct {
	Current        string // built from the tree at VERSION
	CurrentVersion string
	Next           string // the same code at the next version, for update tests
	NextVersion    string
	Legacy         string // a stand-in for the shipped 1.0.2385.1 (testdata)
}

// Main is TestMain for packages that use World: the parent process builds
// the zips once and hands their paths to the isolated children through the
// environment. It returns the exit code for os.Exit.
func Main(m *testing.M) int {
	if sandbox.Isolated() || os.Getenv(ZipsEnv) != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "aadssh-zips-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	z, err := BuildZips(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the extension zips:", err)
		return 1
	}
	data, _ := json.Marshal(z)
	os.Setenv(ZipsEnv, string(data))
	return m.Run()
}

// BuildZips builds the current and the next version of the extension and
// the 1.0.2385.1 stand-in into dir.
func BuildZips(dir string) (Zips, error) {
	top, err := filepath.Abs(moduleRoot())
	if err != nil {
		return Zips{}, err
	}
	raw, err := os.ReadFile(filepath.Join(top, "VERSION"))
	if err != nil {
		return Zips{}, err
	}
	cur := strings.TrimSpace(string(raw))
	next := bumpVersion(cur)
	z := Zips{CurrentVersion: cur, NextVersion: next}
	for _, b := range []struct {
		version string
		out     *string
	}{{cur, &z.Current}, {next, &z.Next}} {
		outDir := filepath.Join(dir, b.version)
		cmd := exec.Command("sh", filepath.Join(top, "scripts/package.sh"), outDir)
		cmd.Env = append(os.Environ(), "PACKAGE_VERSION="+b.version)
		cmd.Dir = top
		if out, err := cmd.CombinedOutput(); err != nil {
			return Zips{}, fmt.Errorf("package %s: %v\n%s", b.version, err, out)
		}
		*b.out = filepath.Join(outDir, HandlerName+"-"+b.version+".zip")
	}
	z.Legacy = filepath.Join(dir, HandlerName+"-"+LegacyVersion+".zip")
	if err := zipDir(filepath.Join(top, "test/harness/testdata/legacy-"+LegacyVersion), z.Legacy); err != nil {
		return Zips{}, err
	}
	return z, nil
}

// bumpVersion adds one to the last component: 1.0.3000.1 -> 1.0.3000.2.
func bumpVersion(v string) string {
	parts := strings.Split(v, ".")
	n, _ := strconv.Atoi(parts[len(parts)-1])
	parts[len(parts)-1] = strconv.Itoa(n + 1)
	return strings.Join(parts, ".")
}

func zipDir(src, dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		w, err := zw.Create(e.Name())
		if err != nil {
			return err
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		_, err = io.Copy(w, in)
		in.Close()
		if err != nil {
			return err
		}
	}
	return zw.Close()
}

// LoadZips returns the zips Main built.
func LoadZips(t testing.TB) Zips {
	t.Helper()
	var z Zips
	if err := json.Unmarshal([]byte(os.Getenv(ZipsEnv)), &z); err != nil || z.Current == "" {
		t.Fatalf("%s not set: the zips are built by harness.Main in the parent process", ZipsEnv)
	}
	return z
}

// moduleRoot finds the module's top folder from the working directory (go
// test runs in the package folder).
func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}
