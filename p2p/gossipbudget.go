package p2p

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Gossipsub reads RPCs of up to the maximal frame size and queues their
// frames (validation queue, one goroutine per frame awaiting a validator)
// before our validator can check the sender's rate; none of that is in the
// resource manager's accounting. gossipBudget bounds it: an RPC inspector,
// which runs on gossipsub's event loop before any frame is queued, admits
// a frame only while the bytes of admitted frames not yet settled stay
// within a global budget, and strips the rest from the RPC (not scored:
// dropping for want of room says nothing about the sender). A frame
// settles when gossipsub reports its fate to the raw tracer: delivered,
// rejected or ignored (by a validator, a full queue or a throttle), or a
// duplicate. Paths on which gossipsub drops a frame without telling a
// tracer (a graylisted sender, a frame that was delivered meanwhile by
// someone else) are settled by age: after the validator timeout plus a
// margin, when gossipsub no longer holds it.
//
// Small frames (chat messages, receipts, proposals: up to
// gossipSmallFrame bytes) and large ones (Commits with a path, Welcomes,
// backlogs) have separate budgets, so that maximal frames, which only a
// few honest senders ever produce, cannot crowd out everyday traffic.
type gossipBudget struct {
	mu       sync.Mutex
	now      func() time.Time
	ttl      time.Duration
	caps     [2]int64 // small, large
	inflight [2]int64
	held     map[*pb.Message]heldFrame
	sweepAt  time.Time
	dropped  uint64
	// graylisted reports peers gossipsub drops every frame of without a
	// verdict (score below the graylist threshold): admitting theirs would
	// hold budget until the hold time runs out.
	graylisted func(peer.ID) bool
	// topics the node validates: a frame of another topic is dropped by
	// gossipsub unheld, so there is nothing to count.
	topics map[string]bool
}

type heldFrame struct {
	size  int64
	class int
	at    time.Time
}

const (
	// gossipSmallFrame is the largest frame counted against the small
	// budget: a chat message with its MLS overhead and then some.
	gossipSmallFrame = 64 << 10
	// gossipSmallBudget: bytes of small frames in flight, about 16,000
	// typical 1 KiB chat frames or 256 frames at the small limit.
	gossipSmallBudget = 16 << 20
	// gossipLargeFrames: maximal frames in flight (across all senders).
	gossipLargeFrames = 4
	// gossipValidateQueue is gossipsub's validation queue length: a
	// count, cheap because the budget bounds the bytes queued.
	gossipValidateQueue = 4096
	// gossipHoldMargin is added to the validator timeout before an
	// unsettled frame's bytes are presumed freed.
	gossipHoldMargin = 5 * time.Second
)

// gossipValidatorTimeout is how long gossipsub lets a topic validator
// run on one frame.
const gossipValidatorTimeout = 30 * time.Second

func newGossipBudget(maxFrame int) *gossipBudget {
	return &gossipBudget{
		now:    time.Now,
		ttl:    gossipValidatorTimeout + gossipHoldMargin,
		caps:   [2]int64{gossipSmallBudget, int64(gossipLargeFrames) * int64(maxFrame)},
		held:   make(map[*pb.Message]heldFrame),
		topics: make(map[string]bool),
	}
}

// watch and unwatch follow the topics the node validates.
func (b *gossipBudget) watch(topic string) {
	b.mu.Lock()
	b.topics[topic] = true
	b.mu.Unlock()
}

func (b *gossipBudget) unwatch(topic string) {
	b.mu.Lock()
	delete(b.topics, topic)
	b.mu.Unlock()
}

// bound is the most frame bytes the budget lets gossipsub hold at once.
func (b *gossipBudget) bound() int64 { return b.caps[0] + b.caps[1] }

// pubsubIncoming is the length of gossipsub's queue of RPCs read but not
// yet inspected (go-libp2p-pubsub v0.19.0, not configurable).
const pubsubIncoming = 32

