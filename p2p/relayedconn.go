package p2p

import (
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Relayed connections are retired once a direct one is up.
//
// Hole punching (DCUtR) opens a direct connection next to the relayed one
// but closes nothing, and gossipsub keeps the streams it opened first, on
// the relayed connection: group traffic keeps flowing through the relay,
// and if the relay goes away those streams die only when its connection
// times out (30 s of silence for QUIC), taking every frame written to them
// meanwhile. So when a peer has a direct connection next to relayed ones,
// the node closes the relayed ones as soon as they carry nothing but
// streams whose owners re-open them on the remaining connection by
// themselves (gossipsub, identify, ping); new streams go to the direct
// connection, which libp2p prefers. Requests in progress (a KeyPackage
// fetch, a Welcome, the DCUtR exchange itself) finish first; a relayed
// connection still busy after relayRetireMax stays.
//
// Frames gossipsub had queued or written on the closed streams are lost
// to gossip; the engine catches up from a peer whenever it joins a topic
// again (WithPeerJoined), which it does once its new stream is open.
const (
	relayRetirePoll = 250 * time.Millisecond
	relayRetireMax  = 2 * time.Minute
)

// Log lines of the retirement (the NAT end-to-end test waits for the second
// on both peers before it cuts the relay off).
const (
	logRetiring = "closing relayed connection: a direct one is open"
	logRetired  = "relayed connection closed, a direct one remains"
)

// isRelayed reports whether c runs through a circuit relay.
func isRelayed(c network.Conn) bool { return isCircuitAddr(c.RemoteMultiaddr()) }

// movable reports whether a stream of protocol p is re-opened on another
// connection by its owner when its connection closes.
func movable(p string) bool {
	for _, prefix := range []string{"/meshsub/", "/floodsub/", "/ipfs/id/", "/ipfs/ping/"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// relayRetirer runs at most one retirement per peer.
type relayRetirer struct {
	n       *Node
	mu      sync.Mutex
	running map[peer.ID]bool
}

func newRelayRetirer(n *Node) *relayRetirer {
	return &relayRetirer{n: n, running: make(map[peer.ID]bool)}
}

func (r *relayRetirer) notifiee() network.Notifiee {
	return &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) { r.start(c.RemotePeer()) },
		DisconnectedF: func(_ network.Network, c network.Conn) {
			if !isRelayed(c) {
				return
			}
			p := c.RemotePeer()
			if _, direct := r.conns(p); direct {
				r.n.log.Info(logRetired, "remote", p)
			}
		},
	}
}

// start retires p's relayed connections in the background, unless that
// already runs. Any new connection triggers it: a direct one next to a
// relayed one, or (rarer) a relayed one next to a direct one.
func (r *relayRetirer) start(p peer.ID) {
	if r.n.relayIDs[p] {
		return // our relays are reached directly, never through each other
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running[p] || r.n.ctx.Err() != nil {
		return
	}
	r.running[p] = true
	// Not in n.wg: connection events still arrive while Close waits for
	// it. retire ends with the node's context.
	go r.retire(p)
}

// conns returns p's open relayed connections and whether a direct one is
// open.
func (r *relayRetirer) conns(p peer.ID) (relayed []network.Conn, direct bool) {
	for _, c := range r.n.h.Network().ConnsToPeer(p) {
		switch {
		case c.IsClosed():
		case isRelayed(c):
			relayed = append(relayed, c)
		default:
			direct = true
		}
	}
	return relayed, direct
}

// retire closes p's relayed connections once they are idle, while a direct
// connection to p is open.
func (r *relayRetirer) retire(p peer.ID) {
	defer func() {
		r.mu.Lock()
		delete(r.running, p)
		r.mu.Unlock()
	}()
	t := time.NewTicker(relayRetirePoll)
	defer t.Stop()
	deadline := time.Now().Add(relayRetireMax)
	for {
		relayed, direct := r.conns(p)
		if !direct || len(relayed) == 0 {
			return
		}
		busy := false
		for _, c := range relayed {
			if !idleButMovable(c) {
				busy = true
				continue
			}
			r.n.log.Info(logRetiring, "remote", p, "addr", c.RemoteMultiaddr())
			_ = c.Close()
		}
		if !busy || time.Now().After(deadline) {
			return
		}
		select {
		case <-r.n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// idleButMovable reports whether every stream on c is one its owner moves
// to another connection by itself.
func idleButMovable(c network.Conn) bool {
	for _, s := range c.GetStreams() {
		if !movable(string(s.Protocol())) {
			return false
		}
	}
	return true
}
