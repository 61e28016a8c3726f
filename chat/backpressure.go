package chat

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Backpressure a user can see, and queues bounded in bytes.
//
// When a group's loop is behind, front ends say so: NetStatus.Sending
// counts own frames accepted but not yet handed to the network (the
// publish queue and messages held for a pending Commit), and
// NetStatus.CatchingUp counts received frames not yet shown (the receive
// queue, frames the gate holds until it can judge them, messages waiting
// for an earlier one of their sender). The engine re-announces its status
// (StatusEvent) every statusEvery while either is not zero, and once when
// both return to zero.
//
// Both queues are bounded in bytes as well as in frames: the receive
// queue takes at most queueBytes (a reader waits, so gossip's own bounded
// buffer and sync pick up the rest) and the publish queue at most
// queueBytes (beyond it a frame is left to sync, as when it is full).

const (
	queueBytes  = 16 << 20
	statusEvery = 500 * time.Millisecond
)

// byteQueue accounts the bytes of a queue.
type byteQueue struct {
	mu  sync.Mutex
	n   int
	max int
}

func newByteQueue(max int) *byteQueue { return &byteQueue{max: max} }

// tryAcquire takes n bytes if they fit now (a single item larger than
// the bound fits an empty queue).
func (q *byteQueue) tryAcquire(n int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n > 0 && q.n+n > q.max {
		return false
	}
	q.n += n
	return true
}

func (q *byteQueue) release(n int) {
	q.mu.Lock()
	q.n -= n
	q.mu.Unlock()
}

func (q *byteQueue) bytes() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// backlog is what a group's loop has not done yet, readable from any
// goroutine (the loop mirrors its own counts here).
type backlog struct {
	heldOwn   atomic.Int64 // own messages held for a pending Commit
	heldOrder atomic.Int64 // received messages waiting for an earlier one of their sender
}

// sending is the group's own frames not yet handed to the network.
func (g *group) sending() int {
	return len(g.pubs) + int(g.backlog.heldOwn.Load())
}

// catchingUp is the group's received frames not yet shown.
func (g *group) catchingUp() int {
	return len(g.frames) + g.gate.heldCount() + int(g.backlog.heldOrder.Load())
}

// noteBacklog mirrors the loop's own counts (loop only).
func (g *group) noteBacklog() {
	g.backlog.heldOwn.Store(int64(len(g.out.held)))
	g.backlog.heldOrder.Store(int64(g.heldForOrder()))
}

// watchBacklog re-announces the status while any group is behind.
func (e *Engine) watchBacklog() {
	e.goBackground(func(ctx context.Context) {
		t := time.NewTicker(statusEvery)
		defer t.Stop()
		var last [2]int
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var now [2]int
			for _, g := range e.groupList() {
				now[0] += g.sending()
				now[1] += g.catchingUp()
			}
			if now != last && (now != [2]int{} || last != [2]int{}) {
				e.statusChanged()
			}
			last = now
		}
	})
}

// queueFrame puts a received frame on the loop's queue within the byte
// bound, waiting while the queue is full; false once the group stops.
func (g *group) queueFrame(fr inFrame) bool {
	n := len(fr.data)
	for !g.inQueue.tryAcquire(n) {
		select {
		case <-g.quit:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case g.frames <- fr:
		return true
	case <-g.quit:
		g.inQueue.release(n)
		return false
	}
}

// dequeued releases a frame taken from the loop's queue.
func (g *group) dequeued(fr inFrame) { g.inQueue.release(len(fr.data)) }
