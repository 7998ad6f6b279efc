package handler

import (
	"errors"
	"io/fs"
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
