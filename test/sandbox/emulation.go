package sandbox

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// BinfmtDir is where the kernel lists its binfmt_misc handlers.
const BinfmtDir = "/proc/sys/fs/binfmt_misc"

// archMachines maps Debian architecture names to the ELF machine of their
// programs and the name `uname -m` (and /proc/sys/kernel/arch) gives.
var archMachines = map[string]struct {
	machine elf.Machine
	uname   string
}{
	"amd64": {elf.EM_X86_64, "x86_64"},
	"arm64": {elf.EM_AARCH64, "aarch64"},
}

// UnameMachine returns what `uname -m` says on a machine of the Debian
// architecture arch ("aarch64" for arm64), or "" for an unknown one.
func UnameMachine(arch string) string { return archMachines[arch].uname }

// ELFArch returns the Debian architecture of the ELF program at path
// ("amd64", "arm64").
func ELFArch(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for arch, m := range archMachines {
		if f.Machine == m.machine && f.Class == elf.ELFCLASS64 {
			return arch, nil
		}
	}
	return "", fmt.Errorf("%s: ELF machine %s is neither amd64 nor arm64", path, f.Machine)
}

// imageArch returns the architecture of an unpacked image (its shell:
// /usr/bin/dash where /usr is merged, bookworm on; /bin/dash before, as in
// bullseye).
func imageArch(rootfs string) (string, error) {
	arch, err := ELFArch(filepath.Join(rootfs, "usr/bin/dash"))
	if errors.Is(err, fs.ErrNotExist) {
		return ELFArch(filepath.Join(rootfs, "bin/dash"))
	}
	return arch, err
}

// SetupHint says how a Debian or Ubuntu machine gets what CanRun checks
// (scripts/setup.sh does it).
const SetupHint = "apt-get install qemu-user-static binfmt-support arch-test; " +
	"mount -t binfmt_misc binfmt_misc " + BinfmtDir + "; update-binfmts --enable qemu-aarch64 (scripts/setup.sh does this)"

// CanRun reports (nil) whether this machine runs programs of the Debian
// architecture arch: natively, or through a binfmt_misc handler (qemu-user)
// that is enabled and has the F flag. F ("fix binary") makes the kernel
// open the interpreter when it is registered, so it also serves chroots
// that do not contain it, like the sandbox roots.
func CanRun(arch string) error {
	if arch == runtime.GOARCH {
		if _, ok := archMachines[arch]; ok {
			return nil
		}
	}
	return canRunWith(BinfmtDir, arch)
}

// canRunWith is CanRun's check of the binfmt_misc handlers listed in dir.
func canRunWith(dir, arch string) error {
	m, ok := archMachines[arch]
	if !ok {
		return fmt.Errorf("unknown architecture %q", arch)
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return fmt.Errorf("running %s programs needs binfmt_misc, which is not mounted at %s: %s", arch, dir, SetupHint)
	}
	if strings.TrimSpace(string(status)) != "enabled" {
		return fmt.Errorf("binfmt_misc is disabled (%s/status): %s", dir, SetupHint)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listing binfmt_misc handlers: %w", err)
	}
	// The first 20 bytes of a 64-bit little-endian ELF program for the
	// machine, as an executable and as a position-independent one.
	var headers [][]byte
	for _, typ := range []elf.Type{elf.ET_EXEC, elf.ET_DYN} {
		h := make([]byte, 20)
		copy(h, "\x7fELF\x02\x01\x01")
		h[16], h[17] = byte(typ), byte(typ>>8)
		h[18], h[19] = byte(m.machine), byte(m.machine>>8)
		headers = append(headers, h)
	}
	var found []string
	for _, e := range entries {
		if e.Name() == "register" || e.Name() == "status" {
			continue
		}
		h, err := parseBinfmt(filepath.Join(dir, e.Name()))
		if err != nil || !h.matchesAll(headers) {
			continue
		}
		switch {
		case !h.enabled:
			found = append(found, e.Name()+" is disabled")
		case !strings.Contains(h.flags, "F"):
			found = append(found, e.Name()+" lacks the F flag (its interpreter would have to exist inside every chroot)")
		default:
			return nil
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("no usable binfmt_misc handler for %s programs (%s): %s", arch, strings.Join(found, "; "), SetupHint)
	}
	return fmt.Errorf("no binfmt_misc handler runs %s programs (qemu-user-static not installed or not registered): %s", arch, SetupHint)
}

// binfmtEntry is one handler as /proc/sys/fs/binfmt_misc/<name> shows it.
type binfmtEntry struct {
	enabled     bool
	flags       string
	offset      int
	magic, mask []byte
}

func parseBinfmt(path string) (binfmtEntry, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return binfmtEntry{}, err
	}
	var e binfmtEntry
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch k {
		case "enabled":
			e.enabled = true
		case "flags:":
			e.flags = v
		case "offset":
			if _, err := fmt.Sscanf(v, "%d", &e.offset); err != nil {
				return e, fmt.Errorf("%s: offset %q", path, v)
			}
		case "magic":
			if e.magic, err = hex.DecodeString(v); err != nil {
				return e, fmt.Errorf("%s: magic: %w", path, err)
			}
		case "mask":
			if e.mask, err = hex.DecodeString(v); err != nil {
				return e, fmt.Errorf("%s: mask: %w", path, err)
			}
		}
	}
	if e.magic == nil {
		return e, errors.New(path + ": not a magic handler")
	}
	return e, nil
}

// matchesAll reports whether the handler's magic, under its mask, matches
// every header.
func (e binfmtEntry) matchesAll(headers [][]byte) bool {
	for _, h := range headers {
		if e.offset+len(e.magic) > len(h) {
			return false
		}
		got := bytes.Clone(h[e.offset : e.offset+len(e.magic)])
		want := bytes.Clone(e.magic)
		for i := range got {
			if i < len(e.mask) {
				got[i] &= e.mask[i]
				want[i] &= e.mask[i]
			}
		}
		if !bytes.Equal(got, want) {
			return false
		}
	}
	return true
}
