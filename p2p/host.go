package p2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	corecm "github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

var timeNow = time.Now

// Node is a canopy peer: a libp2p host (TCP and QUIC, TLS and Noise, yamux,
// resource and connection managers, AutoNAT v2, hole punching, autorelay),
// discovery (mDNS, Kademlia DHT under the /canopy prefix), gossipsub with one
// topic per group, and the canopy stream protocols.
//
// A Node is safe for concurrent use. Its topics are owned by their own
// goroutines (see Topic).
type Node struct {
	cfg      *config
	h        host.Host
	ps       *pubsub.PubSub
	kad      *dht.IpfsDHT
	disc     *topicDiscovery // nil without the DHT
	mdns     mdns.Service
	log      *slog.Logger
	metrics  *metrics
	reqLimit *peerLimiter
	scores   *peerScores
	handlers atomic.Pointer[Handlers]
	relay    *Relay // non-nil on relay nodes
	mesh     *meshTracer
	budget   *gossipBudget
	relayIDs map[peer.ID]bool
	blobs    blobLimits

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	topics map[string]*Topic
	// subWatch holds the joined topics by name for the gossipsub tracer,
	// which runs on pubsub's event loop and so must not wait for mu
	// (JoinTopic holds mu while it waits for that loop).
	subWatch sync.Map
	peerSubs *peerSubs

	reachability atomic.Int32 // network.Reachability, kept by watchLocal
	eventState                // subscriptions (events.go)

	closeOnce sync.Once
	closeErr  error
}

// Handlers serve the stream protocols on a member node. A nil handler makes
// the node answer that protocol with CodeUnavailable. Handlers are called
// concurrently, each with a context that ends with the request.
type Handlers struct {
	// KeyPackage hands out one of this node's KeyPackages.
	KeyPackage KeyPackageHandler
	// KeyPackageForSuite, if set, is used instead of KeyPackage and is told
	// the cipher suite the requester asked for.
	KeyPackageForSuite KeyPackageSuiteHandler
	// Inbox receives Welcomes and other direct messages.
	Inbox InboxHandler
	// Sync serves stored messages of a topic to members catching up.
	Sync SyncHandler
	// Tree serves a group's ratchet tree.
	Tree TreeHandler
	// Blob serves encrypted files (ProtocolBlob).
	Blob BlobHandler
}

// New starts a node with the given identity key (nil: an ephemeral Ed25519
// key; the caller persists real ones, see MarshalIdentity). ctx bounds
// start-up only; the node runs until Close.
func New(ctx context.Context, key crypto.PrivKey, opts ...Option) (*Node, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(cfg); err != nil {
			return nil, err
		}
	}
	return newNode(ctx, key, cfg)
}