// worstCase is the most gossip frame memory a node holds with peers
// gossipsub streams open, maxRPC being the RPC size limit: the budget,
// plus RPCs read and not yet inspected (the incoming queue, and per peer
// one being read and one waiting for the queue). See p2p/doc.go.
func (b *gossipBudget) worstCase(peers, maxRPC int) int64 {
	return b.bound() + int64(pubsubIncoming+2*peers)*int64(maxRPC)
}

// inspect is the RPC inspector: it keeps the frames that fit and strips
// the others from rpc. It never fails the RPC, so subscriptions and
// control messages in it still count.
func (b *gossipBudget) inspect(from peer.ID, rpc *pubsub.RPC) error {
	if len(rpc.Publish) == 0 {
		return nil
	}
	if b.graylisted != nil && b.graylisted(from) {
		b.mu.Lock()
		b.dropped += uint64(len(rpc.Publish))
		b.mu.Unlock()
		clear(rpc.Publish)
		rpc.Publish = rpc.Publish[:0]
		return nil
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.After(b.sweepAt) {
		b.sweep(now)
	}
	kept := rpc.Publish[:0]
	for _, m := range rpc.Publish {
		if m == nil {
			continue
		}
		if !b.topics[m.GetTopic()] {
			kept = append(kept, m)
			continue
		}
		size := int64(len(m.Data))
		class := 0
		if size > gossipSmallFrame {
			class = 1
		}
		if _, dup := b.held[m]; dup || b.inflight[class]+size > b.caps[class] {
			b.dropped++
			continue
		}
		b.inflight[class] += size
		b.held[m] = heldFrame{size: size, class: class, at: now}
		kept = append(kept, m)
	}
	clear(rpc.Publish[len(kept):])
	rpc.Publish = kept
	return nil
}

// settle releases the bytes of a frame whose fate gossipsub reported.
func (b *gossipBudget) settle(msg *pubsub.Message) {
	if msg == nil || msg.Message == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.release(msg.Message)
}

func (b *gossipBudget) release(m *pb.Message) {
	h, ok := b.held[m]
	if !ok {
		return
	}
	delete(b.held, m)
	b.inflight[h.class] -= h.size
}

// sweep settles frames held longer than gossipsub can hold them.
func (b *gossipBudget) sweep(now time.Time) {
	for m, h := range b.held {
		if now.Sub(h.at) > b.ttl {
			b.release(m)
		}
	}
	b.sweepAt = now.Add(time.Second)
}

// usage returns the bytes in flight and the frames dropped so far.
func (b *gossipBudget) usage() (inflight int64, dropped uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inflight[0] + b.inflight[1], b.dropped
}

// budgetTracer feeds gossipsub's verdicts to the budget.
type budgetTracer struct{ b *gossipBudget }

var _ pubsub.RawTracer = budgetTracer{}

func (t budgetTracer) DeliverMessage(m *pubsub.Message)                   { t.b.settle(m) }
func (t budgetTracer) RejectMessage(m *pubsub.Message, _ string)          { t.b.settle(m) }
func (t budgetTracer) DuplicateMessage(m *pubsub.Message)                 { t.b.settle(m) }
func (budgetTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (budgetTracer) OnClosedOutboundStream(peer.ID)                       {}
func (budgetTracer) Join(string)                                          {}
func (budgetTracer) Leave(string)                                         {}
func (budgetTracer) Graft(peer.ID, string)                                {}
func (budgetTracer) Prune(peer.ID, string)                                {}
func (budgetTracer) ValidateMessage(*pubsub.Message)                      {}
func (budgetTracer) UndeliverableMessage(*pubsub.Message)                 {}
func (budgetTracer) ThrottlePeer(peer.ID)                                 {}
func (budgetTracer) RecvRPC(*pubsub.RPC)                                  {}
func (budgetTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (budgetTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (budgetTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
