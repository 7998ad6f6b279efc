package throttle

import (
	"sync"
	"testing"
	"time"
)

func TestNilLogRecordsNothing(t *testing.T) {
	var l *Log
	l.Add(Wait{Status: 429, Delay: time.Second})
	if n, d := l.Total(); n != 0 || d != 0 || l.Summary() != "" {
		t.Errorf("nil log: %d %s %q", n, d, l.Summary())
	}
}

func TestSummary(t *testing.T) {
	l := &Log{}
	if l.Summary() != "" {
		t.Errorf("empty log summary %q", l.Summary())
	}
	l.Add(Wait{Source: "apt-get update", Status: 429, Delay: 2500 * time.Millisecond})
	if got, want := l.Summary(), "waited once (2.5 s in all) after HTTP 429 Too Many Requests (1) from the repository"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); l.Add(Wait{Status: 503, Delay: 13 * time.Second}) }()
	}
	wg.Wait()
	if n, d := l.Total(); n != 4 || d != 41500*time.Millisecond {
		t.Errorf("total %d %s", n, d)
	}
	if got, want := l.Summary(), "waited 4 times (42 s in all) after HTTP 429 Too Many Requests (1) and HTTP 503 Service Unavailable (3) from the repository"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

func TestTransient(t *testing.T) {
	for code, want := range map[int]bool{429: true, 503: true, 500: false, 404: false, 403: false, 200: false} {
		if Transient(code) != want {
			t.Errorf("Transient(%d) = %v", code, !want)
		}
	}
}
