package p2p

import (
	"context"
	"log/slog"
	"math/rand"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/backoff"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// Discovery has three layers:
//
//   - LAN: mDNS under canopy's own service name, so canopy peers find each
//     other without talking to every libp2p node on the network. Found peers
//     are dialled; gossipsub then learns their subscriptions.
//   - Internet: the Kademlia DHT under the /canopy protocol prefix, entered
//     through the bootstrap peers (relays). Each member of a group announces
//     itself as a provider of the group's topic and looks up other
//     providers while the topic has few peers (pubsub's discovery, below).
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

// Topic discovery over the DHT is go-libp2p-pubsub's: pubsub.WithDiscovery
// with a routing discovery on canopy's DHT, behind a backoff cache, and
// pubsub's own backoff connector. pubsub advertises every joined topic
// (a DHT provider record under the CID of "floodsub:"+topic, renewed within
// its TTL) and, once a second, looks for providers of each topic with too
// few peers (gossipsub's Dlo); the backoff cache answers those from memory
// and asks the DHT again only when its backoff has passed (from the
// discovery interval, doubling up to 16 times it while look-ups find no one
// new), and the connector dials each found peer at most once per its own
// backoff. Relays join topics without pubsub discovery: they only
// announce (advertiseTopic), members find them, not the other way round,
// which would cost a relay one DHT look-up per kept topic.

// topicProviderLimit is the most providers of a topic one look-up returns.
const topicProviderLimit = 20

// pubsubNamespace is the namespace pubsub's discovery uses for a topic (it
// prefixes the topic name); relays advertise under the same one.
func pubsubNamespace(topic string) string { return "floodsub:" + topic }

// topicDiscovery is the discovery.Discovery given to pubsub.
type topicDiscovery struct {
	discovery.Discovery
	retry time.Duration
}

// Advertise fails while the DHT's routing table is still empty (right after
// start, before the bootstrap peers answered); pubsub would then wait two
// minutes before it tries again, so a failure asks for a retry after the
// discovery interval instead.
func (d *topicDiscovery) Advertise(ctx context.Context, ns string, opts ...discovery.Option) (time.Duration, error) {
	ttl, err := d.Discovery.Advertise(ctx, ns, opts...)
	if err != nil {
		return d.retry, err
	}
	return ttl, nil
}

// newTopicDiscovery returns the DHT discovery for pubsub.WithDiscovery.
func (n *Node) newTopicDiscovery() (*topicDiscovery, error) {
	intv := n.cfg.discoveryIntv
	// Jitter only: not a secret.
	seed := rand.NewSource(time.Now().UnixNano())
	bd, err := backoff.NewBackoffDiscovery(drouting.NewRoutingDiscovery(n.kad),
		backoff.NewExponentialBackoff(intv, 16*intv, backoff.FullJitter, intv, 2, 0, seed))
	if err != nil {
		return nil, err
	}
	return &topicDiscovery{Discovery: bd, retry: intv}, nil
}

// advertiseTopic keeps a relay's provider record for t on the DHT.
func (n *Node) advertiseTopic(t *Topic) {
	defer n.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-timer.C:
		}
		next, err := n.disc.Advertise(t.ctx, pubsubNamespace(t.name))
		if err != nil {
			n.log.Debug("DHT provide failed", "topic", t.name, "err", err)
		} else {
			next = next * 7 / 8
		}
		timer.Reset(next)
	}
}
