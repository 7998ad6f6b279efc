package pkgmgr

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
)

// The package managers report every interesting condition only as text, so
// classification is substring matching on the C-locale output. The phrases
// below come from apt 1.6–3.0, dpkg, yum 3, dnf 4/5, tdnf 3 and zypper 1.14;
// the fixtures in testdata/ hold recorded examples of each (testdata/apt3/:
// real apt 3.0 in a Debian 13 root).
//
// apt 3.0 differs from apt 2 in ways that matter here: with
// APT::Output-Version 30 (the default of the apt command, and of apt-get
// where an image's configuration sets it) the severity prefixes are
// "Error:", "Warning:", "Notice:" instead of "E:", "W:", "N:"; signatures are
// checked by sqv, whose reasons read "Missing key <fingerprint>, which is
// needed to verify signature", "Signing key on <fingerprint> is not bound:
// …" (e.g. SHA-1 self-signatures) or "Failed to parse keyring …" instead of
// gpgv's NO_PUBKEY and BADSIG; TLS errors come from OpenSSL ("SSL connection
// failed: … certificate verify failed"); and a lock that is still held
// after the wait names its holder only on the "Waiting for cache lock"
// lines.

// lockPhrases mean another process held the package manager's lock for
// longer than the tool was willing to wait. Progress lines such as apt's
// "Waiting for cache lock: …" or dnf's "Waiting for process with pid …" are
// deliberately absent: the tool printed them and then may have got the lock
// and failed for another reason; when the wait itself fails, apt ends with
// "E: Could not get lock …", which is matched.
var lockPhrases = []string{
	"could not get lock",
	"dpkg frontend is locked",
	"unable to acquire the dpkg frontend lock",
	"unable to lock the administration directory",
	"locked by another process", // dpkg: "dpkg frontend lock was locked by another process with pid 1234"
	"another copy of yum is running",
	"another copy is running as pid",
	"system management is locked by the application with pid",
	"failed to acquire lock",
}

// signaturePhrases mean the repository or a package failed a signature
// check: the key we installed does not match what the server sends.
var signaturePhrases = []string{
	"no_pubkey",
	"is not signed",
	"badsig",
	"expkeysig",
	"the following signatures were invalid",
	"the following signatures couldn't be verified",
	"gpg signature verification error",
	"bad gpg signature",
	"bad pgp signature",
	"signature could not be verified",
	"gpg check failed",
	"gpg key retrieval failed",
	"the gpg keys listed for the",
	"public key for", // dnf/yum: "Public key for x.rpm is not installed"
	"signature verification failed",
	"signed with an unknown key",
	"is unsigned",
	"gpg signature check failed",
	// apt 3 with sqv.
	"which is needed to verify signature",
	" is not bound",
	"failed to parse keyring",
}

// signatureReasons pick the line that explains a failed signature check
// best, most specific first: the verifier's own reason (sqv, gpgv) before
// apt's summary of it.
var signatureReasons = []string{
	"which is needed to verify signature", // sqv: Missing key <fpr>, which is needed to verify signature
	" is not bound",                       // sqv: Signing key on <fpr> is not bound: … SHA1 is not considered secure …
	"failed to parse keyring",             // sqv: the signed-by= file is missing or not an OpenPGP keyring
	"no_pubkey",
	"badsig",
	"expkeysig",
}

// unreachablePhrases mean something could not be downloaded: DNS, TCP,
// TLS, HTTP errors, or a repository that does not exist at that URL.
var unreachablePhrases = []string{
	"failed to fetch",
	"could not resolve",
	"couldn't resolve",
	"temporary failure resolving",
	"certificate verification failed",
	"certificate verify failed",
	"could not connect to",
	"unable to connect to",
	"could not handshake",
	"connection timed out",
	"connection refused",
	"does not have a release file",
	"failed to download metadata for repo",
	"cannot download repomd.xml",
	"curl error",
	"errors during downloading metadata",
	"[errno 14]",
	"cannot retrieve repository metadata",
	"no more mirrors to try",
	"download (curl) error",
	"valid metadata not found at specified url",
	"problem retrieving files from",
	"failed to synchronize cache for repo",
	"curl#",
	"status code: 404",
	"404  not found",
	"is temporarily unaccessible", // zypper, after its own retries of a 503 (testdata/throttle/)
}

