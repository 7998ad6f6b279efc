// Package e2e drives the built extension zip through the agent simulator
// inside isolated distro look-alike roots, with real package managers, a fake
// metadata service and signed repositories served as packages.microsoft.com.
//
// The parent test process builds the zips once (TestMain) and hands their
// paths to the isolated children through the environment.
package e2e

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
	handlerName   = "Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux"
	legacyVersion = "1.0.2385.1"
	zipsEnv       = "AADSSH_E2E_ZIPS"
)

// zips are the packages under test.
type zips struct {
	Current        string // built from the tree at VERSION
	CurrentVersion string
	Next           string // the same code at the next version, for update tests
	NextVersion    string
	Legacy         string // a stand-in for the shipped 1.0.2385.1 (testdata)
}

func TestMain(m *testing.M) {
	if sandbox.Isolated() || os.Getenv(zipsEnv) != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "aadssh-e2e-zips-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	z, err := buildZips(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the extension zips:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	data, _ := json.Marshal(z)
	os.Setenv(zipsEnv, string(data))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildZips(dir string) (zips, error) {
	top, err := filepath.Abs("../..")
	if err != nil {
		return zips{}, err
	}
	raw, err := os.ReadFile(filepath.Join(top, "VERSION"))
	if err != nil {
		return zips{}, err
	}
	cur := strings.TrimSpace(string(raw))
	next := bumpVersion(cur)
	z := zips{CurrentVersion: cur, NextVersion: next}
	for _, b := range []struct {
		version string
		out     *string
	}{{cur, &z.Current}, {next, &z.Next}} {
		outDir := filepath.Join(dir, b.version)
		cmd := exec.Command("sh", filepath.Join(top, "scripts/package.sh"), outDir)
		cmd.Env = append(os.Environ(), "PACKAGE_VERSION="+b.version)
		cmd.Dir = top
		if out, err := cmd.CombinedOutput(); err != nil {
			return zips{}, fmt.Errorf("package %s: %v\n%s", b.version, err, out)
		}
		*b.out = filepath.Join(outDir, handlerName+"-"+b.version+".zip")
	}
	z.Legacy = filepath.Join(dir, handlerName+"-"+legacyVersion+".zip")
	if err := zipDir(filepath.Join(top, "test/e2e/testdata/legacy-"+legacyVersion), z.Legacy); err != nil {
		return zips{}, err
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

func loadZips(t *testing.T) zips {
	t.Helper()
	var z zips
	if err := json.Unmarshal([]byte(os.Getenv(zipsEnv)), &z); err != nil || z.Current == "" {
		t.Fatalf("%s not set: the zips are built by TestMain in the parent process", zipsEnv)
	}
	return z
}
