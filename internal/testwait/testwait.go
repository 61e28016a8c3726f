// Package testwait is how canopy's tests wait: Until polls a condition
// with a deadline, and Log keeps the events a test receives (engine
// events, a child process's JSON lines) so that it can wait for one. No
// test waits by sleeping a fixed time.
//
//	testwait.Until(t, 10*time.Second, "bob connected", func() bool { return b.IsConnected(a.ID()) })
//
// Only test files import it.
package testwait

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// pollEvery is how often Until checks its condition.
const pollEvery = 20 * time.Millisecond

// Until polls cond until it holds and fails t if it still does not after
// timeout.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Poll polls cond until it holds, for up to timeout, and reports whether
// it did: for callers whose failure message needs more than Until's (a
// screen, a log).
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
	return true
}

// Log is an append-only list of events that goroutines add to and tests
// wait on. The zero value is an empty, open log.
type Log[T any] struct {
	mu     sync.Mutex
	cond   *sync.Cond
	events []T
	closed bool
}

// lock locks l and returns its condition variable.
func (l *Log[T]) lock() *sync.Cond {
	l.mu.Lock()
	if l.cond == nil {
		l.cond = sync.NewCond(&l.mu)
	}
	return l.cond
}

// Add appends ev and wakes the waiters.
func (l *Log[T]) Add(ev T) {
	c := l.lock()
	l.events = append(l.events, ev)
	c.Broadcast()
	l.mu.Unlock()
}

// Close marks the end of the events (the source is gone): waiters stop
// waiting for more.
func (l *Log[T]) Close() {
	c := l.lock()
	l.closed = true
	c.Broadcast()
	l.mu.Unlock()
}

// Events returns a copy of the events so far and whether the log is closed.
func (l *Log[T]) Events() ([]T, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events), l.closed
}

// Len returns the number of events so far: a mark to Wait from.
func (l *Log[T]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// Index returns the index of the first event matching f, or -1.
func (l *Log[T]) Index(f func(T) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.IndexFunc(l.events, f)
}

// Has reports whether an event matching f has arrived.
func (l *Log[T]) Has(f func(T) bool) bool { return l.Index(f) >= 0 }

// Count returns the number of events matching f.
func (l *Log[T]) Count(f func(T) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ev := range l.events {
		if f(ev) {
			n++
		}
	}
	return n
}

// Wait returns the first event at index from or later that matches f,
// waiting for up to within. ok is false if none arrived in time or the log
// was closed first; the caller reports that with the events it cares about.
func (l *Log[T]) Wait(from int, within time.Duration, f func(T) bool) (ev T, ok bool) {
	deadline := time.Now().Add(within)
	timer := time.AfterFunc(within, func() {
		c := l.lock()
		c.Broadcast()
		l.mu.Unlock()
	})
	defer timer.Stop()
	c := l.lock()
	defer l.mu.Unlock()
	for i := from; ; {
		for ; i < len(l.events); i++ {
			if f(l.events[i]) {
				return l.events[i], true
			}
		}
		if l.closed || !time.Now().Before(deadline) {
			return ev, false
		}
		c.Wait()
	}
}
