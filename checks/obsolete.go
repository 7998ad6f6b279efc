package checks

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/failure"
)

// PackageQuerier answers which of the named packages are installed, with
// their versions (the package-manager back ends implement it).
type PackageQuerier interface {
	Installed(ctx context.Context, names ...string) (versions map[string]string, err error)
}

// obsoleteNames are the deprecated AADLoginForLinux extension's packages;
// their PAM and NSS modules conflict with aadsshlogin's.
var obsoleteNames = []string{"aadlogin", "aadlogin-selinux"}

// openSSHNames hold sshd: openssh-server on most distributions, openssh
// where sshd is not split out (SLES 12). The first one installed wins.
var openSSHNames = []string{"openssh-server", "openssh"}

// Preflight is what the package database says about the packages the
// pre-flight checks look at: name → installed version.
type Preflight map[string]string

// QueryPreflight asks the package database once (one dpkg-query or rpm
// run) for the obsolete extension's packages and the OpenSSH server's.
func QueryPreflight(ctx context.Context, q PackageQuerier) (Preflight, error) {
	names := append(slices.Clip(obsoleteNames), openSSHNames...)
	installed, err := q.Installed(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("checking for %s: %w", strings.Join(names, ", "), err)
	}
	return Preflight(installed), nil
}

// Obsolete fails with ObsoleteExtension while aadlogin or aadlogin-selinux
// is installed. We do not remove them ourselves: removal fails while Entra
// users are logged in and may need forcing, which is the owner's call. The
// message gives Microsoft's documented steps for the package manager kind
// ("apt", "dnf", "yum", "zypper", "tdnf").
func (p Preflight) Obsolete(pmKind distro.PackageManager) error {
	var found []string
	for _, name := range obsoleteNames {
		if version, ok := p[name]; ok {
			found = append(found, strings.TrimSpace(name+" "+version))
		}
	}
	if len(found) == 0 {
		return nil
	}
	return failure.New(failure.ObsoleteExtension, fmt.Errorf("installed: %s", strings.Join(found, ", ")),
		"The old AADLoginForLinux extension is still installed (%s) and conflicts with AADSSHLoginForLinux. "+
			"Remove it: az vm extension delete -g <resource-group> --vm-name <vm-name> -n AADLoginForLinux; %s "+
			"Then re-apply this extension.",
		strings.Join(found, ", "), removalSteps(pmKind))
}

// OpenSSHVersion is the installed OpenSSH server package's version
// ("1:9.2p1-2+deb12u3", "8.7p1-38.el9"), "" when none is installed (sshd
// built by hand, or no sshd at all).
func (p Preflight) OpenSSHVersion() string {
	for _, name := range openSSHNames {
		if v := p[name]; v != "" {
			return v
		}
	}
	return ""
}

// removalSteps returns the on-VM commands, including the forced variant the
// documentation gives for when logged-in Entra users block the removal.
func removalSteps(pmKind distro.PackageManager) string {
	const rpmForce = "If that fails because Entra users are logged in, force it: sudo rpm -e --noscripts aadlogin aadlogin-selinux."
	switch pmKind {
	case distro.Apt:
		return "then on the VM run: sudo apt remove --purge aadlogin aadlogin-selinux. " +
			"If that fails because Entra users are logged in, force it: sudo rm /var/lib/dpkg/info/aadlogin.prerm; " +
			"sudo dpkg --purge --force-remove-reinstreq aadlogin (likewise for aadlogin-selinux if installed)."
	case distro.Dnf, distro.Yum, distro.Tdnf:
		return fmt.Sprintf("then on the VM run: sudo %s erase aadlogin aadlogin-selinux. %s", pmKind, rpmForce)
	case distro.Zypper:
		return "then on the VM run: sudo zypper remove aadlogin aadlogin-selinux. " + rpmForce
	}
	return "then remove the aadlogin and aadlogin-selinux packages on the VM with its package manager."
}
