package p2p

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

// nextEvent waits for the next event on s that match accepts, skipping
// others (a real host also reports its own address changes).
func nextEvent(t *testing.T, s *Subscription, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.C:
			if !ok {
				t.Fatalf("subscription closed waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func peerEvent(k EventKind, p PeerID) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == k && ev.Peer == p }
}

func TestSubscribePeerUpDown(t *testing.T) {
	a, b, c := newTestNode(t), newTestNode(t), newTestNode(t)
	sub := a.Subscribe(WithEventKinds(PeerUp, PeerDown))
	defer sub.Close()

	connect(t, a, b)
	nextEvent(t, sub, "b up", peerEvent(PeerUp, b.ID()))
	if !a.IsConnected(b.ID()) || a.IsConnected(c.ID()) {
		t.Fatalf("IsConnected: b %v (want true), c %v (want false)", a.IsConnected(b.ID()), a.IsConnected(c.ID()))
	}
	// c dials a: inbound connections are reported too.
	connect(t, c, a)
	nextEvent(t, sub, "c up", peerEvent(PeerUp, c.ID()))

	if err := a.Disconnect(b.ID()); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, sub, "b down", func(ev Event) bool { return ev.Kind == PeerDown })
	if ev.Peer != b.ID() {
		t.Fatalf("PeerDown for %s, want b %s", ev.Peer, b.ID())
	}
	if a.IsConnected(b.ID()) || !a.IsConnected(c.ID()) {
		t.Fatal("after Disconnect(b): b still connected or c lost")
	}
	// The far side closing is seen as well.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, sub, "c down", peerEvent(PeerDown, c.ID()))
	if sub.Dropped() != 0 {
		t.Fatalf("dropped %d events with a reader", sub.Dropped())
	}
}

func TestSubscribeReachability(t *testing.T) {
	a := newTestNode(t)
	early := a.Subscribe(WithEventKinds(ReachabilityChanged))
	defer early.Close()
	peersOnly := a.Subscribe(WithEventKinds(PeerUp, PeerDown))
	defer peersOnly.Close()
	if a.Reachability() != ReachabilityUnknown {
		t.Fatalf("reachability %v before AutoNAT said anything", a.Reachability())
	}

	// Emit on the host's own event bus, as AutoNAT does.
	em, err := a.Host().EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: ReachabilityPrivate}); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, early, "reachability", func(ev Event) bool { return ev.Kind == ReachabilityChanged })
	if ev.Reachability != ReachabilityPrivate {
		t.Fatalf("reachability event %v, want private", ev.Reachability)
	}
	if a.Reachability() != ReachabilityPrivate || a.Status().Reachability != ReachabilityPrivate {
		t.Fatalf("node says %v / status %v after the event, want private", a.Reachability(), a.Status().Reachability)
	}
	// A late subscriber learns the current verdict first.
	late := a.Subscribe()
	defer late.Close()
	ev = nextEvent(t, late, "current reachability", func(Event) bool { return true })
	if ev.Kind != ReachabilityChanged || ev.Reachability != ReachabilityPrivate {
		t.Fatalf("late subscriber's first event %+v, want reachability private", ev)
	}
	if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: ReachabilityPublic}); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, early, "public", func(ev Event) bool { return ev.Kind == ReachabilityChanged && ev.Reachability == ReachabilityPublic })
	select {
	case ev := <-peersOnly.C:
		t.Fatalf("a peer-only subscription got %v", ev.Kind)
	default:
	}
}

// A relay with a configured public address forces AutoNAT's verdict: the
// verdict libp2p itself emits reaches subscribers.
func TestSubscribeReachabilityFromAutoNAT(t *testing.T) {
	r := newTestRelay(t, RelayConfig{}, WithAnnounceAddrs("/ip4/127.0.0.1/tcp/4999"))
	sub := r.Node().Subscribe(WithEventKinds(ReachabilityChanged))
	defer sub.Close()
	ev := nextEvent(t, sub, "public", func(Event) bool { return true })
	if ev.Reachability != ReachabilityPublic || r.Node().Reachability() != ReachabilityPublic {
		t.Fatalf("event %v, node %v: want public", ev.Reachability, r.Node().Reachability())
	}
}

func TestSubscribeAddrsChanged(t *testing.T) {
	a := newTestNode(t)
	sub := a.Subscribe(WithEventKinds(AddrsChanged))
	defer sub.Close()
	before := a.DirectAddrs()
	if err := a.Host().Network().Listen(MustParseMultiaddr("/ip4/127.0.0.1/udp/0/quic-v1")); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, sub, "addresses changed", func(Event) bool { return true })
	after := a.DirectAddrs()
	if len(after) != len(before)+1 || !slices.ContainsFunc(after, func(m Multiaddr) bool { return strings.Contains(m.String(), "/quic-v1") }) {
		t.Fatalf("addresses %v -> %v: want one QUIC address more", before, after)
	}
}

// A subscriber that never reads costs events, never connections.
func TestSubscribeSlowReaderDoesNotBlock(t *testing.T) {
	a := newTestNode(t)
	stuck := a.Subscribe(WithEventBuffer(1))
	defer stuck.Close()
	for i := range 3 {
		b := newTestNode(t)
		connect(t, a, b)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, fmt.Sprintf("peer %d gone", i), func() bool { return !a.IsConnected(b.ID()) })
	}
	if stuck.Dropped() == 0 {
		t.Fatal("a full subscription dropped nothing")
	}
	if len(stuck.C) != 1 {
		t.Fatalf("%d events queued, want the buffer's 1", len(stuck.C))
	}
}

func TestSubscriptionClose(t *testing.T) {
	a := newTestNode(t)
	s1 := a.Subscribe()
	s2 := a.Subscribe()
	s1.Close()
	s1.Close()
	if _, ok := <-s1.C; ok {
		t.Fatal("C open after Close")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for range s2.C {
	}
	s2.Close()
	if s3 := a.Subscribe(); s3 != nil {
		if _, ok := <-s3.C; ok {
			t.Fatal("a subscription to a closed node is open")
		}
	}
}

// AddAddrs is what lets a node dial a peer known only by id.
func TestAddAddrs(t *testing.T) {
	a, b := newTestNode(t), newTestNode(t)
	ctx := testCtx(t, 10*time.Second)
	if err := a.Connect(ctx, AddrInfo{ID: b.ID()}); err == nil {
		t.Fatal("connected to a peer without addresses and without the DHT")
	}
	for _, m := range b.DirectAddrs() {
		if IsCircuitAddr(m) {
			t.Fatalf("direct address %s is a circuit", m)
		}
		if _, err := PeerIDFromP2PAddr(m); err == nil {
			t.Fatalf("direct address %s carries a peer id", m)
		}
	}
	a.AddAddrs(b.ID(), b.DirectAddrs())
	if err := a.Connect(ctx, AddrInfo{ID: b.ID()}); err != nil {
		t.Fatalf("connect after AddAddrs: %v", err)
	}
	if !a.IsConnected(b.ID()) {
		t.Fatal("not connected after Connect")
	}
}
