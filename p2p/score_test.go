package p2p

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestDirectStrikes: invalid direct frames cost -20 × count², decay to 1%
// over an hour like gossipsub's P4, and push a peer below the gossip
// threshold at the third strike; the table stays bounded.
func TestDirectStrikes(t *testing.T) {
	s := newPeerScores()
	clock := time.Unix(1e9, 0)
	s.now = func() time.Time { return clock }
	p := peer.ID("mallory")
	for i, want := range []bool{true, true, false} {
		s.strike(p)
		if got := s.admitted(p); got != want {
			t.Fatalf("after %d strikes: admitted %v (penalty %v)", i+1, got, s.directPenalty(p))
		}
	}
	if got := s.directPenalty(p); got != -180 {
		t.Fatalf("penalty of 3 strikes: %v", got)
	}
	clock = clock.Add(time.Hour)
	if got := s.directPenalty(p); got < -0.0181 || got > -0.0179 {
		t.Fatalf("penalty after an hour: %v, want -180 × 0.01²", got)
	}
	if !s.admitted(p) {
		t.Fatal("penalty did not decay")
	}
	// gossipsub's own score counts too.
	s.inspect(map[peer.ID]float64{"graylisted": -500})
	if s.admitted("graylisted") {
		t.Fatal("graylisted peer admitted")
	}

	for i := 0; i < maxStrikes; i++ {
		s.strike(peer.ID(fmt.Sprint(i)))
	}
	clock = clock.Add(2 * time.Hour)
	s.strike("one more")
	if n := len(s.strikes); n > 2 {
		t.Fatalf("%d strike entries after decay", n)
	}
}

// TestKeyLimiterBounded: a limiter refuses new keys while its table is
// full of buckets that have not refilled, and makes room once they have.
func TestKeyLimiterBounded(t *testing.T) {
	l := newKeyLimiter[int](RateLimit{Rate: 1, Burst: 1})
	clock := time.Unix(1e9, 0)
	l.now = func() time.Time { return clock }
	for i := 0; i < maxBuckets; i++ {
		if !l.allow(i, 1) {
			t.Fatalf("key %d refused", i)
		}
	}
	clock = clock.Add(100 * time.Millisecond)
	if l.allow(-1, 1) {
		t.Fatal("new key allowed with the table full")
	}
	clock = clock.Add(2 * time.Second)
	if !l.allow(-1, 1) {
		t.Fatal("new key refused after the buckets refilled")
	}
	if len(l.buckets) > maxIdleBuckets {
		t.Fatalf("%d buckets kept", len(l.buckets))
	}
}
