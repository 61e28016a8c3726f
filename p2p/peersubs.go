package p2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// peerSubs is what each connected peer last told us about its group
// topics, as the gossipsub tracer saw its RPCs: a subscription announced
// and not withdrawn since. gossipsub keeps the same facts, but it forgets a
// peer's subscriptions whenever its own stream to the peer dies (it clears
// them with the outbound stream, though they came in on the inbound one)
// and relearns them only from the peer's next hello. When a connection is
// replaced (a relayed one retired after hole punching), the peer's new
// stream, and its hello, can arrive before we see our old stream die:
// gossipsub then clears what it has just learnt, and sends the peer
// nothing of those topics until the peer's stream is replaced again. This
// record is kept apart from gossipsub's so that Topic.forgotten can tell.
//
// It is also kept for topics we have not joined (yet): the switch may come
// before we join. Bounded: canopy topic names only, at most
// maxPeerSubsTopics per peer, connected peers only.
type peerSubs struct {
	mu     sync.Mutex
	byPeer map[peer.ID]map[string]bool
}

// maxPeerSubsTopics caps the topics recorded per peer. A member's peer is
// in a few groups; a relay may keep many more, and for topics beyond the
// cap only gossipsub's own record counts.
const maxPeerSubsTopics = 256

func newPeerSubs() *peerSubs { return &peerSubs{byPeer: make(map[peer.ID]map[string]bool)} }

// set records p's subscription (on) to topic or its withdrawal.
func (s *peerSubs) set(p peer.ID, topic string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.byPeer[p]
	if !on {
		delete(ts, topic)
		if len(ts) == 0 {
			delete(s.byPeer, p)
		}
		return
	}
	if ts == nil {
		ts = make(map[string]bool)
		s.byPeer[p] = ts
	}
	if len(ts) < maxPeerSubsTopics {
		ts[topic] = true
	}
}

// forget drops everything p told us.
func (s *peerSubs) forget(p peer.ID) {
	s.mu.Lock()
	delete(s.byPeer, p)
	s.mu.Unlock()
}

// peers returns the peers subscribed to topic.
func (s *peerSubs) peers(topic string) []peer.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []peer.ID
	for p, ts := range s.byPeer {
		if ts[topic] {
			out = append(out, p)
		}
	}
	return out
}

// prune drops peers that are not connected (a backstop for the
// disconnection notice, which may come before a peer's last RPC is read).
func (s *peerSubs) prune(net network.Network) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.byPeer {
		if net.Connectedness(p) != network.Connected {
			delete(s.byPeer, p)
		}
	}
}

// notifiee forgets a peer when its last connection closes: it announces
// its subscriptions again when it reconnects.
func (s *peerSubs) notifiee() network.Notifiee {
	return &network.NotifyBundle{DisconnectedF: func(net network.Network, c network.Conn) {
		if p := c.RemotePeer(); net.Connectedness(p) != network.Connected {
			s.forget(p)
		}
	}}
}
