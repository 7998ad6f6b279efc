// Package checks holds the pre-flight checks that run before the handler
// changes anything on the machine: memory, disk space, the obsolete
// AADLoginForLinux packages, Azure Arc detection, sshd settings that break
// Entra logins, and a network diagnosis used after a download fails.
//
// Checks that can refuse return *failure.Error with a message the user can
// act on. Checks that only advise return Warning values, which the handler
// reports as substatuses with status "warning". SELinuxWarnings is advice
// too, but belongs after the install (see its comment).
package checks

import (
	"fmt"

	"github.com/aadsshlogin/handler/sysroot"
)

// Warning is advice that does not stop the installation.
type Warning struct {
	// Name is a short stable identifier (the substatus name).
	Name string
	// Message is one or two sentences for the user.
	Message string
}

// arcAgentPath is the Azure Connected Machine agent's metadata service; the
// shipped extension treats its presence as "this is an Arc-enabled server".
const arcAgentPath = "/opt/azcmagent/bin/himds"

// IsArc reports an Azure Arc-enabled server. On Arc there is no Azure IMDS
// cloud query and no managed-identity check (Arc machines always have one).
func IsArc(root sysroot.Root) bool {
	return root.Exists(arcAgentPath)
}

// formatBytes renders a size the way the messages use it: MiB below 10 GiB
// (where users think in "512 MiB" or "2048 MiB"), GiB above.
func formatBytes(b uint64) string {
	switch {
	case b >= 10<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%d MiB", b>>20)
	default:
		return fmt.Sprintf("%d KiB", b>>10)
	}
}
