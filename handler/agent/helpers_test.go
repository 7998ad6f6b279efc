package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/failure"
)

// wantFailure asserts that err is a *failure.Error with code and a message
// containing every fragment.
func wantFailure(t *testing.T, err error, code failure.Code, fragments ...string) *failure.Error {
	t.Helper()
	var fe *failure.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *failure.Error", err, err)
	}
	if fe.Code != code {
		t.Fatalf("code = %v, want %v (%v)", fe.Code, code, err)
	}
	for _, f := range fragments {
		if !strings.Contains(fe.Msg, f) {
			t.Errorf("message %q does not contain %q", fe.Msg, f)
		}
	}
	return fe
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
