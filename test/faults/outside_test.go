package faults

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/harness"
	"github.com/aadsshlogin/handler/test/sandbox"
)

const agentPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// TestProxiesAndUserFiles: the agent's environment sets a proxy, and the
// user has files of their own where the handler writes.
func TestProxiesAndUserFiles(t *testing.T) {
	runCases(t, []faultCase{
		{
			Name:   "dead-proxy",
			Fault:  "https_proxy/http_proxy in the agent's environment point at a closed port",
			Expect: "IMDS still reached directly (never proxied); the download fails with exit 20 and the NetworkDiagnosis substatus names the proxy; machine unchanged",
			Run:    deadProxy,
		},
		{
			Name:   "working-proxy",
			Fault:  "https_proxy/http_proxy point at a working proxy",
			Expect: "success; the proxy saw CONNECT packages.microsoft.com:443; IMDS not proxied",
			Run:    workingProxy,
		},
		{
			Name:   "user-repository-file",
			Fault:  "the user has their own /etc/apt/sources.list.d/microsoft-prod.list (no managed header, mode 0640); the first install fails (404)",
			Expect: "failed install: the file restored byte for byte; successful install: saved under /var/lib/aadsshlogin-handler/backup/; uninstall restores it (content and mode)",
			Run:    userRepoFile,
		},
		{
			Name:   "customised-sshd-config",
			Fault:  "/etc/ssh/sshd_config has the user's own extra settings",
			Expect: "install adds the Entra ID block and keeps the user's lines; uninstall removes only the block",
			Run:    customSSHD,
		},
	})
}

func deadProxy(t *testing.T, f *fx) {
	dead := sandbox.DeadProxy(t)
	f.Agent.BaseEnv = []string{agentPath, "https_proxy=" + dead, "http_proxy=" + dead}
	before := f.Root.Snapshot(t)
	res, exit := f.apply(0, f.pinned(), agentsim.Install)
	st := f.wantRefused(res, exit, 0, 20, before, pmcHost)
	diag := substatus(st, "NetworkDiagnosis")
	addr := strings.TrimPrefix(dead, "http://")
	if !strings.Contains(diag, "proxy") || !strings.Contains(diag, addr) {
		t.Errorf("NetworkDiagnosis does not name the proxy %s: %q", addr, diag)
	}
	f.wantIMDSDirect()
	f.Agent.BaseEnv = nil
	f.recover(1)
}

