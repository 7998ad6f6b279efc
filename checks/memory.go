package checks

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/sysroot"
)

// DefaultMinMemory is the smallest MemTotal we accept. Microsoft documents
// that installation fails on VMs with less than 1 GB of memory, but MemTotal
// is what remains after the kernel and firmware reservations: a 1 GiB VM
// (e.g. Standard_B1ls has 0.5 GiB, Standard_B1s 1 GiB) shows roughly
// 0.85–0.95 GiB. Requiring a full GiB would refuse exactly the VMs the
// documentation says work, so the threshold is 800 MiB: below every 1 GiB VM
// we know of, above every 512 MiB one.
const DefaultMinMemory uint64 = 800 << 20

// Memory fails with NotEnoughMemory when MemTotal in <root>/proc/meminfo is
// below minBytes. An unreadable or malformed meminfo returns a plain error:
// the check could not run, and the caller decides whether to go on.
func Memory(root sysroot.Root, minBytes uint64) error {
	data, err := root.ReadFile("/proc/meminfo")
	if err != nil {
		return fmt.Errorf("reading meminfo: %w", err)
	}
	total, err := memTotal(data)
	if err != nil {
		return err
	}
	if total >= minBytes {
		return nil
	}
	return failure.New(failure.NotEnoughMemory, fmt.Errorf("MemTotal %d bytes < %d", total, minBytes),
		"This VM has %s of memory; AADSSHLoginForLinux needs at least 1 GB (the package manager fails below that). "+
			"Resize the VM to a size with at least 1 GiB of memory.", formatBytes(total))
}

// memTotal returns MemTotal in bytes; the kernel always reports it in kB
// (meaning KiB).
func memTotal(data []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "MemTotal" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			break
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing MemTotal %q: %w", rest, err)
		}
		unit := uint64(1)
		if len(fields) > 1 && strings.EqualFold(fields[1], "kB") {
			unit = 1024
		}
		return n * unit, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading meminfo: %w", err)
	}
	return 0, fmt.Errorf("meminfo has no MemTotal line")
}
