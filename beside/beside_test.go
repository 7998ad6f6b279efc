package beside

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestStartWait(t *testing.T) {
	var ran atomic.Int32
	release := make(chan struct{})
	task := Start(func() int { ran.Add(1); <-release; return 42 })
	select {
	case <-task.done:
		t.Fatal("done before the work finished")
	case <-time.After(10 * time.Millisecond):
	}
	close(release)
	if task.Wait() != 42 || task.Wait() != 42 || ran.Load() != 1 {
		t.Fatalf("Wait %d, ran %d times", task.Wait(), ran.Load())
	}
}
