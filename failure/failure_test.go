package failure

import (
	"errors"
	"fmt"
	"testing"
)

func TestCodeAndMessageThroughWrapping(t *testing.T) {
	base := errors.New("dial tcp: refused")
	fe := New(RepositoryUnreachable, base, "Cannot reach %s.", "https://example.invalid")
	wrapped := fmt.Errorf("install: %w", fe)
	if got := CodeOf(wrapped); got != RepositoryUnreachable {
		t.Fatalf("CodeOf = %d", got)
	}
	if got := MessageOf(wrapped); got != "Cannot reach https://example.invalid." {
		t.Fatalf("MessageOf = %q", got)
	}
	if !errors.Is(wrapped, base) {
		t.Fatal("cause lost")
	}
	if CodeOf(nil) != OK || MessageOf(nil) != "" {
		t.Fatal("nil handling")
	}
	if CodeOf(base) != Internal {
		t.Fatal("plain error should be Internal")
	}
	if m := MessageOf(base); m == base.Error() {
		t.Fatal("raw error leaked into user message")
	}
}

func TestCodesAreDistinctAndBelow256(t *testing.T) {
	seen := map[Code]bool{}
	names := map[string]bool{}
	for _, c := range Codes() {
		if c < 0 || c > 255 {
			t.Errorf("code %d out of range", c)
		}
		if seen[c] {
			t.Errorf("duplicate code %d", c)
		}
		seen[c] = true
		if names[c.Name()] {
			t.Errorf("duplicate name %s", c.Name())
		}
		names[c.Name()] = true
	}
}