// reasonPhrases pick the line that explains an unreachable repository best,
// most specific first.
var reasonPhrases = []string{
	"certificate verification failed",
	"certificate verify failed",
	"ssl certificate problem",
	"network is unreachable",
	"failed to connect",
	"could not resolve",
	"couldn't resolve",
	"temporary failure resolving",
	"connection timed out",
	"timed out",
	"connection refused",
	"could not connect to",
	"unable to connect to",
	"404",
	"403",
	"permission to access", // zypper's 403: "Permission to access '<url>' denied."
	"does not have a release file",
	"error message:",
	"curl error",
	"curl#",
	"[errno 14]",
	"failed to fetch",
	"valid metadata not found",
	"failed to download metadata",
	"failed to synchronize cache",
}

type class int

const (
	classOther class = iota
	classLocked
	classSignature
	classUnreachable
)

// classify decides what kind of failure output describes. Locks win over
// everything (the other messages are then consequences), and signature
// failures over download failures, because zypper and dnf report a bad
// signature also as "metadata not found"/"failed to download".
func classify(out string) class {
	switch {
	case firstLineWith(out, lockPhrases) != "":
		return classLocked
	case httpFailure.MatchString(out):
		// A download that failed with an HTTP error also makes apt report
		// the repository as "not signed" (it has no Release file to check):
		// the download is the cause, not the key.
		return classUnreachable
	case firstLineWith(out, signaturePhrases) != "":
		return classSignature
	case hasUnreachable(out):
		return classUnreachable
	}
	return classOther
}

func hasUnreachable(out string) bool {
	if firstLineWith(out, unreachablePhrases) != "" {
		return true
	}
	// apt marks every failed download with an "Err:<n>" line (apt ≥ 1.1)
	// or "Err " (older apt) even when it exits 0.
	for _, l := range strings.Split(out, "\n") {
		if aptErrLine.MatchString(l) {
			return true
		}
	}
	return false
}

var aptErrLine = regexp.MustCompile(`^Err(:\d+)?\s+\S+://`)

// httpFailure matches a download answered with an HTTP error status, as apt
// ("Err:1 https://… InRelease\n  403  Forbidden [IP: …]"), dnf/yum ("The
// requested URL returned error: 404") and zypper ("HTTP 403 Forbidden") print
// it, and dnf's "Status code: 404 for …".
var httpFailure = regexp.MustCompile(`(?im)(^\s+[45]\d\d\s+[A-Z][A-Za-z ]+(\[IP: .*\])?\s*$|returned error: [45]\d\d|[Ss]tatus code: [45]\d\d|HTTP(/\d(\.\d)?)? [45]\d\d )`)

// firstLineWith returns the first line containing one of the phrases,
// case-insensitively, without its severity prefix ("E: ", "W: ",
// "Error: ", "Warning: ", "Notice: "), or "".
func firstLineWith(out string, phrases []string) string {
	for _, l := range strings.Split(out, "\n") {
		low := strings.ToLower(l)
		for _, p := range phrases {
			if strings.Contains(low, p) {
				return stripSeverity(l)
			}
		}
	}
	return ""
}

// bestLineWith returns the first line containing the earliest phrase of
// the list (the phrases are ordered by preference), without its severity
// prefix, or "".
func bestLineWith(out string, phrases []string) string {
	for _, p := range phrases {
		if l := firstLineWith(out, []string{p}); l != "" {
			return l
		}
	}
	return ""
}

func stripSeverity(l string) string {
	l = strings.TrimSpace(l)
	for _, p := range severityPrefixes {
		l = strings.TrimPrefix(l, p)
	}
	return strings.TrimSpace(l)
}

// severityPrefixes are stripped from quoted lines: apt 2's and apt 3's
// (Output-Version 30) message prefixes, dnf's, and zypper's list dashes.
var severityPrefixes = []string{"E: ", "W: ", "N: ", "Error: ", "Warning: ", "Notice: ", "- "}

// signatureLine returns the line that best explains a failed signature
// check, reduced to the verifier's reason: apt wraps sqv's and gpgv's
// messages in "Sub-process /usr/bin/sqv returned an error code (1), error
// message is: …", and sqv's own text spans several indented lines, which
// apt joins with runs of spaces.
func signatureLine(out string) string {
	l := bestLineWith(out, signatureReasons)
	if l == "" {
		l = firstLineWith(out, signaturePhrases)
	}
	if _, after, ok := strings.Cut(l, "error message is: "); ok {
		l = stripSeverity(after)
	}
	return clip(strings.Join(strings.Fields(l), " "), 300)
}

var urlRE = regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^\s'"\]\[,]+`)

