package selinux

import "strings"

// statement is one CIL list whose first element is a word: the keyword
// and the arguments, with nested lists standing as "(…)". Only the word
// arguments matter here ("(allow SOURCE TARGET (CLASS (PERMS)))").
type statement struct {
	keyword string
	args    []string
}

// nestedList stands for a list argument.
const nestedList = "(…)"

// maxCILDepth bounds the nesting kept; deeper lists are skipped whole.
// Real modules nest a few levels (block, optional, in).
const maxCILDepth = 64

// parseCIL returns every statement in CIL text, nested ones included (a
// rule inside an optional or a block counts like a top-level one), in the
// order they close. Comments (';' to the end of the line) and quoted
// strings are honoured; unbalanced parentheses never fail: a stray ')' is
// ignored and a list still open at the end is dropped.
func parseCIL(data []byte) []statement {
	var out []statement
	var stack [][]string // the open lists' elements
	skipped := 0         // open lists deeper than maxCILDepth
	add := func(elem string) {
		if skipped == 0 && len(stack) > 0 {
			stack[len(stack)-1] = append(stack[len(stack)-1], elem)
		}
	}
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == ';':
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case c == '(':
			if skipped > 0 || len(stack) == maxCILDepth {
				skipped++
			} else {
				stack = append(stack, nil)
			}
			i++
		case c == ')':
			switch {
			case skipped > 0:
				skipped--
				if skipped == 0 {
					add(nestedList)
				}
			case len(stack) > 0:
				list := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if len(list) > 0 && list[0] != nestedList && !strings.HasPrefix(list[0], `"`) {
					out = append(out, statement{keyword: list[0], args: list[1:]})
				}
				add(nestedList)
			}
			i++
		case c == '"':
			j := i + 1
			for j < len(data) && data[j] != '"' {
				j++
			}
			add(`"` + string(data[i+1:min(j, len(data))]) + `"`)
			i = j + 1
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		default:
			j := i
			for j < len(data) && !strings.ContainsRune(" \t\r\n();\"", rune(data[j])) {
				j++
			}
			add(string(data[i:j]))
			i = j
		}
	}
	return out
}

// allowTargets returns the targets of the allow rules whose source is
// source ("self" excluded: it means the source itself), plus the types the
// module declares.
func allowTargets(stmts []statement, source string) map[string]bool {
	t := map[string]bool{}
	for _, s := range stmts {
		switch {
		case s.keyword == "allow" && len(s.args) >= 2 && s.args[0] == source && s.args[1] != "self" && s.args[1] != nestedList:
			t[s.args[1]] = true
		case s.keyword == "type" && len(s.args) >= 1 && s.args[0] != nestedList:
			t[s.args[0]] = true
		}
	}
	return t
}

// grants reports an allow rule from source to one of targets (to anything
// when targets is nil).
func grants(stmts []statement, source string, targets map[string]bool) bool {
	for _, s := range stmts {
		if s.keyword == "allow" && len(s.args) >= 2 && s.args[0] == source && (targets == nil || targets[s.args[1]]) {
			return true
		}
	}
	return false
}

// permissive reports "(typepermissive typ)".
func permissive(stmts []statement, typ string) bool {
	for _, s := range stmts {
		if s.keyword == "typepermissive" && len(s.args) >= 1 && s.args[0] == typ {
			return true
		}
	}
	return false
}
