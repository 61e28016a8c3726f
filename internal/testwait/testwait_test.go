package testwait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			time.Sleep(5 * time.Millisecond)
			n.Add(1)
		}
	}()
	Until(t, 10*time.Second, "three ticks", func() bool { return n.Load() == 3 })
}

func TestLogWait(t *testing.T) {
	var l Log[int]
	go func() {
		for i := range 5 {
			l.Add(i)
		}
	}()
	if ev, ok := l.Wait(0, 10*time.Second, func(v int) bool { return v == 4 }); !ok || ev != 4 {
		t.Fatalf("Wait = %d, %v", ev, ok)
	}
	// From a mark, earlier events do not count.
	mark := l.Len()
	if _, ok := l.Wait(mark, 50*time.Millisecond, func(v int) bool { return v == 0 }); ok {
		t.Fatal("Wait from the end found an earlier event")
	}
	if !l.Has(func(v int) bool { return v == 2 }) || l.Count(func(v int) bool { return v%2 == 0 }) != 3 ||
		l.Index(func(v int) bool { return v == 3 }) != 3 {
		t.Fatal("Has, Count or Index wrong")
	}
	// A closed log ends the wait at once.
	l.Close()
	start := time.Now()
	if _, ok := l.Wait(0, time.Minute, func(v int) bool { return v == 9 }); ok || time.Since(start) > 10*time.Second {
		t.Fatalf("Wait on a closed log: ok=%v after %v", ok, time.Since(start))
	}
	if evs, closed := l.Events(); len(evs) != 5 || !closed {
		t.Fatalf("Events = %v, %v", evs, closed)
	}
}
