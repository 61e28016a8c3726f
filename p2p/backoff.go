package p2p

import "time"

// peerBackoff is the exponential backoff of the retries to one peer (the
// bootstrap peers' reconnections, the relays' topic keeps): the first
// wait is base, every failure doubles the next wait up to max, and a
// success starts over at base. A wait below base counts as base.
type peerBackoff struct {
	base, max time.Duration
	wait      time.Duration
}

func newBackoff(base, max time.Duration) peerBackoff {
	return peerBackoff{base: base, max: max, wait: base}
}

// failed returns how long to wait before the next attempt, and doubles the
// wait after that.
func (b *peerBackoff) failed() time.Duration {
	d := max(b.wait, b.base)
	b.wait = min(2*d, b.max)
	return d
}

// succeeded starts the next series of failures at base again.
func (b *peerBackoff) succeeded() { b.wait = b.base }
