package handler

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"

	"github.com/aadsshlogin/handler/sysroot"
)

// MarkerPath is the version marker shared with the shipped extension
// 1.0.2385.1: its uninstall removes the packages only when the file is
// missing or holds its own version. We keep the file and the rule (see
// docs/design.md, "Update and uninstall").
const MarkerPath = "/var/log/AADSSHLoginForLinux.version"

// readMarker returns the marker's single word, or "" when absent or empty.
func readMarker(root sysroot.Root) (string, error) {
	data, err := root.ReadFile(MarkerPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// writeMarker writes one word and a newline: the shipped script compares the
// whole content as one shell word, and an empty or multi-word file would make
// it remove the packages.
func writeMarker(root sysroot.Root, version string) error {
	return root.WriteFileAtomic(MarkerPath, []byte(version+"\n"), 0o644)
}

// compareVersions compares dotted numeric versions ("1.0.2385.1"); missing
// parts count as 0, non-numeric parts compare as 0.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