// fetchProblem extracts the URL that failed and the reason, one line each,
// from a failed refresh or download.
func fetchProblem(out string) (url, reason string) {
	lines := strings.Split(out, "\n")
	// apt: "W: Failed to fetch <url>  <reason>" names the whole file URL,
	// so it is preferred over the "Err:" line.
	for _, l := range lines {
		if i := strings.Index(l, "Failed to fetch "); i >= 0 {
			rest := strings.TrimSpace(l[i+len("Failed to fetch "):])
			u, r, _ := strings.Cut(rest, " ")
			if url == "" {
				url = u
			}
			r = strings.TrimSpace(r)
			// apt 3 ends its connection failures with "Unable to connect
			// to host:port:"; the Err: block below says why.
			if reason == "" && !strings.HasSuffix(r, ":") {
				reason = r
			}
			if reason != "" {
				return url, clip(reason, 200)
			}
		}
	}
	// apt: "Err:1 <url> <suite> <file>" followed by an indented reason.
	for i, l := range lines {
		if aptErrLine.MatchString(l) {
			if url == "" {
				url = urlRE.FindString(l)
			}
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], " ") {
				reason = strings.TrimSpace(lines[i+1])
			}
			if reason != "" {
				return url, clip(reason, 200)
			}
		}
	}
	if url == "" {
		url = urlRE.FindString(out)
	}
	url = strings.TrimRight(url, ".:;)")
	if reason == "" {
		reason = bestLineWith(out, reasonPhrases)
	}
	reason = strings.TrimPrefix(reason, "- ")
	if url != "" {
		// dnf and yum repeat the URL inside the reason; the message
		// already names it.
		reason = strings.ReplaceAll(reason, url+": ", "")
		reason = strings.ReplaceAll(reason, " for "+url, "")
	}
	return url, clip(reason, 200)
}

// lockLine returns the line that says who holds the lock. apt prints
// "Waiting for cache lock: …" progress lines before its final error; apt 2
// names the holder in the final error too, so final error lines are
// preferred, but apt 3's final line ("Unable to acquire the dpkg frontend
// lock …") does not, and then the last progress line says who it was.
func lockLine(out string) string {
	var kept []string
	holder := ""
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if !strings.HasPrefix(t, "Waiting for") {
			kept = append(kept, l)
			continue
		}
		if _, rest, ok := strings.Cut(t, "lock: "); ok && strings.Contains(rest, "held by process") {
			// "… It is held by process 174 (unattended-upgr)... 41s"
			if i := strings.LastIndex(rest, ")"); i >= 0 {
				rest = rest[:i+1]
			}
			holder = rest
		}
	}
	final := strings.Join(kept, "\n")
	if l := firstLineWith(final, []string{"held by process"}); l != "" {
		return l
	}
	if holder != "" {
		return holder
	}
	if l := firstLineWith(final, lockPhrases); l != "" {
		return l
	}
	return firstLineWith(out, lockPhrases)
}

// genericErrors are error lines that only say "something failed earlier";
// a more specific line is preferred when there is one.
var genericErrors = []string{
	"sub-process /usr/bin/dpkg returned an error code",
	"errors were encountered while processing",
	"unable to correct problems",
	"error: nothing to do",
	"problem: conflicting requests",
	"error: transaction failed",
	"error: transaction check error",
	"an error occurred during the transaction",
}

var errorPrefixes = []string{"E: ", "Error:", "Error(", "error:", "dpkg: error", "Problem:", "failure:", "FATAL", "ERROR"}

var specificPhrases = []string{
	" : depends: ", "nothing provides", "no provider of", "no package ", "no match for argument",
	"unable to find a match", "unable to locate package", "has no installation candidate",
	"post-installation script", "pre-removal script", "scriptlet failed", "no space left on device",
	"not enough free space", "no matching packages", "conflicts with",
}

// decisiveLine picks the line of a failed command's output that tells a
// user most about the failure: the first specific error line, else the
// last generic one, else the last non-empty line.
func decisiveLine(out string) string {
	lines := strings.Split(strings.ReplaceAll(out, "\r", "\n"), "\n")
	lastGeneric, lastNonEmpty := "", ""
	for i, raw := range lines {
		l := strings.TrimSpace(raw)
		if l == "" {
			continue
		}
		lastNonEmpty = l
		low := strings.ToLower(l)
		isErr := false
		for _, p := range errorPrefixes {
			if strings.HasPrefix(l, p) {
				isErr = true
				break
			}
		}
		specific := false
		for _, p := range specificPhrases {
			if strings.Contains(low, p) {
				specific = true
				break
			}
		}
		if !isErr && !specific {
			continue
		}
		generic := false
		for _, g := range genericErrors {
			if strings.Contains(low, g) {
				generic = true
				break
			}
		}
		if generic {
			lastGeneric = l
			continue
		}
		// "dpkg: error processing package x (--configure):" and a bare
		// "Error:" announce the explanation on the next line.
		if strings.HasSuffix(l, ":") {
			if next := nextNonEmpty(lines[i+1:]); next != "" {
				if l == "Error:" {
					continue // the next line is itself a candidate
				}
				l = l + " " + next
			}
		}
		return clip(stripSeverity(l), 300)
	}
	if lastGeneric != "" {
		return clip(stripSeverity(lastGeneric), 300)
	}
	return clip(stripSeverity(lastNonEmpty), 300)
}

