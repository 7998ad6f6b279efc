// Package sshdconfig reads sshd's configuration files the way OpenSSH's
// sshd reads them, for the callers that must reason about sshd_config
// without asking sshd: the pre-flight warnings (checks), the verification
// when "sshd -T" cannot run and the enable quick check (installer/verify),
// and through them aadsshlogin-handler doctor.
//
// The rules, from OpenSSH's sshd_config(5) and servconf.c / misc.c
// (openssh-portable), and its regression test regress/servcfginclude.sh:
//
//   - Keywords are case-insensitive; a keyword is separated from its
//     arguments by whitespace or by whitespace and at most one '='.
//   - Arguments are split as argv_split does: tokens are separated by
//     spaces or tabs; double or single quotes group a token (they may open
//     and close inside one: a"b c"d is the token "ab cd"); a backslash
//     escapes a quote, a backslash, and outside quotes a space; any other
//     backslash is kept. A '#' at the start of a token (not inside one)
//     begins a comment. Older sshd releases (before argv_split was used for
//     the configuration) cut the line at any '#'; that differs only for a
//     '#' inside a token, which no configuration we care about has.
//   - Include takes one or more paths or glob patterns; a relative one is
//     relative to /etc/ssh; each pattern's matches are read in lexical
//     order (glob(3) sorts them); a pattern without matches is not an
//     error; nesting deeper than 16 is refused (SERVCONF_MAX_DEPTH).
//   - Match starts a conditional block that lasts until the next Match or
//     the end of the file. An Include inside a Match block puts the
//     included lines under that Match. A Match inside an included file
//     ends at the end of that file: servconf.c saves the including file's
//     Match state before it parses an included file and restores it after
//     ("Don't let included files clobber the containing file's Match
//     state"; regress/servcfginclude.sh, "included file does not affect
//     match state"). Inside the included file, its Match applies only when
//     the including Match applies too (an Include under a Match that does
//     not apply is parsed with SSHCFG_NEVERMATCH, so no Match in it can
//     apply): the criteria in force are the conjunction of both, which is
//     how Directive.Match records them. Each file of a glob starts again
//     from the Include line's state.
//   - For most keywords the first value obtained wins; sshd reads the
//     global section first and then, for a connection, the Match blocks
//     that apply, whose first value overrides the global one
//     (parse_server_match_config, copy_set_server_options). See Effective.
//
// Where sshd would refuse the file (an unterminated quote, a keyword
// without arguments, Match without criteria), the reader keeps what it can
// read: its callers give advice and must not fail on a file sshd rejects.
package sshdconfig

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/aadsshlogin/handler/sysroot"
)

// Path is where sshd reads its configuration; Dir is the directory that
// relative Include paths are resolved against.
const (
	Path = "/etc/ssh/sshd_config"
	Dir  = "/etc/ssh"
)

// Bounds. MaxIncludeDepth is sshd's own (SERVCONF_MAX_DEPTH); the file
// count and size stop a glob over a huge directory, or a huge file, from
// making a check slow.
const (
	MaxIncludeDepth = 16
	maxFiles        = 256
	maxFileBytes    = 1 << 20
)

// Criterion is one Match criterion: Attr lower-cased ("user", "group",
// "host", "address", "all", …), Arg as written ("" for all).
type Criterion struct {
	Attr string
	Arg  string
}

// Directive is one configuration line other than Include and Match.
type Directive struct {
	File    string // target path of the file
	Line    int    // 1-based
	Keyword string // lower-cased
	Args    []string
	// Match is the conjunction of the Match criteria in force at this
	// line: nil in the global section.
	Match []Criterion
}

// Where is "file:line".
func (d Directive) Where() string { return fmt.Sprintf("%s:%d", d.File, d.Line) }

// Value is the arguments joined by single spaces.
func (d Directive) Value() string { return strings.Join(d.Args, " ") }

// ForEveryone reports whether the line applies to every connection: it is
// in the global section, or only "Match all" is in force.
func (d Directive) ForEveryone() bool {
	for _, c := range d.Match {
		if c.Attr != "all" {
			return false
		}
	}
	return true
}

// Config is sshd_config and its included files, flattened in the order
// sshd reads them.
type Config struct {
	Directives []Directive
	// Truncated is set when an Include was not followed: nested deeper
	// than MaxIncludeDepth (sshd refuses such a configuration) or beyond
	// the file bounds.
	Truncated bool
	root      sysroot.Root
	files     int
}

// Read reads /etc/ssh/sshd_config under root and the files it includes.
// The error is that of reading sshd_config itself; unreadable included
// files are skipped, as sshd skips patterns without matches.
func Read(root sysroot.Root) (*Config, error) {
	data, err := root.ReadFile(Path)
	if err != nil {
		return nil, err
	}
	return Parse(root, data), nil
}

