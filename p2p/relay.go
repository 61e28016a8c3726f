package p2p

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// A relay is a headless canopy peer that anyone can operate. It
//
//   - is a DHT server and a bootstrap peer,
//   - runs a circuit relay v2 service for members behind NAT,
//   - keeps the topics members ask it to keep: it joins them, stores every
//     valid frame (ciphertext: it holds no group keys) for the retention
//     period and serves /canopy/sync/1 from that log; the members' leases
//     are persisted (LeaseStore), so a restarted relay rejoins the topics
//     and goes on storing without waiting for renewals,
//   - holds mailboxes (Welcomes for offline joiners) and KeyPackages of
//     offline users,
//   - enforces per-peer quotas and request rates.
//
// Members talk to it over /canopy/relay/1 (relayproto.go).

// CircuitLimits configure the circuit relay v2 service.
//
// Relayed connections are unlimited in duration and data (RelayLimit nil):
// gossipsub opens its streams without network.WithAllowLimitedConn, so it
// refuses to run over a *limited* circuit, and a member reachable only
// through the relay could never join a group's mesh. Data-limited circuits
// would also cut a Commit of several MB mid-transfer. The relay cannot tell
// members from strangers (it holds no group state), so instead of per-member
// exceptions, abuse is bounded by the number of reservations and circuits,
// per-IP reservation caps, the resource manager's per-peer memory and stream
// limits, and DCUtR hole punching, which moves most circuits to direct
// connections within seconds.
type CircuitLimits struct {
	// Disabled turns the circuit relay service off.
	Disabled bool
	// MaxReservations caps active reservations (default 1024).
	MaxReservations int
	// MaxCircuits caps open circuits per peer (default 16).
	MaxCircuits int
	// MaxReservationsPerIP caps reservations from one IP (default 32:
	// offices and families behind one NAT).
	MaxReservationsPerIP int
	// BufferSize is the per-direction copy buffer of a circuit (default
	// 16 KiB).
	BufferSize int
	// ReservationTTL is the lifetime of a reservation (default 1h).
	ReservationTTL time.Duration
	// AllowPrivateAddrs vouches for non-public addresses in reservations
	// (LAN relays and tests).
	AllowPrivateAddrs bool
}

// RelayConfig configures a relay. Zero fields take defaults.
type RelayConfig struct {
	// Stores; nil: in-memory.
	TopicLog    TopicLog
	Mailbox     Mailbox
	KeyPackages KeyPackageCache
	Leases      LeaseStore
	// Retention is how long frames of kept topics are stored (default 7d).
	Retention time.Duration
	// MaxLease caps how long a keep request lasts before members renew it
	// (default 24h).
	MaxLease time.Duration
	// MailboxTTL caps how long mail waits (default 14d).
	MailboxTTL time.Duration
	// KeyPackageTTL is how long uploaded KeyPackages are kept (default 30d).
	KeyPackageTTL time.Duration
	// BlobDir is where the relay keeps file ciphertext uploaded to it
	// (ProtocolBlobPut); empty: the relay keeps no files.
	BlobDir string
	// BlobTTL is how long a file is kept after its upload completed
	// (default 7d).
	BlobTTL time.Duration
	// PruneInterval is how often expired data is deleted (default 1m).
	PruneInterval time.Duration
	Quotas        Quotas
	Circuit       CircuitLimits
	// Registry receives the relay's and go-libp2p's metrics plus Go and
	// process metrics; nil: a new registry (see Relay.Registry).
	Registry *prometheus.Registry
}

// DefaultRelayConfig returns the values zero fields of a RelayConfig take
// (the stores and registry aside, which NewRelay creates): relay policy
// lives here and in DefaultQuotas, nowhere else.
func DefaultRelayConfig() RelayConfig {
	return RelayConfig{
		Retention:     7 * 24 * time.Hour,
		MaxLease:      24 * time.Hour,
		MailboxTTL:    14 * 24 * time.Hour,
		KeyPackageTTL: 30 * 24 * time.Hour,
		BlobTTL:       7 * 24 * time.Hour,
		PruneInterval: time.Minute,
		Quotas:        DefaultQuotas(),
		Circuit: CircuitLimits{
			MaxReservations:      1024,
			MaxCircuits:          16,
			MaxReservationsPerIP: 32,
			BufferSize:           16 << 10,
			ReservationTTL:       time.Hour,
		},
	}
}