func newNode(ctx context.Context, key crypto.PrivKey, cfg *config) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if key == nil {
		var err error
		if key, err = GenerateIdentity(); err != nil {
			return nil, err
		}
	}
	logger := cfg.logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n := &Node{
		cfg:      cfg,
		log:      logger,
		metrics:  newMetrics(cfg.registerer),
		reqLimit: newPeerLimiter(cfg.requestRate),
		scores:   newPeerScores(),
		relay:    cfg.relay,
		relayIDs: make(map[peer.ID]bool),
		topics:   make(map[string]*Topic),
		peerSubs: newPeerSubs(),
	}
	for _, r := range cfg.relays {
		n.relayIDs[r.ID] = true
	}
	n.handlers.Store(&cfg.handlers)
	n.mesh = newMeshTracer(n)
	n.budget = newGossipBudget(n.cfg.maxMsgSize + 64<<10)
	n.budget.graylisted = func(p peer.ID) bool {
		return n.scores.standing(p) < peerScoreThresholds().GraylistThreshold
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	registerLibp2pLogger(n, cfg.logger)

	fail := func(err error) (*Node, error) {
		n.cancel()
		if n.kad != nil {
			_ = n.kad.Close()
		}
		if n.h != nil {
			_ = n.h.Close()
		}
		unregisterLibp2pLogger(n)
		return nil, err
	}

	if err := checkListenFree(cfg.listen); err != nil {
		return fail(err)
	}
	lopts, err := n.libp2pOptions(key)
	if err != nil {
		return fail(err)
	}
	n.h, err = libp2p.New(lopts...)
	if err != nil {
		return fail(fmt.Errorf("p2p: starting libp2p host: %w", err))
	}
	n.log = n.log.With("peer", shortID(n.h.ID()))

	if n.ps, err = n.newPubSub(); err != nil {
		return fail(fmt.Errorf("p2p: starting gossipsub: %w", err))
	}

	n.h.SetStreamHandler(ProtocolKeyPackage, n.serve(ProtocolKeyPackage, smallFrame, n.serveKeyPackage))
	n.h.SetStreamHandler(ProtocolInbox, n.serve(ProtocolInbox, n.inboxFrameMax(), n.serveInbox))
	n.h.SetStreamHandler(ProtocolSync, n.serve(ProtocolSync, smallFrame, n.serveSync))
	n.h.SetStreamHandler(ProtocolTree, n.serve(ProtocolTree, smallFrame, n.serveTree))
	n.h.SetStreamHandler(ProtocolBlob, n.serve(ProtocolBlob, smallFrame, n.serveBlob))
	if n.relay != nil {
		n.h.SetStreamHandler(ProtocolRelay, n.serve(ProtocolRelay, n.relayFrameMax(), n.relay.serveRelay))
		if n.relay.blobs != nil {
			n.h.SetStreamHandler(ProtocolBlobPut, n.serve(ProtocolBlobPut, smallFrame, n.relay.serveBlobPut))
		}
	}

	if cfg.mdns {
		redirectStdLog()
		n.mdns = mdns.NewMdnsService(n.h, mdnsServiceName, newMDNSNotifee(n.ctx, n.h.ID(), n.connectFound, n.log))
		if err := n.mdns.Start(); err != nil {
			n.log.Warn("mDNS unavailable", "err", err)
			n.mdns = nil
		}
	}
	// Known addresses of bootstrap peers and relays are usable at once, also
	// by requests made before the first connection is up.
	for _, p := range n.bootstrapPeers() {
		n.h.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.PermanentAddrTTL)
		n.h.ConnManager().Protect(p.ID, "canopy-bootstrap")
	}
	n.h.Network().Notify(newRelayRetirer(n).notifiee())
	n.h.Network().Notify(n.peerSubs.notifiee())
	n.wg.Add(1)
	go n.maintainBootstrap()
	n.watchConnections()
	if sub, err := n.h.EventBus().Subscribe(localEvents()); err == nil {
		n.wg.Add(1)
		go n.watchLocal(sub)
	}

	if err := ctx.Err(); err != nil {
		_ = n.Close()
		return nil, err
	}
	n.log.Info("p2p node started", "addrs", n.h.Addrs())
	return n, nil
}

func (n *Node) libp2pOptions(key crypto.PrivKey) ([]libp2p.Option, error) {
	cfg := n.cfg
	rm, err := n.newResourceManager()
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	// The connection manager must trim before the resource manager refuses:
	// keep the high water mark under its system connection limit (relays on
	// machines with a low file descriptor limit).
	low, high := cfg.connLow, cfg.connHigh
	if l, ok := rm.(corecm.GetConnLimiter); ok {
		if max := l.GetConnLimit() * 9 / 10; max > 0 && high > max {
			high = max
			low = min(low, high/2)
		}
	}
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(cfg.listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent(cfg.userAgent),
		libp2p.EnableRelay(),
	}
	if cfg.registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	if cfg.autoNAT {
		opts = append(opts, libp2p.EnableAutoNATv2())
	}
	if cfg.holePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	if cfg.natPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	if cfg.gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.gater))
	}
	if len(cfg.announce) > 0 {
		announce := slices.Clone(cfg.announce)
		opts = append(opts, libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
			out := slices.Clone(announce)
			for _, a := range addrs {
				if isCircuitAddr(a) {
					out = append(out, a)
				}
			}
			return out
		}))
	}
	if n.relay != nil {
		// A relay operator runs it to be reachable: answer AutoNAT dial-back
		// requests and, when its public address is configured, skip
		// reachability detection.
		opts = append(opts, libp2p.EnableNATService())
		if len(cfg.announce) > 0 {
			opts = append(opts, libp2p.ForceReachabilityPublic())
		}
	} else if len(cfg.relays) > 0 {
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(cfg.relays))
	}
	if cfg.dht != DHTOff {
		opts = append(opts, libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
			d, err := dht.New(h, n.dhtOptions()...)
			if err != nil {
				return nil, err
			}
			n.kad = d
			return d, nil
		}))
	}
	return opts, nil
}

