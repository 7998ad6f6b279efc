// Package sandbox runs end-to-end tests in throwaway Linux namespaces:
// a private mount, network, PID and UTS namespace per test (RunIsolated),
// a cached Debian image (Image), per-test overlay roots that look like other
// distributions (NewRoot), and fake IMDS and packages.microsoft.com servers
// that exist only inside the test's network namespace (StartNetwork).
//
// See README.md in this directory for the design and the safety guard.
package sandbox

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/test/fixtures"
	"github.com/aadsshlogin/handler/test/require"
)

const (
	// ChildEnv marks the re-executed test process; its value is the name of
	// the test it was started for.
	ChildEnv = "AADSSH_SANDBOX_CHILD"
	// RequiredEnv=1 turns every skip for a missing prerequisite into a
	// failure (CI sets it).
	RequiredEnv = require.Env
	// IMDSAddr is the metadata service address added to lo in the child.
	IMDSAddr = "169.254.169.254"

	childStartMarker = "sandbox: isolated child running "
	// needImageMarker, followed by a suite, is printed by a child that needs
	// a real Debian root the cache does not hold yet (see ImageFor).
	needImageMarker = "sandbox: isolated child needs the real image of "
)

// Isolated reports whether this process is the isolated child.
func Isolated() bool { return os.Getenv(ChildEnv) != "" }

// Required reports whether missing prerequisites must fail the test.
func Required() bool { return require.Required() }

// skipOrFail skips the test, or fails it when RequiredEnv is set.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	require.SkipOrFail(t, format, args...)
}

// toolsAlways are needed by every isolated test; the others only to fill
// an empty cache.
var (
	toolsAlways   = []string{"ip"}
	toolsFixtures = []string{"gpg", "gpgconf", "dpkg-deb", "apt-ftparchive", "rpmbuild", "rpmsign", "createrepo_c"}
	toolsImage    = []string{"mmdebstrap", "tar", "zstd"}
)

// Prerequisites checks root and the tools an isolated test needs, and skips
// (or, with AADSSH_E2E_REQUIRED=1, fails) the test when something is
// missing.
func Prerequisites(t testing.TB) {
	t.Helper()
	prerequisites(t, HostImage())
}

// prerequisites checks what a test on the image img needs: root, the tools
// (the build tools only when a cache is empty) and, for an image of another
// architecture, emulation (CanRun).
func prerequisites(t testing.TB, img ImageSpec) {
	t.Helper()
	if runtime.GOOS != "linux" {
		skipOrFail(t, "sandbox tests need Linux")
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "sandbox tests need root (namespaces, overlay mounts, chroot)")
	}
	tools := append([]string(nil), toolsAlways...)
	if !fixtures.Cached(fixtures.CacheRoot()) {
		tools = append(tools, toolsFixtures...)
	}
	if _, err := loadImage(img.Dir()); err != nil {
		tools = append(tools, img.buildTools()...)
	}
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		skipOrFail(t, "sandbox tests need these tools: %s (apt-get install -y --no-install-recommends "+
			"mmdebstrap apt-utils rpm rpm2cpio createrepo-c dnf zypper libzypp-bin busybox-static gnupg openssl iproute2 dpkg-dev zstd arch-test)",
			strings.Join(missing, ", "))
	}
	if img.foreign() {
		if err := CanRun(img.Arch); err != nil {
			skipOrFail(t, "sandbox tests on the %s image run its programs through qemu-user: %v", img, err)
		}
	}
}

// Prepare builds (or loads) the fixtures and the image in the calling
// process. RunIsolated calls it in the parent before re-executing, because
// the isolated child has no network and cannot build the image.
func Prepare(t testing.TB) {
	t.Helper()
	prepare(t, HostImage())
}

func prepare(t testing.TB, img ImageSpec) {
	t.Helper()
	start := time.Now()
	fixtures.Get(t)
	ImageOf(t, img)
	if d := time.Since(start); d > time.Second {
		t.Logf("sandbox: fixtures and %s image ready in %s", img, d.Round(time.Millisecond))
	}
}

// RunIsolated runs fn in fresh mount, network, PID and UTS namespaces.
//
// In the parent it checks prerequisites, prepares the caches and re-runs
// this test binary for exactly t.Name() with ChildEnv set and new
// namespaces; the child's output is relayed with t.Log, a failing child
// fails t, a skipped child skips t. In the child (Isolated() is true) it
// makes the mount tree private, brings lo up with 169.254.169.254/32,
// checks the isolation guard and calls fn(t). Subtests work: the child is
// started with an anchored pattern per name element.
func RunIsolated(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	runIsolated(t, HostImage(), func(t *testing.T, _ string) { fn(t) })
}

// RunIsolatedOn is RunIsolated for a test on the image img instead of the
// host's: the parent checks that this machine can run img's programs
// (CanRun: qemu-user through binfmt_misc for a foreign architecture) and
// prepares that image, and fn gets its rootfs (for NewRoot).
func RunIsolatedOn(t *testing.T, img ImageSpec, fn func(t *testing.T, image string)) {
	t.Helper()
	runIsolated(t, img, fn)
}

