package distro

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEListsTheSupportMatrix keeps the README's support table in step
// with the data: every row's name and versions appear in a table row.
func TestREADMEListsTheSupportMatrix(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) > 3 {
			rows[strings.TrimSpace(cells[1])] = strings.TrimSpace(cells[2])
		}
	}
	for _, s := range SupportMatrix() {
		versions, ok := rows[s.Name]
		if !ok {
			t.Errorf("README lacks a row for %s", s.Name)
			continue
		}
		if versions != s.Versions {
			t.Errorf("README lists %s %q, the matrix says %q", s.Name, versions, s.Versions)
		}
	}
}
