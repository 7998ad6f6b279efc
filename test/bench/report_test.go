package bench

import (
	"strings"
	"testing"
	"time"
)

// TestReportRenders checks the statistics and that a report with a missed
// target says so and explains it (cheap; runs in the normal test run).
func TestReportRenders(t *testing.T) {
	if got := Median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("Median = %v", got)
	}
	if got := Median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("Median = %v", got)
	}
	if got := Percentile([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90); got != 9 {
		t.Errorf("Percentile = %v", got)
	}
	r := &Report{
		Machine: DescribeMachine(time.Unix(0, 0)),
		Version: "1.0.0.1",
		Apt: &ABResult{Distro: "debian-12", Manager: "apt", ExtraSteps: []string{"dpkg --audit"},
			Pairs: []ABPair{{Order: "AB", Install: 2, InstallEnable: 2.1, BareTotal: 1, Ratio: 2, RatioEnable: 2.1, BareExtra: 0.8, ExtraEach: []float64{0.8}}}},
		Steady: &Steady{Distro: "debian-12", NoopEnableAgentMS: []float64{10, 20}, NoopEnableBinaryMS: []float64{5},
			RepeatInstallS: []float64{0.1}, Memory: []MemRun{{Verb: "enable", What: "no-op", VmHWMKB: 8000, Samples: 3}}},
		Sizes:    &Sizes{Zip: 1, Binaries: map[string]int64{"bin/x": 13e6}, Compressed: map[string]int64{"bin/x": 1}},
		Failures: []FailureCase{{Name: "IMDS unreachable", Seconds: 125, Exit: 24, Status: "error", Code: 24}},
	}
	md := r.Markdown()
	for _, want := range []string{"MISSED", "Notes on targets missed", "dpkg --audit", "bin/x", "IMDS unreachable", "Not run."} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	var missed int
	for _, row := range r.Rows() {
		if row.Met == "MISSED" {
			missed++
		}
	}
	if missed != 2 { // the install ratio and the 13 MB binary
		t.Errorf("%d targets missed, want 2:\n%s", missed, Table(r.Rows()))
	}
}

// TestReportNarrowlyMet: an install ratio met by less than narrowMargin is
// reported as met, with the explanation a miss gets; one met comfortably
// gets none.
func TestReportNarrowlyMet(t *testing.T) {
	mk := func(ratio float64) *Report {
		return &Report{
			Machine: DescribeMachine(time.Unix(0, 0)),
			Apt: &ABResult{Distro: "debian-12", Manager: "apt", ExtraSteps: []string{"sshd -T"},
				Pairs: []ABPair{{Order: "AB", Install: ratio, InstallEnable: ratio, BareTotal: 1, Ratio: ratio, RatioEnable: ratio, BareExtra: 0.05, ExtraEach: []float64{0.05}}}},
		}
	}
	md := mk(1.095).Markdown()
	if !strings.Contains(md, "met narrowly") || !strings.Contains(md, "None: every target with a figure was met.") || strings.Contains(md, "MISSED") {
		t.Errorf("ratio 1.095:\n%s", md)
	}
	if md := mk(1.05).Markdown(); strings.Contains(md, "met narrowly") {
		t.Errorf("ratio 1.05 reported as narrow:\n%s", md)
	}
}
