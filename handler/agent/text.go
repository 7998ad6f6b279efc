package agent

import "unicode/utf8"

// ellipsis marks text we shortened, so a reader knows more was there.
const ellipsis = "…"

// truncateRunes returns s cut to at most max runes; when it has to cut, the
// last rune of the result is an ellipsis. Invalid UTF-8 bytes count as one
// rune each (encoding/json later replaces them with U+FFFD).
func truncateRunes(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max-1 {
			return s[:i] + ellipsis
		}
		n++
	}
	return s
}