// Parse reads data as the text of /etc/ssh/sshd_config, with its Include
// files read under root.
func Parse(root sysroot.Root, data []byte) *Config {
	c := &Config{root: root}
	c.parse(data, Path, nil, 0)
	return c
}

// parse reads one file. base is the Match state at the Include line that
// brought the file in (nil for sshd_config); a Match in this file replaces
// only what the file itself added.
func (c *Config) parse(data []byte, file string, base []Criterion, depth int) {
	c.files++
	match := base
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxFileBytes+1)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		keyword, args := SplitLine(sc.Text())
		switch keyword {
		case "":
			continue
		case "match":
			match = append(append([]Criterion{}, base...), criteria(args)...)
		case "include":
			c.include(args, match, depth)
		default:
			c.Directives = append(c.Directives, Directive{File: file, Line: lineNo, Keyword: keyword, Args: args, Match: match})
		}
	}
}

func (c *Config) include(patterns []string, match []Criterion, depth int) {
	if depth+1 > MaxIncludeDepth {
		c.Truncated = true
		return
	}
	for _, pat := range patterns {
		if !path.IsAbs(pat) {
			pat = path.Join(Dir, pat)
		}
		files, err := c.root.Glob(pat)
		if err != nil {
			continue
		}
		sort.Strings(files)
		for _, f := range files {
			if c.files >= maxFiles {
				c.Truncated = true
				return
			}
			data, err := c.root.ReadFile(f)
			if err != nil || len(data) > maxFileBytes {
				continue
			}
			c.parse(data, f, match, depth+1)
		}
	}
}

// criteria turns a Match line's arguments into criteria. "all" takes no
// argument; "Attr=value" is accepted like "Attr value". Match without
// criteria (which sshd refuses) gives one unknown criterion, so that the
// block is not taken for the global section.
func criteria(args []string) []Criterion {
	var out []Criterion
	for i := 0; i < len(args); i++ {
		attr, arg, hasEq := strings.Cut(args[i], "=")
		attr = strings.ToLower(attr)
		if !hasEq && attr != "all" && i+1 < len(args) {
			i++
			arg = args[i]
		}
		out = append(out, Criterion{Attr: attr, Arg: arg})
	}
	if len(out) == 0 {
		out = []Criterion{{}}
	}
	return out
}

// SplitLine splits one line into its keyword (lower-cased; "" for a blank
// or comment line) and its arguments, by the rules in the package comment.
func SplitLine(line string) (string, []string) {
	line = strings.Trim(line, " \t\r\f")
	if line == "" || line[0] == '#' {
		return "", nil
	}
	end := strings.IndexAny(line, " \t=")
	if end < 0 {
		return strings.ToLower(line), nil
	}
	keyword := strings.ToLower(line[:end])
	rest := strings.TrimLeft(line[end:], " \t")
	// At most one '=' separates the keyword from its arguments.
	rest = strings.TrimLeft(strings.TrimPrefix(rest, "="), " \t")
	return keyword, splitArgs(rest)
}

// splitArgs splits arguments as OpenSSH's argv_split does with comments
// ending the line. An unterminated quote (which sshd refuses) keeps the
// token's text up to the end of the line.
func splitArgs(s string) []string {
	var args []string
	i := 0
	for i < len(s) {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		if s[i] == '#' {
			break
		}
		var tok strings.Builder
		var quote byte
	token:
		for ; i < len(s); i++ {
			ch := s[i]
			switch {
			case ch == '\\' && i+1 < len(s) && escapable(s[i+1], quote):
				i++
				tok.WriteByte(s[i])
			case quote == 0 && (ch == ' ' || ch == '\t'):
				break token
			case quote == 0 && (ch == '"' || ch == '\''):
				quote = ch
			case quote != 0 && ch == quote:
				quote = 0
			default:
				tok.WriteByte(ch)
			}
		}
		args = append(args, tok.String())
	}
	return args
}

// escapable reports whether a backslash before c is an escape: before a
// quote or a backslash always, before a space only outside quotes.
func escapable(c, quote byte) bool {
	return c == '"' || c == '\'' || c == '\\' || (quote == 0 && c == ' ')
}

// Effective returns the line that sets keyword for a connection, as sshd
// decides it: the first line in a Match block that applies to conn,
// else the first line of the global section. Lines under "Match all"
// count as Match lines (they override the global section). ok is false
// when no line sets it.
func (c *Config) Effective(keyword string, conn Conn) (Directive, bool) {
	var global *Directive
	for i := range c.Directives {
		d := &c.Directives[i]
		if d.Keyword != keyword {
			continue
		}
		if d.Match == nil {
			if global == nil {
				global = d
			}
			continue
		}
		if conn.Matches(d.Match) {
			return *d, true
		}
	}
	if global == nil {
		return Directive{}, false
	}
	return *global, true
}
