package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// arm64Image is the Debian image built for arm64. On an amd64 machine
// every program in its roots (the shell that runs the entry script, the
// handler, apt, dpkg, dnf, rpm and the packages' scripts) runs under
// qemu-user through binfmt_misc; sandbox.RunIsolatedOn skips, or with
// AADSSH_E2E_REQUIRED=1 fails, when the machine cannot do that.
var arm64Image = sandbox.LookAlikeImage.On("arm64")

// handlerLog is the handler's log inside a root.
const handlerLog = "/var/log/azure/" + handlerName + "/handler.log"

// TestArm64 runs the zip's arm64 binary through the lifecycle the agent
// drives (install and enable, enable again, disable, uninstall) on apt
// and rpm distributions, with the arm64 stand-in packages from the
// repositories laid out like packages.microsoft.com. Ubuntu 18.04 adds the
// multiarch repository, Azure Linux the repository folder the handler
// names after its own architecture.
func TestArm64(t *testing.T) {
	cases := []struct {
		distro   string
		repoFile string
		// repoLine is written by the handler; where it holds the
		// architecture, only the arm64 binary writes it.
		repoLine string
		pkgArch  string // the installed package's architecture, as its package manager names it
	}{
		{"ubuntu-22.04", aptList,
			"deb [arch=arm64 signed-by=" + harness.AptKeyring + "] " + pmc + "/repos/microsoft-ubuntu-jammy-prod jammy main", "arm64"},
		// Ubuntu 18.04's arm64 packages are only in the multiarch
		// repository (bionic-prod's arm64 index is empty in the fixture).
		{"ubuntu-18.04", aptList,
			"deb [arch=arm64 signed-by=" + harness.AptKeyring + "] " + pmc + "/repos/microsoft-ubuntu-bionic-multiarch-prod bionic main", "arm64"},
		{"rhel-9.4", yumRepo, "baseurl=" + pmc + "/rhel/9/prod/", "aarch64"},
		{"azurelinux-3.0", yumRepo, "baseurl=" + pmc + "/azurelinux/3.0/prod/ms-non-oss/aarch64", "aarch64"},
	}
	for _, c := range cases {
		t.Run(c.distro, func(t *testing.T) {
			sandbox.RunIsolatedOn(t, arm64Image, func(t *testing.T, image string) {
				start := time.Now()
				w := harness.NewWorldOn(t, image, c.distro, sandbox.NetworkOptions{})
				ctx := context.Background()
				step := func(what string, since time.Time) {
					t.Logf("arm64 %s: %s took %s", c.distro, what, time.Since(since).Round(100*time.Millisecond))
				}
				step("preparing the root", start)

				// The root is an arm64 machine as its programs see it.
				if w.Root.Arch != "arm64" {
					t.Fatalf("root built on a %s image", w.Root.Arch)
				}
				for _, argv := range [][]string{{"uname", "-m"}, {"cat", "/proc/sys/kernel/arch"}} {
					if out := strings.TrimSpace(w.Root.MustExec(t, nil, argv...)); out != "aarch64" {
						t.Fatalf("%s in the root says %q, want aarch64", strings.Join(argv, " "), out)
					}
				}

				h := w.Deploy(w.Zips.Current, w.Zips.CurrentVersion)
				for _, arch := range []string{"amd64", "arm64"} {
					bin := w.Root.Path(h.Dir + "/bin/aadsshlogin-handler-" + arch)
					if got, err := sandbox.ELFArch(bin); err != nil || got != arch {
						t.Fatalf("the zip's %s binary is %q (%v)", arch, got, err)
					}
				}

				// 1. install + enable.
				t0 := time.Now()
				res := w.MustApply(h, 0, w.Pinned())
				step("install and enable", t0)
				if got := verbs(res); len(got) != 2 {
					t.Fatalf("first goal state ran %v, want install and enable", got)
				}
				st := w.WantStatus(h, 0, "success", 0)
				if !strings.Contains(st.Message, "aadsshlogin "+w.Fx.Versions.New) {
					t.Errorf("status message: %q", st.Message)
				}
				if repo := w.Root.ReadFile(c.repoFile); !strings.Contains(repo, c.repoLine+"\n") {
					t.Errorf("%s lacks %q:\n%s", c.repoFile, c.repoLine, repo)
				}
				if got := w.Installed("aadsshlogin"); got != w.Fx.Versions.New {
					t.Errorf("aadsshlogin %q installed, want %s", got, w.Fx.Versions.New)
				}
				if got := installedArch(t, w, "aadsshlogin"); got != c.pkgArch {
					t.Errorf("the installed aadsshlogin is for %q, want %s", got, c.pkgArch)
				}
				if !w.Wired() {
					t.Error("sshd/NSS not wired after the install")
				}
				if got := w.Marker(); got != w.Zips.CurrentVersion {
					t.Errorf("version marker %q", got)
				}

				// 2. The same goal state again: enable only; its one request
				// is the identity check (one IMDS token request), the
				// repository is not contacted.
				repoBefore, tokens := len(w.Net.Repo.Requests()), w.Net.IMDS.TokenRequests()
				imdsBefore := len(w.Net.IMDS.Requests())
				t0 = time.Now()
				res = w.MustApply(h, 0, w.Pinned())
				step("repeated enable", t0)
				if lastExit(t, res, agentsim.Enable) != 0 || len(res) != 1 {
					t.Errorf("repeated goal state ran %v", verbs(res))
				}
				if n := len(w.Net.Repo.Requests()) - repoBefore; n != 0 {
					t.Errorf("a no-op enable reached the repository: %d requests", n)
				}
				if n, all := w.Net.IMDS.TokenRequests()-tokens, len(w.Net.IMDS.Requests())-imdsBefore; n != 1 || all != 1 {
					t.Errorf("a no-op enable made %d IMDS requests, %d token requests; want exactly one token request", all, n)
				}

				// 3. Disable keeps login configured.
				t0 = time.Now()
				cr, err := w.Agent.Disable(ctx, h, 0)
				step("disable", t0)
				w.LogResults([]agentsim.CommandResult{cr})
				if err != nil || cr.ExitCode != 0 {
					t.Fatalf("disable: exit %d, %v", cr.ExitCode, err)
				}
				if !w.Wired() {
					t.Error("disable unwired SSH login")
				}

				// 4. Uninstall removes what the install added.
				t0 = time.Now()
				res, err = w.Agent.Uninstall(ctx, h, 0)
				step("uninstall", t0)
				w.LogResults(res)
				if err != nil || lastExit(t, res, agentsim.Uninstall) != 0 {
					t.Fatalf("uninstall: %v %v", err, verbs(res))
				}
				if v := w.Installed("aadsshlogin"); v != "" {
					t.Errorf("aadsshlogin %s still installed after uninstall", v)
				}
				if w.Wired() {
					t.Error("sshd/NSS still reference aadsshlogin after uninstall")
				}
				for _, p := range []string{c.repoFile, harness.StateDir, markerPath} {
					if w.Root.Exists(p) {
						t.Errorf("%s left behind after uninstall", p)
					}
				}

				// Every command the agent ran was the arm64 binary: it says
				// so when it starts (install, enable twice, disable,
				// uninstall).
				started := startedArches(w.Root.ReadFile(handlerLog))
				if len(started) != 5 {
					t.Errorf("the log has %d start lines, want 5 (install, enable, enable, disable, uninstall): %v", len(started), started)
				}
				for _, a := range started {
					if a != "arm64" {
						t.Errorf("a %s binary ran: %v", a, started)
						break
					}
				}
				step("the whole test", start)
			})
		})
	}
}

// installedArch returns the architecture of an installed package as the
// root's package database records it.
func installedArch(t *testing.T, w *world, pkg string) string {
	t.Helper()
	if w.Root.Spec.Family == "deb" {
		return strings.TrimSpace(w.Root.MustExec(t, nil, "dpkg-query", "-W", "-f=${Architecture}", pkg))
	}
	return strings.TrimSpace(w.Root.MustExec(t, nil, "rpm", "-q", "--qf", "%{ARCH}", pkg))
}

var startedLine = regexp.MustCompile(`msg=started arch=(\S+)`)

// startedArches lists the architecture of each handler start in a log.
func startedArches(log string) []string {
	var out []string
	for _, m := range startedLine.FindAllStringSubmatch(log, -1) {
		out = append(out, m[1])
	}
	return out
}
