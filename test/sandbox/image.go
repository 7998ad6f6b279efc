package sandbox

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/fixtures"
)

// imageRevision is part of the image cache key; bump it to force a rebuild.
const imageRevision = "image-1"

// ImageSuite is the Debian release the look-alike image is built from.
const ImageSuite = "bookworm"

// FallbackMirror is used when the host's apt sources name no Debian mirror.
const FallbackMirror = "http://deb.debian.org/debian"

// ImagePackages are installed on top of --variant=apt in the look-alike
// image.
var ImagePackages = []string{
	"ca-certificates", "dnf", "zypper", "rpm", "busybox-static", "openssh-server", "iproute2", "libpam-runtime",
}

// RealPackages are installed on top of --variant=apt in real Debian roots:
// what the handler runs (sshd -T, ssh-keygen, pam-auth-update, openssl for
// protected settings) and what NewRoot needs (openssl for the CA's hash
// link, the CA bundle). The fixture .debs depend on nothing.
var RealPackages = []string{"ca-certificates", "openssh-server", "libpam-runtime", "openssl"}

// ImageSpec is one mmdebstrap image: a Debian suite, an architecture and
// the packages installed on top of mmdebstrap's apt variant. Each spec has
// its own cache entry. A zero field means the look-alike image's value:
// Suite ImageSuite, Packages ImagePackages, Arch the host's.
type ImageSpec struct {
	// Suite is the Debian release ("bullseye", "bookworm", "trixie").
	Suite string
	// Arch is the Debian architecture (mmdebstrap --arch): "amd64" or
	// "arm64". An image of another architecture than the host's runs its
	// programs through qemu-user (binfmt_misc, see CanRun).
	Arch string
	// Packages are installed on top of --variant=apt.
	Packages []string
}

// LookAlikeImage is the image every look-alike distribution is made from,
// of the host's architecture (On gives it for another one).
var LookAlikeImage = ImageSpec{Suite: ImageSuite, Packages: ImagePackages}

// RealImage is the image of a real Debian root of suite ("bullseye",
// "bookworm", "trixie"), of the host's architecture.
func RealImage(suite string) ImageSpec {
	return ImageSpec{Suite: suite, Packages: RealPackages}
}

// HostImage is the look-alike image of the host's own architecture, the one
// Image returns and every test uses unless it asks for another.
func HostImage() ImageSpec { return LookAlikeImage.On(runtime.GOARCH) }

// On returns the same image for the Debian architecture arch.
func (s ImageSpec) On(arch string) ImageSpec {
	s.Arch = arch
	return s
}

// norm fills the zero fields with their defaults.
func (s ImageSpec) norm() ImageSpec {
	if s.Suite == "" {
		s.Suite = ImageSuite
	}
	if s.Arch == "" {
		s.Arch = runtime.GOARCH
	}
	if s.Packages == nil {
		s.Packages = ImagePackages
	}
	return s
}

// String names the image in logs: "bookworm/arm64".
func (s ImageSpec) String() string {
	n := s.norm()
	return n.Suite + "/" + n.Arch
}

// args are the mmdebstrap options (except the suite, the mirror and the
// output).
func (s ImageSpec) args() []string {
	n := s.norm()
	return []string{
		"--arch=" + n.Arch,
		"--variant=apt",
		"--include=" + strings.Join(n.Packages, ","),
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--aptopt=Acquire::Retries \"3\"",
	}
}

// Key names the cache directory: a hash of the suite and the build options
// (which include the architecture and the packages).
func (s ImageSpec) Key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", imageRevision, s.norm().Suite, strings.Join(s.args(), "\x00"))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Dir is the cache directory of the image under the cache root in effect
// (it holds image.tar.zst and rootfs/ once built).
func (s ImageSpec) Dir() string {
	return filepath.Join(fixtures.CacheRoot(), "image-"+s.Key())
}

// foreign reports whether the image's programs need emulation here.
func (s ImageSpec) foreign() bool { return s.norm().Arch != runtime.GOARCH }

