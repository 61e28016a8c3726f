package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/internal/testwait"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// Attacks by peers that mint ids or misuse the direct protocols (issue 13).
// Each test reproduces the attack with real hosts on loopback and asserts
// both the bound and that honest traffic still flows.

// counterValue reads a counter of reg by name and label values.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// gossipCount reads a node's gossip validation counter.
func gossipCount(t testing.TB, reg *prometheus.Registry, result ValidationResult, reason string) float64 {
	return counterValue(t, reg, metricsNS+"_gossip_validated_total", map[string]string{"result": result.String(), "reason": reason})
}

// bucketFull reports whether p's token bucket in l has refilled.
func bucketFull(l *peerLimiter, p peer.ID) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[p]
	return b == nil || b.tokens+now.Sub(b.last).Seconds()*l.limit.Rate >= l.limit.Burst
}

// TestSybilFloodThroughForwarderKeepsItsScore: two throw-away peers flood
// honest B, each within B's per-neighbour limit, so that B forwards more to
// A than A's per-neighbour limit. A drops the excess without penalising B
// (before the fix, every dropped frame was an invalid delivery: B fell onto
// A's graylist and A then received 0 of B's own frames), and B's own frames
// all reach A.
func TestSybilFloodThroughForwarderKeepsItsScore(t *testing.T) {
	group := newGroupID()
	lim := RateLimit{Rate: 20, Burst: 40}
	reg := prometheus.NewRegistry()
	ctx := testCtx(t, 40*time.Second)
	a, b, ta, tb := meshedPair(ctx, t, group, lim, reg)
	var sybils []*pubsub.Topic
	for i := 0; i < 2; i++ {
		h, ps := rawPeer(t)
		sybils = append(sybils, joinRaw(t, h, ps, b, tb.Name()))
	}
	waitFor(t, 10*time.Second, "sybils in B's topic", func() bool { return len(tb.Peers()) == 3 })

	const flood = 200
	for i, s := range sybils {
		for j := 0; j < flood; j++ {
			if err := s.Publish(ctx, mlsFrame(group, 1, fmt.Sprintf("sybil %d frame %d", i, j))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A drops part of B's forwards as over its limit for B.
	waitFor(t, 30*time.Second, "A to drop B's excess forwards", func() bool {
		return gossipCount(t, reg, Ignore, "rate")+gossipCount(t, reg, Reject, "rate") > 0
	})
	// Drain what A accepted of the flood; then B's own frames, once A's
	// bucket for B has refilled, must all arrive.
	waitFor(t, 30*time.Second, "A's limit for B to refill", func() bool { return bucketFull(ta.val.frames, b.ID()) })
	const own = 20
	want := make(map[string]bool, own)
	for i := 0; i < own; i++ {
		f := mlsFrame(group, 1, fmt.Sprintf("B's own frame %d", i))
		want[string(f)] = true
		if _, err := tb.Publish(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if n := gossipCount(t, reg, Reject, "rate"); n != 0 {
		t.Errorf("A rejected %v forwards of B as invalid", n)
	}
	got := 0
	for got < own {
		m, err := ta.Next(ctx)
		if err != nil {
			t.Fatalf("A received %d of B's %d frames: %v", got, own, err)
		}
		if want[string(m.Data)] {
			got++
		}
	}
	t.Logf("A: %v of B's forwards dropped over the rate limit, 0 rejected; %d/%d of B's own frames delivered", gossipCount(t, reg, Ignore, "rate"), got, own)
	if s := a.scores.standing(b.ID()); s < 0 {
		t.Fatalf("B's standing at A is %v", s)
	}
}

// TestInboxRefusesLowScorePeers: a peer that gossips invalid frames until
// it is below the gossip threshold cannot go on injecting through
// /canopy/inbox/1; and invalid frames sent directly lower the sender's
// score as invalid gossip does, so a peer using only the inbox ends up
// refused too. Nothing of either is re-published to the victim's mesh,
// and an honest peer's direct frame still is.
func TestInboxRefusesLowScorePeers(t *testing.T) {
	group := newGroupID()
	victim := newTestNode(t)
	honest := newTestNode(t)
	witness := newTestNode(t)
	tv, err := victim.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := witness.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := honest.JoinGroup(group); err != nil {
		t.Fatal(err)
	}
	connect(t, witness, victim)
	connect(t, honest, victim)
	ctx := testCtx(t, 60*time.Second)
	if err := tw.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}

	// 1. Graylisted by gossip: a raw peer sends garbage until its score
	// is below the gossip threshold.
	mallory := newTestNode(t)
	connect(t, mallory, victim)
	h, ps := rawPeer(t)
	pt := joinRaw(t, h, ps, victim, tv.Name())
	for i := 0; i < 6; i++ {
		if err := pt.Publish(ctx, []byte(fmt.Sprintf("garbage %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the raw peer to sink below the gossip threshold", func() bool {
		return victim.scores.standing(h.ID()) < peerScoreThresholds().GossipThreshold
	})
	// The same peer id now tries the inbox: its libp2p host is raw, so it
	// speaks the protocol by hand.
	frame := mlsFrame(group, 1, "from a graylisted peer")
	err = rawInbox(t, h, victim, InboxMessage{Kind: InboxTopic, Topic: tv.Name(), Data: frame})
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("graylisted peer's direct frame: %v, want ErrDenied", err)
	}

	// 2. Invalid frames only over the inbox: each counts against mallory.
	bad := InboxMessage{Kind: InboxTopic, Topic: tv.Name(), Data: mlsFrame([]byte("another group"), 1, "x")}
	refused := false
	for i := 0; i < 10 && !refused; i++ {
		err := mallory.SendInbox(ctx, victim.ID(), bad)
		switch {
		case errors.Is(err, ErrBadRequest):
		case errors.Is(err, ErrDenied):
			refused = true
		default:
			t.Fatalf("invalid direct frame %d: %v", i, err)
		}
	}
	if !refused {
		t.Fatal("a peer sending only invalid direct frames was never refused")
	}
	good := mlsFrame(group, 1, "mallory's valid-looking frame")
	if err := mallory.SendInbox(ctx, victim.ID(), InboxMessage{Kind: InboxTopic, Topic: tv.Name(), Data: good}); !errors.Is(err, ErrDenied) {
		t.Fatalf("penalised peer's frame: %v, want ErrDenied", err)
	}
	waitFor(t, 10*time.Second, "gossipsub to see mallory's direct penalty", func() bool {
		victim.scores.mu.Lock()
		defer victim.scores.mu.Unlock()
		s, ok := victim.scores.gossip[mallory.ID()]
		return ok && s < peerScoreThresholds().GossipThreshold
	})

	// 3. The honest peer's direct frame is accepted and forwarded; the
	// witness sees it and nothing of the attackers'.
	hf := mlsFrame(group, 1, "honest direct frame")
	if err := honest.SendInbox(ctx, victim.ID(), InboxMessage{Kind: InboxTopic, Topic: tv.Name(), Data: hf}); err != nil {
		t.Fatal(err)
	}
	for {
		m := nextMsg(t, tw, 10*time.Second)
		if bytes.Equal(m.Data, frame) || bytes.Equal(m.Data, good) {
			t.Fatalf("witness received an attacker's frame %q", m.Data)
		}
		if bytes.Equal(m.Data, hf) {
			break
		}
	}
}

// rawInbox sends msg to victim over /canopy/inbox/1 from a plain libp2p
// host and returns the remote status as an *Error (nil for OK).
func rawInbox(t *testing.T, h host.Host, victim *Node, msg InboxMessage) error {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	s, err := h.NewStream(ctx, victim.ID(), ProtocolInbox)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := newFrameStream(s, 10*time.Second, time.Time{})
	if err := f.write(EncodeInboxMessage(msg), victim.inboxFrameMax()); err != nil {
		t.Fatal(err)
	}
	_, err = expectOK(f, 0)
	return err
}

// heapInuse returns the live heap after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestLargeInboxFloodStaysInBudget: three peers each open eight inbox
// streams at once, each carrying a maximal (8 MiB) message, to a victim
// whose handler holds every request it gets. The victim reads a body only
// after reserving its memory in the resource manager, so it holds at most
// two such requests per peer (60% of the 32 MiB per-peer inbox budget) and
// refuses the rest unread with ErrUnavailable; its live heap grows by less
// than 64 MiB (before: every request was read whole first, 24 × 8 MiB).
// An honest peer's small message is accepted during the flood.
func TestLargeInboxFloodStaysInBudget(t *testing.T) {
	const attackers, streams = 3, 8
	var (
		mu      sync.Mutex
		held    int
		release = make(chan struct{})
		bad     = map[peer.ID]bool{}
		kept    [][]byte
	)
	honestGot := make(chan InboxMessage, 1)
	victim := newTestNode(t, WithHandlers(Handlers{Inbox: func(ctx context.Context, from peer.ID, m InboxMessage) error {
		mu.Lock()
		isBad := bad[from]
		if isBad {
			held++
			kept = append(kept, m.Data) // as a slow handler would
		}
		mu.Unlock()
		if !isBad {
			honestGot <- m
			return nil
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}}))
	var nodes []*Node
	for i := 0; i < attackers; i++ {
		a := newTestNode(t)
		connect(t, a, victim)
		nodes = append(nodes, a)
		mu.Lock()
		bad[a.ID()] = true
		mu.Unlock()
	}
	honest := newTestNode(t)
	connect(t, honest, victim)
	body := EncodeInboxMessage(InboxMessage{Kind: InboxDirect, Data: make([]byte, DefaultMaxMessageSize-64)})
	head := binary.AppendUvarint(nil, uint64(len(body)))

	base := heapInuse()
	var refused atomic.Int32
	var wg sync.WaitGroup
	ctx := testCtx(t, 60*time.Second)
	for _, a := range nodes {
		for j := 0; j < streams; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := a.h.NewStream(ctx, victim.ID(), ProtocolInbox)
				if err != nil {
					t.Errorf("open: %v", err)
					return
				}
				defer s.Reset()
				_ = s.SetDeadline(time.Now().Add(50 * time.Second))
				// Send the frame as written by hand, sharing one body, so
				// that the attackers' own memory does not blur the figure.
				go func() {
					if _, err := s.Write(head); err == nil {
						_, _ = s.Write(body) // fails once the victim refuses
					}
				}()
				f := newFrameStream(s, 50*time.Second, time.Time{})
				if _, err := expectOK(f, 0); errors.Is(err, ErrUnavailable) {
					refused.Add(1)
				}
			}()
		}
	}
	settled := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		return held, held+int(refused.Load()) == attackers*streams
	}
	if !testwait.Poll(40*time.Second, func() bool { _, ok := settled(); return ok }) {
		h, _ := settled()
		t.Fatalf("flood requests: %d held, %d refused of %d", h, refused.Load(), attackers*streams)
	}
	grown := int64(heapInuse()) - int64(base)
	mu.Lock()
	h := held
	mu.Unlock()
	if err := honest.SendInbox(ctx, victim.ID(), InboxMessage{Kind: InboxDirect, Data: []byte("hello")}); err != nil {
		t.Fatalf("honest message during the flood: %v", err)
	}
	if m := <-honestGot; string(m.Data) != "hello" {
		t.Fatalf("honest message: %q", m.Data)
	}
	close(release)
	wg.Wait()
	mu.Lock()
	kept = nil
	mu.Unlock()
	t.Logf("held %d of %d maximal requests, refused %d; live heap grew %d MiB (load: see report)", h, attackers*streams, refused.Load(), grown>>20)
	if h > 2*attackers {
		t.Errorf("victim held %d maximal requests, want at most %d", h, 2*attackers)
	}
	if grown > 64<<20 {
		t.Errorf("victim's live heap grew by %d MiB under the flood, want < 64 MiB", grown>>20)
	}
}

// TestInboxRepublishesOnlyAccepted: a direct frame the engine's validator
// does not accept (Ignore: it cannot judge it; Reject: invalid) is neither
// delivered nor re-published to the victim's mesh; an accepted one is both.
func TestInboxRepublishesOnlyAccepted(t *testing.T) {
	group := newGroupID()
	verdict := func(ctx context.Context, from peer.ID, hdr MLSHeader, data []byte) ValidationResult {
		switch {
		case bytes.HasSuffix(data, []byte("undecidable")):
			return Ignore
		case bytes.HasSuffix(data, []byte("forged")):
			return Reject
		}
		return Accept
	}
	victim := newTestNode(t, WithValidator(verdict))
	witness := newTestNode(t)
	sender := newTestNode(t)
	tv, err := victim.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := witness.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, witness, victim)
	connect(t, sender, victim)
	ctx := testCtx(t, 30*time.Second)
	if err := tw.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	send := func(body string) error {
		return sender.SendInbox(ctx, victim.ID(), InboxMessage{Kind: InboxTopic, Topic: tv.Name(), Data: mlsFrame(group, 1, body)})
	}
	if err := send("undecidable"); err != nil {
		t.Fatalf("ignored frame: %v", err)
	}
	if err := send("forged"); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("rejected frame: %v, want ErrBadRequest", err)
	}
	if err := send("accepted"); err != nil {
		t.Fatal(err)
	}
	for _, tp := range []*Topic{tv, tw} {
		m := nextMsg(t, tp, 10*time.Second)
		if !bytes.HasSuffix(m.Data, []byte("accepted")) {
			t.Fatalf("%s received %q first", shortID(tp.n.ID()), m.Data)
		}
	}
	// One invalid frame: -20, decaying over an hour.
	if s := victim.scores.directPenalty(sender.ID()); s > 0.99*directInvalidWeight || s < directInvalidWeight {
		t.Fatalf("sender's direct penalty %v, want about %v for one invalid frame", s, float64(directInvalidWeight))
	}
}

// TestOwnBurstStaysUnderReceiversLimit: a node publishing far more frames
// than a neighbour's per-neighbour limit allows (here four times the
// burst) has every one of them accepted by that neighbour: Publish paces
// the node's own frames below the limit instead of letting the receiver
// ignore the excess (which only sync could bring back, and only while the
// sender's ratchet still holds the key).
func TestOwnBurstStaysUnderReceiversLimit(t *testing.T) {
	group := newGroupID()
	lim := RateLimit{Rate: 40, Burst: 10}
	reg := prometheus.NewRegistry()
	ctx := testCtx(t, 40*time.Second)
	_, _, ta, tb := meshedPair(ctx, t, group, lim, reg)
	const n = 40
	go func() {
		for i := range n {
			if _, err := tb.Publish(ctx, mlsFrame(group, 1, fmt.Sprintf("burst %d", i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for got := 0; got < n; got++ {
		if _, err := ta.Next(ctx); err != nil {
			t.Fatalf("%d of %d frames arrived (%v); ignored over the limit: %v", got, n, err, gossipCount(t, reg, Ignore, "rate"))
		}
	}
	if c := gossipCount(t, reg, Ignore, "rate"); c != 0 {
		t.Errorf("A ignored %v of B's frames as over its limit", c)
	}
}

// meshedPair starts two nodes with gossip limit lim (a's metrics in reg),
// both in group's topic and in each other's mesh.
func meshedPair(ctx context.Context, t *testing.T, group []byte, lim RateLimit, reg *prometheus.Registry) (a, b *Node, ta, tb *Topic) {
	t.Helper()
	a = newTestNode(t, WithGossipRateLimit(lim, DefaultGossipByteRate), WithMetrics(reg))
	b = newTestNode(t, WithGossipRateLimit(lim, DefaultGossipByteRate))
	var err error
	if ta, err = a.JoinGroup(group); err != nil {
		t.Fatal(err)
	}
	if tb, err = b.JoinGroup(group); err != nil {
		t.Fatal(err)
	}
	connect(t, a, b)
	if err := ta.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := tb.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return a, b, ta, tb
}
