package p2ptest

import (
	"sync"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
)

// Partition is a connection gater (p2p.WithConnectionGater) that refuses
// connections to and from the peers it blocks: a network partition for
// tests of packages that cannot name libp2p's gater interface. Block then
// Node.Disconnect cuts existing connections too. The zero value blocks
// nobody.
type Partition struct {
	mu      sync.Mutex
	blocked map[p2p.PeerID]bool
}

// Block refuses connections with ps from now on.
func (g *Partition) Block(ps ...p2p.PeerID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked == nil {
		g.blocked = map[p2p.PeerID]bool{}
	}
	for _, p := range ps {
		g.blocked[p] = true
	}
}

// Heal allows every peer again.
func (g *Partition) Heal() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked = nil
}

func (g *Partition) ok(p p2p.PeerID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.blocked[p]
}

func (g *Partition) InterceptPeerDial(p p2p.PeerID) bool                  { return g.ok(p) }
func (g *Partition) InterceptAddrDial(p p2p.PeerID, _ p2p.Multiaddr) bool { return g.ok(p) }
func (g *Partition) InterceptAccept(network.ConnMultiaddrs) bool          { return true }
func (g *Partition) InterceptSecured(_ network.Direction, p p2p.PeerID, _ network.ConnMultiaddrs) bool {
	return g.ok(p)
}
func (g *Partition) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
