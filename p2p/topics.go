package p2p

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// ErrAlreadyJoined is returned when joining a topic the node has joined.
var ErrAlreadyJoined = errors.New("p2p: topic already joined")

const (
	// subBuffer is the subscription queue. Gossipsub drops frames for a
	// subscriber whose queue is full; the engine recovers them by sync.
	subBuffer = 4096
	// pendingTTL is how long a frame published while the topic had no peers
	// is kept for direct delivery to peers that join later.
	pendingTTL = 10 * time.Minute
	// maxPending caps such frames per topic.
	maxPending = 256
	// maxDirectSends caps concurrent direct deliveries per topic.
	maxDirectSends = 8
	// maxForgotten caps the peers a frame is sent to directly because
	// gossipsub forgot them (see Topic.forgotten; honestly none, or the
	// one whose connection was just replaced).
	maxForgotten = 8
	// rejoinEvery spaces WithPeerJoined calls for one peer: a peer that
	// announces its subscription more often gets one call per interval
	// (a late one is deferred, not dropped), so toggling its subscription
	// cannot keep the engine syncing from it.
	rejoinEvery = 2 * time.Second
)

// TopicOption configures a topic at JoinGroup.
type TopicOption func(*topicConfig)

type topicConfig struct {
	validator    VerdictValidator
	keepOnRelays bool
	peerJoined   func(peer.ID)
}

// WithTopicValidator sets the topic's MLS-aware validator, overriding the
// node's (WithValidator). nil keeps only p2p's own checks.
func WithTopicValidator(v Validator) TopicOption {
	return func(c *topicConfig) { c.validator = verdictless(v) }
}

// WithTopicVerdictValidator is WithTopicValidator for a validator whose
// verdicts reach Message.Verdict.
func WithTopicVerdictValidator(v VerdictValidator) TopicOption {
	return func(c *topicConfig) { c.validator = v }
}

// WithKeepOnRelays says whether the topic asks the configured relays
// (WithRelays) to keep its frames, renewing the lease while joined (default
// true).
func WithKeepOnRelays(on bool) TopicOption {
	return func(c *topicConfig) { c.keepOnRelays = on }
}

// WithPeerJoined sets f to be called, from the topic's goroutine (f must
// not block), each time a peer announces its subscription to the topic
// after we joined it: when it joins, and again whenever gossipsub re-opens
// its stream to us after the old one died, as when the connection it ran
// on closed while another stays (a relayed connection retired after hole
// punching). Frames gossiped on the old stream may have been lost with it,
// so a member catches up from the peer (Node.Sync) when f is called.
// (Peers already subscribed when we joined are not reported: a member
// catches up from them as it starts.) f is called at most once per peer
// every two seconds (rejoinEvery); an announcement in between is reported
// when that time is up.
func WithPeerJoined(f func(peer.ID)) TopicOption {
	return func(c *topicConfig) { c.peerJoined = f }
}

func withoutRelayKeep() TopicOption { return WithKeepOnRelays(false) }

const (
	// keepLease is the lease topics ask relays for.
	keepLease = 24 * time.Hour
	// keepRetry is the first pause after a failed keep request.
	keepRetry = 30 * time.Second
)

// Topic is a joined group topic. Publish and Next may be called from any
// goroutine; Next is meant for one consumer (the group's goroutine).
//
// Besides gossipsub, a topic delivers frames directly: a frame published
// while the topic had no peers at all (just joined, or everyone offline) is
// kept for pendingTTL and sent over /canopy/inbox/1 to each peer that joins
// the topic in that time; the receiver validates it and re-publishes it into
// its own mesh. Content-addressed message ids make every copy de-duplicate.
// Frames older than that are the business of sync (Node.Sync).
type Topic struct {
	n      *Node
	name   string
	pt     *pubsub.Topic
	sub    *pubsub.Subscription
	evh    *pubsub.TopicEventHandler
	val    *topicValidator
	joined time.Time
	onJoin func(peer.ID) // WithPeerJoined; nil if unset

	ctx    context.Context
	cancel context.CancelFunc

	sigMu sync.Mutex
	sig   chan struct{} // closed when a peer joins the topic

	// subs holds the peers that announced a subscription to the topic
	// since run last looked (the tracer, which must not block, adds; run
	// takes); subsSig wakes run.
	subsMu  sync.Mutex
	subs    map[peer.ID]bool
	subsSig chan struct{}

	events  chan pubsub.PeerEvent // watchPeers -> run
	pending chan *pendingMsg      // Publish -> run
	sendSem chan struct{}
	pace    *rate.Limiter // Publish's own frames (nil: unpaced)

	closeOnce sync.Once
}

