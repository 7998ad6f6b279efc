package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/test/fixtures"
)

// Root is one per-test overlay root: the cached image as the lower layer,
// writes go to an upper directory under t.TempDir().
type Root struct {
	Dir   string // host path of the merged root
	Spec  DistroSpec
	Image string // the lower layer (read-only, shared)
	Arch  string // the image's Debian architecture ("amd64", "arm64")
	Upper string // the overlay upper directory (all changes land here)
	Net   *Network

	t      testing.TB
	mounts []string // mount points, in mount order
}

// DefaultEnv is the environment of commands run with Root.Exec before the
// caller's additions.
var DefaultEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LC_ALL=C",
	"TERM=dumb",
	"DEBIAN_FRONTEND=noninteractive",
}

// hostNames are mapped to 127.0.0.1 in every root's /etc/hosts.
var hostNames = fixtures.ServerNames

// NewRoot creates the overlay root for spec on top of image, inside the
// isolated child only. n may be nil (then the test CA is not installed).
// Everything is unmounted, and processes left in the root are killed, at
// the end of the test.
func NewRoot(t *testing.T, image string, spec DistroSpec, n *Network) *Root {
	t.Helper()
	if !Isolated() {
		t.Fatalf("sandbox.NewRoot must run inside sandbox.RunIsolated")
	}
	MustBeIsolated(t)
	start := time.Now()
	base := t.TempDir()
	r := &Root{
		Dir:   filepath.Join(base, "merged"),
		Spec:  spec,
		Image: image,
		Upper: filepath.Join(base, "upper"),
		Net:   n,
		t:     t,
	}
	t.Cleanup(r.teardown)
	arch, err := imageArch(image)
	if err != nil {
		t.Fatalf("sandbox: the architecture of the image %s: %v", image, err)
	}
	r.Arch = arch
	if err := r.setup(); err != nil {
		t.Fatalf("sandbox: preparing %s root: %v", spec.Name, err)
	}
	t.Logf("sandbox: %s root ready in %s at %s", spec.Name, time.Since(start).Round(time.Millisecond), r.Dir)
	return r
}

func (r *Root) mount(source, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("creating mount point %s: %w", target, err)
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	r.mounts = append(r.mounts, target)
	return nil
}

