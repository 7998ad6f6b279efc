package pkgmgr

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantFailure checks that err is a *failure.Error with code and a message
// containing every fragment.
func wantFailure(t *testing.T, err error, code failure.Code, fragments ...string) {
	t.Helper()
	var fe *failure.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *failure.Error", err)
	}
	if fe.Code != code {
		t.Errorf("code = %s, want %s (message %q)", fe.Code.Name(), code.Name(), fe.Msg)
	}
	for _, f := range fragments {
		if !strings.Contains(fe.Msg, f) {
			t.Errorf("message %q lacks %q", fe.Msg, f)
		}
	}
	if strings.Contains(fe.Msg, "\n") {
		t.Errorf("message %q spans lines", fe.Msg)
	}
}

func TestRefreshFailureFixtures(t *testing.T) {
	cases := []struct {
		fixture string
		exit    int
		code    failure.Code
		frags   []string
	}{
		{"apt-update-nopubkey.txt", 100, failure.UntrustedKey, []string{"NO_PUBKEY EB3E94ADBE1229CF", "signingKeyFingerprints"}},
		{"apt-update-badsig.txt", 0, failure.UntrustedKey, []string{"BADSIG EB3E94ADBE1229CF"}},
		{"apt-update-resolve.txt", 0, failure.RepositoryUnreachable, []string{"https://packages.microsoft.com/ubuntu/20.04/prod", "Temporary failure resolving 'packages.microsoft.com'"}},
		{"apt-update-resolve-old.txt", 0, failure.RepositoryUnreachable, []string{"https://packages.microsoft.com/ubuntu/16.04/prod", "Could not resolve 'packages.microsoft.com'"}},
		{"apt-update-cert.txt", 100, failure.RepositoryUnreachable, []string{"https://127.0.0.1:8443", "Certificate verification failed"}},
		{"apt-update-404.txt", 100, failure.RepositoryUnreachable, []string{"https://packages.microsoft.com/debian/13/prod", "404  Not Found"}},
		{"apt-update-403.txt", 100, failure.RepositoryUnreachable, []string{"403  Forbidden"}},
		{"dnf-makecache-resolve.txt", 1, failure.RepositoryUnreachable, []string{"https://packages.microsoft.com/rhel/9/prod/repodata/repomd.xml", "Couldn't resolve host name"}},
		{"dnf-makecache-gpg.txt", 1, failure.UntrustedKey, []string{"GPG signature verification error: Bad GPG signature"}},
		{"dnf-makecache-skipped.txt", 0, failure.RepositoryUnreachable, []string{"https://packages.microsoft.com/rhel/10/prod/repodata/repomd.xml", "Status code: 404"}},
		{"yum-makecache-errno14.txt", 1, failure.RepositoryUnreachable, []string{"https://packages.microsoft.com/rhel/7/prod/repodata/repomd.xml", "Network is unreachable"}},
		{"tdnf-makecache-fail.txt", 1, failure.RepositoryUnreachable, []string{"https://packages.microsoft.com/azurelinux/3.0/", "resolve host name"}},
		{"tdnf-makecache-sig.txt", 1, failure.UntrustedKey, []string{"signature verification failed"}},
		{"zypper-refresh-resolve.txt", 4, failure.RepositoryUnreachable, []string{"https://packages.microsoft.com/sles/15/prod/", "Could not resolve host: packages.microsoft.com"}},
		{"zypper-refresh-unknownkey.txt", 4, failure.UntrustedKey, []string{"Signature verification failed for repomd.xml"}},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			res := cmdrun.Result{Stdout: []byte(fixture(t, c.fixture)), ExitCode: c.exit}
			err := refreshFailure("'packages-microsoft-com-prod'", "tool", res, "tool refresh")
			wantFailure(t, err, c.code, c.frags...)
			t.Log(failure.MessageOf(err))
		})
	}
	ok := cmdrun.Result{Stdout: []byte(fixture(t, "apt-update-ok.txt"))}
	if err := refreshFailure("x", "apt-get", ok, "apt-get update"); err != nil {
		t.Errorf("clean update: %v", err)
	}
	other := cmdrun.Result{Stderr: []byte("E: Something odd happened\n"), ExitCode: 100}
	wantFailure(t, refreshFailure("x", "apt-get", other, "apt-get update"), failure.PackageManagerFailed, "exit code 100", "Something odd happened", "sudo apt-get update")
}

