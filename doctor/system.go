package doctor

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/sysroot"
)

// sshd units: Debian and Ubuntu call the service ssh, the others sshd;
// Ubuntu 22.10 and later start sshd from a socket on the first connection.
var sshdUnits = []string{"ssh.service", "sshd.service", "ssh.socket", "sshd.socket"}

func (e *env) checkSSHDRunning(ctx context.Context) Check {
	if st, err := os.Stat(e.o.Root.Path("/run/systemd/system")); err == nil && st.IsDir() && e.o.Runner != nil {
		res, err := e.o.Runner.Run(ctx, cmdrun.Cmd{Name: "systemctl", Args: append([]string{"is-active"}, sshdUnits...), Timeout: 5 * time.Second})
		if err == nil {
			states := strings.Fields(string(res.Stdout))
			var active []string
			for i, s := range states {
				if s == "active" && i < len(sshdUnits) {
					active = append(active, sshdUnits[i])
				}
			}
			if len(active) > 0 {
				return pass("sshd is running (systemd: %s active).", strings.Join(active, ", "))
			}
			return Check{Status: Fail, Message: fmt.Sprintf("sshd is not running: none of %s is active (systemd).", strings.Join(sshdUnits, ", ")),
				Fix: "Start and enable it: systemctl enable --now ssh (Debian, Ubuntu) or systemctl enable --now sshd (the others)."}
		}
	}
	pids := processesNamed(e.o.Root, "sshd")
	if len(pids) > 0 {
		return pass("sshd is running (pid %s).", strings.Join(pids, ", "))
	}
	return Check{Status: Warn, Message: "No sshd process was found, and there is no systemd to ask whether sshd starts on demand (inetd, a socket unit).",
		Fix: "Make sure sshd runs (start it with the init system this machine uses)."}
}

// processesNamed lists the pids whose command name is name.
func processesNamed(root sysroot.Root, name string) []string {
	entries, err := os.ReadDir(root.Path("/proc"))
	if err != nil {
		return nil
	}
	var pids []string
	for _, en := range entries {
		if _, err := strconv.Atoi(en.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(root.Path("/proc"), en.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == name {
			pids = append(pids, en.Name())
		}
	}
	return pids
}

// utmp, as glibc lays it out on x86_64 and aarch64 (struct utmp, 384
// bytes; the 32-bit time fields are the compat layout both use).
const (
	utmpSize       = 384
	utmpUserProc   = 7 // USER_PROCESS
	utmpOffPID     = 4
	utmpOffLine    = 8
	utmpOffUser    = 44
	utmpLenUser    = 32
	utmpOffHost    = 76
	utmpLenHost    = 256
	utmpMaxRecords = 4096
)

// UtmpPaths are where login records of current sessions live.
var UtmpPaths = []string{"/run/utmp", "/var/run/utmp"}

// Session is one logged-in user as utmp records it.
type Session struct {
	User string
	Line string
	Host string
	PID  int32
}

// ParseUtmp reads the USER_PROCESS records of a utmp file.
func ParseUtmp(data []byte) []Session {
	var out []Session
	for i := 0; i+utmpSize <= len(data) && i/utmpSize < utmpMaxRecords; i += utmpSize {
		rec := data[i : i+utmpSize]
		if int16(binary.LittleEndian.Uint16(rec[0:2])) != utmpUserProc {
			continue
		}
		s := Session{
			PID:  int32(binary.LittleEndian.Uint32(rec[utmpOffPID : utmpOffPID+4])),
			Line: cString(rec[utmpOffLine : utmpOffLine+32]),
			User: cString(rec[utmpOffUser : utmpOffUser+utmpLenUser]),
			Host: cString(rec[utmpOffHost : utmpOffHost+utmpLenHost]),
		}
		if s.User != "" {
			out = append(out, s)
		}
	}
	return out
}

// UtmpRecord encodes a USER_PROCESS record (tests write them into roots).
func UtmpRecord(s Session, at time.Time) []byte {
	rec := make([]byte, utmpSize)
	binary.LittleEndian.PutUint16(rec[0:2], utmpUserProc)
	binary.LittleEndian.PutUint32(rec[utmpOffPID:], uint32(s.PID))
	copy(rec[utmpOffLine:utmpOffLine+32], s.Line)
	copy(rec[40:44], strings.TrimPrefix(s.Line, "pts/"))
	copy(rec[utmpOffUser:utmpOffUser+utmpLenUser], s.User)
	copy(rec[utmpOffHost:utmpOffHost+utmpLenHost], s.Host)
	binary.LittleEndian.PutUint32(rec[340:], uint32(at.Unix()))
	return rec
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// aadUsers are the Entra users aadsshlogin provisioned (/etc/aadpasswd,
// passwd format).
func aadUsers(root sysroot.Root) map[string]bool {
	users := map[string]bool{}
	data, err := root.ReadFile("/etc/aadpasswd")
	if err != nil {
		return users
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && name != "" {
			users[name] = true
		}
	}
	return users
}

// isEntra tells an Entra user: a UPN-shaped name, or one aadsshlogin
// provisioned. utmp keeps 32 bytes of the name, so a cut name is matched
// by prefix against /etc/aadpasswd.
func isEntra(name string, known map[string]bool) bool {
	if strings.Contains(name, "@") || known[name] {
		return true
	}
	if len(name) == utmpLenUser {
		for k := range known {
			if strings.HasPrefix(k, name) {
				return true
			}
		}
	}
	return false
}

// EntraSessions lists the Entra users logged in now, from utmp (records
// whose process is gone are stale and skipped) and from logind's session
// files; src says which sources answered.
func EntraSessions(root sysroot.Root) (users []string, src string, err error) {
	known := aadUsers(root)
	seen := map[string]bool{}
	var sources []string
	for _, p := range UtmpPaths {
		data, rerr := root.ReadFile(p)
		if rerr != nil {
			continue
		}
		sources = append(sources, "utmp")
		for _, s := range ParseUtmp(data) {
			if s.PID > 0 && !root.Exists(fmt.Sprintf("/proc/%d", s.PID)) {
				continue
			}
			if isEntra(s.User, known) && !seen[s.User] {
				seen[s.User] = true
				users = append(users, s.User)
			}
		}
		break // /var/run is /run on every supported distribution
	}
	if entries, rerr := os.ReadDir(root.Path("/run/systemd/sessions")); rerr == nil {
		sources = append(sources, "logind")
		for _, en := range entries {
			if strings.HasSuffix(en.Name(), ".ref") {
				continue
			}
			data, rerr := root.ReadFile("/run/systemd/sessions/" + en.Name())
			if rerr != nil {
				continue
			}
			for _, line := range strings.Split(string(data), "\n") {
				if name, ok := strings.CutPrefix(line, "USER="); ok && isEntra(name, known) && !seen[name] {
					seen[name] = true
					users = append(users, name)
				}
			}
		}
	}
	if len(sources) == 0 {
		return nil, "", fmt.Errorf("neither utmp (%s) nor logind's session files are readable", strings.Join(UtmpPaths, ", "))
	}
	sort.Strings(users)
	return users, strings.Join(sources, " and "), nil
}
