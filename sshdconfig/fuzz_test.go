package sshdconfig

import (
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/sysroot"
)

// FuzzSSHDConfig feeds arbitrary sshd_config text to the reader: it must
// never panic, keywords must come out normalised, line numbers must be
// real, and Match criteria lower-cased. The root is an empty directory, so
// Include lines resolve to nothing. (Moved here from checks with its
// corpus.)
func FuzzSSHDConfig(f *testing.F) {
	f.Add([]byte("Port 22\nAllowGroups admins\n"))
	f.Add([]byte("Match User *@*\n  PubkeyAuthentication yes\nMatch all\nDenyGroups=x\n"))
	f.Add([]byte("Include sshd_config.d/*.conf\n#c\n\"\n=\n"))
	f.Add([]byte("AllowUsers 'a b' c\"d e\"f g\\ h \\\"i\\\" \"#x\" #y\n"))
	root := sysroot.Root(f.TempDir())
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Parse(root, data)
		lines := strings.Count(string(data), "\n") + 1
		for _, d := range c.Directives {
			if d.Keyword == "" || d.Keyword != strings.ToLower(d.Keyword) || strings.ContainsAny(d.Keyword, " \t=") {
				t.Fatalf("bad keyword %q", d.Keyword)
			}
			if d.Keyword == "match" || d.Keyword == "include" {
				t.Fatalf("%s line returned as a directive", d.Keyword)
			}
			if d.Line < 1 || d.Line > lines || d.File != Path {
				t.Fatalf("%s of %d lines", d.Where(), lines)
			}
			for _, cr := range d.Match {
				if cr.Attr != strings.ToLower(cr.Attr) {
					t.Fatalf("criterion %q not lower-cased", cr.Attr)
				}
			}
		}
	})
}
