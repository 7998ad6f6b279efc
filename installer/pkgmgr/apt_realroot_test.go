package pkgmgr

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/installer/keys"
	"github.com/aadsshlogin/handler/sysroot"
	"github.com/aadsshlogin/handler/test/fixtures"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// RecordEnv names a directory: when set, TestAptRealTrixie writes the
// output apt produced in each case there (the testdata/apt3 recordings
// come from it).
const RecordEnv = "AADSSH_RECORD_APT"

// chrootRunner runs commands chrooted into a sandbox root and keeps every
// result, so that a test can look at exactly what the back end classified.
type chrootRunner struct {
	r     *sandbox.Root
	calls []runCall
}

type runCall struct {
	cmd cmdrun.Cmd
	res cmdrun.Result
}

func (c *chrootRunner) Run(ctx context.Context, cmd cmdrun.Cmd) (cmdrun.Result, error) {
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmd.Timeout)
		defer cancel()
	}
	start := time.Now()
	stdout, stderr, code := c.r.Exec(ctx, cmd.Env, append([]string{cmd.Name}, cmd.Args...)...)
	res := cmdrun.Result{Stdout: []byte(stdout), Stderr: []byte(stderr), ExitCode: code, Duration: time.Since(start)}
	c.calls = append(c.calls, runCall{cmd, res})
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("%s stopped: %w", cmd.Name, ctx.Err())
	case code == 127 && strings.Contains(stderr, "not found in the root"):
		return res, fmt.Errorf("%s: %w", cmd.Name, cmdrun.ErrNotFound)
	case code == -1:
		return res, fmt.Errorf("%s could not run: %s", cmd.Name, stderr)
	}
	return res, nil
}

// last returns the last call of the named program.
func (c *chrootRunner) last(name string) runCall {
	for i := len(c.calls) - 1; i >= 0; i-- {
		if c.calls[i].cmd.Name == name {
			return c.calls[i]
		}
	}
	return runCall{}
}

const (
	realKeyring = "/etc/apt/keyrings/microsoft-aadsshlogin.gpg"
	realList    = "/etc/apt/sources.list.d/microsoft-prod.list"
	bookwormURL = "https://packages.microsoft.com/repos/microsoft-debian-bookworm-prod"
)

// TestAptRealTrixie runs the apt back end unchanged with the real apt 3.0,
// dpkg and sqv of Debian 13, chrooted into a real trixie root (built with
// mmdebstrap), against the fixture repositories served as
// packages.microsoft.com inside the sandbox. Every case asserts how the
// back end classifies what apt 3 printed; the keyrings are written the way
// the handler writes them (keys.Trust(...).Binary), so the successful cases
// show that apt 3 / sqv accept them as signed-by= keyrings.
func TestAptRealTrixie(t *testing.T) {
	if testing.Short() {
		t.Skip("component test in a real Debian 13 root")
	}
	sandbox.RunIsolated(t, func(t *testing.T) {
		fx := fixtures.Get(t)
		n := sandbox.StartNetwork(t, fx, sandbox.NetworkOptions{})
		// apt-get keeps apt 2's "E:"/"W:" prefixes unless APT::Output-Version
		// is 30 (the apt command's default), which an image may set for
		// apt-get too: then it prints "Error:"/"Warning:"/"Notice:". The
		// second run also turns apt's download retries off, which only
		// repeat the "Ign:" lines of the unreachable cases and take half of
		// the first run's time.
		for _, v := range []struct{ name, conf, prefix string }{
			{"apt-get", "", ""},
			{"output-version-30", "APT::Output-Version \"30\";\nAcquire::Retries \"0\";\n", "v30-"},
		} {
			t.Run(v.name, func(t *testing.T) {
				aptRealTrixie(t, fx, n, v.conf, v.prefix)
			})
		}
	})
}

