package checks

import (
	"context"
	"fmt"
	"strings"

	"github.com/aadsshlogin/handler/failure"
)

// PackageQuerier answers which of the named packages are installed, with
// their versions (the package-manager back ends implement it).
type PackageQuerier interface {
	Installed(ctx context.Context, names ...string) (versions map[string]string, err error)
}

// ObsoletePackages fails with ObsoleteExtension while aadlogin or
// aadlogin-selinux is installed. We do not remove them ourselves: removal
// fails while Entra users are logged in and may need forcing, which is the
// owner's call. The message gives Microsoft's documented steps for the
// package manager kind ("apt", "dnf", "yum", "zypper", "tdnf").
func ObsoletePackages(ctx context.Context, q PackageQuerier, pmKind string) error {
	// Both packages belong to the deprecated AADLoginForLinux extension;
	// their PAM and NSS modules conflict with aadsshlogin's.
	names := []string{"aadlogin", "aadlogin-selinux"}
	installed, err := q.Installed(ctx, names...)
	if err != nil {
		return fmt.Errorf("checking for %s: %w", strings.Join(names, " and "), err)
	}
	var found []string
	for _, name := range names {
		if version, ok := installed[name]; ok {
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

// removalSteps returns the on-VM commands, including the forced variant the
// documentation gives for when logged-in Entra users block the removal.
func removalSteps(pmKind string) string {
	const rpmForce = "If that fails because Entra users are logged in, force it: sudo rpm -e --noscripts aadlogin aadlogin-selinux."
	switch pmKind {
	case "apt":
		return "then on the VM run: sudo apt remove --purge aadlogin aadlogin-selinux. " +
			"If that fails because Entra users are logged in, force it: sudo rm /var/lib/dpkg/info/aadlogin.prerm; " +
			"sudo dpkg --purge --force-remove-reinstreq aadlogin (likewise for aadlogin-selinux if installed)."
	case "dnf", "yum", "tdnf":
		return fmt.Sprintf("then on the VM run: sudo %s erase aadlogin aadlogin-selinux. %s", pmKind, rpmForce)
	case "zypper":
		return "then on the VM run: sudo zypper remove aadlogin aadlogin-selinux. " + rpmForce
	}
	return "then remove the aadlogin and aadlogin-selinux packages on the VM with its package manager."
}
