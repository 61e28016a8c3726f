package p2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// Connectivity events: packages above p2p follow peers coming and going,
// what AutoNAT learns and the node's own addresses through Subscribe, not
// through the libp2p host. The node watches libp2p once (one network
// notifiee, one event bus subscription) and fans the events out.

// EventKind says what an Event reports.
type EventKind uint8

const (
	// PeerUp: a connection to Event.Peer opened (a peer may have several
	// connections; each reports PeerUp).
	PeerUp EventKind = iota + 1
	// PeerDown: the last connection to Event.Peer closed.
	PeerDown
	// ReachabilityChanged: AutoNAT's verdict is now Event.Reachability.
	ReachabilityChanged
	// AddrsChanged: the node's own addresses changed (Addrs, DirectAddrs),
	// for instance when a relay reservation adds circuit addresses.
	AddrsChanged
)

func (k EventKind) String() string {
	switch k {
	case PeerUp:
		return "peer up"
	case PeerDown:
		return "peer down"
	case ReachabilityChanged:
		return "reachability changed"
	case AddrsChanged:
		return "addresses changed"
	}
	return "unknown event"
}

// Reachability is what AutoNAT found out about the node (an alias, like
// PeerID, so that values pass to and from libp2p unchanged).
type Reachability = network.Reachability

// The reachability values, so that callers need not import libp2p.
const (
	ReachabilityUnknown = network.ReachabilityUnknown
	ReachabilityPublic  = network.ReachabilityPublic
	ReachabilityPrivate = network.ReachabilityPrivate
)

// Event is one connectivity event.
type Event struct {
	Kind EventKind
	// Peer is set for PeerUp and PeerDown.
	Peer PeerID
	// Reachability is set for ReachabilityChanged.
	Reachability Reachability
}

// DefaultEventBuffer is a subscription's channel capacity unless
// WithEventBuffer says otherwise.
const DefaultEventBuffer = 256

// maxEventBuffer bounds WithEventBuffer: a subscriber that needs more is
// better served by reading faster or asking the node (IsConnected,
// Reachability) after a drop.
const maxEventBuffer = 1 << 16

// SubscribeOption configures Subscribe.
type SubscribeOption func(*Subscription)

// WithEventKinds delivers only events of the given kinds (default: all).
func WithEventKinds(kinds ...EventKind) SubscribeOption {
	return func(s *Subscription) {
		s.kinds = make(map[EventKind]bool, len(kinds))
		for _, k := range kinds {
			s.kinds[k] = true
		}
	}
}

// WithEventBuffer sets the subscription's channel capacity (1 to 65536;
// default DefaultEventBuffer).
func WithEventBuffer(n int) SubscribeOption {
	return func(s *Subscription) { s.buffer = min(max(n, 1), maxEventBuffer) }
}

// Subscription delivers connectivity events on C until Close or the
// node's Close, which close C.
//
// Delivery never blocks libp2p: libp2p calls its notifiees synchronously
// while it opens and closes connections, so an event that finds C full is
// dropped and counted (Dropped) instead of waiting for the reader. A
// reader that must not miss a state asks the node for it (IsConnected,
// Reachability, DirectAddrs) when it sees Dropped grow.
type Subscription struct {
	C <-chan Event

	c       chan Event
	kinds   map[EventKind]bool
	buffer  int
	n       *Node
	dropped uint64 // guarded by n.subMu
	closed  bool   // guarded by n.subMu
}

// Subscribe starts a subscription to the node's connectivity events. If
// the subscription includes ReachabilityChanged and AutoNAT has already
// decided, the current reachability is the first event (as a late
// subscriber of libp2p's stateful event bus would see it).
func (n *Node) Subscribe(opts ...SubscribeOption) *Subscription {
	s := &Subscription{buffer: DefaultEventBuffer, n: n}
	for _, o := range opts {
		o(s)
	}
	s.c = make(chan Event, s.buffer)
	s.C = s.c
	n.subMu.Lock()
	defer n.subMu.Unlock()
	if n.subsClosed {
		s.closed = true
		close(s.c)
		return s
	}
	if r := n.Reachability(); r != ReachabilityUnknown {
		s.offer(Event{Kind: ReachabilityChanged, Reachability: r})
	}
	n.subs = append(n.subs, s)
	return s
}

