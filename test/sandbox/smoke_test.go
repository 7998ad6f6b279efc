package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/fixtures"
)

const matchLine = "Match User *@*,????????-????-????-????-???????????? # Added by aadsshlogin installer"

// assertWired checks the effects of the aadsshlogin stand-in's install
// scripts (or their absence after removal).
func assertWired(t *testing.T, r *Root, want bool, version string) {
	t.Helper()
	if got := r.Exists("/usr/sbin/aad_certhandler"); got != want {
		t.Errorf("%s: /usr/sbin/aad_certhandler exists=%v, want %v", r.Spec.Name, got, want)
	}
	if want {
		if v := strings.TrimSpace(r.ReadFile("/usr/lib/aadsshlogin-standin/VERSION")); v != version {
			t.Errorf("%s: installed version %q, want %q", r.Spec.Name, v, version)
		}
	}
	nss := r.ReadFile("/etc/nsswitch.conf")
	for _, db := range []string{"passwd", "group"} {
		has := false
		for _, line := range strings.Split(nss, "\n") {
			if strings.HasPrefix(line, db+":") && strings.Contains(line+" ", " aad ") {
				has = true
			}
		}
		if has != want {
			t.Errorf("%s: nsswitch %s has aad=%v, want %v:\n%s", r.Spec.Name, db, has, want, nss)
		}
	}
	sshd := r.ReadFile("/etc/ssh/sshd_config")
	if n := strings.Count(sshd, matchLine); (n == 1) != want || n > 1 {
		t.Errorf("%s: sshd_config has the Match block %d times (want installed=%v):\n%s", r.Spec.Name, n, want, sshd)
	}
	if want && !strings.Contains(sshd, "AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k") {
		t.Errorf("%s: sshd_config lacks AuthorizedKeysCommand", r.Spec.Name)
	}
	pam := r.ReadFile("/etc/pam.d/sshd") + r.ReadFile("/etc/pam.d/common-account")
	if got := strings.Contains(pam, "pam_aad.so"); got != want {
		t.Errorf("%s: PAM mentions pam_aad=%v, want %v", r.Spec.Name, got, want)
	}
}

func timed(t *testing.T, what string, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	t.Logf("%s took %s", what, time.Since(start).Round(time.Millisecond))
}

// repoClient talks to the fake repository server as packages.microsoft.com.
func repoClient(fx *fixtures.Set) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(fx.CACertPEM)
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:443")
			},
		},
	}
}

