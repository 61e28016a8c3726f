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
// but closes nothing, and gossipsub keeps the streams it opened first: on
// the relayed connection. Group traffic then keeps flowing through the
// relay, and when the relay goes away those streams die only when its
// connection times out (30 s of silence for QUIC); every message published
// meanwhile is lost. So when a direct connection to a peer opens, the node
// closes its relayed connections to that peer as soon as they carry
// nothing but gossipsub, identify and ping, which move to the direct
// connection by themselves (gossipsub reopens its stream on the remaining
// connection). Requests in progress (a KeyPackage fetch, a Welcome, the
// DCUtR exchange itself) are left to finish; a relayed connection still
// busy after relayRetireMax stays, as it did before.
const (
	relayRetirePoll = 500 * time.Millisecond
	relayRetireMax  = 2 * time.Minute
)

// isRelayed reports whether c runs through a circuit relay.
func isRelayed(c network.Conn) bool { return isCircuitAddr(c.RemoteMultiaddr()) }

// movable reports whether a stream of protocol p is reopened on another
// connection by its owner when its connection closes.
func movable(p string) bool {
	for _, prefix := range []string{"/meshsub/", "/floodsub/", "/ipfs/id/", "/ipfs/ping/"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

type relayRetirer struct {
	n       *Node
	mu      sync.Mutex
	running map[peer.ID]bool
}

func (r *relayRetirer) notifiee() network.Notifiee {
	return &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if isRelayed(c) {
			return
		}
		p := c.RemotePeer()
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.running[p] {
			return
		}
		r.running[p] = true
		go r.retire(p)
	}}
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
	for time.Now().Before(deadline) {
		select {
		case <-r.n.ctx.Done():
			return
		case <-t.C:
		}
		var direct bool
		var relayed []network.Conn
		for _, c := range r.n.h.Network().ConnsToPeer(p) {
			if isRelayed(c) {
				relayed = append(relayed, c)
			} else if !c.IsClosed() {
				direct = true
			}
		}
		if !direct || len(relayed) == 0 {
			return
		}
		busy := false
		for _, c := range relayed {
			if !idleButMovable(c) {
				busy = true
				continue
			}
			r.n.log.Info("closing relayed connection: a direct one is open", "remote", p, "addr", c.RemoteMultiaddr())
			_ = c.Close()
		}
		if !busy {
			return
		}
	}
}

func idleButMovable(c network.Conn) bool {
	for _, s := range c.GetStreams() {
		if !movable(string(s.Protocol())) {
			return false
		}
	}
	return true
}
