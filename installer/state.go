package installer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/aadsshlogin/handler/installer/pkgmgr"
	"github.com/aadsshlogin/handler/sysroot"
)

// StateDir holds what the handler changed on the machine. It is shared by
// every version of the handler (unlike the versioned handler directory, which
// the agent deletes on update) and removed only by a real uninstall.
const StateDir = "/var/lib/aadsshlogin-handler"

const stateFile = StateDir + "/state.json"

// State is what a successful install left on the machine.
//
// Written by Install after a run succeeded. Read by the handler's enable and
// install fast paths (is there anything to do?) and by Uninstall (what to
// take away again).
type State struct {
	HandlerVersion string      `json:"handlerVersion"` // version of the handler that completed the install
	ConfigHash     string      `json:"configHash"`     // hash of the effective repository settings applied
	Distro         string      `json:"distro"`         // e.g. "ubuntu 22.04", for logs
	PackageManager pkgmgr.Kind `json:"packageManager"` // kind, so uninstall works even if detection fails later

	RepoFile       string `json:"repoFile,omitempty"`       // repository definition we wrote
	RepoFileSHA256 string `json:"repoFileSha256,omitempty"` // its content hash (fast path: unchanged?)
	RepoURL        string `json:"repoUrl,omitempty"`        // repository base URL in use
	ReusedRepo     string `json:"reusedRepo,omitempty"`     // the image's own repository id when we wrote none
	Keyring        string `json:"keyring,omitempty"`        // key file we wrote
	KeyringSHA256  string `json:"keyringSha256,omitempty"`

	// ImportedKeys are fingerprints we imported into the rpm database (and
	// that were not there before), removed again by uninstall.
	ImportedKeys []string `json:"importedKeys,omitempty"`
	// Preinstalled are our packages the administrator had installed before
	// the extension first ran (no version marker yet): uninstall leaves
	// them, as it found them.
	Preinstalled []string `json:"preinstalled,omitempty"`
	// Backups maps a target path to the copy of the user's own file that we
	// replaced; uninstall puts it back.
	Backups map[string]string `json:"backups,omitempty"`
	// Packages maps installed package names to versions.
	Packages map[string]string `json:"packages"`
	// SELinux is true when aadsshlogin-selinux is part of the install.
	SELinux bool `json:"selinux,omitempty"`
	// Hold is how aadsshlogin is held at its version against the
	// administrator's own upgrades; nil when it is not held.
	Hold *Hold `json:"hold,omitempty"`

	CompletedAt time.Time `json:"completedAt"`
}

// Hold records how an install holds packages at a version (hold.go), so
// that a later run or the uninstall takes away exactly what it added.
type Hold struct {
	Version  string   `json:"version"`  // the version held
	Source   string   `json:"source"`   // "setting" (aadsshloginVersion) or "platform" (SUSE before 15.6)
	Packages []string `json:"packages"` // the names held
	Method   string   `json:"method"`   // pkgmgr.HoldMethod: apt-preferences, repo-exclude (in RepoFile), zypper-lock
	// File is the apt preferences file we wrote, and its content hash.
	File       string `json:"file,omitempty"`
	FileSHA256 string `json:"fileSha256,omitempty"`
	// LocksAdded are the zypper package locks this handler added. A lock
	// that was there before is the administrator's and is never removed.
	LocksAdded []string `json:"locksAdded,omitempty"`
}

// HoldFile returns the file holding the packages and its content hash,
// ("", "") when the hold has no file of its own.
func (s *State) HoldFile() (path, sha string) {
	if s == nil || s.Hold == nil {
		return "", ""
	}
	return s.Hold.File, s.Hold.FileSHA256
}

// LoadState reads the state; no file means nothing installed (nil, nil). A
// corrupt file is treated the same way, with an error the caller logs: the
// next install rebuilds it.
func LoadState(root sysroot.Root) (*State, error) {
	data, err := root.ReadFile(stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", stateFile, err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", stateFile, err)
	}
	return &s, nil
}

// SaveState writes the state atomically, mode 0600.
func SaveState(root sysroot.Root, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	if err := os.MkdirAll(root.Path(StateDir), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", StateDir, err)
	}
	return root.WriteFileAtomic(stateFile, append(data, '\n'), 0o600)
}

// RemoveState deletes the state folder (backups included).
func RemoveState(root sysroot.Root) error {
	if err := os.RemoveAll(root.Path(StateDir)); err != nil {
		return fmt.Errorf("removing %s: %w", StateDir, err)
	}
	return nil
}
