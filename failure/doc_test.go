package failure

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestExitCodeTableMatchesCode keeps docs/exit-codes.md and the constants in
// step: every code is documented once, with its name, and nothing else is.
func TestExitCodeTableMatchesCode(t *testing.T) {
	data, err := os.ReadFile("../docs/exit-codes.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\|\s*(\d+)\s*\|\s*(\w+)\s*\|`)
	documented := map[Code]string{}
	for _, m := range row.FindAllStringSubmatch(string(data), -1) {
		n, _ := strconv.Atoi(m[1])
		if _, dup := documented[Code(n)]; dup {
			t.Errorf("code %d documented twice", n)
		}
		documented[Code(n)] = m[2]
	}
	for _, c := range Codes() {
		name, ok := documented[c]
		if !ok {
			t.Errorf("code %d (%s) is not documented", c, c.Name())
			continue
		}
		if name != c.Name() {
			t.Errorf("code %d documented as %s, named %s in code", c, name, c.Name())
		}
		delete(documented, c)
	}
	for c, name := range documented {
		t.Errorf("documented code %d (%s) does not exist", c, name)
	}
}