func TestOpFailureFixtures(t *testing.T) {
	cases := []struct {
		fixture string
		tool    string
		exit    int
		code    failure.Code
		frags   []string
	}{
		{"apt-install-lock.txt", "apt-get", 100, failure.PackageManagerLocked, []string{"busy: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 3131 (unattended-upgr). Wait"}},
		{"apt-install-lock-old.txt", "apt-get", 100, failure.PackageManagerLocked, []string{"/var/lib/dpkg/lock-frontend"}},
		{"apt-install-notfound.txt", "apt-get", 100, failure.PackageManagerFailed, []string{"Failed to install aadsshlogin with apt-get (exit code 100): Unable to locate package aadsshlogin. To see the full error, run on the VM: sudo apt-get install aadsshlogin"}},
		{"apt-install-depends.txt", "apt-get", 100, failure.PackageManagerFailed, []string{"aadsshlogin : Depends: libcurl4 (>= 7.16.2) but it is not installable"}},
		{"apt-install-postinst.txt", "apt-get", 100, failure.PackageManagerFailed, []string{"dpkg: error processing package aadsshlogin (--configure): installed aadsshlogin package post-installation script subprocess returned error exit status 1"}},
		{"apt-install-fetch404.txt", "apt-get", 100, failure.RepositoryUnreachable, []string{"aadsshlogin_1.0.031620001_amd64.deb", "404  Not Found"}},
		{"dnf-install-nomatch.txt", "dnf", 1, failure.PackageManagerFailed, []string{"(exit code 1): No match for argument: aadsshlogin", "sudo dnf install aadsshlogin"}},
		{"dnf-install-depends.txt", "dnf", 1, failure.PackageManagerFailed, []string{"nothing provides libcurl.so.4()(64bit) needed by aadsshlogin"}},
		{"dnf-install-nokey.txt", "dnf", 1, failure.UntrustedKey, []string{"Public key for aadsshlogin-1.0.031620001-1.x86_64.rpm is not installed"}},
		{"yum-install-lock.txt", "yum", 1, failure.PackageManagerLocked, []string{"another copy is running as pid 2345"}},
		{"yum-install-nopkg.txt", "yum", 1, failure.PackageManagerFailed, []string{"No package aadsshlogin available"}},
		{"tdnf-install-nomatch.txt", "tdnf", 1011, failure.PackageManagerFailed, []string{"Error(1011) : No matching packages"}},
		{"zypper-install-locked.txt", "zypper", 7, failure.PackageManagerLocked, []string{"System management is locked by the application with pid 4711 (zypper)"}},
		{"zypper-install-noprovider.txt", "zypper", 104, failure.PackageManagerFailed, []string{"(exit code 104): No provider of 'aadsshlogin' found"}},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			res := cmdrun.Result{Stdout: []byte(fixture(t, c.fixture)), ExitCode: c.exit}
			err := opFailure("install", c.tool, []string{"aadsshlogin"}, res, c.tool+" install aadsshlogin")
			wantFailure(t, err, c.code, c.frags...)
			t.Log(failure.MessageOf(err))
		})
	}
}

func TestDecisiveLineFallsBack(t *testing.T) {
	if got := decisiveLine("line one\nline two\n\n"); got != "line two" {
		t.Errorf("got %q", got)
	}
	if got := decisiveLine(""); got != "" {
		t.Errorf("got %q", got)
	}
	long := "E: " + strings.Repeat("x", 500)
	if got := decisiveLine("E: Unable to locate package aadsshlogin"); got != "Unable to locate package aadsshlogin" {
		t.Errorf("got %q", got)
	}
	if got := decisiveLine(long); len([]rune(got)) != 300 {
		t.Errorf("not clipped: %d", len(got))
	}
}

// apt3Exits reads the exit codes of the recordings in testdata/apt3 from
// their SOURCE files ("<file>: exit <n>: <command>").
func apt3Exits(t *testing.T) map[string]int {
	t.Helper()
	exits := map[string]int{}
	for _, src := range []string{"apt3/SOURCE", "apt3/v30-SOURCE"} {
		for _, l := range strings.Split(fixture(t, src), "\n") {
			file, rest, ok := strings.Cut(l, ": exit ")
			if !ok {
				continue
			}
			code, _, _ := strings.Cut(rest, ":")
			n, err := strconv.Atoi(code)
			if err != nil {
				t.Fatalf("%s: %q", src, l)
			}
			exits[file] = n
		}
	}
	return exits
}