// buildTools are the programs BuildImage needs when the cache is empty:
// mmdebstrap checks a foreign architecture with arch-test.
func (s ImageSpec) buildTools() []string {
	tools := append([]string(nil), toolsImage...)
	if s.foreign() {
		tools = append(tools, "arch-test")
	}
	return tools
}

// ImageKey is the cache key of the host's look-alike image.
func ImageKey() string { return HostImage().Key() }

// ImageDir is the cache directory of the host's look-alike image.
func ImageDir() string { return HostImage().Dir() }

type imageResult struct {
	root string
	err  error
}

var (
	imagesMu sync.Mutex
	images   = map[string]imageResult{} // image key -> rootfs or error, once loaded or built
)

// Image returns the unpacked, cached look-alike image of the host's
// architecture (the rootfs directory): ImageOf(t, HostImage()).
func Image(t testing.TB) string {
	t.Helper()
	return ImageOf(t, HostImage())
}

// ImageFor returns the image a root of spec is made from: the host's
// look-alike image, or for a spec with a Suite the real Debian root of that
// suite. In the isolated child a real root that is not cached yet cannot be
// built (no network): the child then tells the parent which suite it needs
// and fails, and RunIsolated's parent builds the image and runs the test
// once more. So only the real roots the running tests use are ever built.
func ImageFor(t testing.TB, spec DistroSpec) string {
	t.Helper()
	if spec.Suite == "" {
		return Image(t)
	}
	img := RealImage(spec.Suite)
	if Isolated() {
		if _, err := loadImage(img.Dir()); err != nil {
			fmt.Println(needImageMarker + spec.Suite)
			t.Fatalf("sandbox: the real %s root is not built yet (%v); the parent builds it and runs the test again", spec.Suite, err)
		}
	}
	return ImageOf(t, img)
}

// ImageOf returns the unpacked, cached image for spec (the rootfs
// directory). It builds the image when the cache is empty, which needs the
// network: in the isolated child (no network) it only loads, so
// RunIsolated and RunIsolatedOn prepare the image in the parent first. The
// returned tree is shared by all tests and must never be modified: use it
// only as an overlay lower layer.
func ImageOf(t testing.TB, spec ImageSpec) string {
	t.Helper()
	imagesMu.Lock()
	defer imagesMu.Unlock()
	key := spec.Key()
	r, ok := images[key]
	if !ok {
		if Isolated() {
			r.root, r.err = loadImage(spec.Dir())
			if r.err != nil {
				r.err = fmt.Errorf("image not prepared (the parent process builds it before re-exec; call sandbox.Prepare outside RunIsolated): %w", r.err)
			}
		} else {
			r.root, r.err = BuildImage(fixtures.CacheRoot(), spec, func(format string, args ...any) { t.Logf(format, args...) })
		}
		// A failed build is not retried by every later test.
		images[key] = r
	}
	if r.err != nil {
		t.Fatalf("sandbox image (%s): %v", spec, r.err)
	}
	return r.root
}

// loadImage returns the rootfs of a complete image directory and marks the
// entry as used now, so that Prune keeps images that only isolated
// children load.
func loadImage(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "complete")); err != nil {
		return "", fmt.Errorf("image cache %s is incomplete: %w", dir, err)
	}
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
	return filepath.Join(dir, "rootfs"), nil
}

