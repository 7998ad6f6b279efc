package checks

import (
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/sysroot"
)

// FuzzSSHDConfig feeds arbitrary sshd_config text to the parser: it must
// never panic, keywords must come out normalised, and line numbers must be
// real. The root is an empty directory, so Include lines resolve to nothing.
func FuzzSSHDConfig(f *testing.F) {
	f.Add([]byte("Port 22\nAllowGroups admins\n"))
	f.Add([]byte("Match User *@*\n  PubkeyAuthentication yes\nMatch all\nDenyGroups=x\n"))
	f.Add([]byte("Include sshd_config.d/*.conf\n#c\n\"\n=\n"))
	root := sysroot.Root(f.TempDir())
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &configReader{root: root}
		cr.parse(data, sshdConfigPath, false, 0)
		lines := strings.Count(string(data), "\n") + 1
		for _, d := range cr.out {
			if d.keyword == "" || d.keyword != strings.ToLower(d.keyword) || strings.ContainsAny(d.keyword, " \t=") {
				t.Fatalf("bad keyword %q", d.keyword)
			}
			if d.line < 1 || d.line > lines {
				t.Fatalf("line %d of %d", d.line, lines)
			}
		}
		for _, w := range configWarnings(cr.out) {
			if w.Name == "" || w.Message == "" {
				t.Fatalf("empty warning %+v", w)
			}
		}
	})
}
