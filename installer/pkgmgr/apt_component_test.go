package pkgmgr

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
	"github.com/aadsshlogin/handler/test/require"
)

// TestAptComponent runs the real apt-get and dpkg through the unchanged
// command lines against a signed repository served on loopback over TLS.
// apt and dpkg are redirected into an alternative root by environment
// alone (APT_CONFIG, DPKG_ADMINDIR), so the host's /etc/apt and dpkg
// database are never touched.
func TestAptComponent(t *testing.T) {
	if testing.Short() {
		t.Skip("component test")
	}
	require.Root(t, "dpkg --root chroots to run maintainer scripts")
	require.Tools(t, "apt-get", "dpkg", "dpkg-deb", "apt-ftparchive", "gpg", "busybox")
	w := t.TempDir()
	sh := func(dir string, env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	mkfile := func(p, data string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	arch := strings.TrimSpace(sh(w, nil, "dpkg", "--print-architecture"))

	// A tiny aadsshlogin whose postinst leaves a marker.
	pkg := filepath.Join(w, "pkg")
	mkfile(filepath.Join(pkg, "DEBIAN/control"), fmt.Sprintf("Package: aadsshlogin\nVersion: 1.0.0-1\nArchitecture: %s\nMaintainer: Test <test@example.invalid>\nSection: admin\nPriority: optional\nDescription: test stand-in\n", arch), 0o644)
	mkfile(filepath.Join(pkg, "DEBIAN/postinst"), "#!/bin/sh\nset -e\nmkdir -p /var/lib/aadsshlogin-test\necho \"$@\" > /var/lib/aadsshlogin-test/marker\n", 0o755)
	mkfile(filepath.Join(pkg, "usr/sbin/aad_certhandler"), "#!/bin/sh\n", 0o755)
	repo := filepath.Join(w, "repo")
	deb := filepath.Join(repo, "pool/main/a/aadsshlogin/aadsshlogin_1.0.0-1_"+arch+".deb")
	if err := os.MkdirAll(filepath.Dir(deb), 0o755); err != nil {
		t.Fatal(err)
	}
	sh(w, nil, "dpkg-deb", "--root-owner-group", "--build", pkg, deb)

	// Signed repository.
	gnupg := []string{"GNUPGHOME=" + filepath.Join(w, "gnupg")}
	if err := os.Mkdir(filepath.Join(w, "gnupg"), 0o700); err != nil {
		t.Fatal(err)
	}
	sh(w, gnupg, "gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Test Repo <repo@example.invalid>", "ed25519", "sign", "never")
	sh(w, gnupg, "gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Other Key <other@example.invalid>", "ed25519", "sign", "never")
	dists := filepath.Join(repo, "dists/bookworm")
	mkfile(filepath.Join(dists, "main/binary-"+arch+"/Packages"), sh(repo, nil, "apt-ftparchive", "packages", "pool"), 0o644)
	release := sh(repo, nil, "apt-ftparchive", "-o", "APT::FTPArchive::Release::Suite=bookworm", "-o", "APT::FTPArchive::Release::Codename=bookworm",
		"-o", "APT::FTPArchive::Release::Architectures="+arch, "-o", "APT::FTPArchive::Release::Components=main", "release", "dists/bookworm")
	mkfile(filepath.Join(dists, "Release"), release, 0o644)
	sh(w, gnupg, "gpg", "--batch", "--yes", "--local-user", "Test Repo", "--clearsign", "-o", filepath.Join(dists, "InRelease"), filepath.Join(dists, "Release"))

	srv := httptest.NewTLSServer(http.FileServer(http.Dir(repo)))
	defer srv.Close()
	ca := filepath.Join(w, "ca.pem")
	mkfile(ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})), 0o644)

	// The alternative root (test-harness.md §4).
	a := filepath.Join(w, "root")
	for _, d := range []string{"etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d", "etc/apt/keyrings",
		"var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log", "bin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(a, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkfile(filepath.Join(a, "var/lib/dpkg/status"), "", 0o644)
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	sh(w, nil, "cp", bb, filepath.Join(a, "bin/busybox"))
	for _, x := range []string{"sh", "mkdir", "echo", "cat", "rm"} {
		if err := os.Symlink("busybox", filepath.Join(a, "bin", x)); err != nil {
			t.Fatal(err)
		}
	}
	good := filepath.Join(a, "etc/apt/keyrings/test.gpg")
	other := filepath.Join(a, "etc/apt/keyrings/other.gpg")
	mkfile(good, sh(w, gnupg, "gpg", "--export", "Test Repo"), 0o644)
	mkfile(other, sh(w, gnupg, "gpg", "--export", "Other Key"), 0o644)
	list := filepath.Join(a, "etc/apt/sources.list.d/test.list")
	writeList := func(keyring string) {
		mkfile(list, fmt.Sprintf("deb [signed-by=%s] %s bookworm main\n", keyring, srv.URL), 0o644)
	}
	aptConf := filepath.Join(a, "etc/apt/apt.conf")
	mkfile(aptConf, fmt.Sprintf("Dir \"%s/\";\nDir::State::status \"%s/var/lib/dpkg/status\";\nAcquire::https::CAInfo \"%s\";\nDPkg::Options { \"--root=%s\"; };\n", a, a, ca, a), 0o644)

	m, err := New(Apt, Options{
		Runner: cmdrun.Exec{},
		Root:   sysroot.Root(a),
		Env:    []string{"APT_CONFIG=" + aptConf, "DPKG_ADMINDIR=" + filepath.Join(a, "var/lib/dpkg")},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Signed by a key we do not reference: untrusted.
	writeList(other)
	err = m.Refresh(ctx, "test", list)
	if err == nil || failure.CodeOf(err) != failure.UntrustedKey {
		t.Fatalf("refresh with the wrong key: %v", err)
	}

	writeList(good)
	if err := m.Refresh(ctx, "test", list); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Available(ctx, "aadsshlogin"); !ok || err != nil {
		t.Fatalf("Available: %v %v", ok, err)
	}
	if ok, err := m.Available(ctx, "nosuchpackage"); ok || err != nil {
		t.Fatalf("Available(nosuchpackage): %v %v", ok, err)
	}
	if err := m.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Install(ctx, Package{Name: "aadsshlogin"}); err != nil {
		t.Fatal(err)
	}
	// One real dpkg-query for a mix of known and unknown names (it exits 1
	// and still lists the known ones).
	if got, err := m.Installed(ctx, "nosuchpackage", "aadsshlogin", "aadsshlogin-selinux"); len(got) != 1 || got["aadsshlogin"] != "1.0.0-1" || err != nil {
		t.Fatalf("Installed: %q %v", got, err)
	}
	if b, err := os.ReadFile(filepath.Join(a, "var/lib/aadsshlogin-test/marker")); err != nil || !strings.HasPrefix(string(b), "configure") {
		t.Fatalf("postinst marker: %q %v", b, err)
	}
	err = m.Install(ctx, Package{Name: "nosuchpackage"})
	if failure.CodeOf(err) != failure.PackageManagerFailed || !strings.Contains(failure.MessageOf(err), "Unable to locate package nosuchpackage") {
		t.Errorf("install of a missing package: %v", err)
	}
	if err := m.Remove(ctx, "aadsshlogin", "nosuchpackage"); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Installed(ctx, "aadsshlogin"); len(got) != 0 || err != nil {
		t.Fatalf("after Remove: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(a, "usr/sbin/aad_certhandler")); !os.IsNotExist(err) {
		t.Errorf("payload left after purge: %v", err)
	}

	// The server gone: unreachable, naming the URL.
	srv.Close()
	err = m.Refresh(ctx, "test", list)
	if failure.CodeOf(err) != failure.RepositoryUnreachable || !strings.Contains(failure.MessageOf(err), strings.TrimPrefix(srv.URL, "https://")) {
		t.Errorf("refresh with the server down: %v", err)
	}
	t.Log(failure.MessageOf(err))
}
