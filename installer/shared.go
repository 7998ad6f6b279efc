package installer

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/installer/keys"
	"github.com/aadsshlogin/handler/installer/repo"
	"github.com/aadsshlogin/handler/sysroot"
)

// repoDirs hold the rpm-family repository definitions (dnf/yum/tdnf and
// zypper).
var repoDirs = []string{"/etc/yum.repos.d", "/etc/zypp/repos.d"}

// keysUsedElsewhere maps the fingerprint of every key that an enabled
// repository definition other than ours names in its gpgkey= to a short
// description of that definition ("/etc/yum.repos.d/microsoft-prod.repo
// [packages-microsoft-com-prod]"). The rpm database holds one copy of a key
// for all repositories: a key imported for aadsshlogin may since sign
// dotnet, PowerShell or Defender for Endpoint updates, and removing it
// would break them. gpgkey= values are local files (read and parsed) or
// packages.microsoft.com key URLs (known by their file name).
func keysUsedElsewhere(root sysroot.Root, log logrus.FieldLogger, ours string) map[string]string {
	used := map[string]string{}
	byFile := map[string]string{}
	for _, k := range keys.Microsoft() {
		byFile[k.File] = k.Fingerprint
	}
	for _, dir := range repoDirs {
		files, err := root.Glob(dir + "/*.repo")
		if err != nil {
			continue
		}
		for _, f := range files {
			if f == ours {
				continue
			}
			data, err := root.ReadFile(f)
			if err != nil || bytes.HasPrefix(data, []byte(repo.Header)) {
				continue
			}
			for section, refs := range gpgKeys(data) {
				where := fmt.Sprintf("%s [%s]", f, section)
				for _, ref := range refs {
					var fps []string
					switch {
					case strings.HasPrefix(ref, "file://"):
						kd, err := root.ReadFile(strings.TrimPrefix(ref, "file://"))
						if err != nil {
							continue
						}
						if fps, err = keys.FingerprintsOf(kd); err != nil {
							log.WithError(err).WithField("key", ref).Debug("unreadable key file named by another repository")
							continue
						}
					case strings.HasPrefix(ref, "https://") || strings.HasPrefix(ref, "http://"):
						if fp, ok := byFile[path.Base(ref)]; ok {
							fps = []string{fp}
						}
					}
					for _, fp := range fps {
						if _, seen := used[fp]; !seen {
							used[fp] = where
						}
					}
				}
			}
		}
	}
	return used
}

// gpgKeys returns, per enabled section of an ini-style .repo file, the
// gpgkey= references (dnf accepts several, separated by spaces or commas,
// also on continuation lines).
func gpgKeys(data []byte) map[string][]string {
	out := map[string][]string{}
	enabled := map[string]bool{}
	var section string
	inKey := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			inKey = false
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			enabled[section] = true // dnf's default
			inKey = false
			continue
		}
		if inKey && (raw[0] == ' ' || raw[0] == '\t') {
			out[section] = append(out[section], splitRefs(line)...)
			continue
		}
		inKey = false
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "gpgkey":
			out[section] = append(out[section], splitRefs(v)...)
			inKey = true
		case "enabled":
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "0", "false", "no", "off":
				enabled[section] = false
			}
		}
	}
	for s := range out {
		if !enabled[s] {
			delete(out, s)
		}
	}
	return out
}

func splitRefs(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
}