func (c *RelayConfig) fill() {
	if c.TopicLog == nil {
		c.TopicLog = NewMemoryTopicLog()
	}
	if c.Mailbox == nil {
		c.Mailbox = NewMemoryMailbox()
	}
	if c.KeyPackages == nil {
		c.KeyPackages = NewMemoryKeyPackageCache()
	}
	if c.Leases == nil {
		c.Leases = NewMemoryLeaseStore()
	}
	d := DefaultRelayConfig()
	def := func(v *time.Duration, dv time.Duration) {
		if *v <= 0 {
			*v = dv
		}
	}
	def(&c.Retention, d.Retention)
	def(&c.MaxLease, d.MaxLease)
	def(&c.MailboxTTL, d.MailboxTTL)
	def(&c.KeyPackageTTL, d.KeyPackageTTL)
	def(&c.BlobTTL, d.BlobTTL)
	def(&c.PruneInterval, d.PruneInterval)
	def(&c.Circuit.ReservationTTL, d.Circuit.ReservationTTL)
	c.Quotas = c.Quotas.WithDefaults()
	defInt := func(v *int, dv int) {
		if *v <= 0 {
			*v = dv
		}
	}
	cl := &c.Circuit
	defInt(&cl.MaxReservations, d.Circuit.MaxReservations)
	defInt(&cl.MaxCircuits, d.Circuit.MaxCircuits)
	defInt(&cl.MaxReservationsPerIP, d.Circuit.MaxReservationsPerIP)
	defInt(&cl.BufferSize, d.Circuit.BufferSize)
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
		c.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
}

