// Package loopback runs a package's unit tests in a network namespace of
// their own whose only interface is lo: a unit test can reach this
// machine's loopback (httptest servers, the component tests' repositories)
// and nothing else, whatever a test or the code under test dials. Each
// unit package's TestMain calls Main; the end-to-end, fault, benchmark and
// demo tiers build their own isolated networks (test/sandbox) and do not.
package loopback

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// ChildEnv marks the copy of the test binary started in the new namespace.
const ChildEnv = "AADSSH_LOOPBACK_CHILD"

// Main runs m's tests with loopback networking only and returns the exit
// code for os.Exit. When the process already has no interface but lo (the
// copy Main started, `unshare -n`, a container without network), it brings
// lo up and runs the tests. Otherwise it runs the test binary again, with
// the same arguments, in a new network namespace (as root; other users get
// a new user namespace too, mapping only their own ids) and returns that
// copy's exit code. It never runs the tests with the machine's network.
func Main(m *testing.M) int {
	if err := Isolated(); err == nil {
		if err := loopbackUp(); err != nil {
			fmt.Fprintf(os.Stderr, "loopback: bringing lo up: %v\n", err)
			return 2
		}
		return m.Run()
	} else if os.Getenv(ChildEnv) != "" {
		fmt.Fprintf(os.Stderr, "loopback: the tests' own network namespace is not isolated: %v\n", err)
		return 2
	}
	code, err := rerun()
	if err != nil {
		fmt.Fprintf(os.Stderr, "loopback: cannot run the unit tests in a network namespace of their own (%v). "+
			"Run them as root, allow unprivileged user namespaces, or run `go test` under `unshare -rn`.\n", err)
		return 2
	}
	return code
}

// Isolated returns nil when every network interface of the process is a
// loopback interface.
func Isolated() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("listing network interfaces: %w", err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return fmt.Errorf("interface %s is not a loopback interface", i.Name)
		}
	}
	return nil
}

// loopbackUp sets lo up (a new namespace starts with it down).
func loopbackUp() error {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return fmt.Errorf("finding lo: %w", err)
	}
	if lo.Flags&net.FlagUp != 0 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("setting lo up: %w", err)
	}
	return nil
}

// rerun runs this test binary again in a new network namespace and returns
// its exit code.
func rerun() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding the test binary: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), ChildEnv+"=1")
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET,
		// go test kills this process when its own timeout passes; the
		// copy must not outlive it.
		Pdeathsig: syscall.SIGKILL,
	}
	if uid, gid := os.Getuid(), os.Getgid(); uid != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		// Setting lo up needs CAP_NET_ADMIN in the new namespace, which a
		// user other than root keeps across exec only as an ambient
		// capability.
		attr.AmbientCaps = []uintptr{unix.CAP_NET_ADMIN}
	}
	cmd.SysProcAttr = attr
	// Pdeathsig follows the thread that started the child: keep it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() >= 0:
		return exitErr.ExitCode(), nil
	case errors.As(err, &exitErr):
		return 0, fmt.Errorf("the tests' process ended by %v", exitErr.ProcessState)
	}
	return 0, fmt.Errorf("starting the tests in a new network namespace: %w", err)
}