// dhtProtocolPrefix keeps canopy's DHT apart from the public IPFS one.
const dhtProtocolPrefix protocol.ID = "/canopy"

func (n *Node) dhtOptions() []dht.Option {
	mode := dht.ModeAuto
	switch n.cfg.dht {
	case DHTClient:
		mode = dht.ModeClient
	case DHTServer:
		mode = dht.ModeServer
	}
	return []dht.Option{
		dht.ProtocolPrefix(dhtProtocolPrefix),
		dht.Mode(mode),
		dht.BootstrapPeers(n.bootstrapPeers()...),
	}
}

// canopyProtocols get their own resource manager limits.
var canopyProtocols = []protocol.ID{ProtocolKeyPackage, ProtocolInbox, ProtocolSync, ProtocolTree, ProtocolRelay, ProtocolBlob, ProtocolBlobPut}

// newResourceManager sizes the resource manager. A chat peer gets a fixed
// budget (WithResourceLimits, default 256 MiB / 512 FDs: ~160 connections,
// ~380 MiB of buffers at most); a relay scales to the machine (1/8 of RAM,
// half the FD limit) and accepts more connections per IP, since whole
// offices reach it from one NAT address. Each canopy protocol may have 8
// inbound streams per peer at a time.
func (n *Node) newResourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	for _, p := range canopyProtocols {
		limits.AddProtocolLimit(p,
			rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 64 << 20},
			rcmgr.BaseLimitIncrease{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 128 << 20})
		limits.AddProtocolPeerLimit(p,
			rcmgr.BaseLimit{StreamsInbound: 8, StreamsOutbound: 8, Streams: 16, Memory: 32 << 20},
			rcmgr.BaseLimitIncrease{})
	}
	var opts []rcmgr.Option
	if n.cfg.registerer == nil {
		opts = append(opts, rcmgr.WithMetricsDisabled())
	}
	var concrete rcmgr.ConcreteLimitConfig
	if n.relay != nil && !n.cfg.rcmgrExplicit {
		concrete = limits.AutoScale()
		opts = append(opts, rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: 64}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: 64}, {PrefixLength: 48, ConnCount: 256}}))
	} else {
		concrete = limits.Scale(n.cfg.rcmgrMemory, n.cfg.rcmgrFDs)
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(concrete), opts...)
}