func TestSmoke(t *testing.T) {
	RunIsolated(t, func(t *testing.T) {
		fx := fixtures.Get(t)
		img := Image(t)
		n := StartNetwork(t, fx, NetworkOptions{IMDS: IMDSOptions{AzEnvironment: "AzurePublicCloud", Identity: IdentityPresent}})

		t.Run("debian-12", func(t *testing.T) {
			r := NewRoot(t, img, Distros["debian-12"], n)
			before := r.Snapshot(t)
			r.WriteFile("/etc/apt/keyrings/microsoft-test.gpg", string(fx.KeyBinary), 0o644)
			r.WriteFile("/etc/apt/sources.list.d/microsoft-prod.list",
				"deb [signed-by=/etc/apt/keyrings/microsoft-test.gpg] https://packages.microsoft.com/repos/microsoft-debian-bookworm-prod bookworm main\n", 0o644)
			timed(t, "apt-get update + install", func() {
				r.MustExec(t, nil, "apt-get", "update")
				r.MustExec(t, nil, "apt-get", "install", "-y", "aadsshlogin")
			})
			assertWired(t, r, true, fx.Versions.New)
			// Re-running the scripts must not duplicate the block.
			r.MustExec(t, nil, "dpkg-reconfigure", "aadsshlogin")
			assertWired(t, r, true, fx.Versions.New)
			out, errOut, code := r.Exec(context.Background(), nil, "sshd", "-T", "-C", "user=a@b.c,host=x,addr=127.0.0.1")
			t.Logf("sshd -T -C user=a@b.c,...: exit %d; authorizedkeyscommand lines: %q; stderr: %s", code,
				grepLines(out, "authorizedkeyscommand"), strings.TrimSpace(errOut))
			t.Logf("changes after install: %d paths, e.g. %v", len(before.Diff(r.Snapshot(t))), head(before.Diff(r.Snapshot(t)), 8))
			r.MustExec(t, nil, "apt-get", "purge", "-y", "aadsshlogin")
			assertWired(t, r, false, "")

			// A repository signed by the other key is refused by apt.
			n.Repo.SetOptions(RepoOptions{OtherKey: true})
			_, errOut, code = r.Exec(context.Background(), nil, "apt-get", "update")
			n.Repo.SetOptions(RepoOptions{})
			if code == 0 && !strings.Contains(errOut, "NO_PUBKEY") {
				t.Errorf("apt-get update accepted a repository signed by the other key: %s", errOut)
			}
			// Local fixture packages install without a repository.
			r.InstallLocalPackage(t, fx.Deb("aadlogin", fx.Versions.AADLogin))
			if !r.Exists("/usr/lib/aadlogin-standin/VERSION") {
				t.Errorf("aadlogin not installed")
			}
			t.Logf("stand-in script log:\n%s", r.ReadFile("/var/lib/aadsshlogin-standin/log"))
		})

		t.Run("rhel-9.4", func(t *testing.T) {
			r := NewRoot(t, img, Distros["rhel-9.4"], n)
			if r.Exists("/usr/bin/apt-get") || r.Exists("/usr/bin/dpkg") {
				t.Errorf("apt-get/dpkg left in an rpm-family root")
			}
			r.WriteFile("/etc/pki/rpm-gpg/test.asc", string(fx.KeyArmored), 0o644)
			r.WriteFile("/etc/yum.repos.d/test.repo", "[test]\nname=test\nbaseurl=https://packages.microsoft.com/rhel/9/prod/\n"+
				"enabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/test.asc\n", 0o644)
			r.MustExec(t, nil, "rpm", "--import", "/etc/pki/rpm-gpg/test.asc")
			timed(t, "dnf install", func() { r.MustExec(t, nil, "dnf", "-y", "install", "aadsshlogin") })
			assertWired(t, r, true, fx.Versions.New)
			timed(t, "yum remove", func() { r.MustExec(t, nil, "yum", "-y", "remove", "aadsshlogin") })
			assertWired(t, r, false, "")
			timed(t, "yum install old version", func() {
				r.MustExec(t, nil, "yum", "-y", "install", "aadsshlogin-"+fx.Versions.Old)
			})
			assertWired(t, r, true, fx.Versions.Old)
			timed(t, "tdnf upgrade", func() { r.MustExec(t, nil, "tdnf", "-y", "upgrade", "aadsshlogin") })
			assertWired(t, r, true, fx.Versions.New)
			r.InstallLocalPackage(t, fx.RPM("selinux-policy-targeted", "38.1.35"))
			r.MustExec(t, nil, "dnf", "-y", "install", "aadsshlogin-selinux")
			if mods := r.MustExec(t, nil, "semodule", "-l"); !strings.Contains(mods, "aad_permissions") {
				t.Errorf("semodule -l = %q, want aad_permissions", mods)
			}
			t.Logf("stand-in script log:\n%s", r.ReadFile("/var/lib/aadsshlogin-standin/log"))
		})

		t.Run("sles-15.5", func(t *testing.T) {
			r := NewRoot(t, img, Distros["sles-15.5"], n)
			r.WriteFile("/etc/pki/test.asc", string(fx.KeyArmored), 0o644)
			r.MustExec(t, nil, "rpm", "--import", "/etc/pki/test.asc")
			r.MustExec(t, nil, "zypper", "--non-interactive", "addrepo", "https://packages.microsoft.com/sles/15/prod/", "microsoft-prod")
			timed(t, "zypper refresh + install", func() {
				r.MustExec(t, nil, "zypper", "--non-interactive", "refresh")
				r.MustExec(t, nil, "zypper", "--non-interactive", "install", "aadsshlogin")
			})
			assertWired(t, r, true, fx.Versions.New)
		})

		t.Run("azurelinux-3.0", func(t *testing.T) {
			r := NewRoot(t, img, Distros["azurelinux-3.0"], n)
			r.AddDistroRepo(t)
			r.MustExec(t, nil, "rpm", "--import", "/etc/pki/rpm-gpg/MICROSOFT-RPM-GPG-KEY")
			timed(t, "tdnf install from the distribution repository", func() {
				r.MustExec(t, nil, "tdnf", "-y", "install", "aadsshlogin")
			})
			assertWired(t, r, true, fx.Versions.New)
		})

		t.Run("imds-and-repo-rules", func(t *testing.T) {
			r := NewRoot(t, img, Distros["ubuntu-22.04"], n)
			before := r.Snapshot(t)
			r.WriteFile("/etc/transient", "x", 0o644)
			r.Remove("/etc/transient")
			if d := before.Diff(r.Snapshot(t)); len(d) != 0 {
				t.Errorf("diff after create+remove = %v", d)
			}
			r.WriteFile("/etc/ssh/sshd_config", r.ReadFile("/etc/ssh/sshd_config")+"# changed\n", 0o644)
			r.Remove("/etc/issue")
			r.WriteFile("/var/log/noise", "x", 0o644)
			want := []string{"- /etc/issue", "~ /etc/ssh/sshd_config"}
			if d := before.Diff(r.Snapshot(t)); strings.Join(d, "|") != strings.Join(want, "|") {
				t.Errorf("diff = %v, want %v", d, want)
			}
			tokenURL := "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"
			out := r.MustExec(t, nil, "busybox", "wget", "-q", "-O", "-", "--header", "Metadata: true", tokenURL)
			if !strings.Contains(out, "access_token") {
				t.Errorf("token answer = %q", out)
			}
			if _, _, code := r.Exec(context.Background(), nil, "busybox", "wget", "-q", "-O", "-", tokenURL); code == 0 {
				t.Errorf("a request without Metadata: true succeeded")
			}
			reqs := n.IMDS.Requests()
			if len(reqs) < 2 || reqs[len(reqs)-2].Metadata != "true" || reqs[len(reqs)-1].StatusCode != http.StatusBadRequest {
				t.Errorf("IMDS requests = %+v", reqs)
			}
			n.IMDS.SetIdentity(IdentityMissing)
			if _, _, code := r.Exec(context.Background(), nil, "busybox", "wget", "-q", "-O", "-", "--header", "Metadata: true", tokenURL); code == 0 {
				t.Errorf("token request succeeded with identity missing")
			}
			n.IMDS.SetIdentityAfter(1, 0)
			for i, wantOK := range []bool{false, true} {
				_, _, code := r.Exec(context.Background(), nil, "busybox", "wget", "-q", "-O", "-", "--header", "Metadata: true", tokenURL)
				if (code == 0) != wantOK {
					t.Errorf("IdentityAfter call %d: exit %d, want success=%v", i+1, code, wantOK)
				}
			}
			n.IMDS.SetIdentity(IdentityPresent)

			c := repoClient(fx)
			for path, want := range map[string]int{
				"/ol/": http.StatusForbidden, "/ol/8/prod/": http.StatusForbidden, "/rocky/": http.StatusOK,
				"/rhel/9/prod/repodata/repomd.xml": http.StatusOK, "/keys/microsoft.asc": http.StatusOK,
				"/nonexistent/": http.StatusNotFound,
			} {
				resp, err := c.Get("https://packages.microsoft.com" + path)
				if err != nil {
					t.Errorf("GET %s: %v", path, err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
				}
			}
			n.Repo.SetOptions(RepoOptions{UseWrongCert: true})
			if resp, err := repoClient(fx).Get("https://packages.microsoft.com/keys/microsoft.asc"); err == nil {
				_ = resp.Body.Close()
				t.Errorf("TLS with the wrong certificate succeeded")
			}
			n.Repo.SetOptions(RepoOptions{})

			// Proxy: CONNECT is recorded; a dead proxy refuses.
			p := StartProxy(t, "127.0.0.1:0")
			dead := DeadProxy(t)
			if _, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, dead))}}).Get("http://127.0.0.1:9/"); err == nil {
				t.Errorf("request through the dead proxy succeeded")
			}
			pc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				Proxy: http.ProxyURL(mustURL(t, p.URL)),
				TLSClientConfig: &tls.Config{RootCAs: func() *x509.CertPool {
					pool := x509.NewCertPool()
					pool.AppendCertsFromPEM(fx.CACertPEM)
					return pool
				}(), ServerName: "packages.microsoft.com", MinVersion: tls.VersionTLS12},
			}}
			resp, err := pc.Get("https://127.0.0.1/keys/microsoft.asc")
			if err != nil {
				t.Fatalf("GET through the proxy: %v", err)
			}
			_ = resp.Body.Close()
			if got := p.Targets(); len(got) != 1 || got[0] != "127.0.0.1:443" {
				t.Errorf("proxy CONNECT targets = %v", got)
			}
		})
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func grepLines(s, substr string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(strings.ToLower(l), substr) {
			out = append(out, l)
		}
	}
	return out
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// TestSmokeSubtest proves RunIsolated works from a subtest whose name
// needs escaping.
func TestSmokeSubtest(t *testing.T) {
	t.Run("inner case (x)", func(t *testing.T) {
		RunIsolated(t, func(t *testing.T) {
			if !Isolated() {
				t.Fatal("not isolated")
			}
			if err := CheckIsolated(); err != nil {
				t.Fatal(err)
			}
			h, _ := os.Hostname()
			if h != "aadssh-sandbox" {
				t.Errorf("hostname %q", h)
			}
			if os.Getpid() != 1 {
				t.Errorf("pid %d, want 1 (new PID namespace)", os.Getpid())
			}
			if _, err := net.DialTimeout("tcp", "192.0.2.1:80", time.Second); err == nil {
				t.Errorf("a non-loopback address is reachable")
			}
		})
	})
}

// TestGuardRefusesInHostNamespace checks the guard outside any sandbox.
func TestGuardRefusesInHostNamespace(t *testing.T) {
	if Isolated() {
		t.Skip("runs in the host namespace only")
	}
	err := CheckIsolated()
	if err == nil {
		t.Fatal("CheckIsolated passed in the host namespace")
	}
	t.Logf("guard: %v", err)
}