// BuildImage builds the image for spec into the cache under cacheRoot
// unless it is there already, and returns the rootfs path. Concurrent
// builders of the same image wait for each other (a lock per entry). logf
// may be nil.
func BuildImage(cacheRoot string, spec ImageSpec, logf func(string, ...any)) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	spec = spec.norm()
	key := spec.Key()
	final := filepath.Join(cacheRoot, "image-"+key)
	// Best effort: images of earlier keys take 150-370 MB each.
	if removed, err := fixtures.Prune(cacheRoot, "image-", "image-"+key, time.Now()); err != nil {
		logf("pruning the image cache: %v", err)
	} else if len(removed) > 0 {
		logf("removed stale image cache entries: %s", strings.Join(removed, ", "))
	}
	if root, err := loadImage(final); err == nil {
		return root, nil
	}
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return "", fmt.Errorf("creating cache root: %w", err)
	}
	unlock, err := fixtures.Lock(final + ".lock")
	if err != nil {
		return "", fmt.Errorf("image lock: %w", err)
	}
	defer unlock()
	if root, err := loadImage(final); err == nil {
		return root, nil
	}
	if err := os.RemoveAll(final); err != nil {
		return "", fmt.Errorf("removing incomplete image: %w", err)
	}
	for _, tool := range spec.buildTools() {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("building the image needs %s: %w", tool, err)
		}
	}
	if spec.foreign() {
		if err := CanRun(spec.Arch); err != nil {
			return "", fmt.Errorf("building the %s image: %w", spec, err)
		}
	}
	tmp, err := os.MkdirTemp(cacheRoot, "image-"+key+".tmp-")
	if err != nil {
		return "", fmt.Errorf("creating image build dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	mirror := HostMirror()
	tarball := filepath.Join(tmp, "image.tar.zst")
	args := append(spec.args(), spec.Suite, tarball, mirror)
	if spec.foreign() {
		logf("building the %s image with mmdebstrap from %s under qemu-user emulation (6-15 minutes: every package script runs emulated)", spec, mirror)
	} else {
		logf("building the %s image with mmdebstrap from %s (1-7 minutes depending on mirror and load)", spec, mirror)
	}
	start := time.Now()
	cmd := exec.Command("mmdebstrap", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "TMPDIR="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mmdebstrap %s: %w\n%s", strings.Join(args, " "), err, tail(out, 4000))
	}
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return "", fmt.Errorf("creating rootfs: %w", err)
	}
	x := exec.Command("tar", "--zstd", "-xpf", tarball, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", rootfs)
	if out, err := x.CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpacking image: %w\n%s", err, tail(out, 4000))
	}
	info := fmt.Sprintf("suite=%s\narch=%s\nmirror=%s\nargs=%s\nbuilt=%s\nduration=%s\n",
		spec.Suite, spec.Arch, mirror, strings.Join(spec.args(), " "), time.Now().UTC().Format(time.RFC3339), time.Since(start).Round(time.Second))
	if err := os.WriteFile(filepath.Join(tmp, "complete"), []byte(info), 0o644); err != nil {
		return "", fmt.Errorf("writing image marker: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("publishing image: %w", err)
	}
	ok = true
	logf("%s image built in %s: %s", spec, time.Since(start).Round(time.Second), final)
	return filepath.Join(final, "rootfs"), nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// HostMirror returns the Debian mirror the host's apt sources use for
// ImageSuite (one-line .list or deb822 .sources), else FallbackMirror. Every
// image, of any suite, is built from it: a Debian mirror carries all
// suites.
func HostMirror() string {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var m string
		if strings.HasSuffix(f, ".sources") {
			m = mirrorFromDeb822(string(b))
		} else {
			m = mirrorFromOneLine(string(b))
		}
		if m != "" {
			return m
		}
	}
	return FallbackMirror
}

func usableURI(u string) bool {
	return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "file:")
}

// mirrorFromOneLine parses "deb [opts] URI suite components..." lines.
func mirrorFromOneLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		i := 1
		if strings.HasPrefix(f[i], "[") {
			for i < len(f) && !strings.HasSuffix(f[i], "]") {
				i++
			}
			i++
		}
		if i+1 < len(f) && usableURI(f[i]) && f[i+1] == ImageSuite {
			return strings.TrimRight(f[i], "/")
		}
	}
	return ""
}

// mirrorFromDeb822 parses stanzas with Types/URIs/Suites/Enabled fields.
func mirrorFromDeb822(s string) string {
	for _, stanza := range strings.Split(s, "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if strings.EqualFold(fields["enabled"], "no") || !containsWord(fields["types"], "deb") || !containsWord(fields["suites"], ImageSuite) {
			continue
		}
		for _, u := range strings.Fields(fields["uris"]) {
			if usableURI(u) {
				return strings.TrimRight(u, "/")
			}
		}
	}
	return ""
}

func containsWord(list, w string) bool {
	for _, x := range strings.Fields(list) {
		if x == w {
			return true
		}
	}
	return false
}
