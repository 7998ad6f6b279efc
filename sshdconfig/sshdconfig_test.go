package sshdconfig

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/sysroot"
)

func writeRoot(t testing.TB, files map[string]string) sysroot.Root {
	t.Helper()
	root := sysroot.Root(t.TempDir())
	for p, d := range files {
		if err := root.WriteFileAtomic(p, []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// render prints directives as "file:line keyword args [criteria]" with the
// file's base name, for compact expectations.
func render(c *Config) string {
	var lines []string
	for _, d := range c.Directives {
		s := fmt.Sprintf("%s:%d %s", d.File[strings.LastIndex(d.File, "/")+1:], d.Line, d.Keyword)
		if len(d.Args) > 0 {
			s += " " + strings.Join(d.Args, "|")
		}
		if d.Match != nil {
			var cs []string
			for _, c := range d.Match {
				cs = append(cs, c.Attr+"="+c.Arg)
			}
			s += " [" + strings.Join(cs, " ") + "]"
		}
		lines = append(lines, s)
	}
	return strings.Join(lines, "\n")
}

// TestRead covers the cases on which the two readers this package replaces
// disagreed (Match blocks in included files, quoting) and the Include rules.
func TestRead(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"keywords case-insensitive, = separator, comments", map[string]string{
			Path: "# comment\nPORT=22\n  allowgroups  a b\t# trailing\nPubkeyAuthentication = no\r\n",
		}, "sshd_config:2 port 22\nsshd_config:3 allowgroups a|b\nsshd_config:4 pubkeyauthentication no"},
		{"Match in an included file ends with that file", map[string]string{
			Path:                            "Include /etc/ssh/sshd_config.d/*.conf\nAllowGroups admins\n",
			"/etc/ssh/sshd_config.d/m.conf": "Match User bob\n  PasswordAuthentication no\n",
		}, "m.conf:2 passwordauthentication no [user=bob]\nsshd_config:2 allowgroups admins"},
		{"each file of a glob starts from the Include's state", map[string]string{
			Path:                       "Include sshd_config.d/*\n",
			"/etc/ssh/sshd_config.d/a": "Match User a\nX11Forwarding no\n",
			"/etc/ssh/sshd_config.d/b": "Banner /b\n",
		}, "a:2 x11forwarding no [user=a]\nb:1 banner /b"},
		{"Include inside Match applies the Match to the included lines", map[string]string{
			Path:                  "Match Group staff\n  Include /etc/ssh/staff.conf\nMatch all\nPort 22\n",
			"/etc/ssh/staff.conf": "AllowGroups staff\n",
		}, "staff.conf:1 allowgroups staff [group=staff]\nsshd_config:4 port 22 [all=]"},
		{"Match inside a file included under Match: both must hold", map[string]string{
			Path:                  "Match Group staff\n  Include /etc/ssh/staff.conf\n  Banner /staff\n",
			"/etc/ssh/staff.conf": "Banner /s\nMatch User alice\nBanner /alice\nMatch all\nAllowGroups x\n",
		}, "staff.conf:1 banner /s [group=staff]\nstaff.conf:3 banner /alice [group=staff user=alice]\n" +
			"staff.conf:5 allowgroups x [group=staff all=]\nsshd_config:3 banner /staff [group=staff]"},
		{"relative Include against /etc/ssh, lexical order", map[string]string{
			Path:                      "Include conf.d/*.conf other.conf\n",
			"/etc/ssh/conf.d/20.conf": "Banner /20\n",
			"/etc/ssh/conf.d/10.conf": "Banner /10\n",
			"/etc/ssh/conf.d/x.txt":   "Banner /txt\n",
			"/etc/ssh/other.conf":     "Banner /other\n",
		}, "10.conf:1 banner /10\n20.conf:1 banner /20\nother.conf:1 banner /other"},
		{"missing Include is not an error", map[string]string{
			Path: "Include /etc/ssh/none/*.conf\nPort 22\n",
		}, "sshd_config:2 port 22"},
		{"double and single quotes, escapes", map[string]string{
			Path: "Banner \"/etc/issue net\"\nAllowUsers 'a b' c\"d e\"f g\\ h \\\"i\\\" \"#x\"\n",
		}, "sshd_config:1 banner /etc/issue net\nsshd_config:2 allowusers a b|cd ef|g h|\"i\"|#x"},
		{"quoted Match criteria and trailing comment", map[string]string{
			Path: "Match User \"*@*\",????????-????-????-????-???????????? # Added by aadsshlogin installer\n  PubkeyAuthentication yes\n",
		}, "sshd_config:2 pubkeyauthentication yes [user=*@*,????????-????-????-????-????????????]"},
		{"Match Attr=value", map[string]string{
			Path: "Match user=alice Address 10.0.0.0/8\nBanner /a\n",
		}, "sshd_config:2 banner /a [user=alice address=10.0.0.0/8]"},
		{"Match without criteria is not global", map[string]string{
			Path: "Match\nBanner /a\n",
		}, "sshd_config:2 banner /a [=]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Read(writeRoot(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if got := render(c); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			if c.Truncated {
				t.Error("truncated")
			}
		})
	}
}