func (n *Node) newPubSub() (*pubsub.PubSub, error) {
	opts := []pubsub.Option{
		// MLS authenticates senders; libp2p author ids and signatures would
		// only tell every relay who wrote what.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		// Content-addressed ids: re-published copies de-duplicate.
		pubsub.WithMessageIdFn(func(m *pb.Message) string {
			sum := sha256.Sum256(m.Data)
			return string(sum[:])
		}),
		// The RPC limit leaves room for the envelope around a maximal frame.
		pubsub.WithMaxMessageSize(n.cfg.maxMsgSize + 64<<10),
		pubsub.WithPeerExchange(true),
		pubsub.WithPeerScore(peerScoreParams(n.relayIDs, n.scores), peerScoreThresholds()),
		pubsub.WithPeerScoreInspect(n.scores.inspect, scoreInspectInterval),
		pubsub.WithFloodPublish(true),
		pubsub.WithSeenMessagesTTL(10 * time.Minute),
		// Frames waiting for a validation worker. gossipsub pushes all
		// frames of one RPC at once, and a batched RPC of small frames can
		// hold hundreds: a queue of 256 dropped honest bursts (587 to
		// 1,684 of 2,000 arrived in TestGossipFloodStaysInBudget). The
		// queue's bytes are bounded by the gossip budget below, not by
		// its length.
		pubsub.WithValidateQueueSize(gossipValidateQueue),
		// gossipsub drops RPCs to a peer whose send queue is full (default
		// 32): a burst such as a re-sent backlog after a partition would
		// lose frames. 512 frames of chat traffic per neighbour.
		pubsub.WithPeerOutboundQueueSize(512),
		pubsub.WithLogger(n.log.With("subsystem", "pubsub")),
		pubsub.WithRawTracer(n.mesh),
		// issue 13: frames read but not yet judged stay within a global
		// byte budget (gossipbudget.go); the inspector strips the excess
		// before gossipsub queues it, the tracer settles each frame's
		// bytes when gossipsub reports its fate.
		pubsub.WithAppSpecificRpcInspector(n.budget.inspect),
		pubsub.WithRawTracer(budgetTracer{n.budget}),
	}
	if n.kad != nil {
		d, err := n.newTopicDiscovery()
		if err != nil {
			return nil, err
		}
		n.disc = d
		if n.relay == nil {
			// A limit is required: the backoff cache passes peers found by
			// a running look-up only to callers that gave one.
			opts = append(opts, pubsub.WithDiscovery(d, pubsub.WithDiscoveryOpts(discovery.Limit(topicProviderLimit))))
		}
	}
	if n.cfg.heartbeat > 0 || n.cfg.meshDegree > 0 {
		params := pubsub.DefaultGossipSubParams()
		if n.cfg.heartbeat > 0 {
			params.HeartbeatInterval = n.cfg.heartbeat
			params.HeartbeatInitialDelay = n.cfg.heartbeat / 10
		}
		if d := n.cfg.meshDegree; d > 0 {
			// The defaults are D 6, Dlo 5, Dhi 12, Dout 2, Dscore 4.
			params.D, params.Dlo, params.Dhi = d, max(1, d*5/6), 2*d
			params.Dout = min(params.Dout, d/2-1, params.Dlo-1)
			params.Dscore = min(params.Dscore, d*2/3)
		}
		opts = append(opts, pubsub.WithGossipSubParams(params))
	}
	return pubsub.NewGossipSub(n.ctx, n.h, opts...)
}

// ID returns the node's peer id.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Host returns the underlying libp2p host, for p2p's own tests and tools.
// Packages above p2p use the Node's API instead (Subscribe, IsConnected,
// AddAddrs, DirectAddrs, …); layout_test.go holds chat to that.
func (n *Node) Host() host.Host { return n.h }

// AddrInfo returns the node's peer id and listen addresses.
func (n *Node) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()}
}

// Addrs returns the node's full multiaddrs (ending in /p2p/<id>), as others
// pass them to --bootstrap or Connect.
func (n *Node) Addrs() []ma.Multiaddr {
	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()})
	return addrs
}

// Connect connects to a peer. Without addresses the DHT is asked for them.
func (n *Node) Connect(ctx context.Context, pi peer.AddrInfo) error {
	return n.h.Connect(ctx, pi)
}

// Peers returns the peers the node is connected to.
func (n *Node) Peers() []peer.ID { return n.h.Network().Peers() }

// Relays returns the configured relays.
func (n *Node) Relays() []peer.AddrInfo { return slices.Clone(n.cfg.relays) }

// SetHandlers replaces the stream protocol handlers.
func (n *Node) SetHandlers(h Handlers) { n.handlers.Store(&h) }

func (n *Node) getHandlers() *Handlers { return n.handlers.Load() }