func (r *Root) setup() error {
	work := filepath.Join(filepath.Dir(r.Dir), "work")
	for _, d := range []string{r.Dir, r.Upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", r.Image, r.Upper, work)
	if err := r.mount("overlay", r.Dir, "overlay", 0, opts); err != nil {
		return err
	}
	if err := r.mount("proc", r.Path("/proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := r.setupDev(); err != nil {
		return err
	}
	if err := r.setupKernelArch(filepath.Dir(r.Dir)); err != nil {
		return err
	}
	if err := r.mount("tmpfs", r.Path("/tmp"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return err
	}
	if err := r.mount("tmpfs", r.Path("/run"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return err
	}
	for _, d := range []string{"/run/lock", "/run/sshd"} {
		if err := os.MkdirAll(r.Path(d), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	if r.Spec.Suite != "" {
		if err := r.checkRealIdentity(); err != nil {
			return err
		}
	} else if err := r.writeIdentity(); err != nil {
		return err
	}
	if err := r.writeHosts(); err != nil {
		return err
	}
	// The image's own Debian sources are unreachable in the sandbox:
	// remove them so only repositories a test (or the handler) adds exist.
	if err := r.removeGlobs("/etc/apt/sources.list", "/etc/apt/sources.list.d/*"); err != nil {
		return err
	}
	if r.Net != nil && r.Net.Fixtures != nil {
		if err := r.trustCA(r.Net.Fixtures.CACertPEM); err != nil {
			return err
		}
	}
	switch r.Spec.Family {
	case "deb":
		if err := r.removeGlobs("/usr/bin/dnf*", "/usr/bin/zypper", "/usr/bin/rpm*", "/usr/bin/yum*", "/usr/bin/tdnf"); err != nil {
			return err
		}
	case "rpm":
		if err := r.setupRPM(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown family %q", r.Spec.Family)
	}
	if _, err := os.Stat(r.Path("/etc/ssh/sshd_config")); err != nil {
		return fmt.Errorf("the image has no /etc/ssh/sshd_config: %w", err)
	}
	if r.Spec.Extra != nil {
		if err := r.Spec.Extra(r); err != nil {
			return fmt.Errorf("extra preparation: %w", err)
		}
	}
	return nil
}

func (r *Root) setupDev() error {
	dev := r.Path("/dev")
	if err := r.mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return err
	}
	nodes := []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}
	for _, n := range nodes {
		p := filepath.Join(dev, n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("mknod %s: %w", p, err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	links := map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return fmt.Errorf("symlink /dev/%s: %w", name, err)
		}
	}
	if err := r.mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	return r.mount("tmpfs", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
}

// setupKernelArch makes the root's /proc/sys/kernel/arch name the image's
// architecture when that is not the host's. qemu-user emulates uname(2)
// (`uname -m` says aarch64) but not this file, which the kernel fills in:
// without the overlay a program in an arm64 root would read the host's
// x86_64, which no arm64 machine says (the extension's entry script reads
// it to choose its binary). The file is bind-mounted read-only from dir.
func (r *Root) setupKernelArch(dir string) error {
	if r.Arch == runtime.GOARCH {
		return nil
	}
	target := r.Path("/proc/sys/kernel/arch")
	if _, err := os.Stat(target); err != nil {
		return nil // older kernels have no such file; uname is emulated
	}
	src := filepath.Join(dir, "kernel-arch")
	if err := os.WriteFile(src, []byte(UnameMachine(r.Arch)+"\n"), 0o444); err != nil {
		return fmt.Errorf("writing %s: %w", src, err)
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s on /proc/sys/kernel/arch: %w", src, err)
	}
	r.mounts = append(r.mounts, target)
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("making /proc/sys/kernel/arch read-only: %w", err)
	}
	return nil
}

func (r *Root) writeIdentity() error {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if err := os.Remove(r.Path(p)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", p, err)
		}
		if err := os.WriteFile(r.Path(p), []byte(r.Spec.OSRelease), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	if r.Spec.Family == "rpm" {
		if err := os.Remove(r.Path("/etc/debian_version")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing debian_version: %w", err)
		}
	}
	for p, content := range r.Spec.ReleaseFiles {
		if err := r.writeFile(p, content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkRealIdentity makes sure a real root is the release its spec names:
// its own os-release must agree on ID, VERSION_ID and VERSION_CODENAME.
func (r *Root) checkRealIdentity() error {
	got := DistroSpec{OSRelease: r.ReadFile("/etc/os-release")}
	for _, k := range []string{"ID", "VERSION_ID", "VERSION_CODENAME"} {
		if got.Field(k) != r.Spec.Field(k) {
			return fmt.Errorf("the real %s root's /etc/os-release has %s=%q, the spec %q", r.Spec.Suite, k, got.Field(k), r.Spec.Field(k))
		}
	}
	return nil
}

func (r *Root) writeHosts() error {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\taadssh-sandbox\n")
	for _, n := range hostNames {
		if n != "localhost" {
			fmt.Fprintf(&b, "127.0.0.1\t%s\n", n)
		}
	}
	if err := r.writeFile("/etc/hosts", b.String(), 0o644); err != nil {
		return err
	}
	if err := r.writeFile("/etc/hostname", "aadssh-sandbox\n", 0o644); err != nil {
		return err
	}
	// No DNS in the sandbox: names outside /etc/hosts fail fast.
	if err := os.Remove(r.Path("/etc/resolv.conf")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing resolv.conf: %w", err)
	}
	return r.writeFile("/etc/resolv.conf", "# sandbox: no DNS server; see /etc/hosts\nnameserver 127.0.0.1\n", 0o644)
}

// CAFile is where the test CA lands in each root.
const CAFile = "/usr/local/share/ca-certificates/aadssh-sandbox-ca.crt"

// trustCA adds the test CA to the system trust store the way
// update-ca-certificates would (certificate under
// /usr/local/share/ca-certificates, a link in /etc/ssl/certs, the subject
// hash link, and the bundle /etc/ssl/certs/ca-certificates.crt), without
// running it: the real script forks once per certificate and takes 5-10 s.
// A later update-ca-certificates in the root gives the same result.
func (r *Root) trustCA(pem []byte) error {
	if err := r.writeFile(CAFile, string(pem), 0o644); err != nil {
		return err
	}
	link := "/etc/ssl/certs/aadssh-sandbox-ca.pem"
	if err := os.Symlink(CAFile, r.Path(link)); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("linking %s: %w", link, err)
	}
	stdout, stderr, code := r.Exec(context.Background(), nil, "openssl", "x509", "-subject_hash", "-noout", "-in", CAFile)
	hash := strings.TrimSpace(stdout)
	if code != 0 || hash == "" {
		return fmt.Errorf("openssl x509 -subject_hash failed (%d): %s", code, stderr)
	}
	if err := os.Symlink("aadssh-sandbox-ca.pem", r.Path("/etc/ssl/certs/"+hash+".0")); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("linking the CA hash: %w", err)
	}
	bundle := r.Path("/etc/ssl/certs/ca-certificates.crt")
	f, err := os.OpenFile(bundle, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening the CA bundle: %w", err)
	}
	if _, err := f.Write(pem); err != nil {
		_ = f.Close()
		return fmt.Errorf("appending to the CA bundle: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("appending to the CA bundle: %w", err)
	}
	return nil
}

func (r *Root) removeGlobs(globs ...string) error {
	for _, g := range globs {
		matches, err := filepath.Glob(r.Path(g))
		if err != nil {
			return fmt.Errorf("glob %s: %w", g, err)
		}
		for _, m := range matches {
			if err := os.Remove(m); err != nil {
				return fmt.Errorf("removing %s: %w", m, err)
			}
		}
	}
	return nil
}

func (r *Root) setupRPM() error {
	if err := r.removeGlobs("/usr/bin/apt", "/usr/bin/apt-*", "/usr/bin/dpkg", "/usr/bin/dpkg-query",
		"/usr/sbin/pam-auth-update", "/etc/apt/sources.list.d/*", "/etc/yum.repos.d/*", "/etc/zypp/repos.d/*"); err != nil {
		return err
	}
	for _, d := range []string{"/etc/yum.repos.d", "/etc/zypp/repos.d", "/etc/pki/rpm-gpg", "/etc/rpm", "/var/lib/rpm", "/etc/dnf/vars"} {
		if err := os.MkdirAll(r.Path(d), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	for _, name := range []string{"yum", "tdnf"} {
		if err := os.Symlink("dnf", r.Path("/usr/bin/"+name)); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("linking %s: %w", name, err)
		}
	}
	if err := r.writeFile("/etc/rpm/macros.dbpath", "%_dbpath /var/lib/rpm\n", 0o644); err != nil {
		return err
	}
	if r.Net == nil || r.Net.Fixtures == nil {
		return errors.New("rpm-family roots need the network's fixtures (fakebase)")
	}
	fb := r.Net.Fixtures.FakeBaseFor(r.Arch, r.Spec.ReleaseVer)
	if fb == "" {
		return fmt.Errorf("no %s fakebase for releasever %q", r.Arch, r.Spec.ReleaseVer)
	}
	if err := r.writeRPMDefaults(); err != nil {
		return err
	}
	return r.installPackage(fb, "--justdb")
}

// AddDistroRepo writes the repository definition a Mariner 2.0 or Azure
// Linux 3.0 image ships with (the distribution's own repository, which
// carries aadsshlogin), plus its key (the test key) at
// /etc/pki/rpm-gpg/MICROSOFT-RPM-GPG-KEY.
func (r *Root) AddDistroRepo(t testing.TB) {
	t.Helper()
	var file, section, url string
	switch r.Spec.Name {
	case "mariner-2.0":
		file, section = "/etc/yum.repos.d/mariner-official-extras.repo", "mariner-official-extras"
		url = "https://packages.microsoft.com/cbl-mariner/2.0/prod/extras/$basearch"
	case "azurelinux-3.0":
		file, section = "/etc/yum.repos.d/azurelinux-official-ms-non-oss.repo", "azurelinux-official-ms-non-oss"
		url = "https://packages.microsoft.com/azurelinux/3.0/prod/ms-non-oss/$basearch"
	default:
		t.Fatalf("AddDistroRepo: %s has no distribution repository with aadsshlogin", r.Spec.Name)
	}
	if r.Net == nil || r.Net.Fixtures == nil {
		t.Fatalf("AddDistroRepo needs the network's fixtures")
	}
	content := fmt.Sprintf("[%s]\nname=%s $basearch\nbaseurl=%s\ngpgkey=file:///etc/pki/rpm-gpg/MICROSOFT-RPM-GPG-KEY\n"+
		"gpgcheck=1\nrepo_gpgcheck=1\nenabled=1\nskip_if_unavailable=True\nsslverify=1\n", section, section, url)
	if err := r.writeFile(file, content, 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	if err := r.writeFile("/etc/pki/rpm-gpg/MICROSOFT-RPM-GPG-KEY", string(r.Net.Fixtures.KeyArmored), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
}

// Path maps a path inside the root to the host path.
func (r *Root) Path(p string) string {
	return filepath.Join(r.Dir, filepath.Clean("/"+p))
}

// ReadFile returns the content of a file in the root, or "" when it cannot
// be read (use Exists to tell "missing" from "empty").
func (r *Root) ReadFile(p string) string {
	b, err := os.ReadFile(r.Path(p))
	if err != nil {
		return ""
	}
	return string(b)
}

// Exists reports whether p exists in the root (a dangling symlink counts).
func (r *Root) Exists(p string) bool {
	_, err := os.Lstat(r.Path(p))
	return err == nil
}

// WriteFile writes a file in the root, creating parent directories. A
// failure is reported with t.Errorf of the test that created the root.
func (r *Root) WriteFile(p, content string, mode os.FileMode) {
	if err := r.writeFile(p, content, mode); err != nil {
		r.t.Errorf("sandbox: %v", err)
	}
}

// Remove removes a file or tree in the root (missing is fine).
func (r *Root) Remove(p string) {
	if err := os.RemoveAll(r.Path(p)); err != nil {
		r.t.Errorf("sandbox: removing %s: %v", p, err)
	}
}

func (r *Root) writeFile(p, content string, mode os.FileMode) error {
	host := r.Path(p)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		return fmt.Errorf("creating parent of %s: %w", p, err)
	}
	if err := os.WriteFile(host, []byte(content), mode); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := os.Chmod(host, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	return nil
}

// lookPath finds an executable inside the root along DefaultEnv's PATH.
func (r *Root) lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(r.Path(p)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in the root", name)
}

// Exec runs argv chrooted into the root with cwd /, DefaultEnv plus env
// (later entries win), no stdin, in its own process group (killed when ctx
// ends). code is the exit code, -1 when the command could not run.
func (r *Root) Exec(ctx context.Context, env []string, argv ...string) (stdout, stderr string, code int) {
	if len(argv) == 0 {
		return "", "sandbox: Exec without a command", -1
	}
	if err := CheckIsolated(); err != nil {
		return "", err.Error(), -1
	}
	bin, err := r.lookPath(argv[0])
	if err != nil {
		return "", err.Error(), 127
	}
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = append(append([]string(nil), DefaultEnv...), env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: r.Dir, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code = 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			code = -1
			errb.WriteString("\nsandbox: " + err.Error())
		}
	}
	return out.String(), errb.String(), code
}

// MustExec runs Exec and fails the test on a non-zero exit; it returns
// stdout.
func (r *Root) MustExec(t testing.TB, env []string, argv ...string) string {
	t.Helper()
	stdout, stderr, code := r.Exec(context.Background(), env, argv...)
	if code != 0 {
		t.Fatalf("%s in %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), r.Spec.Name, code, stdout, stderr)
	}
	return stdout
}

// InstallLocalPackage installs a fixture package file into the root with
// dpkg -i (.deb) or rpm -i --nodeps (.rpm), bypassing any repository (for
// aadlogin, the SELinux policy stand-ins, ...).
func (r *Root) InstallLocalPackage(t testing.TB, path string) {
	t.Helper()
	if err := r.installPackage(path); err != nil {
		t.Fatalf("sandbox: %v", err)
	}
}

func (r *Root) installPackage(path string, extra ...string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading package: %w", err)
	}
	inRoot := "/tmp/" + filepath.Base(path)
	if err := r.writeFile(inRoot, string(data), 0o644); err != nil {
		return err
	}
	defer os.Remove(r.Path(inRoot))
	var argv []string
	switch {
	case strings.HasSuffix(path, ".deb"):
		argv = append([]string{"dpkg", "-i"}, extra...)
	case strings.HasSuffix(path, ".rpm"):
		argv = append([]string{"rpm", "-i", "--nodeps", "--force-debian"}, extra...)
	default:
		return fmt.Errorf("unknown package type: %s", path)
	}
	argv = append(argv, inRoot)
	stdout, stderr, code := r.Exec(context.Background(), nil, argv...)
	if code != 0 {
		return fmt.Errorf("%s: exit %d: %s%s", strings.Join(argv, " "), code, stdout, stderr)
	}
	return nil
}

// teardown kills what is left running in the root and unmounts everything.
func (r *Root) teardown() {
	r.killLeftovers()
	for i := len(r.mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(r.mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			r.t.Logf("sandbox: unmounting %s: %v", r.mounts[i], err)
		}
	}
	r.mounts = nil
}

// killLeftovers kills processes whose root directory is this root (e.g.
// gpg-agent started by dnf or zypper). It reads the root's own /proc,
// mounted for the child's PID namespace, so the pids are ours.
func (r *Root) killLeftovers() {
	procDir := r.Path("/proc")
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		root, err := os.Readlink(filepath.Join(procDir, e.Name(), "root"))
		if err != nil || root != r.Dir {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