// Relay is a running relay. It is safe for concurrent use; its kept topics
// are owned by its run goroutine.
type Relay struct {
	n       *Node
	cfg     RelayConfig
	circuit *relayv2.Relay
	started time.Time

	keepCh chan keepReq
	kept   atomic.Int64

	depositIP *keyLimiter[string]  // mail bytes per source address
	kpOwner   *keyLimiter[peer.ID] // one-time KeyPackages per owner
	kpOwnerIP *keyLimiter[ownerIP] // ... per owner and requester address
	blobs     *relayBlobs          // nil: no BlobDir
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

type keepReq struct {
	from  peer.ID
	ip    string // source address (sourceOf)
	topic string
	lease time.Duration
	reply chan keepResp
}

type ownerIP struct {
	owner peer.ID
	ip    string
}

type keepResp struct {
	granted time.Duration
	err     error
}

// NewRelay starts a relay. opts configure its node as for New (listen and
// announce addresses, logger, bootstrap peers, ...); a relay defaults to no
// mDNS, DHT server mode, 512/1024 connection water marks, a resource manager
// scaled to the machine, and the relay's metrics registry.
func NewRelay(ctx context.Context, key crypto.PrivKey, cfg RelayConfig, opts ...Option) (*Relay, error) {
	cfg.fill()
	r := &Relay{
		cfg: cfg, started: time.Now(), keepCh: make(chan keepReq),
		depositIP: newKeyLimiter[string](cfg.Quotas.DepositBytesPerIP),
		kpOwner:   newKeyLimiter[peer.ID](cfg.Quotas.KeyPackageHandouts),
		kpOwnerIP: newKeyLimiter[ownerIP](cfg.Quotas.KeyPackageHandoutsPerIP),
	}
	if cfg.BlobDir != "" {
		b, err := openRelayBlobs(cfg.BlobDir, cfg.BlobTTL, cfg.Quotas, newMetrics(cfg.Registry))
		if err != nil {
			return nil, fmt.Errorf("p2p: opening the blob directory: %w", err)
		}
		r.blobs = b
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())

	c := defaultConfig()
	c.mdns = false
	c.dht = DHTServer
	c.connLow, c.connHigh = 512, 1024
	c.requestRate = cfg.Quotas.RequestRate
	c.registerer = cfg.Registry
	c.userAgent = "canopy-relay"
	for _, o := range opts {
		if err := o(c); err != nil {
			r.cancel()
			return nil, err
		}
	}
	c.relay = r
	n, err := newNode(ctx, key, c)
	if err != nil {
		r.cancel()
		return nil, err
	}
	r.n = n

	if !cfg.Circuit.Disabled {
		rc := relayv2.DefaultResources()
		rc.Limit = nil // unlimited circuits: see CircuitLimits
		rc.MaxReservations = cfg.Circuit.MaxReservations
		rc.MaxCircuits = cfg.Circuit.MaxCircuits
		rc.MaxReservationsPerIP = cfg.Circuit.MaxReservationsPerIP
		rc.MaxReservationsPerASN = 4 * cfg.Circuit.MaxReservationsPerIP
		rc.BufferSize = cfg.Circuit.BufferSize
		rc.ReservationTTL = cfg.Circuit.ReservationTTL
		ropts := []relayv2.Option{relayv2.WithResources(rc)}
		if c.registerer != nil {
			ropts = append(ropts, relayv2.WithMetricsTracer(relayv2.NewMetricsTracer(relayv2.WithRegisterer(c.registerer))))
		}
		if cfg.Circuit.AllowPrivateAddrs {
			ropts = append(ropts, relayv2.WithReservationAddressFilter(func(ma.Multiaddr) bool { return true }))
		}
		if r.circuit, err = relayv2.New(n.h, ropts...); err != nil {
			r.cancel()
			_ = n.Close()
			return nil, fmt.Errorf("p2p: circuit relay service: %w", err)
		}
	}

	k, err := r.restoreLeases(ctx)
	if err != nil {
		r.cancel()
		if r.circuit != nil {
			_ = r.circuit.Close()
		}
		_ = n.Close()
		return nil, fmt.Errorf("p2p: restoring topic leases: %w", err)
	}
	r.wg.Add(1)
	go r.run(k)
	n.log.Info("relay started", "retention", cfg.Retention, "max_lease", cfg.MaxLease, "kept_topics", len(k.topics))
	return r, nil
}

// Node returns the relay's node.
func (r *Relay) Node() *Node { return r.n }

// Registry returns the registry holding the relay's metrics.
func (r *Relay) Registry() *prometheus.Registry { return r.cfg.Registry }

// MetricsHandler serves the relay's metrics in the Prometheus text format.
func (r *Relay) MetricsHandler() http.Handler { return MetricsHandler(r.cfg.Registry) }

// RelayHealth is a relay's health report.
type RelayHealth struct {
	OK         bool     `json:"ok"`
	PeerID     string   `json:"peer_id"`
	Addrs      []string `json:"addrs"`
	Peers      int      `json:"peers"`
	KeptTopics int      `json:"kept_topics"`
	Uptime     string   `json:"uptime"`
	Error      string   `json:"error,omitempty"`
}

// Health reports whether the relay runs, listens and can reach its stores.
func (r *Relay) Health(ctx context.Context) RelayHealth {
	h := RelayHealth{
		PeerID:     r.n.ID().String(),
		Peers:      len(r.n.Peers()),
		KeptTopics: int(r.kept.Load()),
		Uptime:     time.Since(r.started).Round(time.Second).String(),
	}
	for _, a := range r.n.Addrs() {
		h.Addrs = append(h.Addrs, a.String())
	}
	var err error
	switch {
	case r.ctx.Err() != nil:
		err = ErrClosed
	case len(r.n.h.Network().ListenAddresses()) == 0:
		err = errors.New("not listening")
	default:
		_, err = r.cfg.TopicLog.List(ctx, topicPrefix+"health", LogQuery{Limit: 1})
	}
	if err != nil {
		h.Error = err.Error()
	} else {
		h.OK = true
	}
	return h
}

// KeptTopics returns the topics the relay currently keeps.
func (r *Relay) KeptTopics() []string {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	var out []string
	for name := range r.n.topics {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Close stops the relay.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
		var errs []error
		if r.circuit != nil {
			errs = append(errs, r.circuit.Close())
		}
		errs = append(errs, r.n.Close())
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

type keptTopic struct {
	t      *Topic
	leases map[peer.ID]lease
}

type lease struct {
	until time.Time
	ip    string // "" for leases restored from the LeaseStore
}

// keeper is the state of the kept topics: the topics and their leases, and
// how many topics each peer and each source address has leased. The run
// goroutine owns it (before run starts, NewRelay fills it from the
// LeaseStore).
type keeper struct {
	topics  map[string]*keptTopic
	perPeer map[peer.ID]int
	perIP   map[string]int
}

// storeTimeout bounds one LeaseStore call made by the run goroutine.
const storeTimeout = 10 * time.Second

// restoreLeases rejoins every topic with an unexpired lease in the
// LeaseStore. Leases are capped at MaxLease from now (it may have been
// lowered since they were granted), and the quotas in force apply: leases
// beyond Topics or TopicsPerPeer are dropped, from the store as well, as a
// keep request would have been refused. An error reading the store fails
// the relay's start; a topic that cannot be joined is logged and skipped
// (its lease expires in the store).
func (r *Relay) restoreLeases(ctx context.Context) (*keeper, error) {
	k := &keeper{topics: make(map[string]*keptTopic), perPeer: make(map[peer.ID]int), perIP: make(map[string]int)}
	now := time.Now()
	leases, err := r.cfg.Leases.Leases(ctx, now)
	if err != nil {
		return nil, err
	}
	limit := now.Add(r.cfg.MaxLease)
	var dropped int
	for _, l := range leases {
		if !isTopicName(l.Topic) || l.Peer == "" {
			r.n.log.Warn("relay: ignoring malformed stored lease", "topic", l.Topic, "peer", l.Peer)
			continue
		}
		until := l.Until
		if until.After(limit) {
			until = limit
		}
		if err := r.grant(k, l.Topic, l.Peer, "", until); err != nil {
			if errors.Is(err, ErrQuotaExceeded) {
				dropped++
				r.deleteLease(l.Topic, l.Peer)
				continue
			}
			r.n.log.Warn("relay: rejoining kept topic failed", "topic", l.Topic, "err", err)
			continue
		}
		if until.Before(l.Until) {
			r.putLease(Lease{Topic: l.Topic, Peer: l.Peer, Until: until})
		}
	}
	if dropped > 0 {
		r.n.log.Warn("relay: dropped stored leases beyond the quotas", "leases", dropped)
	}
	r.kept.Store(int64(len(k.topics)))
	r.n.metrics.keptTopics(len(k.topics))
	return k, nil
}

// run owns the kept topics and their leases, and prunes the stores.
func (r *Relay) run(k *keeper) {
	defer r.wg.Done()
	tick := time.NewTicker(r.cfg.PruneInterval)
	defer tick.Stop()
	defer func() {
		for _, kt := range k.topics {
			_ = kt.t.Close()
		}
	}()
	update := func() {
		r.kept.Store(int64(len(k.topics)))
		r.n.metrics.keptTopics(len(k.topics))
	}
	for {
		select {
		case <-r.ctx.Done():
			return
		case req := <-r.keepCh:
			req.reply <- r.keep(req, k)
			update()
		case now := <-tick.C:
			for name, kt := range k.topics {
				for p, l := range kt.leases {
					if !l.until.After(now) {
						r.release(k, name, kt, p)
					}
				}
			}
			update()
			r.prune(now)
		}
	}
}

// release ends p's lease on a kept topic in memory (the LeaseStore is the
// caller's business) and leaves the topic when no lease is left.
func (r *Relay) release(k *keeper, name string, kt *keptTopic, p peer.ID) {
	ip := kt.leases[p].ip
	delete(kt.leases, p)
	if k.perPeer[p]--; k.perPeer[p] <= 0 {
		delete(k.perPeer, p)
	}
	if ip != "" {
		if k.perIP[ip]--; k.perIP[ip] <= 0 {
			delete(k.perIP, ip)
		}
	}
	if len(kt.leases) == 0 {
		_ = kt.t.Close()
		delete(k.topics, name)
		r.n.log.Info("relay released topic", "topic", name)
	}
}

// grant gives p, connected from ip ("": unknown, for restored leases), a
// lease on topic until the given time, joining the topic if the relay does
// not keep it yet. It enforces the topic quotas for new leases and does not
// touch the LeaseStore.
func (r *Relay) grant(k *keeper, topic string, p peer.ID, ip string, until time.Time) error {
	kt := k.topics[topic]
	if kt != nil {
		if l, ok := kt.leases[p]; ok {
			if l.ip == "" && ip != "" {
				k.perIP[ip]++
				l.ip = ip
			}
			l.until = until
			kt.leases[p] = l
			return nil
		}
	}
	if k.perPeer[p] >= r.cfg.Quotas.TopicsPerPeer {
		r.n.metrics.quota("topics_per_peer")
		return fmt.Errorf("%w: %d topics kept for this peer", ErrQuotaExceeded, k.perPeer[p])
	}
	if ip != "" && k.perIP[ip] >= r.cfg.Quotas.TopicsPerIP {
		r.n.metrics.quota("topics_per_ip")
		return fmt.Errorf("%w: %d topics kept for peers at this address", ErrQuotaExceeded, k.perIP[ip])
	}
	if kt == nil {
		if len(k.topics) >= r.cfg.Quotas.Topics {
			r.n.metrics.quota("topics")
			return fmt.Errorf("%w: relay keeps its maximum of topics", ErrQuotaExceeded)
		}
		t, err := r.n.JoinTopic(topic, WithTopicValidator(nil), withoutRelayKeep())
		if err != nil {
			return err
		}
		kt = &keptTopic{t: t, leases: make(map[peer.ID]lease)}
		k.topics[topic] = kt
		r.wg.Add(1)
		go r.ingest(t)
		r.n.log.Info("relay keeps topic", "topic", topic)
	}
	kt.leases[p] = lease{until: until, ip: ip}
	k.perPeer[p]++
	if ip != "" {
		k.perIP[ip]++
	}
	return nil
}

func (r *Relay) keep(req keepReq, k *keeper) keepResp {
	if req.lease <= 0 {
		if kt := k.topics[req.topic]; kt != nil {
			if _, ok := kt.leases[req.from]; ok {
				r.release(k, req.topic, kt, req.from)
			}
		}
		// Also when the lease is not in memory: a stored lease the relay
		// could not restore must not come back at the next start.
		r.deleteLease(req.topic, req.from)
		return keepResp{}
	}
	lease := min(req.lease, r.cfg.MaxLease)
	until := time.Now().Add(lease)
	if err := r.grant(k, req.topic, req.from, req.ip, until); err != nil {
		return keepResp{err: err}
	}
	r.putLease(Lease{Topic: req.topic, Peer: req.from, Until: until})
	return keepResp{granted: lease}
}

// putLease records a lease in the LeaseStore. A failure is logged, and the
// lease holds anyway: the relay keeps the topic until it restarts (and
// again once the member renews).
func (r *Relay) putLease(l Lease) {
	ctx, cancel := context.WithTimeout(r.ctx, storeTimeout)
	defer cancel()
	if err := r.cfg.Leases.PutLease(ctx, l); err != nil && r.ctx.Err() == nil {
		r.n.log.Warn("relay: storing topic lease failed", "topic", l.Topic, "err", err)
	}
}

// deleteLease removes a lease from the LeaseStore. A failure is logged: the
// lease then ends at its expiry instead.
func (r *Relay) deleteLease(topic string, p peer.ID) {
	ctx, cancel := context.WithTimeout(r.ctx, storeTimeout)
	defer cancel()
	if err := r.cfg.Leases.DeleteLease(ctx, topic, p); err != nil && r.ctx.Err() == nil {
		r.n.log.Warn("relay: deleting topic lease failed", "topic", topic, "err", err)
	}
}

// ingest stores every frame of a kept topic.
func (r *Relay) ingest(t *Topic) {
	defer r.wg.Done()
	q := LogQuota{PerTopic: Quota{Bytes: r.cfg.Quotas.TopicBytes}, Total: Quota{Bytes: r.cfg.Quotas.TopicLogBytes}}
	for {
		m, err := t.Next(t.ctx)
		if err != nil {
			return
		}
		_, err = r.cfg.TopicLog.Append(t.ctx, t.name, LogEntry{ID: m.ID, Epoch: m.Header.Epoch, Data: m.Data, Received: time.Now()}, q)
		if err != nil {
			r.n.metrics.logAppend("error")
			if t.ctx.Err() == nil {
				r.n.log.Warn("relay: storing frame failed", "topic", t.name, "err", err)
			}
			continue
		}
		r.n.metrics.logAppend("ok")
	}
}

func (r *Relay) prune(now time.Time) {
	ctx, cancel := context.WithTimeout(r.ctx, time.Minute)
	defer cancel()
	if err := r.cfg.TopicLog.Prune(ctx, now.Add(-r.cfg.Retention)); err != nil {
		r.n.log.Warn("relay: pruning topic log failed", "err", err)
	}
	if err := r.cfg.Mailbox.Prune(ctx, now); err != nil {
		r.n.log.Warn("relay: pruning mailboxes failed", "err", err)
	}
	if err := r.cfg.KeyPackages.Prune(ctx, now); err != nil {
		r.n.log.Warn("relay: pruning key packages failed", "err", err)
	}
	if err := r.cfg.Leases.Prune(ctx, now); err != nil {
		r.n.log.Warn("relay: pruning topic leases failed", "err", err)
	}
	if r.blobs != nil {
		r.blobs.prune(now)
	}
}

func (r *Relay) syncPage(ctx context.Context, req SyncRequest) (SyncPage, error) {
	entries, err := r.cfg.TopicLog.List(ctx, req.Topic, LogQuery{After: req.After, MinEpoch: req.SinceEpoch, Limit: req.Limit + 1})
	if err != nil {
		return SyncPage{}, err
	}
	page := SyncPage{Next: req.After}
	if len(entries) > req.Limit {
		entries = entries[:req.Limit]
		page.More = true
	}
	for _, e := range entries {
		page.Entries = append(page.Entries, SyncEntry{Seq: e.Seq, Epoch: e.Epoch, Data: e.Data})
		page.Next = e.Seq
	}
	return page, nil
}

// takeKeyPackage hands out one of owner's KeyPackages to a requester from
// ip: a one-time package while the owner's hand-out budgets (in total and
// to that address) allow it, otherwise the last-resort one.
func (r *Relay) takeKeyPackage(ctx context.Context, owner peer.ID, suite uint16, ip string) (KeyPackage, error) {
	now := time.Now()
	var kp KeyPackage
	var err error
	if r.kpOwnerIP.allow(ownerIP{owner, ip}, 1) && r.kpOwner.allow(owner, 1) {
		kp, err = r.cfg.KeyPackages.Take(ctx, owner, suite, now)
	} else {
		r.n.metrics.quota("keypackage_handouts")
		kp, err = r.cfg.KeyPackages.LastResort(ctx, owner, suite, now)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		r.n.metrics.keyPackage("miss", 1)
		return kp, fmt.Errorf("%w: no key packages for this owner", ErrNotFound)
	case err != nil:
		return kp, err
	case kp.LastResort:
		r.n.metrics.keyPackage("served_last_resort", 1)
	default:
		r.n.metrics.keyPackage("served_one_time", 1)
	}
	return kp, nil
}

// sourceOf names the address a connection comes from for per-address
// quotas: the IPv4 address, or the /64 of an IPv6 address (one host's
// worth; hosts get whole /64s). Relayed connections count as their relay's
// address. "" if the address has no IP.
func sourceOf(c network.Conn) string {
	ip, err := manet.ToIP(c.RemoteMultiaddr())
	if err != nil {
		return ""
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String()
}

// connAge is how long p has been connected (its oldest connection).
func (n *Node) connAge(p peer.ID) time.Duration {
	var oldest time.Time
	for _, c := range n.h.Network().ConnsToPeer(p) {
		if o := c.Stat().Opened; !o.IsZero() && (oldest.IsZero() || o.Before(oldest)) {
			oldest = o
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return time.Since(oldest)
}
