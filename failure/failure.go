// Package failure defines the handler's exit codes and the one error type
// that carries a code and a message a user can act on.
//
// Lower packages (distro, imds, installer, …) return *Error when they know
// what went wrong in terms a user understands; the handler turns the first
// *Error in a chain into the status message and the process exit code. Any
// other error is an internal failure (code Internal) and is reported with a
// generic message, never as a raw Go error chain.
package failure

import (
	"errors"
	"fmt"
)

// Code is a process exit code of the handler. The agent sees it modulo 256,
// so every code is below 256. docs/exit-codes.md documents each one.
type Code int

const (
	OK       Code = 0
	Internal Code = 1 // unexpected internal error (a bug); the log has details

	UnknownVerb Code = 19 // the agent ran a verb we do not know (as 1.0.2385.1: 10003 mod 256)

	RepositoryUnreachable Code = 20 // repository or signing key could not be downloaded (as 1.0.2385.1)
	VerificationFailed    Code = 21 // packages installed but sshd/NSS/PAM/SELinux not wired (as 1.0.2385.1)
	NoManagedIdentity     Code = 22 // no system-assigned managed identity (documented by Microsoft)
	ObsoleteExtension     Code = 23 // AADLoginForLinux (aadlogin) still installed (documented by Microsoft)
	MetadataUnreachable   Code = 24 // IMDS did not answer usefully (down, timing out, 5xx)
	UntrustedKey          Code = 25 // signing key fingerprint not pinned, or a signature check failed
	PackageManagerLocked  Code = 26 // another process held the package-manager lock for the whole budget
	PackageManagerFailed  Code = 27 // the package manager failed to install or remove a package
	NotEnoughMemory       Code = 28 // less memory than aadsshlogin needs
	NotEnoughDisk         Code = 29 // too little free space for packages or state
	HandlerBusy           Code = 30 // another handler invocation held the handler lock for the whole budget
	TimeBudgetExceeded    Code = 31 // the verb ran out of its time budget before finishing
	DoctorFoundProblems   Code = 32 // aadsshlogin-handler doctor: at least one check failed

	Unsupported        Code = 51 // distribution or version not supported
	BadSettings        Code = 53 // public/protected settings invalid
	BadEnvironment     Code = 54 // HandlerEnvironment.json or the agent's files missing or malformed
	SystemStateInvalid Code = 55 // the machine is in a state we refuse to change (e.g. a broken file we must edit)
)

// Name returns a short stable identifier for the code, used in substatus
// names, events and logs.
func (c Code) Name() string {
	switch c {
	case OK:
		return "Success"
	case Internal:
		return "InternalError"
	case UnknownVerb:
		return "UnknownCommand"
	case RepositoryUnreachable:
		return "RepositoryUnreachable"
	case VerificationFailed:
		return "VerificationFailed"
	case NoManagedIdentity:
		return "NoManagedIdentity"
	case ObsoleteExtension:
		return "ObsoleteExtension"
	case MetadataUnreachable:
		return "MetadataServiceUnreachable"
	case UntrustedKey:
		return "UntrustedSigningKey"
	case PackageManagerLocked:
		return "PackageManagerLocked"
	case PackageManagerFailed:
		return "PackageManagerFailed"
	case NotEnoughMemory:
		return "NotEnoughMemory"
	case NotEnoughDisk:
		return "NotEnoughDisk"
	case HandlerBusy:
		return "HandlerBusy"
	case TimeBudgetExceeded:
		return "TimeBudgetExceeded"
	case DoctorFoundProblems:
		return "DoctorFoundProblems"
	case Unsupported:
		return "UnsupportedDistribution"
	case BadSettings:
		return "InvalidSettings"
	case BadEnvironment:
		return "InvalidHandlerEnvironment"
	case SystemStateInvalid:
		return "SystemStateInvalid"
	}
	return fmt.Sprintf("Code%d", int(c))
}

// Codes lists every code the handler can exit with, in table order.
func Codes() []Code {
	return []Code{OK, Internal, UnknownVerb, RepositoryUnreachable, VerificationFailed,
		NoManagedIdentity, ObsoleteExtension, MetadataUnreachable, UntrustedKey,
		PackageManagerLocked, PackageManagerFailed, NotEnoughMemory, NotEnoughDisk,
		HandlerBusy, TimeBudgetExceeded, DoctorFoundProblems, Unsupported, BadSettings, BadEnvironment,
		SystemStateInvalid}
}

// Error is a failure with an exit code and a message meant for the user who
// reads the extension status in the portal or CLI: one or two sentences that
// say what is wrong and what to do. Err is the underlying cause, logged but
// not shown to the user.
type Error struct {
	Code Code
	Msg  string
	Err  error
}

// New returns an *Error with a formatted user message and an optional cause.
func New(code Code, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: cause}
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the code of the first *Error in err's chain, OK for nil, and
// Internal for any other error.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return Internal
}

// MessageOf returns the user-facing message of the first *Error in err's
// chain, or a generic sentence for other errors (never the raw chain).
func MessageOf(err error) string {
	if err == nil {
		return ""
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Msg
	}
	return "The handler failed unexpectedly. See the handler log in /var/log/azure/Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux/ for details."
}
