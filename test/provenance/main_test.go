package provenance

import (
	"os"
	"testing"

	"github.com/aadsshlogin/handler/test/loopback"
)

func TestMain(m *testing.M) { os.Exit(loopback.Main(m)) }
