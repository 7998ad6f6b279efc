// Package clock holds the real clock's one context-aware wait. Components
// that wait take a Sleep func with this signature (defaulting to Sleep), so
// tests can substitute a fake clock; loops that poll call it directly.
package clock

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx ends, whichever comes first; it returns
// ctx's error in the second case and nil otherwise.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
