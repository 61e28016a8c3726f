package chat

import "testing"

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