func workingProxy(t *testing.T, f *fx) {
	// The proxy runs in this test process, which resolves names with
	// /etc/hosts as this (private) mount namespace sees it: show it the
	// root's, which maps packages.microsoft.com to the fake repository.
	// The bind mount exists only in this child's mount namespace.
	if err := unix.Mount(f.Root.Path("/etc/hosts"), "/etc/hosts", "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("showing the root's /etc/hosts to the proxy: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount("/etc/hosts", unix.MNT_DETACH) })
	p := sandbox.StartProxy(t, "127.0.0.1:0")
	f.Agent.BaseEnv = []string{agentPath, "https_proxy=" + p.URL, "http_proxy=" + p.URL}
	res, exit := f.apply(0, f.pinned(), agentsim.Enable)
	if exit != 0 {
		t.Fatalf("install through a working proxy failed: %v", harness.Verbs(res))
	}
	f.wantHealthy(0)
	if !slices.Contains(p.Targets(), pmcHost+":443") {
		t.Errorf("the proxy did not see CONNECT %s:443: %v", pmcHost, p.Targets())
	}
	for _, r := range p.Requests() {
		if strings.Contains(r, "169.254.169.254") {
			t.Errorf("IMDS request sent to the proxy: %s", r)
		}
	}
	for _, tg := range p.Targets() {
		if strings.HasPrefix(tg, "169.254.169.254") {
			t.Errorf("IMDS tunnelled through the proxy: %s", tg)
		}
	}
	f.wantIMDSDirect()
	f.Agent.BaseEnv = nil
	f.recover(1)
}

// wantIMDSDirect: the metadata service was asked, and never via a proxy.
func (f *fx) wantIMDSDirect() {
	f.t.Helper()
	reqs := f.Net.IMDS.Requests()
	if len(reqs) == 0 {
		f.t.Error("the metadata service was never asked")
	}
	for _, r := range reqs {
		if r.Proxied || r.StatusCode != 200 {
			f.t.Errorf("IMDS request %s: proxied %v, status %d", r.Path, r.Proxied, r.StatusCode)
		}
	}
}

func userRepoFile(t *testing.T, f *fx) {
	const mine = "# my own copy of the Microsoft repository\n" +
		"deb [arch=amd64 signed-by=/usr/share/keyrings/my-microsoft.gpg] https://packages.microsoft.com/repos/microsoft-debian-bookworm-prod bookworm main\n"
	const mode = 0o640
	f.Root.WriteFile(harness.AptList, mine, mode)
	wantMine := func(when string) {
		t.Helper()
		if got := f.Root.ReadFile(harness.AptList); got != mine {
			t.Errorf("%s: the user's %s is not restored byte for byte:\n%s", when, harness.AptList, got)
		}
		if st, err := os.Stat(f.Root.Path(harness.AptList)); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: the user's %s has mode %v (%v), want %v", when, harness.AptList, st.Mode().Perm(), err, os.FileMode(mode))
		}
	}

	// 1. A failed install puts the file back and keeps no copy.
	f.Net.Repo.SetRule("/repos/", 404)
	before := f.Root.Snapshot(t)
	res, exit := f.apply(0, f.pinned(), agentsim.Install)
	f.wantRefused(res, exit, 0, 20, before)
	wantMine("after the failed install")
	f.Net.Repo.SetRule("/repos/", 0)

	// 2. A successful install keeps a copy under the state folder.
	f.recover(1)
	backup := harness.StateDir + "/backup/etc__apt__sources.list.d__microsoft-prod.list"
	if got := f.Root.ReadFile(backup); got != mine {
		t.Errorf("the user's file is not saved as %s: %q", backup, got)
	}
	if st := f.Status(f.h, 1); !strings.Contains(substatus(st, "Repository"), "saved as "+backup) {
		t.Errorf("the status does not mention the saved copy: %q", substatus(st, "Repository"))
	}

	// 3. Uninstall restores it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := f.Agent.Uninstall(ctx, f.h, 1)
	f.LogResults(res)
	if err != nil || harness.LastExit(t, res, agentsim.Uninstall) != 0 {
		t.Fatalf("uninstall failed: %v %v", err, harness.Verbs(res))
	}
	wantMine("after uninstall")
	if f.Root.Exists(harness.StateDir) {
		t.Errorf("%s left after uninstall", harness.StateDir)
	}
	f.wantPackageDBClean()
	f.wantUnitsActive()
}

func customSSHD(t *testing.T, f *fx) {
	const extra = "\n# site hardening (the user's own)\nClientAliveInterval 120\nMaxAuthTries 3\nAllowGroups ssh-users admins\n"
	orig := f.Root.ReadFile("/etc/ssh/sshd_config")
	custom := orig + extra
	f.Root.WriteFile("/etc/ssh/sshd_config", custom, 0o644)
	wantUsers := func(when string) string {
		t.Helper()
		got := f.Root.ReadFile("/etc/ssh/sshd_config")
		if !strings.HasPrefix(got, custom) && !strings.Contains(got, extra) {
			t.Errorf("%s: the user's sshd_config lines are gone:\n%s", when, got)
		}
		return got
	}
	res, exit := f.apply(0, f.pinned(), agentsim.Enable)
	if exit != 0 {
		t.Fatalf("install failed: %v", harness.Verbs(res))
	}
	f.wantHealthy(0)
	wantUsers("after install")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := f.Agent.Uninstall(ctx, f.h, 0)
	f.LogResults(res)
	if err != nil || harness.LastExit(t, res, agentsim.Uninstall) != 0 {
		t.Fatalf("uninstall failed: %v %v", err, harness.Verbs(res))
	}
	got := wantUsers("after uninstall")
	if strings.Contains(got, "aad_certhandler") {
		t.Errorf("the Entra ID block is still in sshd_config after uninstall:\n%s", got)
	}
	// The Entra ID block goes with its blank lines; every line of the
	// user's stays, in order.
	if !slices.Equal(strings.Fields(got), strings.Fields(custom)) {
		t.Errorf("sshd_config after uninstall is not the customised original (white space aside):\n%q\nwant\n%q", got, custom)
	}
	f.wantPackageDBClean()
	f.wantUnitsActive()

	// The next normal run (a new install) succeeds again.
	h := f.Deploy(f.Zips.Current, f.Zips.CurrentVersion)
	f.h = h
	f.recover(1)
	wantUsers("after reinstall")
}