// Status is a snapshot of the node's connectivity, for status bars.
type Status struct {
	ID peer.ID
	// Peers is the number of connected peers.
	Peers int
	// Relays is the number of configured relays currently connected.
	Relays int
	// Reachability is what AutoNAT found out: public, private (behind NAT:
	// reachable through relays) or unknown.
	Reachability network.Reachability
	// Topics is the number of joined group topics.
	Topics int
}

// Status returns a snapshot of the node's connectivity.
func (n *Node) Status() Status {
	st := Status{
		ID:           n.h.ID(),
		Peers:        len(n.h.Network().Peers()),
		Reachability: network.Reachability(n.reachability.Load()),
	}
	for id := range n.relayIDs {
		if n.h.Network().Connectedness(id) == network.Connected {
			st.Relays++
		}
	}
	n.mu.Lock()
	st.Topics = len(n.topics)
	n.mu.Unlock()
	return st
}

// Close leaves all topics and stops the node.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		topics := make([]*Topic, 0, len(n.topics))
		for _, t := range n.topics {
			topics = append(topics, t)
		}
		n.mu.Unlock()
		for _, t := range topics {
			_ = t.Close()
		}
		var errs []error
		if n.mdns != nil {
			errs = append(errs, n.mdns.Close())
		}
		n.cancel()
		n.wg.Wait()
		n.closeSubscriptions()
		if n.kad != nil {
			errs = append(errs, n.kad.Close())
		}
		errs = append(errs, n.h.Close())
		unregisterLibp2pLogger(n)
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// bootstrapPeers returns bootstrap peers and relays, merged by peer id.
func (n *Node) bootstrapPeers() []peer.AddrInfo {
	all := append(slices.Clone(n.cfg.bootstrap), n.cfg.relays...)
	byID := make(map[peer.ID]int)
	var out []peer.AddrInfo
	for _, p := range all {
		if p.ID == "" || (n.h != nil && p.ID == n.h.ID()) {
			continue
		}
		if i, ok := byID[p.ID]; ok {
			out[i].Addrs = append(out[i].Addrs, p.Addrs...)
			continue
		}
		byID[p.ID] = len(out)
		out = append(out, peer.AddrInfo{ID: p.ID, Addrs: slices.Clone(p.Addrs)})
	}
	return out
}

// bootstrapPeersOf returns the distinct peer ids of infos, except self.
func (n *Node) bootstrapPeersOf(infos []peer.AddrInfo) []peer.ID {
	var out []peer.ID
	for _, p := range infos {
		if p.ID != "" && p.ID != n.h.ID() && !slices.Contains(out, p.ID) {
			out = append(out, p.ID)
		}
	}
	return out
}

// maintainBootstrap keeps connections to bootstrap peers and relays, which
// the connection manager never trims, retrying with exponential backoff.
func (n *Node) maintainBootstrap() {
	defer n.wg.Done()
	peers := n.bootstrapPeers()
	if len(peers) == 0 {
		return
	}
	type state struct {
		next    time.Time
		backoff peerBackoff
		busy    atomic.Bool
	}
	states := make([]*state, len(peers))
	for i := range peers {
		states[i] = &state{backoff: newBackoff(time.Second, 5*time.Minute)}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		now := time.Now()
		for i, p := range peers {
			st := states[i]
			if st.busy.Load() || now.Before(st.next) || n.h.Network().Connectedness(p.ID) == network.Connected {
				continue
			}
			st.busy.Store(true)
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer st.busy.Store(false)
				ctx, cancel := context.WithTimeout(n.ctx, 15*time.Second)
				err := n.h.Connect(ctx, p)
				cancel()
				if err != nil {
					n.log.Debug("bootstrap peer unreachable", "peer", p.ID, "err", err)
					st.next = time.Now().Add(st.backoff.failed())
					return
				}
				st.backoff.succeeded()
				n.log.Debug("connected to bootstrap peer", "peer", p.ID)
			}()
		}
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func isCircuitAddr(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
