// Package e2e drives the built extension zip through the agent simulator
// inside isolated distro look-alike roots, with real package managers, a fake
// metadata service and signed repositories served as packages.microsoft.com.
package e2e

import (
	"os"
	"testing"

	"github.com/aadsshlogin/handler/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// Short names for the harness's vocabulary.
type world = harness.World

var (
	newWorld   = harness.NewWorld
	lastExit   = harness.LastExit
	verbs      = harness.Verbs
	jsonString = harness.JSONString
)

const (
	handlerName   = harness.HandlerName
	legacyVersion = harness.LegacyVersion
	aptList       = harness.AptList
	yumRepo       = harness.YumRepo
	zypRepo       = harness.ZypperRepo
	markerPath    = harness.MarkerPath
	pmc           = "https://packages.microsoft.com"
)
