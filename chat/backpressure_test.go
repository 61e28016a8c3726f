package chat

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/store"
)

// TestByteQueueBound: a queue takes items while they fit its byte bound,
// one item larger than the bound only when empty, and room comes back
// as items leave.
func TestByteQueueBound(t *testing.T) {
	q := newByteQueue(100)
	if !q.tryAcquire(60) || !q.tryAcquire(40) {
		t.Fatal("items within the bound refused")
	}
	if q.tryAcquire(1) {
		t.Fatal("a full queue took one more byte")
	}
	q.release(60)
	if q.tryAcquire(61) || !q.tryAcquire(60) {
		t.Fatalf("after release: %d bytes queued", q.bytes())
	}
	q.release(60)
	q.release(40)
	if !q.tryAcquire(500) || q.tryAcquire(1) {
		t.Fatal("an oversized item must fit an empty queue, alone")
	}
	q.release(500)
	if q.bytes() != 0 {
		t.Fatalf("%d bytes left", q.bytes())
	}
}

// TestCommandEndsLingeringBatch: while frames keep coming a batch of them
// waits for more before it is written (stagedWrites.linger), but a
// command that comes meanwhile ends the wait: the batch is written, its
// message shown, and the command runs at once.
func TestCommandEndsLingeringBatch(t *testing.T) {
	alice, bob, g := pairInGroup(t, "linger")
	ga, gb := alice.e.group(g), bob.e.group(g)
	if err := ga.do(context.Background(), func() { ga.stage.linger = time.Hour }); err != nil {
		t.Fatal(err)
	}
	bob.run(g, "first")
	alice.rec.wait(t, "first", isMessage(g, "first")) // a batch just ended: the next one lingers
	logged := func() []store.Frame {
		t.Helper()
		fs, err := bob.e.db.Frames(context.Background(), gb.topicName, store.FrameQuery{Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		return fs
	}
	// The loop's own timers and catch-ups also end a lingering batch: a
	// message shown before the command came proves nothing, so try again.
	for attempt := range 5 {
		body := fmt.Sprint("lingered ", attempt)
		before := len(logged())
		sendUngossiped(t, bob, g, body)
		// Hand what bob sent since to alice's loop as gossip would (his
		// log also holds what he received meanwhile, alice's receipts),
		// and let the loop take it: its batch now waits (an hour) for more.
		sent := 0
		for _, f := range logged()[before:] {
			if f.Peer != bob.e.id.id.String() {
				continue
			}
			sent++
			if !ga.queueFrame(inFrame{data: f.Data, from: bob.e.id.id}) {
				t.Fatal("alice's group stopped")
			}
		}
		if sent == 0 {
			t.Fatal("bob's message is not in his frame log")
		}
		waitFor(t, "alice's loop taking the frame", func() bool { return len(ga.frames) == 0 })
		if alice.rec.has(isMessage(g, body)) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		_, err := alice.e.Run(ctx, g, "reply")
		cancel()
		if err != nil {
			t.Fatalf("the command waited for the lingering batch: %v", err)
		}
		alice.rec.wait(t, "the message of the batch the command ended", isMessage(g, body))
		return
	}
	t.Fatal("every batch ended before the command came")
}