// publishShare is the part of the per-neighbour gossip limit a node uses
// for its own frames. Receivers ignore a neighbour's frames beyond the
// limit (validator.go); an honest frame lost that way only comes back by
// sync, and once its sender's ratchet has moved far past it the key to
// open it is gone (mls.SecretTreeOptions). Pacing at 80% of the limit
// (nodes share the defaults) leaves room for the frames of others the
// node forwards.
const publishShare = 0.8

// publishPace is the limiter of a node's own frames on a topic, for a
// gossip limit l (nil when l is off).
func publishPace(l RateLimit) *rate.Limiter {
	if l.Rate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(l.Rate*publishShare), max(1, int(l.Burst*publishShare)))
}

// pendingMsg is owned by the topic's run goroutine.
type pendingMsg struct {
	data []byte
	at   time.Time
	sent map[peer.ID]bool
	// to are peers to send the frame to at once (forgotten by gossipsub);
	// keep says to keep it for peers that join later (no peers at all).
	to   []peer.ID
	keep bool
}

// Message is a validated frame received on a topic.
type Message struct {
	ID   MessageID
	Data []byte
	// From is the neighbour that forwarded the frame, not its author:
	// authorship is MLS's business.
	From peer.ID
	// Header is the frame's MLS header; Header.GroupID aliases Data.
	Header MLSHeader
	// Verdict is what the topic's VerdictValidator returned when it
	// accepted the frame (nil without one).
	Verdict any
}

// PublishResult tells what Publish did with a frame.
type PublishResult struct {
	ID MessageID
	// Peers is the number of topic peers the frame was sent to.
	Peers int
	// Queued is true when the topic had no peers: the frame is kept for
	// direct delivery to peers joining within pendingTTL.
	Queued bool
}

// JoinGroup joins the topic of a group (TopicName(groupID)).
func (n *Node) JoinGroup(groupID []byte, opts ...TopicOption) (*Topic, error) {
	return n.JoinTopic(TopicName(groupID), opts...)
}

// JoinTopic joins a topic by name; name must have the form TopicName returns.
func (n *Node) JoinTopic(name string, opts ...TopicOption) (*Topic, error) {
	tc := topicConfig{validator: verdictless(n.cfg.validator), keepOnRelays: true}
	for _, o := range opts {
		o(&tc)
	}
	check, err := newFrameCheck(name, n.cfg.maxMsgSize)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if _, ok := n.topics[name]; ok {
		return nil, ErrAlreadyJoined
	}
	val := newTopicValidator(n, check, tc.validator)
	n.budget.watch(name)
	if err := n.ps.RegisterTopicValidator(name, val.pubsubValidator, pubsub.WithValidatorTimeout(gossipValidatorTimeout)); err != nil {
		n.budget.unwatch(name)
		return nil, fmt.Errorf("p2p: registering validator: %w", err)
	}
	t := &Topic{
		n:       n,
		name:    name,
		val:     val,
		joined:  time.Now(),
		onJoin:  tc.peerJoined,
		sig:     make(chan struct{}),
		subs:    make(map[peer.ID]bool),
		subsSig: make(chan struct{}, 1),
		events:  make(chan pubsub.PeerEvent, 64),
		pending: make(chan *pendingMsg),
		sendSem: make(chan struct{}, maxDirectSends),
		pace:    publishPace(n.cfg.gossipRate),
	}
	fail := func(err error) (*Topic, error) {
		if t.evh != nil {
			t.evh.Cancel()
		}
		if t.sub != nil {
			t.sub.Cancel()
		}
		if t.pt != nil {
			_ = t.pt.Close()
		}
		_ = n.ps.UnregisterTopicValidator(name)
		n.budget.unwatch(name)
		return nil, fmt.Errorf("p2p: joining %s: %w", name, err)
	}
	if t.pt, err = n.ps.Join(name); err != nil {
		return fail(err)
	}
	if err := t.pt.SetScoreParams(topicScoreParams()); err != nil {
		return fail(err)
	}
	if t.evh, err = t.pt.EventHandler(); err != nil {
		return fail(err)
	}
	if t.sub, err = t.pt.Subscribe(pubsub.WithBufferSize(subBuffer)); err != nil {
		return fail(err)
	}
	t.ctx, t.cancel = context.WithCancel(n.ctx)
	n.topics[name] = t
	n.subWatch.Store(name, t)
	n.metrics.topicCount(1)

	n.wg.Add(2)
	go t.watchPeers()
	go t.run()
	if n.disc != nil && n.relay != nil {
		n.wg.Add(1)
		go n.advertiseTopic(t)
	}
	if tc.keepOnRelays && len(n.cfg.relays) > 0 {
		n.wg.Add(1)
		go t.keepOnRelays()
	}
	n.log.Debug("joined topic", "topic", name)
	return t, nil
}