// aptRealTrixie runs every case in a fresh trixie root with conf (if any) in
// /etc/apt/apt.conf.d; the recordings' names start with prefix.
func aptRealTrixie(t *testing.T, fx *fixtures.Set, n *sandbox.Network, conf, prefix string) {
	spec := sandbox.Distros["debian-13-real"]
	r := sandbox.NewRoot(t, sandbox.ImageFor(t, spec), spec, n)
	if conf != "" {
		r.WriteFile("/etc/apt/apt.conf.d/99output-version", conf, 0o644)
	}
	run := &chrootRunner{r: r}
	m, err := New(Apt, Options{Runner: run, Root: sysroot.Root(r.Dir)})
	if err != nil {
		t.Fatal(err)
	}
	aptVersion := firstLine(strings.TrimSpace(r.MustExec(t, nil, "apt-get", "--version")))
	if !strings.HasPrefix(aptVersion, "apt 3.") {
		t.Fatalf("the trixie root has %q, not apt 3", aptVersion)
	}
	if _, _, code := r.Exec(t.Context(), nil, "sh", "-c", "command -v sqv"); code != 0 {
		t.Fatal("the trixie root has no sqv")
	}
	rec := newRecorder(t, aptVersion, prefix, conf)

	trust := func(armored []byte, fp string) []byte {
		t.Helper()
		k, err := keys.Trust(armored, "test", []string{fp})
		if err != nil {
			t.Fatalf("keys.Trust: %v", err)
		}
		return k.Binary
	}
	goodKeyring := trust(fx.KeyArmored, fx.KeyFingerprint)
	setSource := func(keyring []byte, line string) {
		t.Helper()
		r.Remove(realKeyring)
		if keyring != nil {
			r.WriteFile(realKeyring, string(keyring), 0o644)
		}
		r.WriteFile(realList, "# test\n"+line+"\n", 0o644)
	}
	deb := func(url, suite string) string {
		return fmt.Sprintf("deb [arch=amd64 signed-by=%s] %s %s main", realKeyring, url, suite)
	}
	ctxFor := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		t.Cleanup(cancel)
		return ctx
	}
	// refresh runs Refresh and checks the failure code; want 0 means
	// success. It records the output of the last apt-get update, which
	// is the one refreshFailure classified.
	refresh := func(name string, want failure.Code, frags ...string) {
		t.Helper()
		err := m.Refresh(ctxFor(2*time.Minute), "test", realList)
		rec.save(name, run.last("apt-get"))
		checkCode(t, name, err, want, frags...)
	}
	install := func(name string, ctx context.Context, pkg string, want failure.Code, frags ...string) {
		t.Helper()
		err := m.Install(ctx, Package{Name: pkg})
		rec.save(name, run.last("apt-get"))
		checkCode(t, name, err, want, frags...)
	}

	// The handler's keyring, a binary OpenPGP keyring written by
	// go-crypto, is accepted by apt 3 / sqv.
	setSource(goodKeyring, deb(bookwormURL, "bookworm"))
	refresh("update-ok", 0)
	if ok, err := m.Available(t.Context(), "aadsshlogin"); !ok || err != nil {
		t.Fatalf("Available after a good refresh: %v %v", ok, err)
	}

	// Signature failures.
	setSource(trust(fx.OtherKeyArmored, fx.OtherKeyFingerprint), deb(bookwormURL, "bookworm"))
	refresh("update-wrongkey", failure.UntrustedKey, "failed the signature check: Missing key "+fx.KeyFingerprint+", which is needed to verify signature. It is not signed")
	setSource(nil, deb(bookwormURL, "bookworm"))
	refresh("update-nokeyring", failure.UntrustedKey, "Failed to parse keyring", "No such file or directory")
	setSource(keybox(t, fx.KeyArmored), deb(bookwormURL, "bookworm"))
	refresh("update-keybox", failure.UntrustedKey, "Failed to parse keyring")
	sha1Key, sha1FP, sha1Repo := sha1SignedRepo(t, fx)
	n.Repo.SetOptions(sandbox.RepoOptions{HostDirs: map[string]string{"mirror.example.test": sha1Repo}})
	setSource(trust(sha1Key, sha1FP), deb("https://mirror.example.test/repos/microsoft-debian-bookworm-prod", "bookworm"))
	refresh("update-sha1-binding", failure.UntrustedKey, "Signing key on "+sha1FP+" is not bound", "SHA1 is not considered secure")
	n.Repo.SetOptions(sandbox.RepoOptions{})

	// Download failures.
	setSource(goodKeyring, deb("https://packages.microsoft.com/repos/microsoft-debian-nosuch-prod", "trixie"))
	refresh("update-404", failure.RepositoryUnreachable, "404")
	setSource(goodKeyring, deb("https://packages.microsoft.com/ol/9/prod", "trixie"))
	refresh("update-403", failure.RepositoryUnreachable, "403")
	setSource(goodKeyring, deb("https://mirror.example.test:8443/repos/microsoft-debian-bookworm-prod", "bookworm"))
	refresh("update-refused", failure.RepositoryUnreachable, "mirror.example.test:8443", "Connection refused")
	setSource(goodKeyring, deb("https://nosuchhost.example.invalid/repos/microsoft-debian-bookworm-prod", "bookworm"))
	refresh("update-resolve", failure.RepositoryUnreachable, "nosuchhost.example.invalid")
	n.Repo.SetOptions(sandbox.RepoOptions{UseWrongCert: true})
	setSource(goodKeyring, deb(bookwormURL, "bookworm"))
	refresh("update-cert", failure.RepositoryUnreachable, "packages.microsoft.com", "certificate verify failed")
	n.Repo.SetOptions(sandbox.RepoOptions{})

	// Install failures, with the good repository.
	setSource(goodKeyring, deb(bookwormURL, "bookworm"))
	refresh("update-ok", 0)
	n.Repo.SetRule("/repos/microsoft-debian-bookworm-prod/pool/", 404)
	install("install-fetch404", t.Context(), "aadsshlogin", failure.RepositoryUnreachable, "aadsshlogin_"+fx.Versions.New+"_amd64.deb", "404")
	n.Repo.SetRule("/repos/microsoft-debian-bookworm-prod/pool/", 0)

	_, release := startHolder(t, "fcntl", sysroot.Root(r.Dir), "/var/lib/dpkg/lock-frontend")
	// 33 s before the deadline: apt is told to wait 3 s for the lock.
	install("install-lock", ctxFor(lockWaitMargin+3*time.Second), "aadsshlogin", failure.PackageManagerLocked, "/var/lib/dpkg/lock-frontend. It is held by process", "(pkgmgr.test)")
	release()

	r.WriteFile("/var/lib/dpkg/updates/0001", "", 0o644)
	install("install-interrupted", t.Context(), "aadsshlogin", failure.PackageManagerFailed, "dpkg --configure -a")
	if err := m.Repair(t.Context()); err != nil {
		t.Fatalf("Repair after an interrupted dpkg: %v", err)
	}
	install("install-ok", t.Context(), "aadsshlogin", 0)
	if got, err := m.Installed(t.Context(), "aadsshlogin"); got["aadsshlogin"] != fx.Versions.New || err != nil {
		t.Fatalf("Installed: %v %v", got, err)
	}
	install("install-notfound", t.Context(), "nosuchpackage", failure.PackageManagerFailed, "Unable to locate package nosuchpackage")

	brokenRepo(t, r)
	refresh("update-with-local", 0)
	install("install-depends", t.Context(), "brokendep", failure.PackageManagerFailed, "libaadssh-missing")

	if err := m.Remove(t.Context(), "aadsshlogin"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	rec.finish()
}

