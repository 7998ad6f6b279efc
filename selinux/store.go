package selinux

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/aadsshlogin/handler/sysroot"
)

// The module store libsemanage builds the loaded policy from (policycoreutils
// 2.4 and later: RHEL 8, 9, 10): every module sits at
// <store>/<policy type>/active/modules/<priority>/<name>/cil, as CIL (for .pp
// modules, converted), bzip2-compressed unless semanage.conf sets
// bzip-blocksize=0; modules/disabled/<name> marks a disabled module, and the
// highest priority of a name wins. Reading it costs no process and no lock,
// and it holds what "semodule --cil --extract" would write to a file.
const (
	storeRoot     = "/var/lib/selinux"
	selinuxConfig = "/etc/selinux/config"
	// distroPriority is where the distribution's policy modules sit;
	// semodule -i installs at 400 by default.
	distroPriority = 100
	// maxCILBytes bounds one module's decompressed text.
	maxCILBytes = 32 << 20
)

// distroSSHModule is the distribution's ssh module; Fedora-derived policies
// declare new sshd domains permissive there ("(typepermissive
// sshd_session_t)") until they are ready, which RHEL 10 did until
// selinux-policy-42.1.18-4.el10_2.2.
const distroSSHModule = "ssh"

type storedModule struct {
	priority int
	cil      string // target path of its cil file
}

// storeCoverage looks in the module store for what makes sshd_session_t
// work: aad_permissions with rules for it (a fixed aadsshlogin-selinux), a
// module that makes it permissive, or another non-distribution module that
// gives it access to what aad_permissions gives sshd_t (the
// administrator's fix, whatever its name). The distribution's modules are
// not read, except ssh for its permissive statement.
func (p Probe) storeCoverage(rep *Report) (Answer, string) {
	ptype := policyType(p.Root)
	mods, err := readStore(p.Root, ptype)
	if err != nil {
		rep.note("module store: %v", err)
		return Unknown, ""
	}
	aad, ok := mods[ModuleName]
	if !ok {
		rep.note("module store %s/%s has no %s", storeRoot, ptype, ModuleName)
		return Unknown, ""
	}
	text, err := readCIL(p.Root, aad.cil)
	if err != nil {
		rep.note("%s: %v", ModuleName, err)
		return Unknown, ""
	}
	stmts := parseCIL(text)
	if grants(stmts, SessionDomain, nil) {
		return Yes, ModuleName
	}
	targets := allowTargets(stmts, ClassicDomain)
	names := make([]string, 0, len(mods))
	for name := range mods {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m := mods[name]
		if name == ModuleName || (m.priority == distroPriority && name != distroSSHModule) {
			continue
		}
		text, err := readCIL(p.Root, m.cil)
		if err != nil {
			rep.note("%s: %v", name, err)
			continue
		}
		st := parseCIL(text)
		if permissive(st, SessionDomain) {
			return Yes, name + " makes " + SessionDomain + " permissive"
		}
		if name != distroSSHModule && len(targets) > 0 && grants(st, SessionDomain, targets) {
			return Yes, name
		}
	}
	return No, ""
}

// policyType reads SELINUXTYPE from /etc/selinux/config ("targeted" when
// it is not set), the name of the loaded policy's store.
func policyType(root sysroot.Root) string {
	data, err := root.ReadFile(selinuxConfig)
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			if ok && strings.TrimSpace(k) == "SELINUXTYPE" {
				v = strings.Trim(strings.TrimSpace(v), `"'`)
				if v != "" && !strings.ContainsAny(v, "/ ") && v != "." && v != ".." {
					return v
				}
			}
		}
	}
	return "targeted"
}

// readStore lists the enabled modules of a policy store at their highest
// priority.
func readStore(root sysroot.Root, ptype string) (map[string]storedModule, error) {
	dir := path.Join(storeRoot, ptype, "active", "modules")
	files, err := root.Glob(dir + "/*/*/cil")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no modules under %s", dir)
	}
	mods := map[string]storedModule{}
	for _, f := range files {
		moduleDir := path.Dir(f)
		name := path.Base(moduleDir)
		prio, err := strconv.Atoi(path.Base(path.Dir(moduleDir)))
		if err != nil || root.Exists(path.Join(dir, "disabled", name)) {
			continue
		}
		if old, seen := mods[name]; !seen || prio > old.priority {
			mods[name] = storedModule{priority: prio, cil: f}
		}
	}
	return mods, nil
}

// readCIL reads a stored module's CIL, decompressing it when it is bzip2.
func readCIL(root sysroot.Root, p string) ([]byte, error) {
	data, err := root.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(data, []byte("BZh")) {
		return data, nil
	}
	out, err := io.ReadAll(io.LimitReader(bzip2.NewReader(bytes.NewReader(data)), maxCILBytes+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", p, err)
	}
	if len(out) > maxCILBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxCILBytes)
	}
	return out, nil
}