func runIsolated(t *testing.T, img ImageSpec, fn func(t *testing.T, image string)) {
	t.Helper()
	if Isolated() {
		if err := setupChild(); err != nil {
			t.Fatalf("sandbox: setting up the isolated child: %v", err)
		}
		fmt.Println(childStartMarker + t.Name())
		if img.foreign() {
			if err := CanRun(img.Arch); err != nil {
				t.Fatalf("sandbox: %v", err)
			}
		}
		fn(t, ImageOf(t, img))
		return
	}
	prerequisites(t, img)
	prepare(t, img)
	needs := runChild(t, false)
	if len(needs) == 0 {
		return
	}
	// The child asked for real Debian roots that are not cached: build
	// them here (the child has no network) and run the test once more.
	for _, tool := range toolsImage {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "the real Debian roots (%s) are built with %s, which is missing (apt-get install -y mmdebstrap zstd)", strings.Join(needs, ", "), tool)
		}
	}
	t.Logf("sandbox: the isolated child needs the real %s root(s); building and running the test again", strings.Join(needs, ", "))
	for _, suite := range needs {
		ImageOf(t, RealImage(suite))
	}
	runChild(t, true)
}

// runPattern builds the -test.run pattern selecting exactly name.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// runChild runs the test in the isolated child. When the child reports that
// it needs real images (needImageMarker) and this is not the last attempt,
// it returns their suites instead of failing t.
func runChild(t *testing.T, last bool) (needs []string) {
	t.Helper()
	args := []string{"-test.run=" + runPattern(t.Name()), "-test.v=true", "-test.count=1"}
	if f := flag.Lookup("test.timeout"); f != nil && f.Value.String() != "" && f.Value.String() != "0s" {
		args = append(args, "-test.timeout="+f.Value.String())
	}
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-5*time.Second))
		defer cancel()
	}
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), ChildEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatalf("sandbox: pipe: %v", err)
	}
	cmd.Stdout = pw
	cmd.Stderr = pw

	// Pdeathsig fires when the thread that started the child exits: keep
	// this goroutine on one thread until the child is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		_ = pr.Close()
		_ = pw.Close()
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
			skipOrFail(t, "sandbox: cannot create namespaces: %v", err)
		}
		t.Fatalf("sandbox: starting isolated child: %v", err)
	}
	_ = pw.Close()

	var (
		started, skipped, noTests bool
		leaf                      = t.Name()[strings.LastIndex(t.Name(), "/")+1:]
		wg                        sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		relay(pr, func(line string) {
			trimmed := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(trimmed, childStartMarker):
				started = true
			case strings.HasPrefix(trimmed, "--- SKIP: "+leaf+" ") || strings.HasPrefix(trimmed, "--- SKIP: "+t.Name()+" "):
				skipped = true
			case strings.Contains(trimmed, "no tests to run"):
				noTests = true
			case strings.HasPrefix(trimmed, needImageMarker):
				suite := strings.TrimPrefix(trimmed, needImageMarker)
				if !slices.Contains(needs, suite) {
					needs = append(needs, suite)
				}
			}
			t.Log("│ " + line)
		})
	}()
	waitErr := cmd.Wait()
	wg.Wait()
	_ = pr.Close()
	switch {
	case ctx.Err() != nil:
		t.Fatalf("sandbox: isolated child killed at the test deadline: %v", ctx.Err())
	case len(needs) > 0 && !last:
		return needs
	case waitErr != nil:
		t.Fatalf("sandbox: isolated child failed: %v", waitErr)
	case noTests || !started:
		t.Fatalf("sandbox: the isolated child did not run %s (pattern %s)", t.Name(), runPattern(t.Name()))
	case skipped:
		t.Skip("sandbox: skipped in the isolated child (see above)")
	}
	return nil
}

func relay(r io.Reader, fn func(string)) {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			fn(strings.TrimRight(line, "\n"))
		}
		if err != nil {
			return
		}
	}
}

var (
	childOnce sync.Once
	childErr  error
)

func setupChild() error {
	childOnce.Do(func() {
		childErr = setupChildOnce()
	})
	return childErr
}

func setupChildOnce() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	if err := unix.Sethostname([]byte("aadssh-sandbox")); err != nil {
		return fmt.Errorf("setting hostname: %w", err)
	}
	// Refuse before touching the network configuration: a child that is
	// not in a fresh namespace must not add the metadata address anywhere.
	if err := checkInterfaces(); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", IMDSAddr + "/32", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return CheckIsolated()
}

// CheckIsolated is the safety guard. It returns an error unless the current
// network namespace is one a sandbox created: no interface other than lo is
// up with an address, the namespace differs from PID 1's (when that is
// visible), and 169.254.169.254 is a local address on lo. Servers and
// handler runs refuse to start when it fails.
func CheckIsolated() error {
	if err := checkInterfaces(); err != nil {
		return err
	}
	if self, err := os.Stat("/proc/self/ns/net"); err == nil {
		if init, err := os.Stat("/proc/1/ns/net"); err == nil && os.SameFile(self, init) {
			return errors.New("sandbox guard: this is the network namespace of PID 1 (the host's); refusing")
		}
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return fmt.Errorf("sandbox guard: no lo: %w", err)
	}
	addrs, err := lo.Addrs()
	if err != nil {
		return fmt.Errorf("sandbox guard: addresses of lo: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(net.ParseIP(IMDSAddr)) {
			return nil
		}
	}
	return fmt.Errorf("sandbox guard: %s is not on lo; refusing", IMDSAddr)
}

func checkInterfaces() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("sandbox guard: listing interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Name == "lo" || ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return fmt.Errorf("sandbox guard: addresses of %s: %w", ifc.Name, err)
		}
		if len(addrs) > 0 {
			return fmt.Errorf("sandbox guard: interface %s is up with address %v: not an isolated network namespace; refusing", ifc.Name, addrs[0])
		}
	}
	return nil
}

// MustBeIsolated fails the test unless CheckIsolated passes. Call it before
// anything that could reach the default metadata address or
// packages.microsoft.com (e.g. before running the handler).
func MustBeIsolated(t testing.TB) {
	t.Helper()
	if err := CheckIsolated(); err != nil {
		t.Fatalf("%v", err)
	}
}