func (n *Node) topic(name string) *Topic {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.topics[name]
}

// Name returns the gossipsub topic name.
func (t *Topic) Name() string { return t.name }

// Peers returns the connected peers subscribed to the topic: gossipsub's
// and those it forgot (see forgotten).
func (t *Topic) Peers() []peer.ID {
	listed := t.pt.ListPeers()
	return append(listed, t.forgotten(listed)...)
}

// forgotten returns the connected peers that announced a subscription to
// the topic (peerSubs) but which gossipsub does not list (listed): it
// forgot them in a connection switch (see peerSubs), or, for a moment,
// learnt a peer's subscription before its stream to the peer was up.
// Publish sends them our frames directly, and catch-up asks them too.
func (t *Topic) forgotten(listed []peer.ID) []peer.ID {
	var out []peer.ID
	for _, p := range t.n.peerSubs.peers(t.name) {
		if len(out) == maxForgotten {
			break
		}
		// As gossipsub publishes: to connected peers not scored below
		// its publish threshold.
		if !slices.Contains(listed, p) && t.n.h.Network().Connectedness(p) == network.Connected &&
			t.n.scores.standing(p) >= peerScoreThresholds().PublishThreshold {
			out = append(out, p)
		}
	}
	return out
}

// WaitPeers blocks until the topic has at least min peers or ctx ends.
func (t *Topic) WaitPeers(ctx context.Context, min int) error {
	// Peer-join events wake the wait at once. gossipsub may learn a peer's
	// subscription (and emit the event) a moment before its outgoing stream
	// to that peer is up, when ListPeers does not count it yet; the ticker
	// re-checks for that case.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		sig := t.joinSignal()
		if len(t.pt.ListPeers()) >= min {
			return nil
		}
		select {
		case <-sig:
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.ctx.Done():
			return ErrClosed
		}
	}
}

// Publish sends a frame (an MLSMessage of the topic's group) to the group.
// The frame is checked as receivers would check it and an invalid frame is
// refused with an error wrapping ErrInvalidFrame.
//
// Right after the topic was joined, Publish waits up to the publish wait
// (WithPublishWait) for a first topic peer, because subscriptions take a
// round trip to arrive. If there is still no peer, the frame is kept for
// direct delivery to peers joining later (PublishResult.Queued).
//
// Publish paces the node's own frames below the per-neighbour limit it
// applies to others (publishPace): beyond the burst it waits for its turn
// (or ctx), so that a fast sender is slowed down where it can see it
// rather than dropped by every receiver.
func (t *Topic) Publish(ctx context.Context, data []byte) (PublishResult, error) {
	if t.ctx.Err() != nil {
		return PublishResult{}, ErrClosed
	}
	if _, _, err := t.val.check.check(data); err != nil {
		return PublishResult{}, err
	}
	// Not pubsub.WithReadiness: when its wait ends without a peer it
	// refuses to publish, while canopy publishes anyway and keeps the frame
	// for peers that join later (pending, below); WaitPeers also re-checks
	// the moment between a peer's subscription and its stream (see there).
	if wait := t.n.cfg.publishWait - time.Since(t.joined); wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		_ = t.WaitPeers(wctx, 1)
		cancel()
		if err := ctx.Err(); err != nil {
			return PublishResult{}, err
		}
	}
	if t.pace != nil {
		if err := t.pace.Wait(ctx); err != nil {
			return PublishResult{}, fmt.Errorf("p2p: publish: %w", err)
		}
	}
	res := PublishResult{ID: IDOf(data)}
	at := time.Now()
	listed := t.pt.ListPeers()
	missed := t.forgotten(listed)
	res.Peers = len(listed) + len(missed)
	if err := t.pt.Publish(ctx, data, pubsub.WithValidatorData(&localMark{own: true})); err != nil {
		if errors.As(err, new(pubsub.ValidationError)) {
			return PublishResult{}, fmt.Errorf("%w: %v", ErrInvalidFrame, err)
		}
		return PublishResult{}, fmt.Errorf("p2p: publish: %w", err)
	}
	t.n.metrics.publish()
	if res.Peers == 0 || len(missed) > 0 {
		res.Queued = res.Peers == 0
		m := &pendingMsg{data: data, at: at, sent: make(map[peer.ID]bool), to: missed, keep: res.Queued}
		select {
		case t.pending <- m:
		case <-t.ctx.Done():
		}
	}
	return res, nil
}

