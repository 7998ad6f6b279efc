package handler

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aadsshlogin/handler/checks"
	"github.com/aadsshlogin/handler/doctor"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/handler/agent"
	"github.com/aadsshlogin/handler/imds"
)

// fastIdentityTimeout bounds the one token request of the enable fast path:
// IMDS answers in a few milliseconds when it answers at all, and enable must
// not wait out the install's identity window (docs/design.md).
const fastIdentityTimeout = 2 * time.Second

// identitySubstatus names the warning substatus about the identity.
const identitySubstatus = "ManagedIdentity"

// fastIdentity asks IMDS once whether the VM still has its system-assigned
// managed identity, which every Entra login needs: it may have been removed
// since the install. It returns a *failure.Error (NoManagedIdentity) when
// IMDS says it is gone or answers only for a user-assigned identity, and a
// warning when IMDS did not answer (the identity could not be checked; the
// install's result still stands). Arc-enabled servers have no Azure IMDS.
func (r *run) fastIdentity(ctx context.Context) ([]agent.Substatus, error) {
	if checks.IsArc(r.opts.Root) {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, fastIdentityTimeout)
	defer cancel()
	a := r.imds().Identity(ctx)
	switch {
	case a.Err == nil:
		return nil, nil
	case failure.CodeOf(a.Err) == failure.NoManagedIdentity && a.Kind == imds.IdentityUserAssigned:
		return nil, a.Err
	case failure.CodeOf(a.Err) == failure.NoManagedIdentity:
		return nil, failure.New(failure.NoManagedIdentity, a.Err,
			"SSH login with Microsoft Entra ID does not work on this VM now: its system-assigned managed identity is gone "+
				"(the metadata service answers \"Identity not found\"), and every Entra login fails with \"Connection closed\" without it. "+
				"aadsshlogin stays installed. Enable the identity (az vm identity assign -g <resource-group> -n <vm-name>; for a scale set: "+
				"az vmss identity assign -g <resource-group> -n <scale-set-name>), wait a few minutes for it to reach the VM, then re-apply the extension.")
	}
	r.log.WithError(a.Err).Warn("managed identity not checked: IMDS did not answer")
	return []agent.Substatus{{Name: identitySubstatus, Status: agent.Warning,
		Message: "The system-assigned managed identity could not be checked: " + failure.MessageOf(a.Err)}}, nil
}

// withoutSubstatus drops earlier substatuses of one name (a warning the
// last full run reported must not outlive its cause).
func withoutSubstatus(subs []agent.Substatus, name string) []agent.Substatus {
	out := subs[:0:0]
	for _, s := range subs {
		if s.Name != name {
			out = append(out, s)
		}
	}
	return out
}

// entraSessions names the Entra users logged in (utmp, logind) as a
// warning substatus for uninstall: their sessions stay open, but once
// aadsshlogin is gone they cannot log in again, and sudo through the
// Administrator Login role ends with the package's sudoers drop-in.
func (r *run) entraSessions() []agent.Substatus {
	users, _, err := doctor.EntraSessions(r.opts.Root)
	if err != nil || len(users) == 0 {
		return nil
	}
	r.log.WithField("users", users).Info("Entra users logged in during uninstall")
	return []agent.Substatus{{Name: "EntraSessions", Status: agent.Warning,
		Message: fmt.Sprintf("Entra ID users were logged in while the extension was removed: %s. Their sessions stay open, "+
			"but they cannot log in again with Microsoft Entra ID, and sudo through the Virtual Machine Administrator Login role "+
			"ends with aadsshlogin's sudoers rule; ask them to log off.", strings.Join(users, ", "))}}
}
