package verify

import (
	"context"

	"github.com/aadsshlogin/handler/sysroot"
)

// The individual checks of Verify, for callers that report each on its own
// (aadsshlogin-handler doctor). They are the same code Verify runs after an
// install; nil means the piece is wired.

// NSS checks the aad source on nsswitch.conf's passwd line.
func NSS(root sysroot.Root) []Problem { return checkNSS(root) }

// PAM checks for an active pam_aad line under /etc/pam.d.
func PAM(root sysroot.Root) []Problem { return checkPAM(root) }

// SSHD checks that sshd's effective configuration for an Entra-shaped user
// (sshd -T -C user=…@…,host=…,addr=…, else the configuration files) runs
// aad_certhandler as its AuthorizedKeysCommand. sshd -T may need a
// throwaway host key, created under /tmp and removed at once.
func SSHD(ctx context.Context, o Options) []Problem { return checkSSHD(ctx, o) }

// SELinuxModule checks that the aad_permissions module is loaded.
func SELinuxModule(ctx context.Context, o Options) []Problem { return checkSELinux(ctx, o) }

// CertHandler is the program aadsshlogin registers with sshd.
const CertHandler = certHandler

// ProbeUser is the Entra-shaped user sshd's configuration is evaluated for.
const ProbeUser = probeUser