// TestApt3Recordings classifies what real apt 3.0.4 printed in a Debian 13
// root (TestAptRealTrixie recorded it), with apt-get's default output
// ("E:"/"W:") and with APT::Output-Version 30 ("Error:"/"Warning:"): sqv's
// signature failures are untrusted keys, HTTP, connection, name and TLS
// failures unreachable repositories, a held lock names its holder, and the
// rest quote the line that explains them without a severity prefix.
func TestApt3Recordings(t *testing.T) {
	exits := apt3Exits(t)
	cases := []struct {
		name    string
		install bool
		code    failure.Code // 0: no failure
		frags   []string
	}{
		{"update-ok", false, 0, nil},
		{"update-with-local", false, 0, nil},
		{"update-wrongkey", false, failure.UntrustedKey, []string{"signature check: Missing key D69D1AAEC5C623AF94F8E70870FEACE7597B4A48, which is needed to verify signature. It is not signed"}},
		{"update-nokeyring", false, failure.UntrustedKey, []string{`check: Failed to parse keyring "/etc/apt/keyrings/microsoft-aadsshlogin.gpg"`, "No such file or directory"}},
		{"update-keybox", false, failure.UntrustedKey, []string{`check: Failed to parse keyring "/etc/apt/keyrings/microsoft-aadsshlogin.gpg" Caused by: 0: Reading`, "EOF"}},
		{"update-sha1-binding", false, failure.UntrustedKey, []string{"check: Signing key on ", " is not bound: No binding signature at time", "because: SHA1 is not considered secure since 2026-02-01"}},
		{"update-404", false, failure.RepositoryUnreachable, []string{"https://packages.microsoft.com/repos/microsoft-debian-nosuch-prod", "404  Not Found"}},
		{"update-403", false, failure.RepositoryUnreachable, []string{"https://packages.microsoft.com/ol/9/prod/dists/trixie/InRelease", "403  Forbidden"}},
		{"update-refused", false, failure.RepositoryUnreachable, []string{"https://mirror.example.test:8443/", "Could not connect to mirror.example.test:8443 (127.0.0.1). - connect (111: Connection refused)"}},
		{"update-resolve", false, failure.RepositoryUnreachable, []string{"Temporary failure resolving 'nosuchhost.example.invalid'"}},
		{"update-cert", false, failure.RepositoryUnreachable, []string{"SSL connection failed: error:0A000086:SSL routines::certificate verify failed"}},
		{"install-ok", true, 0, nil},
		{"install-fetch404", true, failure.RepositoryUnreachable, []string{"aadsshlogin_1.0.031620001_amd64.deb could not be downloaded: 404  Not Found"}},
		{"install-lock", true, failure.PackageManagerLocked, []string{"busy: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process ", "(pkgmgr.test). Wait"}},
		{"install-interrupted", true, failure.PackageManagerFailed, []string{"(exit code 100): dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem. To see"}},
		{"install-notfound", true, failure.PackageManagerFailed, []string{"(exit code 100): Unable to locate package nosuchpackage. To see"}},
		{"install-depends", true, failure.PackageManagerFailed, []string{"(exit code 100): brokendep : Depends: libaadssh-missing (>= 1) but it is not installable. To see"}},
	}
	for _, prefix := range []string{"", "v30-"} {
		for _, c := range cases {
			file := prefix + c.name + ".txt"
			t.Run(file, func(t *testing.T) {
				exit, ok := exits[file]
				if !ok {
					t.Fatalf("%s is not in the SOURCE files", file)
				}
				out := fixture(t, "apt3/"+file)
				if prefix != "" && c.code != 0 && !strings.Contains(out, "Error: ") && !strings.Contains(out, "Warning: ") {
					t.Fatalf("%s has no apt 3 severity prefix", file)
				}
				res := cmdrun.Result{Stdout: []byte(out), ExitCode: exit}
				var err error
				if c.install {
					if exit != 0 {
						err = opFailure("install", "apt-get", []string{"aadsshlogin"}, res, "apt-get install aadsshlogin")
					}
				} else {
					err = refreshFailure("in /etc/apt/sources.list.d/microsoft-prod.list", "apt-get", res, "apt-get update")
				}
				if c.code == 0 {
					if err != nil || classify(out) != classOther {
						t.Fatalf("a clean run failed: %v (class %d)", err, classify(out))
					}
					return
				}
				wantFailure(t, err, c.code, c.frags...)
				msg := failure.MessageOf(err)
				for _, p := range []string{"E: ", "W: ", "Error: ", "Warning: ", "Notice: ", "Sub-process /usr/bin/sqv"} {
					if strings.Contains(msg, p) {
						t.Errorf("message quotes %q: %s", p, msg)
					}
				}
				t.Log(msg)
			})
		}
	}
}
