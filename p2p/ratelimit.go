package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// RateLimit is a token bucket: Rate units per second on average, bursts of up
// to Burst units. A zero Rate disables the limit.
type RateLimit struct {
	Rate  float64
	Burst float64
}

// keyLimiter keeps one token bucket per key (a peer, an address, an
// owner). It is safe for concurrent use (validators and stream handlers run
// on many goroutines).
type keyLimiter[K comparable] struct {
	limit RateLimit
	now   func() time.Time

	mu      sync.Mutex
	buckets map[K]*bucket
	sweep   time.Time
}

// peerLimiter keeps one token bucket per peer.
type peerLimiter = keyLimiter[peer.ID]

type bucket struct {
	tokens float64
	last   time.Time
}

// maxIdleBuckets bounds the map before full buckets are dropped, and
// maxBuckets bounds it for good: while the map holds maxBuckets buckets
// that have not refilled, new keys are refused (keys are cheap to mint).
const (
	maxIdleBuckets = 4096
	maxBuckets     = 1 << 16
)

func newPeerLimiter(l RateLimit) *peerLimiter { return newKeyLimiter[peer.ID](l) }

func newKeyLimiter[K comparable](l RateLimit) *keyLimiter[K] {
	if l.Burst < 1 {
		l.Burst = 1
	}
	return &keyLimiter[K]{limit: l, now: time.Now, buckets: make(map[K]*bucket)}
}

// allow takes n tokens from p's bucket and reports whether they were there.
// A request for more than Burst tokens is allowed only from a full bucket,
// which it then empties: a single large item is never refused forever.
func (l *keyLimiter[K]) allow(p K, n float64) bool {
	if l == nil || l.limit.Rate <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[p]
	if b == nil {
		if len(l.buckets) >= maxIdleBuckets && now.Sub(l.sweep) > time.Second {
			l.sweepFull(now)
		}
		if len(l.buckets) >= maxBuckets {
			return false
		}
		b = &bucket{tokens: l.limit.Burst, last: now}
		l.buckets[p] = b
	}
	b.tokens = min(l.limit.Burst, b.tokens+now.Sub(b.last).Seconds()*l.limit.Rate)
	b.last = now
	if n > l.limit.Burst && b.tokens >= l.limit.Burst {
		b.tokens = 0
		return true
	}
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// sweepFull drops buckets that have refilled; they carry no information.
func (l *keyLimiter[K]) sweepFull(now time.Time) {
	l.sweep = now
	for p, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.limit.Rate >= l.limit.Burst {
			delete(l.buckets, p)
		}
	}
}
