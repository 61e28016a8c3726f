package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// DHTMode selects how a node takes part in the Kademlia DHT.
type DHTMode int

const (
	// DHTAuto acts as a DHT server once AutoNAT finds the node publicly
	// reachable and as a client otherwise. The default for chat peers.
	DHTAuto DHTMode = iota
	// DHTClient only queries the DHT.
	DHTClient
	// DHTServer answers DHT queries and stores records. Relays use it.
	DHTServer
	// DHTOff disables the DHT (LAN-only or test setups).
	DHTOff
)

// Defaults.
const (
	// DefaultMaxMessageSize caps one gossip frame. It fits a Commit that
	// creates a 10,000-member group in one go: 10,000 Add proposals carry
	// 10,000 KeyPackages of ~310 bytes (X25519/Ed25519) to ~700 bytes
	// (P-521), i.e. 3-7 MB, and the UpdatePath of a fresh tree encrypts to
	// no one but the new members' Welcome. Larger payloads are not gossiped:
	// the engine publishes what fits and peers fetch the rest (tree, sync).
	DefaultMaxMessageSize = 8 << 20
	// DefaultPublishWait is how long Publish waits for the first topic peer
	// right after joining a topic.
	DefaultPublishWait = 3 * time.Second
	// DefaultRequestTimeout bounds a client request without a ctx deadline
	// and each read or write of one.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultServerTimeout bounds each read and write of a server.
	DefaultServerTimeout = 10 * time.Second
	// DefaultHandlerTimeout bounds a whole inbound request.
	DefaultHandlerTimeout = 60 * time.Second
	// DefaultDiscoveryInterval is the shortest pause between DHT provider
	// look-ups for a topic that has too few peers; look-ups that find no
	// one new double it, up to 16 times.
	DefaultDiscoveryInterval = 30 * time.Second
)

// DefaultGossipRate limits the gossip frames one neighbour may forward to us
// per topic: 50 frames/s sustained with bursts of 500. Chat groups produce
// well under a message per second on average; the burst absorbs a peer
// re-publishing a backlog after a partition heals.
var DefaultGossipRate = RateLimit{Rate: 50, Burst: 500}

// DefaultGossipByteRate limits gossip bytes per neighbour and topic: 4 MiB/s
// sustained, bursts of 32 MiB (a few maximal Commits back to back).
var DefaultGossipByteRate = RateLimit{Rate: 4 << 20, Burst: 32 << 20}

// DefaultRequestRate limits inbound stream requests per peer.
var DefaultRequestRate = RateLimit{Rate: 20, Burst: 100}

// Option configures a Node.
type Option func(*config) error

type config struct {
	listen        []ma.Multiaddr
	announce      []ma.Multiaddr
	bootstrap     []peer.AddrInfo
	relays        []peer.AddrInfo
	mdns          bool
	dht           DHTMode
	natPortMap    bool
	holePunching  bool
	autoNAT       bool
	logger        *slog.Logger
	registerer    prometheus.Registerer
	connLow       int
	connHigh      int
	rcmgrMemory   int64
	rcmgrFDs      int
	rcmgrExplicit bool
	gater         connmgr.ConnectionGater
	maxMsgSize    int
	publishWait   time.Duration
	gossipRate    RateLimit
	gossipBytes   RateLimit
	requestRate   RateLimit
	handlers      Handlers
	validator     Validator
	discoveryIntv time.Duration

	requestTimeout time.Duration
	serverTimeout  time.Duration
	handlerTimeout time.Duration

	userAgent string
	// relay is set by NewRelay.
	relay *Relay
	// heartbeat overrides the gossipsub heartbeat (tests).
	heartbeat time.Duration
	// meshDegree overrides gossipsub's D (benchmarks: what a lower
	// degree would save; canopy runs gossipsub's default of 6).
	meshDegree int
}

func defaultConfig() *config {
	return &config{
		listen:         mustAddrs(DefaultListenAddrs()...),
		mdns:           true,
		dht:            DHTAuto,
		holePunching:   true,
		autoNAT:        true,
		connLow:        64,
		connHigh:       128,
		rcmgrMemory:    256 << 20,
		rcmgrFDs:       512,
		maxMsgSize:     DefaultMaxMessageSize,
		publishWait:    DefaultPublishWait,
		gossipRate:     DefaultGossipRate,
		gossipBytes:    DefaultGossipByteRate,
		requestRate:    DefaultRequestRate,
		discoveryIntv:  DefaultDiscoveryInterval,
		requestTimeout: DefaultRequestTimeout,
		serverTimeout:  DefaultServerTimeout,
		handlerTimeout: DefaultHandlerTimeout,
		userAgent:      "canopy",
	}
}

