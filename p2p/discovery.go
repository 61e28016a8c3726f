package p2p

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	mh "github.com/multiformats/go-multihash"
)

// Discovery has three layers:
//
//   - LAN: mDNS under canopy's own service name, so canopy peers find each
//     other without talking to every libp2p node on the network. Found peers
//     are dialled; gossipsub then learns their subscriptions.
//   - Internet: the Kademlia DHT under the /canopy protocol prefix, entered
//     through the bootstrap peers (relays). Each member of a group announces
//     itself as a provider of the group's provider key (derived from the
//     topic name, see providerKey) and looks up other providers while the
//     topic has few peers.
//   - Gossipsub peer exchange: a peer pruned from a full mesh receives other
//     members' signed peer records (accepted from well-scored peers).

// mdnsServiceName is the DNS-SD service canopy peers announce on the LAN.
const mdnsServiceName = "_canopy._udp"

// mdnsNotifee turns mDNS announcements into connections. Repeated
// announcements of a peer within mdnsRedialAfter are ignored, and at most
// mdnsMaxDials dials run at a time.
type mdnsNotifee struct {
	ctx     context.Context
	self    peer.ID
	connect func(context.Context, peer.AddrInfo) error
	log     *slog.Logger
	now     func() time.Time
	sem     chan struct{}

	mu   sync.Mutex
	seen map[peer.ID]time.Time
	wg   sync.WaitGroup
}

const (
	mdnsRedialAfter = 30 * time.Second
	mdnsMaxDials    = 4
	mdnsDialTimeout = 10 * time.Second
)

func newMDNSNotifee(ctx context.Context, self peer.ID, connect func(context.Context, peer.AddrInfo) error, log *slog.Logger) *mdnsNotifee {
	return &mdnsNotifee{
		ctx:     ctx,
		self:    self,
		connect: connect,
		log:     log,
		now:     time.Now,
		sem:     make(chan struct{}, mdnsMaxDials),
		seen:    make(map[peer.ID]time.Time),
	}
}

// HandlePeerFound implements mdns.Notifee. It must not block: the mDNS
// resolver calls it inline.
func (m *mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) {
	if pi.ID == "" || pi.ID == m.self || len(pi.Addrs) == 0 || m.ctx.Err() != nil {
		return
	}
	now := m.now()
	m.mu.Lock()
	if last, ok := m.seen[pi.ID]; ok && now.Sub(last) < mdnsRedialAfter {
		m.mu.Unlock()
		return
	}
	m.seen[pi.ID] = now
	if len(m.seen) > 1024 {
		for p, t := range m.seen {
			if now.Sub(t) >= mdnsRedialAfter {
				delete(m.seen, p)
			}
		}
	}
	m.mu.Unlock()

	select {
	case m.sem <- struct{}{}:
	default:
		// Too many dials in flight; the peer announces itself again.
		m.forget(pi.ID)
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { <-m.sem }()
		ctx, cancel := context.WithTimeout(m.ctx, mdnsDialTimeout)
		defer cancel()
		if err := m.connect(ctx, pi); err != nil {
			m.log.Debug("mDNS peer unreachable", "peer", pi.ID, "err", err)
			return
		}
		m.log.Debug("connected to mDNS peer", "peer", pi.ID)
	}()
}

func (m *mdnsNotifee) forget(p peer.ID) {
	m.mu.Lock()
	delete(m.seen, p)
	m.mu.Unlock()
}

// connectFound dials a discovered peer unless already connected.
func (n *Node) connectFound(ctx context.Context, pi peer.AddrInfo) error {
	if n.h.Network().Connectedness(pi.ID) == network.Connected {
		return nil
	}
	n.h.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.TempAddrTTL)
	return n.h.Connect(ctx, pi)
}

// providerKey is the DHT key under which members of a topic announce
// themselves. It is derived from the topic name (itself a hash of the group
// id) under a separate label.
func providerKey(topic string) cid.Cid {
	sum, err := mh.Sum([]byte("canopy provide "+topic), mh.SHA2_256, -1)
	if err != nil {
		panic(err) // SHA2-256 is always available
	}
	return cid.NewCidV1(cid.Raw, sum)
}

const (
	// topicPeerTarget is the number of topic peers below which a topic
	// keeps looking for more (gossipsub's D).
	topicPeerTarget = 6
	// provideRefresh re-announces provider records well within their 48 h
	// validity on the DHT servers.
	provideRefresh = 6 * time.Hour
)

// discoverTopic announces the node as a provider of t and, on member nodes,
// looks up other providers while t has fewer than topicPeerTarget peers.
// Look-ups that find no one new back off (up to 16 × the discovery
// interval); losing peers resets the pace. Relays only announce: members
// find them, not the other way round.
func (n *Node) discoverTopic(t *Topic) {
	defer n.wg.Done()
	key := providerKey(t.name)
	var provided time.Time
	pause := n.cfg.discoveryIntv
	lastPeers := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-timer.C:
		}
		if time.Since(provided) > provideRefresh {
			ctx, cancel := context.WithTimeout(t.ctx, time.Minute)
			err := n.kad.Provide(ctx, key, true)
			cancel()
			if err == nil {
				provided = time.Now()
			} else {
				n.log.Debug("DHT provide failed", "topic", t.name, "err", err)
			}
		}
		peers := len(t.pt.ListPeers())
		if peers < lastPeers {
			pause = n.cfg.discoveryIntv
		}
		if n.relay == nil && peers < topicPeerTarget {
			if n.findProviders(t.ctx, key) == 0 {
				pause = min(2*pause, 16*n.cfg.discoveryIntv)
			} else {
				pause = n.cfg.discoveryIntv
			}
		}
		lastPeers = len(t.pt.ListPeers())
		next := pause
		if provided.IsZero() {
			next = n.cfg.discoveryIntv
		} else if n.relay != nil || lastPeers >= topicPeerTarget {
			next = min(provideRefresh, 16*n.cfg.discoveryIntv)
		}
		timer.Reset(next)
	}
}

// findProviders connects to providers of key and returns how many new
// connections it made.
func (n *Node) findProviders(ctx context.Context, key cid.Cid) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var connected atomic.Int32
	sem := make(chan struct{}, 4)
	for ai := range n.kad.FindProvidersAsync(ctx, key, 20) {
		if ai.ID == n.h.ID() || n.h.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			defer ccancel()
			if err := n.connectFound(cctx, ai); err != nil {
				n.log.Debug("DHT provider unreachable", "peer", ai.ID, "err", err)
			} else {
				connected.Add(1)
				n.log.Debug("connected to group member found in DHT", "peer", ai.ID)
			}
		}()
	}
	wg.Wait()
	return int(connected.Load())
}