// Next returns the next frame received on the topic. Frames the node
// published itself are not returned. It fails with ErrClosed once the topic
// is closed.
func (t *Topic) Next(ctx context.Context) (Message, error) {
	for {
		m, err := t.sub.Next(ctx)
		if err != nil {
			if errors.Is(err, pubsub.ErrSubscriptionCancelled) {
				return Message{}, ErrClosed
			}
			return Message{}, err
		}
		msg := Message{ID: IDOf(m.Data), Data: m.Data, From: m.ReceivedFrom}
		switch v := m.ValidatorData.(type) {
		case accepted:
			msg.Header, msg.Verdict = v.hdr, v.verdict
		case *localMark:
			if v.own {
				continue
			}
			msg.From, msg.Header, msg.Verdict = v.from, v.hdr, v.verdict
		default:
			continue
		}
		return msg, nil
	}
}

// Close leaves the topic.
func (t *Topic) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.cancel()
		t.evh.Cancel()
		t.sub.Cancel()
		err = t.pt.Close()
		_ = t.n.ps.UnregisterTopicValidator(t.name)
		t.n.mu.Lock()
		if t.n.topics[t.name] == t {
			t.n.budget.unwatch(t.name)
			t.n.subWatch.CompareAndDelete(t.name, t)
			delete(t.n.topics, t.name)
			t.n.metrics.topicCount(-1)
		}
		t.n.mu.Unlock()
	})
	return err
}

func (t *Topic) joinSignal() <-chan struct{} {
	t.sigMu.Lock()
	defer t.sigMu.Unlock()
	return t.sig
}

// watchPeers forwards the topic's peer events to run and wakes Publish
// calls waiting for peers.
func (t *Topic) watchPeers() {
	defer t.n.wg.Done()
	for {
		ev, err := t.evh.NextPeerEvent(t.ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			t.sigMu.Lock()
			close(t.sig)
			t.sig = make(chan struct{})
			t.sigMu.Unlock()
		}
		select {
		case t.events <- ev:
		case <-t.ctx.Done():
			return
		}
	}
}

// subscribed records that p announced its subscription to the topic, for
// run. It is called from pubsub's event loop and does not block.
func (t *Topic) subscribed(p peer.ID) {
	t.subsMu.Lock()
	t.subs[p] = true
	t.subsMu.Unlock()
	select {
	case t.subsSig <- struct{}{}:
	default:
	}
}

func (t *Topic) takeSubscribed() map[peer.ID]bool {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	s := t.subs
	t.subs = make(map[peer.ID]bool)
	return s
}

// run owns the pending frames and the set of recently joined peers.
//
// A peer joins when pubsub reports it (PeerJoin: also the peers already
// subscribed when the topic was joined) and whenever it announces its
// subscription (a new stream of its, also after its old one died, which
// pubsub's events can miss); either sends it the pending frames it has not
// had, the latter also tells WithPeerJoined.
func (t *Topic) run() {
	defer t.n.wg.Done()
	var pending []*pendingMsg
	joined := make(map[peer.ID]time.Time)
	join := func(p peer.ID) {
		joined[p] = time.Now()
		for _, m := range pending {
			t.sendDirect(m, p)
		}
	}
	// WithPeerJoined calls, at most one per peer per rejoinEvery.
	called := make(map[peer.ID]time.Time)
	deferred := make(map[peer.ID]bool)
	var retry <-chan time.Time
	tell := func(p peer.ID, now time.Time) {
		if at, ok := called[p]; ok && now.Sub(at) < rejoinEvery {
			deferred[p] = true
			if retry == nil {
				retry = time.After(rejoinEvery - now.Sub(at))
			}
			return
		}
		called[p] = now
		t.onJoin(p)
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case ev := <-t.events:
			if ev.Type != pubsub.PeerJoin {
				delete(joined, ev.Peer)
				continue
			}
			join(ev.Peer)
		case <-t.subsSig:
			now := time.Now()
			for p := range t.takeSubscribed() {
				join(p)
				if t.onJoin != nil {
					tell(p, now)
				}
			}
		case now := <-retry:
			retry = nil
			ps := slices.Collect(maps.Keys(deferred))
			clear(deferred)
			for _, p := range ps {
				tell(p, now)
			}
		case m := <-t.pending:
			for _, p := range m.to {
				t.sendDirect(m, p)
			}
			if !m.keep {
				continue
			}
			if len(pending) == maxPending {
				pending[0] = nil
				pending = pending[1:]
			}
			pending = append(pending, m)
			// A peer that joined between Publish's peer count and the
			// publication itself may have missed the frame.
			for p, at := range joined {
				if !at.Before(m.at) {
					t.sendDirect(m, p)
				}
			}
		case now := <-tick.C:
			for len(pending) > 0 && now.Sub(pending[0].at) > pendingTTL {
				pending[0] = nil
				pending = pending[1:]
			}
			for p, at := range joined {
				if now.Sub(at) > pendingTTL {
					delete(joined, p)
				}
			}
			for p, at := range called {
				if now.Sub(at) > rejoinEvery && !deferred[p] {
					delete(called, p)
				}
			}
			t.n.peerSubs.prune(t.n.h.Network())
		}
	}
}

