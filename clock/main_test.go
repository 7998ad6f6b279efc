package clock

import (
	"os"
	"testing"

	"github.com/aadsshlogin/handler/test/loopback"
)

// TestMain runs the tests with loopback networking only (test/loopback).
func TestMain(m *testing.M) { os.Exit(loopback.Main(m)) }
