package require

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// skipCall matches a direct t.Skip, t.Skipf or t.SkipNow.
var skipCall = regexp.MustCompile(`\b[a-z]+\.Skip(f|Now)?\(`)

// allowedSkips are the reasons a test may skip by itself even in CI: it is
// opt-in by design (-short, make bench, make demo, re-recording outputs),
// or it is the half of a
// test that runs in another process (a re-executed child or helper).
var allowedSkips = []string{"testing.Short()", "BenchEnv", "demoEnv", "RecordEnv", "PrepareEnv", "helper process", "host namespace", "isolated child"}

// TestNoSkipEscapesCI: every other skip for a missing prerequisite goes
// through SkipOrFail, so that with AADSSH_E2E_REQUIRED=1 (make test, CI) it
// is a failure: a green CI run means every tier ran.
func TestNoSkipEscapesCI(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || p == filepath.Join(root, "test", "require")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		var window []string // this line and the three before it
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			window = append(window, line)
			if len(window) > 4 {
				window = window[1:]
			}
			if !skipCall.MatchString(line) || strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			checked++
			ctx := strings.Join(window, "\n")
			ok := false
			for _, a := range allowedSkips {
				ok = ok || strings.Contains(ctx, a)
			}
			if !ok {
				rel, _ := filepath.Rel(root, p)
				t.Errorf("%s:%d skips without require.SkipOrFail, so CI would pass without running it: %s", rel, n, strings.TrimSpace(line))
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no skip found at all: the scan is not looking at the repository")
	}
}

func TestSkipOrFail(t *testing.T) {
	t.Setenv(Env, "")
	if Required() {
		t.Fatal("Required without the variable")
	}
	t.Setenv(Env, "1")
	if !Required() {
		t.Fatal("not Required with the variable")
	}
}
