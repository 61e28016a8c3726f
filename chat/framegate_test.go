package chat

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/p2p"
)

// The held-frame bounds of the frame gate, per source, per group and
// across groups, and their expiry.
func TestFrameGateHoldBounds(t *testing.T) {
	var total atomic.Int64
	a, b := newFrameGate(&total), newFrameGate(&total)
	now := time.Unix(1000, 0)
	frame := func(n int, tag string) []byte { return append([]byte(tag), bytes.Repeat([]byte{1}, n-len(tag))...) }

	// One source gets heldSourceBytes.
	held := 0
	for i := range 20 {
		if a.hold(heldFrame{data: frame(100<<10, fmt.Sprint(i)), from: "p1", epoch: 9, at: now}) {
			held++
		}
	}
	if a.heldBytes() > heldSourceBytes || held != heldSourceBytes/(100<<10) {
		t.Fatalf("one source holds %d bytes in %d frames (bound %d)", a.heldBytes(), held, heldSourceBytes)
	}
	// Many sources fill the group's share; the oldest go first.
	for i := range 64 {
		a.hold(heldFrame{data: frame(100<<10, fmt.Sprint("s", i)), from: p2p.PeerID(fmt.Sprint("src", i)), epoch: 9, at: now.Add(time.Duration(i) * time.Millisecond)})
	}
	if a.heldBytes() > heldGroupBytes {
		t.Fatalf("group holds %d bytes (bound %d)", a.heldBytes(), heldGroupBytes)
	}
	if len(a.held) > 0 && a.held[0].from == "p1" {
		t.Fatal("the oldest frames were not the ones evicted")
	}
	// The engine's total is shared across groups.
	for i := range 400 {
		b.hold(heldFrame{data: frame(100<<10, fmt.Sprint("b", i)), from: p2p.PeerID(fmt.Sprint("b", i)), epoch: 9, at: now})
		if total.Load() > heldTotalBytes {
			t.Fatalf("engine holds %d bytes (bound %d)", total.Load(), heldTotalBytes)
		}
	}
	if got := int64(a.heldBytes() + b.heldBytes()); got != total.Load() {
		t.Fatalf("accounting: groups hold %d, engine counts %d", got, total.Load())
	}
	// Frames over the per-source share are refused outright.
	if a.hold(heldFrame{data: make([]byte, heldSourceBytes+1), from: "big", epoch: 9, at: now}) {
		t.Fatal("a frame larger than a source's share was held")
	}
	// Expired frames go; clear releases the engine's share.
	a.take(now.Add(heldTTL + time.Second))
	if a.heldBytes() != 0 {
		t.Fatalf("%d bytes held after expiry", a.heldBytes())
	}
	b.clear()
	if total.Load() != 0 {
		t.Fatalf("engine still counts %d bytes", total.Load())
	}
}