func nextNonEmpty(lines []string) string {
	for _, l := range lines {
		if t := strings.TrimSpace(l); t != "" {
			return t
		}
	}
	return ""
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// commandCause is the Go error kept as the cause of a failure: the command,
// its exit code and the tail of its output, for the log.
func commandCause(c string, res cmdrun.Result) error {
	return fmt.Errorf("%s exited with code %d: %s", c, res.ExitCode, cmdrun.Tail(res.Combined(), 2000))
}

// opFailure turns a failed install/remove command into a *failure.Error.
// verb is "install" or "remove", tool the program name, reproduce the
// command a user can run to see the full error.
func opFailure(verb, tool string, pkgs []string, res cmdrun.Result, reproduce string) error {
	out := res.Combined()
	cause := commandCause(reproduce, res)
	what := strings.Join(pkgs, " ")
	switch classify(out) {
	case classLocked:
		return failure.New(failure.PackageManagerLocked, cause,
			"The package manager is busy: %s. Wait for the other package operation to finish (or stop it) and re-apply the extension.",
			strings.TrimSuffix(lockLine(out), "."))
	case classSignature:
		return failure.New(failure.UntrustedKey, cause,
			"Failed to %s %s with %s because a signature check failed: %s. The repository's packages are not signed by a key the extension trusts; check the repositoryUrl and signingKeyFingerprints settings (and any proxy that rewrites downloads), then re-apply the extension.",
			verb, what, tool, strings.TrimSuffix(signatureLine(out), "."))
	case classUnreachable:
		url, reason := fetchProblem(out)
		return failure.New(failure.RepositoryUnreachable, cause,
			"Failed to %s %s with %s because %s could not be downloaded: %s. Make sure the VM can reach it (firewall, proxy, DNS) and re-apply the extension.",
			verb, what, tool, orDefault(url, "a package"), strings.TrimSuffix(orDefault(reason, "download failed"), "."))
	}
	return failure.New(failure.PackageManagerFailed, cause,
		"Failed to %s %s with %s (exit code %d): %s. To see the full error, run on the VM: sudo %s",
		verb, what, tool, res.ExitCode, strings.TrimSuffix(orDefault(decisiveLine(out), "no output"), "."), reproduce)
}

// refreshFailure classifies the output of a refresh of our repository; it
// returns nil when nothing points at a failure and the exit code is 0.
func refreshFailure(repo, tool string, res cmdrun.Result, reproduce string) error {
	out := res.Combined()
	cause := commandCause(reproduce, res)
	switch classify(out) {
	case classLocked:
		return failure.New(failure.PackageManagerLocked, cause,
			"The package manager is busy: %s. Wait for the other package operation to finish (or stop it) and re-apply the extension.",
			strings.TrimSuffix(lockLine(out), "."))
	case classSignature:
		return failure.New(failure.UntrustedKey, cause,
			"The package repository %s failed the signature check: %s. It is not signed by a key the extension trusts; check the repositoryUrl and signingKeyFingerprints settings (and any proxy that rewrites downloads), then re-apply the extension.",
			repo, strings.TrimSuffix(signatureLine(out), "."))
	case classUnreachable:
		url, reason := fetchProblem(out)
		return failure.New(failure.RepositoryUnreachable, cause,
			"Could not download the package list from %s: %s. Make sure the VM can reach it (firewall, proxy, DNS) and re-apply the extension.",
			orDefault(url, repo), strings.TrimSuffix(orDefault(reason, "download failed"), "."))
	}
	if res.ExitCode != 0 {
		return failure.New(failure.PackageManagerFailed, cause,
			"Refreshing the package list of %s with %s failed (exit code %d): %s. To see the full error, run on the VM: sudo %s",
			repo, tool, res.ExitCode, strings.TrimSuffix(orDefault(decisiveLine(out), "no output"), "."), reproduce)
	}
	return nil
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}