// Close ends the subscription and closes C. It is safe to call more than
// once and concurrently with the node's Close.
func (s *Subscription) Close() {
	s.n.subMu.Lock()
	defer s.n.subMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.c)
	for i, x := range s.n.subs {
		if x == s {
			s.n.subs = append(s.n.subs[:i], s.n.subs[i+1:]...)
			break
		}
	}
}

// Dropped returns how many events did not fit into C.
func (s *Subscription) Dropped() uint64 {
	s.n.subMu.Lock()
	defer s.n.subMu.Unlock()
	return s.dropped
}

// offer delivers ev without blocking; the caller holds n.subMu.
func (s *Subscription) offer(ev Event) {
	if s.closed || (s.kinds != nil && !s.kinds[ev.Kind]) {
		return
	}
	select {
	case s.c <- ev:
	default:
		s.dropped++
	}
}

// publish hands ev to every subscription without blocking.
func (n *Node) publish(ev Event) {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	for _, s := range n.subs {
		s.offer(ev)
	}
}

// closeSubscriptions ends every subscription (Close of the node).
func (n *Node) closeSubscriptions() {
	n.subMu.Lock()
	subs := n.subs
	n.subs = nil
	n.subsClosed = true
	n.subMu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}

// eventState is the Node's part that Subscribe and the watchers share.
type eventState struct {
	subMu      sync.Mutex
	subs       []*Subscription
	subsClosed bool
}

// watchConnections registers the node's one network notifiee. It runs on
// libp2p's goroutines and only ever publishes, which does not block.
func (n *Node) watchConnections() {
	n.h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			n.publish(Event{Kind: PeerUp, Peer: c.RemotePeer()})
		},
		DisconnectedF: func(nw network.Network, c network.Conn) {
			p := c.RemotePeer()
			if nw.Connectedness(p) == network.Connected {
				return // another connection to p remains
			}
			n.publish(Event{Kind: PeerDown, Peer: p})
		},
	})
}

// watchLocal follows AutoNAT's verdict and the host's addresses: the one
// place that does (Status and Reachability read what it stores).
func (n *Node) watchLocal(sub event.Subscription) {
	defer n.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-n.ctx.Done():
			return
		case ev, ok := <-sub.Out():
			if !ok {
				return
			}
			switch ev := ev.(type) {
			case event.EvtLocalReachabilityChanged:
				n.reachability.Store(int32(ev.Reachability))
				n.log.Info("reachability changed", "reachability", ev.Reachability.String())
				n.publish(Event{Kind: ReachabilityChanged, Reachability: ev.Reachability})
			case event.EvtLocalAddressesUpdated:
				n.publish(Event{Kind: AddrsChanged})
			}
		}
	}
}

// localEvents are the event bus events watchLocal follows.
func localEvents() []any {
	return []any{new(event.EvtLocalReachabilityChanged), new(event.EvtLocalAddressesUpdated)}
}

// Reachability returns what AutoNAT found out so far.
func (n *Node) Reachability() Reachability {
	return Reachability(n.reachability.Load())
}

// IsConnected reports whether the node has a connection to p.
func (n *Node) IsConnected(p PeerID) bool {
	return n.h.Network().Connectedness(p) == network.Connected
}

// Disconnect closes every connection to p (it may connect again, or be
// connected to again, at once: see WithConnectionGater to refuse it).
func (n *Node) Disconnect(p PeerID) error {
	return n.h.Network().ClosePeer(p)
}

// AddAddrs makes addrs known for dialing p for as long as libp2p keeps
// addresses it learned (peerstore.AddressTTL, an hour), as for the
// addresses of a contact's card.
func (n *Node) AddAddrs(p PeerID, addrs []Multiaddr) {
	n.h.Peerstore().AddAddrs(p, addrs, peerstore.AddressTTL)
}

// DirectAddrs returns the node's own addresses without relay circuits and
// without the /p2p/<id> suffix, as a contact card carries them.
func (n *Node) DirectAddrs() []Multiaddr {
	var out []ma.Multiaddr
	for _, a := range n.h.Addrs() {
		if !isCircuitAddr(a) {
			out = append(out, a)
		}
	}
	return out
}