// sendDirect delivers m to p over /canopy/inbox/1, once.
func (t *Topic) sendDirect(m *pendingMsg, p peer.ID) {
	if m.sent[p] {
		return
	}
	m.sent[p] = true
	t.n.wg.Add(1)
	go func() {
		defer t.n.wg.Done()
		select {
		case t.sendSem <- struct{}{}:
		case <-t.ctx.Done():
			return
		}
		defer func() { <-t.sendSem }()
		ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
		defer cancel()
		err := t.n.SendInbox(ctx, p, InboxMessage{Kind: InboxTopic, Topic: t.name, Data: m.data})
		if err != nil {
			t.n.metrics.directDelivery("out", "error")
			t.n.log.Debug("direct delivery failed", "topic", t.name, "peer", p, "err", err)
			return
		}
		t.n.metrics.directDelivery("out", "ok")
	}()
}

// deliverDirect handles a topic frame received over /canopy/inbox/1. It is
// a back door into the topic, so it is held to gossip's rules: a peer whose
// score keeps gossipsub from exchanging gossip with it (graylisted, or
// penalised here before) is refused; the frame then goes through the
// topic's validation as if the sender had gossiped it (size, header, the
// same per-peer rate limits, the engine's validator); an invalid frame
// counts against the sender's score like an invalid gossip frame. Only a
// frame the validator accepted is re-published, which delivers it locally
// and forwards it to the mesh; p2p decides whom it hears, the engine's
// validator what is accepted.
func (n *Node) deliverDirect(ctx context.Context, from peer.ID, topic string, data []byte) error {
	t := n.topic(topic)
	if t == nil {
		return fmt.Errorf("%w: topic not joined", ErrNotFound)
	}
	if !n.scores.admitted(from) {
		n.metrics.directDelivery("in", "refused")
		return fmt.Errorf("%w: peer score too low", ErrDenied)
	}
	_, res, reason, verdict := t.val.validateVerdict(ctx, from, data)
	n.metrics.gossipResult(res, reason)
	switch res {
	case Reject:
		n.scores.strike(from)
		n.metrics.directDelivery("in", "rejected")
		return fmt.Errorf("%w: frame rejected (%s)", ErrBadRequest, reason)
	case Ignore:
		n.metrics.directDelivery("in", "ignored")
		if reason == "rate" {
			return fmt.Errorf("%w: too many frames", ErrRateLimited)
		}
		return nil
	}
	if err := t.pt.Publish(ctx, data, pubsub.WithValidatorData(&localMark{from: from, verdict: verdict})); err != nil {
		n.metrics.directDelivery("in", "error")
		return fmt.Errorf("re-publishing: %w", err)
	}
	n.metrics.directDelivery("in", "ok")
	return nil
}

// keepOnRelays asks each configured relay to keep the topic and renews the
// lease at half its term; failures are retried with exponential backoff.
func (t *Topic) keepOnRelays() {
	defer t.n.wg.Done()
	type state struct {
		due     time.Time
		backoff peerBackoff
	}
	relays := t.n.bootstrapPeersOf(t.n.cfg.relays)
	states := make(map[peer.ID]*state, len(relays))
	for _, r := range relays {
		states[r] = &state{backoff: newBackoff(keepRetry, 10*time.Minute)}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		next := now.Add(time.Hour)
		for _, r := range relays {
			st := states[r]
			if now.Before(st.due) {
				next = minTime(next, st.due)
				continue
			}
			ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
			granted, err := t.n.KeepTopic(ctx, r, t.name, keepLease)
			cancel()
			if t.ctx.Err() != nil {
				return
			}
			if err != nil || granted <= 0 {
				t.n.log.Debug("relay did not keep topic", "topic", t.name, "relay", r, "err", err)
				st.due = time.Now().Add(st.backoff.failed())
			} else {
				st.due = time.Now().Add(max(granted/2, time.Minute))
				st.backoff.succeeded()
			}
			next = minTime(next, st.due)
		}
		timer.Reset(time.Until(next))
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
