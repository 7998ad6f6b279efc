// Package version compares dotted decimal versions, the form both the
// handler's own versions ("1.0.2385.1") and aadsshlogin's package versions
// ("1.0.031620001") take.
package version

import (
	"strconv"
	"strings"
)

// Compare returns -1, 0 or 1 as a is lower than, equal to or higher than b.
// Missing parts count as 0 ("2.0" equals "2.0.0"), and so do parts that
// are not numbers.
func Compare(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