// DefaultListenAddrs are the listen addresses of a node without
// WithListenAddrs: TCP and QUIC on all IPv4 and IPv6 interfaces, ports
// chosen by the system.
func DefaultListenAddrs() []string {
	return []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/tcp/0", "/ip6/::/udp/0/quic-v1"}
}

func mustAddrs(ss ...string) []ma.Multiaddr {
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = ma.StringCast(s)
	}
	return out
}

func parseAddrs(ss []string) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, s := range ss {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: address %q: %w", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// ParseAddrInfos parses full multiaddrs ending in /p2p/<peer id> (as given to
// --bootstrap) and groups them by peer.
func ParseAddrInfos(ss []string) ([]peer.AddrInfo, error) {
	addrs, err := parseAddrs(ss)
	if err != nil {
		return nil, err
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}
	return infos, nil
}

// WithListenAddrs sets the multiaddrs to listen on (default: TCP and QUIC on
// all IPv4 and IPv6 interfaces, random ports).
func WithListenAddrs(addrs ...string) Option {
	return func(c *config) error {
		a, err := parseAddrs(addrs)
		if err != nil {
			return err
		}
		if len(a) == 0 {
			return errors.New("p2p: no listen address")
		}
		c.listen = a
		return nil
	}
}

// WithAnnounceAddrs replaces the addresses the node advertises (identify,
// DHT, mDNS) with addrs, e.g. a relay's public address behind port
// forwarding. Relay circuit addresses are still advertised.
func WithAnnounceAddrs(addrs ...string) Option {
	return func(c *config) error {
		a, err := parseAddrs(addrs)
		if err != nil {
			return err
		}
		c.announce = a
		return nil
	}
}

// WithBootstrapPeers sets the peers the node connects to at start and uses
// to enter the DHT (the --bootstrap multiaddrs; usually relays).
func WithBootstrapPeers(peers ...peer.AddrInfo) Option {
	return func(c *config) error {
		c.bootstrap = append(c.bootstrap, peers...)
		return nil
	}
}

// WithRelays sets the relay peers: the node keeps connections to them, uses
// them for autorelay when behind NAT and as DHT bootstrap peers; topics ask
// them to keep their messages (see Node.KeepTopic) and SendOrDeposit leaves
// mail there. Their gossipsub peer-exchange records are trusted.
func WithRelays(peers ...peer.AddrInfo) Option {
	return func(c *config) error {
		c.relays = append(c.relays, peers...)
		return nil
	}
}

// WithMDNS switches LAN discovery by mDNS on or off (default on).
func WithMDNS(on bool) Option {
	return func(c *config) error { c.mdns = on; return nil }
}

// WithDHT sets the DHT mode (default DHTAuto).
func WithDHT(m DHTMode) Option {
	return func(c *config) error {
		if m < DHTAuto || m > DHTOff {
			return fmt.Errorf("p2p: invalid DHT mode %d", m)
		}
		c.dht = m
		return nil
	}
}

// WithNATPortMap switches UPnP/NAT-PMP port mapping on or off (default off:
// it multicasts on the LAN and changes the router's state).
func WithNATPortMap(on bool) Option {
	return func(c *config) error { c.natPortMap = on; return nil }
}

// WithHolePunching switches DCUtR hole punching on or off (default on).
func WithHolePunching(on bool) Option {
	return func(c *config) error { c.holePunching = on; return nil }
}

// WithAutoNAT switches AutoNAT v2 reachability checks on or off (default on).
func WithAutoNAT(on bool) Option {
	return func(c *config) error { c.autoNAT = on; return nil }
}

// WithLogger sets the logger for the node. libp2p's own loggers (including
// mDNS) are routed to it too (see SetLibp2pLogger). Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithMetrics registers the node's and go-libp2p's Prometheus metrics with r.
// Default: no metrics.
func WithMetrics(r prometheus.Registerer) Option {
	return func(c *config) error { c.registerer = r; return nil }
}

// WithConnLimits sets the connection manager's low and high water marks
// (default 64 and 128). Above high the manager trims down to low, sparing
// relays, bootstrap peers and gossipsub mesh peers.
func WithConnLimits(low, high int) Option {
	return func(c *config) error {
		if low <= 0 || high < low {
			return fmt.Errorf("p2p: invalid connection limits %d/%d", low, high)
		}
		c.connLow, c.connHigh = low, high
		return nil
	}
}

// WithResourceLimits scales the resource manager to the given memory and file
// descriptor budget (default 256 MiB and 512: a chat peer).
func WithResourceLimits(memory int64, fds int) Option {
	return func(c *config) error {
		if memory <= 0 || fds <= 0 {
			return errors.New("p2p: invalid resource limits")
		}
		c.rcmgrMemory, c.rcmgrFDs, c.rcmgrExplicit = memory, fds, true
		return nil
	}
}

// WithConnectionGater installs a connection gater (optional).
func WithConnectionGater(g connmgr.ConnectionGater) Option {
	return func(c *config) error { c.gater = g; return nil }
}

// WithMaxMessageSize sets the largest gossip frame (default
// DefaultMaxMessageSize). All members of a group must agree on it.
func WithMaxMessageSize(n int) Option {
	return func(c *config) error {
		if n < 1<<10 || n > 64<<20 {
			return fmt.Errorf("p2p: max message size %d out of range [1KiB, 64MiB]", n)
		}
		c.maxMsgSize = n
		return nil
	}
}

// WithPublishWait sets how long Publish waits for the first topic peer right
// after a topic was joined (default DefaultPublishWait).
func WithPublishWait(d time.Duration) Option {
	return func(c *config) error { c.publishWait = d; return nil }
}

// WithGossipRateLimit sets the per-neighbour flood limits of topic
// validators, in frames and bytes.
func WithGossipRateLimit(frames, bytes RateLimit) Option {
	return func(c *config) error { c.gossipRate, c.gossipBytes = frames, bytes; return nil }
}

// WithRequestRateLimit sets the per-peer limit on inbound stream requests.
func WithRequestRateLimit(l RateLimit) Option {
	return func(c *config) error { c.requestRate = l; return nil }
}

// WithHandlers sets the handlers that serve the stream protocols (see
// Handlers; Node.SetHandlers changes them later).
func WithHandlers(h Handlers) Option {
	return func(c *config) error { c.handlers = h; return nil }
}

// WithValidator sets the MLS-aware validator used by topics joined without
// their own (see JoinGroup).
func WithValidator(v Validator) Option {
	return func(c *config) error { c.validator = v; return nil }
}

// WithDiscoveryInterval sets the shortest pause between DHT provider
// look-ups of a topic with too few peers (default DefaultDiscoveryInterval).
func WithDiscoveryInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("p2p: discovery interval must be positive")
		}
		c.discoveryIntv = d
		return nil
	}
}

// WithTimeouts sets the client request timeout (used when the ctx has no
// deadline, and for each read/write), the server's per read/write timeout
// and the server's whole-request timeout.
func WithTimeouts(request, serverIO, serverRequest time.Duration) Option {
	return func(c *config) error {
		if request <= 0 || serverIO <= 0 || serverRequest <= 0 {
			return errors.New("p2p: timeouts must be positive")
		}
		c.requestTimeout, c.serverTimeout, c.handlerTimeout = request, serverIO, serverRequest
		return nil
	}
}

// WithUserAgent sets the identify user agent (default "canopy").
func WithUserAgent(ua string) Option {
	return func(c *config) error { c.userAgent = ua; return nil }
}

// withHeartbeat speeds up gossipsub for tests and benchmarks.
func withHeartbeat(d time.Duration) Option {
	return func(c *config) error { c.heartbeat = d; return nil }
}

// withMeshDegree sets gossipsub's mesh degree D for benchmarks, with the
// bounds around it scaled as gossipsub's defaults are around 6.
func withMeshDegree(d int) Option {
	return func(c *config) error {
		if d < 2 {
			return fmt.Errorf("p2p: mesh degree %d: want at least 2", d)
		}
		c.meshDegree = d
		return nil
	}
}
