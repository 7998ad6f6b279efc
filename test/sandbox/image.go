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

// ImageSuite is the Debian release the image is built from.
const ImageSuite = "bookworm"

// FallbackMirror is used when the host's apt sources name no Debian mirror.
const FallbackMirror = "http://deb.debian.org/debian"

// ImagePackages are installed on top of --variant=apt.
var ImagePackages = []string{
	"ca-certificates", "dnf", "zypper", "rpm", "busybox-static", "openssh-server", "iproute2", "libpam-runtime",
}

// ImageSpec says which image to build. Each spec has its own cache entry.
type ImageSpec struct {
	// Arch is the Debian architecture (mmdebstrap --arch): "amd64" or
	// "arm64". An image of another architecture than the host's runs its
	// programs through qemu-user (binfmt_misc, see CanRun).
	Arch string
}

// HostImage is the image of the host's own architecture, the one Image
// returns and every test uses unless it asks for another.
func HostImage() ImageSpec { return ImageSpec{Arch: runtime.GOARCH} }

// args are the mmdebstrap options (except the mirror and the output).
func (s ImageSpec) args() []string {
	return []string{
		"--arch=" + s.Arch,
		"--variant=apt",
		"--include=" + strings.Join(ImagePackages, ","),
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--aptopt=Acquire::Retries \"3\"",
	}
}

// Key names the cache directory: a hash of the build options.
func (s ImageSpec) Key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", imageRevision, ImageSuite, strings.Join(s.args(), "\x00"))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Dir is the cache directory of the image under the cache root in effect
// (it holds image.tar.zst and rootfs/ once built).
func (s ImageSpec) Dir() string {
	return filepath.Join(fixtures.CacheRoot(), "image-"+s.Key())
}

// foreign reports whether the image's programs need emulation here.
func (s ImageSpec) foreign() bool { return s.Arch != runtime.GOARCH }

type imageResult struct {
	once sync.Once
	root string
	err  error
}

var (
	imagesMu sync.Mutex
	images   = map[ImageSpec]*imageResult{}
)

// Image returns the unpacked, cached image of the host's architecture
// (the rootfs directory): ImageOf(t, HostImage()).
func Image(t testing.TB) string {
	t.Helper()
	return ImageOf(t, HostImage())
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
	r := images[spec]
	if r == nil {
		r = &imageResult{}
		images[spec] = r
	}
	imagesMu.Unlock()
	r.once.Do(func() {
		if Isolated() {
			r.root, r.err = loadImage(spec.Dir())
			if r.err != nil {
				r.err = fmt.Errorf("image not prepared (the parent process builds it before re-exec; call sandbox.Prepare outside RunIsolated): %w", r.err)
			}
			return
		}
		r.root, r.err = BuildImage(fixtures.CacheRoot(), spec, func(format string, args ...any) { t.Logf(format, args...) })
	})
	if r.err != nil {
		t.Fatalf("sandbox image (%s): %v", spec.Arch, r.err)
	}
	return r.root
}

func loadImage(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "complete")); err != nil {
		return "", fmt.Errorf("image cache %s is incomplete: %w", dir, err)
	}
	return filepath.Join(dir, "rootfs"), nil
}

// BuildImage builds the image for spec into the cache under cacheRoot
// unless it is there already, and returns the rootfs path. logf may be nil.
func BuildImage(cacheRoot string, spec ImageSpec, logf func(string, ...any)) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	final := filepath.Join(cacheRoot, "image-"+spec.Key())
	// Best effort: images of earlier keys take ~370 MB each.
	if removed, err := fixtures.Prune(cacheRoot, "image-", "image-"+spec.Key(), time.Now()); err != nil {
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
			return "", fmt.Errorf("building the %s image: %w", spec.Arch, err)
		}
	}
	tmp, err := os.MkdirTemp(cacheRoot, "image-"+spec.Key()+".tmp-")
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
	args := append(spec.args(), ImageSuite, tarball, mirror)
	if spec.foreign() {
		logf("building the %s image with mmdebstrap from %s under qemu-user emulation (6-15 minutes: every package script runs emulated)", spec.Arch, mirror)
	} else {
		logf("building image with mmdebstrap from %s (1.5-7 minutes depending on mirror and load)", mirror)
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
		ImageSuite, spec.Arch, mirror, strings.Join(spec.args(), " "), time.Now().UTC().Format(time.RFC3339), time.Since(start).Round(time.Second))
	if err := os.WriteFile(filepath.Join(tmp, "complete"), []byte(info), 0o644); err != nil {
		return "", fmt.Errorf("writing image marker: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("publishing image: %w", err)
	}
	ok = true
	logf("image built in %s: %s", time.Since(start).Round(time.Second), final)
	return filepath.Join(final, "rootfs"), nil
}

// buildTools are the programs BuildImage needs when the cache is empty:
// mmdebstrap checks a foreign architecture with arch-test.
func (s ImageSpec) buildTools() []string {
	tools := []string{"mmdebstrap", "zstd", "tar"}
	if s.foreign() {
		tools = append(tools, "arch-test")
	}
	return tools
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// HostMirror returns the Debian mirror the host's apt sources use for
// ImageSuite (one-line .list or deb822 .sources), else FallbackMirror.
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
