package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/sandbox"
)

// RecordEnv names the folder TestRecordThrottledOutput writes its
// recordings to; without it the test is skipped. The recordings in
// installer/pkgmgr/testdata/throttle/ were made with
//
//	AADSSH_RECORD=$PWD/installer/pkgmgr/testdata/throttle go test ./test/e2e -run TestRecordThrottledOutput
const RecordEnv = "AADSSH_RECORD"

// TestRecordThrottledOutput records what the real apt, dnf and zypper print
// when packages.microsoft.com answers 429 (with Retry-After) or 503 to
// every metadata or package request: the package-manager retry decorator
// recognises a rate limit only from this output.
func TestRecordThrottledOutput(t *testing.T) {
	dir := os.Getenv(RecordEnv)
	if dir == "" {
		t.Skip("set " + RecordEnv + " to a folder to record package-manager output")
	}
	type step struct {
		name  string
		match []string
		prep  []string // run first, output discarded
		cmd   []string
	}
	plans := map[string][]step{
		"debian-12": {
			{"apt-update", []string{"/dists/"}, nil, []string{"apt-get", "update"}},
			{"apt-install", []string{".deb"}, []string{"apt-get", "clean"}, []string{"apt-get", "install", "-y", "--reinstall", "aadsshlogin"}},
		},
		"rhel-9.4": {
			{"dnf-makecache", []string{"/repodata/"}, []string{"dnf", "clean", "all"}, []string{"dnf", "-y", "makecache"}},
			{"dnf-install", []string{".rpm"}, []string{"dnf", "clean", "packages"}, []string{"dnf", "-y", "reinstall", "aadsshlogin"}},
		},
		"sles-15.6": {
			{"zypper-refresh", []string{"/repodata/"}, nil, []string{"zypper", "--non-interactive", "refresh", "--force"}},
			{"zypper-install", []string{".rpm"}, []string{"zypper", "clean", "--all"}, []string{"zypper", "--non-interactive", "install", "--force", "aadsshlogin"}},
		},
	}
	for _, distro := range []string{"debian-12", "rhel-9.4", "sles-15.6"} {
		t.Run(distro, func(t *testing.T) {
			sandbox.RunIsolated(t, func(t *testing.T) {
				w := newWorld(t, distro, sandbox.NetworkOptions{})
				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				w.MustApply(h, 0, w.Pinned())
				for _, s := range plans[distro] {
					for _, code := range []int{429, 503} {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
						env := []string{"LC_ALL=C", "LANG=C"}
						if s.prep != nil {
							w.Root.Exec(ctx, env, s.prep...)
						}
						b := &sandbox.Burst{Match: s.match, Status: code, Count: -1}
						if code == 429 {
							b.RetryAfter = "1"
						}
						w.Net.Repo.SetOptions(sandbox.RepoOptions{Bursts: []*sandbox.Burst{b}})
						start := time.Now()
						out, errOut, exit := w.Root.Exec(ctx, env, s.cmd...)
						took := time.Since(start)
						cancel()
						w.Net.Repo.SetOptions(sandbox.RepoOptions{})
						name := fmt.Sprintf("%s-%d.txt", s.name, code)
						t.Logf("%s: exit %d after %s, %d answers %d", name, exit, took.Round(time.Millisecond), b.Answered(), code)
						text := fmt.Sprintf("# %s (%s look-alike): every request whose path contains %q answered %d%s\n# exit %d after %s; the server answered %d requests with %d\n%s%s",
							strings.Join(s.cmd, " "), distro, s.match, code, map[bool]string{true: " with Retry-After: 1"}[code == 429],
							exit, took.Round(100*time.Millisecond), b.Answered(), code, out, errOut)
						if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
							t.Fatal(err)
						}
					}
				}
			})
		})
	}
}
