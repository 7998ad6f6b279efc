// Package beside runs a piece of work alongside the main line of a run and
// hands its result back when the main line needs it. The handler uses it for
// reads that would otherwise sit on the critical path (the key download
// during the lock wait, the package query during the refresh, the
// verification beside the final package query): the main line stays a
// plain list of steps, and every place that overlaps is one Start and one
// Wait.
package beside

// Task is work started with Start.
type Task[T any] struct {
	done chan struct{}
	v    T
}

// Start runs fn in its own goroutine. fn must honour its own context: a
// caller that returns early still calls Wait (usually deferred), so that no
// work outlives the run that started it.
func Start[T any](fn func() T) *Task[T] {
	t := &Task[T]{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.v = fn()
	}()
	return t
}

// Wait blocks until the work is done and returns its result; it may be
// called any number of times.
func (t *Task[T]) Wait() T {
	<-t.done
	return t.v
}
