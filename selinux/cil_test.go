package selinux

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func keywords(stmts []statement) string {
	var k []string
	for _, s := range stmts {
		k = append(k, s.keyword)
	}
	return strings.Join(k, ",")
}

func TestParseCIL(t *testing.T) {
	text := `; written by hand
(type aadpasswd_file_t) ; the passwd file
(optional aad_opt_1
    (allow sshd_session_t aadpasswd_file_t (file (read open)))
)
(typetransition sshd_t etc_t file "aad(passwd); x" aadpasswd_file_t)
(block b (blockinherit x) (allow sshd_t self (process (setexec))))
)) stray
("quoted" keyword)
(allow sshd_t unclosed (file (read`
	stmts := parseCIL([]byte(text))
	want := "type,read,file,allow,optional,typetransition,blockinherit,setexec,process,allow,block"
	if got := keywords(stmts); got != want {
		t.Fatalf("keywords %s\nwant     %s", got, want)
	}
	if s := stmts[3]; !reflect.DeepEqual(s.args, []string{"sshd_session_t", "aadpasswd_file_t", nestedList}) {
		t.Errorf("allow args %q", s.args)
	}
	if s := stmts[5]; !reflect.DeepEqual(s.args, []string{"sshd_t", "etc_t", "file", `"aad(passwd); x"`, "aadpasswd_file_t"}) {
		t.Errorf("typetransition args %q", s.args)
	}
	if !grants(stmts, SessionDomain, nil) || !grants(stmts, SessionDomain, map[string]bool{"aadpasswd_file_t": true}) ||
		grants(stmts, SessionDomain, map[string]bool{"etc_t": true}) {
		t.Error("grants")
	}
	// "self" is not a target; declared types are.
	if got := allowTargets(stmts, ClassicDomain); !reflect.DeepEqual(got, map[string]bool{"aadpasswd_file_t": true}) {
		t.Errorf("targets %v", got)
	}
	if permissive(stmts, SessionDomain) || !permissive(parseCIL([]byte("(typepermissive sshd_session_t)")), SessionDomain) {
		t.Error("permissive")
	}
}

func TestParseCILDepthBound(t *testing.T) {
	deep := strings.Repeat("(", maxCILDepth+10) + "allow sshd_session_t x" + strings.Repeat(")", maxCILDepth+10) +
		"\n(allow sshd_session_t aadpasswd_file_t (file (read)))"
	stmts := parseCIL([]byte(deep))
	if !grants(stmts, SessionDomain, map[string]bool{"aadpasswd_file_t": true}) || grants(stmts, SessionDomain, map[string]bool{"x": true}) {
		t.Errorf("statements after a too-deep list: %s", keywords(stmts))
	}
}

// FuzzParseCIL: any bytes (a damaged or hostile store) must parse without
// panicking into well-formed statements: a keyword is one bare word, and an
// argument is a bare word, a quoted string or a nested list.
func FuzzParseCIL(f *testing.F) {
	f.Add([]byte("(allow sshd_t aadpasswd_file_t (file (read write open)))\n(typepermissive sshd_session_t)\n"))
	f.Add([]byte("(optional o (allow a b (c (d))))\n; comment (\n(type \"x y\")"))
	f.Add([]byte(")))((( \"unterminated"))
	f.Fuzz(func(t *testing.T, data []byte) {
		stmts := parseCIL(data)
		if len(stmts) > bytes.Count(data, []byte("(")) {
			t.Fatalf("%d statements from %d lists", len(stmts), bytes.Count(data, []byte("(")))
		}
		bare := func(s string) bool { return s != "" && !strings.ContainsAny(s, " \t\r\n();\"") }
		for _, s := range stmts {
			if !bare(s.keyword) {
				t.Fatalf("keyword %q", s.keyword)
			}
			for _, a := range s.args {
				if !bare(a) && a != nestedList && !(strings.HasPrefix(a, `"`) && strings.HasSuffix(a, `"`) && len(a) >= 2) {
					t.Fatalf("argument %q", a)
				}
			}
		}
		_ = allowTargets(stmts, ClassicDomain)
		_ = permissive(stmts, SessionDomain)
	})
}
