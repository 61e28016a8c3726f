package chat

import (
	"sync"
	"time"
)

// eventQueue decouples the engine from its front end: emit never blocks
// (the queue grows while the front end is busy) and the consumer reads
// events in order from a channel, which is closed after close.
type eventQueue struct {
	out chan Event

	mu     sync.Mutex
	cond   *sync.Cond
	buf    []Event
	closed bool
}

// maxQueuedEvents bounds the queue for a front end that stopped reading:
// beyond it the oldest events are dropped (the views can always be
// re-read from Groups, History, Members).
const maxQueuedEvents = 100_000

func newEventQueue() *eventQueue {
	q := &eventQueue{out: make(chan Event)}
	q.cond = sync.NewCond(&q.mu)
	go q.pump()
	return q
}

func (q *eventQueue) emit(ev Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if len(q.buf) >= maxQueuedEvents {
		q.buf = q.buf[1:]
	}
	q.buf = append(q.buf, ev)
	q.cond.Signal()
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Signal()
	q.mu.Unlock()
}

func (q *eventQueue) pump() {
	defer close(q.out)
	for {
		q.mu.Lock()
		for len(q.buf) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.buf) == 0 && q.closed {
			q.mu.Unlock()
			return
		}
		ev := q.buf[0]
		q.buf[0] = nil
		q.buf = q.buf[1:]
		closed := q.closed
		q.mu.Unlock()
		if !closed {
			q.out <- ev
			continue
		}
		// Closing: hand over what is left to a reader, but do not wait
		// for one forever.
		select {
		case q.out <- ev:
		case <-time.After(time.Second):
			return
		}
	}
}
