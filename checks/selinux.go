package checks

import (
	"context"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/selinux"
	"github.com/aadsshlogin/handler/sysroot"
)

// SELinuxWarnings reports, as zero or one warning, an SELinux policy under
// which Entra logins fail at the first login although aadsshlogin-selinux
// is installed: enforcing, defining sshd_session_t (RHEL 10; OpenSSH 10
// elsewhere), and nothing giving that domain the access aad_permissions
// gives sshd_t (Azure/azure-linux-extensions#2208).
//
// Call it after the packages are installed: before, aad_permissions is not
// loaded and nothing is reported. It only reads, never fails, and a
// question it cannot answer (tools missing, selinuxfs unreadable) means no
// warning. The warning is advice: it must not change the exit code.
func SELinuxWarnings(ctx context.Context, r cmdrun.Runner, root sysroot.Root) []Warning {
	return selinuxWarnings(selinux.Probe{Runner: r, Root: root}.Detect(ctx))
}

// selinuxWarnings decides from a report: only a certain failure is worth a
// warning, except that a module store that could not be read counts as
// "not covered", which every aadsshlogin-selinux up to 1.0.034210009 is.
func selinuxWarnings(rep selinux.Report) []Warning {
	if rep.Mode != selinux.Enforcing || rep.SessionDomain != selinux.Yes ||
		rep.Module != selinux.Yes || rep.Covered == selinux.Yes {
		return nil
	}
	coverage := "which the aad_permissions module of aadsshlogin-selinux does not cover yet"
	if rep.Covered == selinux.Unknown {
		coverage = "which the aad_permissions module of aadsshlogin-selinux did not cover up to version 1.0.034210009 " +
			"(the installed module could not be read to check)"
	}
	return []Warning{{
		Name: "SELinux",
		Message: "Entra ID logins will fail at the first login on this VM: SELinux is enforcing and its policy runs " +
			"sshd's per-session work (the PAM account step that provisions the user) in the domain sshd_session_t, " +
			coverage + " (Azure/azure-linux-extensions#2208). To fix, as root: run 'semanage permissive -a sshd_session_t', " +
			"log in once with an Entra ID account, then run 'ausearch -m AVC -ts today --raw | grep sshd_session_t | " +
			"audit2allow -M aad_sshd_session && semodule -i aad_sshd_session.pp && semanage permissive -d sshd_session_t'. " +
			"The first command alone is a stop-gap; docs/selinux.md of this handler has the details.",
	}}
}

// SELinuxWarningsFrom is SELinuxWarnings for a report already taken (doctor
// reports the mode as well).
func SELinuxWarningsFrom(rep selinux.Report) []Warning { return selinuxWarnings(rep) }
