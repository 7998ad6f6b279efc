package pkgmgr

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
)

// FuzzClassify feeds arbitrary package-manager output (stdout, stderr and
// an exit code) through everything that interprets it: the classification,
// the line pickers, the failure constructors for install/remove and refresh,
// and the list parsers. None may panic, each failure must carry one of the
// codes a package-manager problem can have, and the quoted lines stay short.
func FuzzClassify(f *testing.F) {
	f.Add("", "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (apt-get)", 100)
	f.Add("Err:1 https://packages.microsoft.com/repos/x bookworm InRelease\n  Could not connect to packages.microsoft.com:443 (127.0.0.1). - connect (111: Connection refused)",
		"W: Failed to fetch https://packages.microsoft.com/repos/x/dists/bookworm/InRelease  Could not connect", 100)
	f.Add("", "W: GPG error: https://packages.microsoft.com bookworm InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY EB3E94ADBE1229CF", 100)
	f.Add("Setting up aadsshlogin (1.0) ...\ndpkg: error processing package aadsshlogin (--configure):\n installed aadsshlogin package post-installation script subprocess returned error exit status 1\nErrors were encountered while processing:\n aadsshlogin",
		"E: Sub-process /usr/bin/dpkg returned an error code (1)", 100)
	f.Add("aadsshlogin.x86_64   1.0.031620001-1   packages-microsoft-com-prod\naadsshlogin.x86_64\n     1.0.030000001-1   @System", "", 0)
	f.Add("S | Name | Type | Version | Arch | Repository\n--+------+------+--------+------+-----------\n  | aadsshlogin | package | 1.0 | x86_64 | microsoft-prod", "", 0)
	f.Add("", "Error: Failed to download metadata for repo 'packages-microsoft-com-prod': Cannot download repomd.xml: Curl error (60): SSL peer certificate or SSH remote key was not OK for https://packages.microsoft.com/rhel/9/prod/repodata/repomd.xml", 1)
	f.Add("\r\n\xff\xfe E: \n- \n", "Error:\n", -1)
	f.Fuzz(func(t *testing.T, stdout, stderr string, exit int) {
		res := cmdrun.Result{Stdout: []byte(stdout), Stderr: []byte(stderr), ExitCode: exit}
		out := res.Combined()

		switch c := classify(out); c {
		case classOther, classLocked, classSignature, classUnreachable:
		default:
			t.Fatalf("classify returned %d", c)
		}
		if l := decisiveLine(out); utf8.RuneCountInString(l) > 300 {
			t.Fatalf("decisive line of %d runes", utf8.RuneCountInString(l))
		}
		if _, reason := fetchProblem(out); utf8.RuneCountInString(reason) > 200 {
			t.Fatalf("fetch reason of %d runes", utf8.RuneCountInString(reason))
		}
		if l := lockLine(out); classify(out) == classLocked && l == "" {
			t.Fatal("locked output without a lock line")
		}

		err := opFailure("install", "apt-get", []string{"aadsshlogin"}, res, "apt-get install aadsshlogin")
		wantCode(t, err, failure.PackageManagerLocked, failure.UntrustedKey, failure.RepositoryUnreachable, failure.PackageManagerFailed)

		err = refreshFailure("in /etc/apt/sources.list.d/microsoft-prod.list", "apt-get", res, "apt-get update")
		if err == nil {
			if exit != 0 || classify(out) != classOther {
				t.Fatalf("refreshFailure accepted exit %d, class %d", exit, classify(out))
			}
		} else {
			wantCode(t, err, failure.PackageManagerLocked, failure.UntrustedKey, failure.RepositoryUnreachable, failure.PackageManagerFailed)
		}

		// The list parsers only answer yes or no; an offer must name a
		// repository on a line about the package.
		if listOffers(stdout, "aadsshlogin") && !strings.Contains(stdout, "aadsshlogin.") {
			t.Fatal("listOffers found an offer without a package line")
		}
	})
}

func wantCode(t *testing.T, err error, codes ...failure.Code) {
	t.Helper()
	got := failure.CodeOf(err)
	for _, c := range codes {
		if got == c {
			if strings.TrimSpace(failure.MessageOf(err)) == "" {
				t.Fatalf("code %d without a message", got)
			}
			return
		}
	}
	t.Fatalf("unexpected code %d: %v", got, err)
}
