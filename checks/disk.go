package checks

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
)

// DiskSpace requires minBytes free for unprivileged use (Bavail, which is
// what a package manager running as root can rely on without eating the
// reserved blocks) on the filesystem of each target path. Paths that do not
// exist yet (e.g. a cache directory created by the install) are checked on
// their nearest existing parent. Paths on the same filesystem are checked
// once and named together. The first filesystem short of space fails with
// NotEnoughDisk.
func DiskSpace(root sysroot.Root, paths []string, minBytes uint64) error {
	type fsInfo struct {
		mount string
		free  uint64
		paths []string
	}
	var order []uint64
	byDev := map[uint64]*fsInfo{}
	for _, p := range paths {
		host, err := nearestExisting(root, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Stat(host, &st); err != nil {
			return fmt.Errorf("stat %s: %w", host, err)
		}
		dev := uint64(st.Dev)
		info, seen := byDev[dev]
		if !seen {
			var sfs unix.Statfs_t
			if err := unix.Statfs(host, &sfs); err != nil {
				return fmt.Errorf("statfs %s: %w", host, err)
			}
			info = &fsInfo{
				mount: mountPoint(root, host, dev),
				free:  uint64(sfs.Bavail) * uint64(sfs.Bsize),
			}
			byDev[dev] = info
			order = append(order, dev)
		}
		info.paths = append(info.paths, p)
	}
	for _, dev := range order {
		info := byDev[dev]
		if info.free >= minBytes {
			continue
		}
		return failure.New(failure.NotEnoughDisk,
			fmt.Errorf("%d bytes free on %s, need %d", info.free, info.mount, minBytes),
			"Only %s are free on %s (needed for %s); free at least %s and re-apply the extension.",
			formatBytes(info.free), info.mount, strings.Join(info.paths, ", "), formatBytes(minBytes))
	}
	return nil
}

// nearestExisting returns the host path of p or of its closest existing
// ancestor under root.
func nearestExisting(root sysroot.Root, p string) (string, error) {
	target := filepath.Clean("/" + p)
	for {
		host := root.Path(target)
		_, err := os.Stat(host)
		if err == nil {
			return host, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
			return "", fmt.Errorf("stat %s: %w", host, err)
		}
		if target == "/" {
			return "", fmt.Errorf("root %s does not exist: %w", host, err)
		}
		target = filepath.Dir(target)
	}
}

// mountPoint names the filesystem for the message: the highest ancestor of
// host (not above root) on the same device, as a target path.
func mountPoint(root sysroot.Root, host string, dev uint64) string {
	top := filepath.Clean(root.Path("/"))
	cur := host
	for cur != top {
		parent := filepath.Dir(cur)
		var st unix.Stat_t
		if unix.Stat(parent, &st) != nil || uint64(st.Dev) != dev {
			break
		}
		cur = parent
	}
	rel, err := filepath.Rel(top, cur)
	if err != nil || rel == "." {
		return "/"
	}
	return "/" + rel
}