var digestAlgo = regexp.MustCompile(`digest algo (\d+),`)

func checkCode(t *testing.T, name string, err error, want failure.Code, frags ...string) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		return
	}
	if got := failure.CodeOf(err); got != want {
		t.Errorf("%s: code %d, want %d: %v", name, got, want, err)
		return
	}
	msg := failure.MessageOf(err)
	for _, f := range frags {
		if !strings.Contains(msg, f) {
			t.Errorf("%s: message %q lacks %q", name, msg, f)
		}
	}
	t.Logf("%s: %s", name, msg)
}

// keybox imports the key into a GnuPG keybox file (gpg's own format for a
// keyring whose name ends in .kbx), which apt 3 no longer reads.
func keybox(t *testing.T, armored []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	asc := filepath.Join(dir, "key.asc")
	if err := os.WriteFile(asc, armored, 0o644); err != nil {
		t.Fatal(err)
	}
	kbx := filepath.Join(dir, "keyring.kbx")
	gpgRun(t, home, "--no-default-keyring", "--keyring", kbx, "--import", asc)
	b, err := os.ReadFile(kbx)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 || string(b[8:12]) != "KBXf" {
		t.Fatalf("%s is not a keybox", kbx)
	}
	return b
}

func gpgRun(t *testing.T, home string, args ...string) string {
	t.Helper()
	cmd := exec.Command("gpg", append([]string{"--batch", "--quiet", "--no-tty", "--passphrase", ""}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpg %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// sha1SignedRepo makes a key whose self-signatures (the binding of its user
// ID) use SHA-1, and a copy of the bookworm fixture repository whose
// InRelease that key signs (the data signature itself with SHA-512). It
// returns the armored public key, its fingerprint and the copy's web root.
func sha1SignedRepo(t *testing.T, fx *fixtures.Set) (armored []byte, fp, webRoot string) {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
	uid := "SHA-1 Bound Test Key <sha1@example.invalid>"
	gpgRun(t, home, "--cert-digest-algo", "SHA1", "--quick-gen-key", uid, "rsa3072", "sign", "never")
	armored = []byte(gpgRun(t, home, "--armor", "--export", uid))
	list := exec.Command("gpg", "--list-packets")
	list.Stdin = strings.NewReader(string(armored))
	out, err := list.Output()
	algos := digestAlgo.FindAllStringSubmatch(string(out), -1)
	if err != nil || len(algos) == 0 {
		t.Fatalf("gpg --list-packets: %v\n%s", err, out)
	}
	for _, a := range algos {
		if a[1] != "2" { // 2 is SHA-1
			t.Fatalf("the key has a signature with digest algorithm %s, not SHA-1:\n%s", a[1], out)
		}
	}
	for _, l := range strings.Split(gpgRun(t, home, "--with-colons", "--list-keys", uid), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" && fp == "" {
			fp = f[9]
		}
	}

	webRoot = filepath.Join(dir, "web")
	src := filepath.Join(fx.RepoDir, "repos/microsoft-debian-bookworm-prod")
	dst := filepath.Join(webRoot, "repos/microsoft-debian-bookworm-prod")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copying the repository: %v\n%s", err, out)
	}
	dists := filepath.Join(dst, "dists/bookworm")
	_ = os.Remove(filepath.Join(dists, "Release.gpg"))
	gpgRun(t, home, "--yes", "--digest-algo", "SHA512", "--local-user", fp, "--clearsign",
		"-o", filepath.Join(dists, "InRelease"), filepath.Join(dists, "Release"))
	return armored, fp, webRoot
}

// brokenRepo adds a local flat repository (trusted, no signature) holding
// brokendep, which depends on a package no repository has.
func brokenRepo(t *testing.T, r *sandbox.Root) {
	t.Helper()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	ctl := "Package: brokendep\nVersion: 1.0\nArchitecture: amd64\nMaintainer: Test <test@example.invalid>\n" +
		"Depends: libaadssh-missing (>= 1)\nSection: admin\nPriority: optional\nDescription: depends on nothing that exists\n"
	if err := os.MkdirAll(filepath.Join(pkg, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "DEBIAN/control"), []byte(ctl), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := r.Path("/srv/local")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", pkg, filepath.Join(repo, "brokendep_1.0_amd64.deb")).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	cmd := exec.Command("apt-ftparchive", "packages", ".")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("apt-ftparchive: %v", err)
	}
	r.WriteFile("/srv/local/Packages", string(out), 0o644)
	// In our source file: the back end installs from it alone first, and
	// falls back to every source when a dependency is missing, which no
	// source has here.
	r.WriteFile(realList, r.ReadFile(realList)+"deb [trusted=yes] file:/srv/local ./\n", 0o644)
}

// recorder writes each case's apt output to $AADSSH_RECORD_APT/<name>.txt
// and a SOURCE file saying where each came from.
type recorder struct {
	t      *testing.T
	dir    string
	prefix string // of the file names
	header string
	lines  []string
	seen   map[string]bool
}

func newRecorder(t *testing.T, aptVersion, prefix, conf string) *recorder {
	rec := &recorder{t: t, dir: os.Getenv(RecordEnv), prefix: prefix, seen: map[string]bool{}}
	rec.header = fmt.Sprintf("Recorded by TestAptRealTrixie (installer/pkgmgr/apt_realroot_test.go) with %s\n"+
		"in a real Debian 13 (trixie) root built with mmdebstrap, chrooted in the sandbox, against the\n"+
		"fixture repositories served as packages.microsoft.com. Each file is the command's stdout, a\n"+
		"newline and its stderr (cmdrun.Result.Combined). The commands are the apt back end's own.\n", aptVersion)
	if conf != "" {
		rec.header += fmt.Sprintf("Files named %s*: the same with /etc/apt/apt.conf.d/99output-version holding\n%s", prefix, conf)
	}
	rec.header += "\n"
	return rec
}

func (rec *recorder) save(name string, c runCall) {
	if rec.dir == "" || rec.seen[name] {
		return
	}
	rec.seen[name] = true
	if err := os.MkdirAll(rec.dir, 0o755); err != nil {
		rec.t.Fatal(err)
	}
	file := rec.prefix + name + ".txt"
	if err := os.WriteFile(filepath.Join(rec.dir, file), []byte(c.res.Combined()+"\n"), 0o644); err != nil {
		rec.t.Fatal(err)
	}
	rec.lines = append(rec.lines, fmt.Sprintf("%s: exit %d: LC_ALL=C %s", file, c.res.ExitCode, c.cmd.String()))
}

func (rec *recorder) finish() {
	if rec.dir == "" {
		return
	}
	body := rec.header + strings.Join(rec.lines, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(rec.dir, rec.prefix+"SOURCE"), []byte(body), 0o644); err != nil {
		rec.t.Fatal(err)
	}
}
