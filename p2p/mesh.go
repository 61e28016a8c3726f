package p2p

import (
	"context"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meshTracer follows gossipsub's mesh per topic (GRAFT/PRUNE as seen by the
// router) so that callers can tell when a topic's overlay is formed, and
// reports frames gossipsub dropped because a subscriber was too slow. It is
// called from pubsub's event loop and must not block.
type meshTracer struct {
	n *Node

	mu     sync.Mutex
	mesh   map[string]map[peer.ID]struct{}
	change chan struct{} // closed on every change
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer(n *Node) *meshTracer {
	return &meshTracer{n: n, mesh: make(map[string]map[peer.ID]struct{}), change: make(chan struct{})}
}

func (m *meshTracer) changed() {
	close(m.change)
	m.change = make(chan struct{})
}

// peers returns the mesh peers of topic and a channel closed on the next
// change of any mesh.
func (m *meshTracer) peers(topic string) ([]peer.ID, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]peer.ID, 0, len(m.mesh[topic]))
	for p := range m.mesh[topic] {
		out = append(out, p)
	}
	return out, m.change
}

func (m *meshTracer) Graft(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mesh[topic] == nil {
		m.mesh[topic] = make(map[peer.ID]struct{})
	}
	m.mesh[topic][p] = struct{}{}
	m.changed()
}

func (m *meshTracer) Prune(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh[topic], p)
	m.changed()
}

func (m *meshTracer) Leave(topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh, topic)
	m.changed()
}

func (m *meshTracer) OnClosedOutboundStream(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, peers := range m.mesh {
		delete(peers, p)
	}
	m.changed()
}

// RecvRPC records a peer's subscriptions to group topics (peerSubs) and
// tells our topics of theirs. A peer announces its subscriptions in the
// first RPC of every stream it opens to us (and when it subscribes later),
// so this sees a peer that joins a topic again after its old stream died,
// which pubsub's topic events do not: they cancel a leave against the join
// that follows it.
func (m *meshTracer) RecvRPC(rpc *pubsub.RPC) {
	subs := rpc.GetSubscriptions()
	if len(subs) == 0 {
		return
	}
	from := rpc.From()
	if m.n.h.Network().Connectedness(from) != network.Connected {
		return // gone already: its disconnection may have been seen first
	}
	for _, s := range subs {
		name := s.GetTopicid()
		if !isTopicName(name) {
			continue
		}
		m.n.peerSubs.set(from, name, s.GetSubscribe())
		if t, ok := m.n.subWatch.Load(name); ok && s.GetSubscribe() {
			t.(*Topic).subscribed(from)
		}
	}
}

func (m *meshTracer) DuplicateMessage(*pubsub.Message) { m.n.metrics.duplicate() }

func (m *meshTracer) UndeliverableMessage(msg *pubsub.Message) {
	m.n.metrics.gossipResult(Ignore, "slow_subscriber")
	m.n.log.Warn("gossip frame dropped: topic consumer too slow", "topic", msg.GetTopic())
}

func (m *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (m *meshTracer) Join(string)                                          {}
func (m *meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (m *meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (m *meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (m *meshTracer) ThrottlePeer(peer.ID)                                 {}
func (m *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (m *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (m *meshTracer) DropRPC(rpc *pubsub.RPC, p peer.ID) {
	if n := len(rpc.GetPublish()); n > 0 {
		m.n.metrics.droppedRPC(n)
		m.n.log.Debug("gossip frames dropped: send queue full", "peer", p, "frames", n)
	}
}

// MeshPeers returns the topic's gossipsub mesh: the peers this node forwards
// every frame to.
func (t *Topic) MeshPeers() []peer.ID {
	p, _ := t.n.mesh.peers(t.name)
	return p
}

// WaitMesh blocks until the topic's mesh has at least min peers or ctx
// ends. Frames forwarded before a node's mesh is formed reach only the
// peers it floods its own publications to; peers that join later catch up
// by sync.
func (t *Topic) WaitMesh(ctx context.Context, min int) error {
	for {
		p, ch := t.n.mesh.peers(t.name)
		if len(p) >= min {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.ctx.Done():
			return ErrClosed
		}
	}
}
