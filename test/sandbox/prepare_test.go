package sandbox

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/fixtures"
	"github.com/aadsshlogin/handler/test/require"
)

// PrepareEnv makes TestPrepareCaches run; make test sets it and runs the
// test before everything else.
const PrepareEnv = "AADSSH_PREPARE"

// TestPrepareCaches builds every cache the test suite reads: the fixtures
// and the distribution repository, the look-alike image, the real Debian
// roots and the arm64 look-alike image. The image builds need the Debian
// mirror, so they must run in the host's network namespace: make test runs
// this first, because the unit tier runs with loopback only (test/loopback)
// and its component test of apt 3 reads the trixie root from the cache.
func TestPrepareCaches(t *testing.T) {
	if os.Getenv(PrepareEnv) != "1" || Isolated() {
		t.Skip("set " + PrepareEnv + "=1 (make test does) to build the caches")
	}
	require.Root(t, "image builds run mmdebstrap as root")
	start := time.Now()
	fx := fixtures.Get(t)
	fixtures.GetDistro(t, fx)
	specs := []ImageSpec{HostImage()}
	for _, suite := range []string{"bullseye", "bookworm", "trixie"} {
		specs = append(specs, RealImage(suite))
	}
	if runtime.GOARCH != "arm64" {
		if err := CanRun("arm64"); err != nil {
			require.SkipOrFail(t, "arm64 emulation is not available (scripts/setup.sh registers qemu-user): %v", err)
		}
		specs = append(specs, LookAlikeImage.On("arm64"))
	}
	for _, s := range specs {
		ImageOf(t, s)
	}
	t.Logf("caches ready in %s", time.Since(start).Round(time.Second))
}