func TestReadMissing(t *testing.T) {
	if _, err := Read(writeRoot(t, nil)); err == nil {
		t.Fatal("no error for a missing sshd_config")
	}
}

// TestIncludeDepth: sshd refuses Include nesting deeper than 16; the reader
// stops there and says so.
func TestIncludeDepth(t *testing.T) {
	c, err := Read(writeRoot(t, map[string]string{Path: "Include /etc/ssh/sshd_config\nPort 22\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Truncated || len(c.Directives) != MaxIncludeDepth+1 {
		t.Errorf("truncated %v, %d directives", c.Truncated, len(c.Directives))
	}
	files := map[string]string{Path: "Include /etc/ssh/1\n"}
	for i := 1; i < MaxIncludeDepth; i++ {
		files[fmt.Sprintf("/etc/ssh/%d", i)] = fmt.Sprintf("Include /etc/ssh/%d\nBanner /%d\n", i+1, i)
	}
	files[fmt.Sprintf("/etc/ssh/%d", MaxIncludeDepth)] = "Banner /last\n"
	c, err = Read(writeRoot(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if c.Truncated || len(c.Directives) != MaxIncludeDepth {
		t.Errorf("depth %d: truncated %v, %d directives", MaxIncludeDepth, c.Truncated, len(c.Directives))
	}
}

func TestForEveryone(t *testing.T) {
	c := Parse(writeRoot(t, nil), []byte("A 1\nMatch all\nB 2\nMatch User x\nC 3\n"))
	var got []string
	for _, d := range c.Directives {
		got = append(got, fmt.Sprint(d.Keyword, d.ForEveryone()))
	}
	if strings.Join(got, ",") != "atrue,btrue,cfalse" {
		t.Error(got)
	}
}

func TestEffective(t *testing.T) {
	entra := Conn{User: "someone@contoso.com", Host: "localhost", Address: "127.0.0.1"}
	cases := []struct {
		name, config, want string
	}{
		{"first global value wins", "AuthorizedKeysCommand /a\nAuthorizedKeysCommand /b\n", "/a"},
		{"Match overrides global", "AuthorizedKeysCommand none\nMatch User *@*\nAuthorizedKeysCommand /aad\n", "/aad"},
		{"Match all counts as a Match", "Match all\nAuthorizedKeysCommand /all\nMatch User *@*\nAuthorizedKeysCommand /aad\n", "/all"},
		{"Match for others ignored", "AuthorizedKeysCommand /g\nMatch User admin,!*@*\nAuthorizedKeysCommand /x\n", "/g"},
		{"Group never matches", "Match Group *\nAuthorizedKeysCommand /x\n", ""},
		{"Host folds case", "Match Host LOCALHOST\nAuthorizedKeysCommand /h\n", "/h"},
		{"Address", "Match Address 10.*\nAuthorizedKeysCommand /x\nMatch Address 127.0.0.*\nAuthorizedKeysCommand /lo\n", "/lo"},
		{"unknown criteria assumed to match", "Match LocalPort 22\nAuthorizedKeysCommand /p\n", "/p"},
		{"unset", "Port 22\n", ""},
	}
	for _, tc := range cases {
		d, ok := Parse(writeRoot(t, nil), []byte(tc.config)).Effective("authorizedkeyscommand", entra)
		if got := d.Value(); got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: %q %v, want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestSplitLine(t *testing.T) {
	cases := map[string]string{
		"Port 22":                         "port|22",
		"Port=22":                         "port|22",
		"Port = 22":                       "port|22",
		"  AllowGroups a b\tc  ":          "allowgroups|a|b|c",
		`AuthorizedKeysCommand "/x y" %u`: "authorizedkeyscommand|/x y|%u",
		"Banner none # trailing comment":  "banner|none",
		"# comment":                       "",
		"":                                "",
		"KeyOnly":                         "keyonly",
		`Foo "unterminated`:               "foo|unterminated",
		`Foo 'single quoted' x`:           "foo|single quoted|x",
		`Foo a#b`:                         "foo|a#b",
		`Foo "a # b"`:                     "foo|a # b",
		`Foo a\ b c\d`:                    `foo|a b|c\d`,
		`Foo "it\"s"`:                     `foo|it"s`,
	}
	for in, want := range cases {
		k, args := SplitLine(in)
		got := k
		if len(args) > 0 {
			got += "|" + strings.Join(args, "|")
		}
		if got != want {
			t.Errorf("SplitLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWildcard(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"*@*", "a@b.com", true},
		{"*@*", "root", false},
		{"????????-????-????-????-????????????", "0b1c2d3e-aaaa-bbbb-cccc-111122223333", true},
		{"????????-????-????-????-????????????", "short-id", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"*", "", true},
	}
	for _, c := range cases {
		if got := Wildcard(c.p, c.s); got != c.want {
			t.Errorf("Wildcard(%q, %q) = %v", c.p, c.s, got)
		}
	}
	if !MatchList("root,*@*", "a@b", false) || MatchList("*,!*@*", "a@b", false) {
		t.Error("MatchList")
	}
}
