package selinux

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/aadsshlogin/handler/sysroot"
)

// ErrInvalidContext is ContextChecker's answer for a context the loaded
// policy does not define (an unknown type, or a role or user that may not
// have it).
var ErrInvalidContext = errors.New("the loaded policy does not define this security context")

// ContextChecker asks the loaded policy whether a security context is
// valid: nil for yes, ErrInvalidContext for no, any other error when it
// cannot tell.
type ContextChecker interface {
	CheckContext(context string) error
}

// Kernel is the production ContextChecker. It does what libselinux's
// security_check_context does: write the context to selinuxfs's context
// file, where the kernel converts it to a security identifier and answers
// EINVAL when the loaded policy does not define it. It is a query: the
// policy is not changed. Under an enforcing policy the caller's domain needs
// the "security check_context" permission, which unconfined domains (the
// agent runs extensions in unconfined_service_t) have; a denial is EACCES,
// which is "cannot tell".
type Kernel struct {
	Root sysroot.Root
}

// CheckContext implements ContextChecker.
func (k Kernel) CheckContext(context string) error {
	f, err := os.OpenFile(k.Root.Path(selinuxfs+"/context"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// libselinux sends the terminating NUL too; the kernel accepts either.
	_, err = f.Write(append([]byte(context), 0))
	return classifyWrite(context, err)
}

// classifyWrite turns the kernel's EINVAL into ErrInvalidContext; every
// other error means the kernel could not be asked.
func classifyWrite(context string, err error) error {
	if errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("%s: %w", context, ErrInvalidContext)
	}
	return err
}
