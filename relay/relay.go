package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Config is everything a relay needs. Zero fields take the defaults named
// on them (p2p.DefaultRelayConfig, the one place relay policy is set);
// DefaultConfig returns them filled in.
type Config struct {
	// DataDir holds the relay's database, identity key and kept files
	// (required).
	DataDir string
	// Listen are the multiaddrs to listen on (required).
	Listen []string
	// Announce, when set, are advertised instead of the listen addresses
	// (e.g. the public address behind port forwarding).
	Announce []string
	// Bootstrap are full multiaddrs (/…/p2p/<id>) of other relays to join
	// the DHT through.
	Bootstrap []string

	// Retention is how long frames of kept topics are stored (default 7d).
	Retention time.Duration
	// MaxLease is the longest a member's keep-topic request lasts before
	// renewal (default 24h).
	MaxLease time.Duration
	// MailboxTTL is the longest mail waits for its recipient (default 14d).
	MailboxTTL time.Duration
	// KeyPackageTTL is how long uploaded KeyPackages are kept (default 30d).
	KeyPackageTTL time.Duration
	// BlobTTL is how long file ciphertext uploaded by members is kept
	// after its upload completed (default 7d); the files live in
	// DataDir/blobs.
	BlobTTL time.Duration
	// NoBlobs turns file keeping off (/canopy/blobput/1 is not offered).
	NoBlobs bool
	// Quotas bound what peers can make the relay store and do; zero fields
	// take p2p.DefaultQuotas (see p2p.Quotas.WithDefaults).
	Quotas p2p.Quotas
	// Circuit configures the circuit relay v2 service.
	Circuit p2p.CircuitLimits
	// MaxMemory is the memory budget of the libp2p resource manager in
	// bytes (0: 1/8 of RAM).
	MaxMemory int64

	// MetricsAddr is the TCP address serving /metrics (Prometheus text)
	// and /healthz; empty disables the HTTP server.
	MetricsAddr string
	// Logger receives the relay's logs (nil: discarded).
	Logger *slog.Logger
	// Out receives what Run prints for the operator: the peer id, the
	// addresses and the --bootstrap argument for peers (nil: discarded).
	Out io.Writer
}

// DefaultConfig returns the configuration of `canopy relay` without flags:
// every interface on TCP and QUIC port 4001, DefaultDataDir, metrics on
// 127.0.0.1:9464 and the default quotas.
func DefaultConfig() Config {
	d := p2p.DefaultRelayConfig()
	return Config{
		DataDir:       DefaultDataDir(),
		Listen:        []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1", "/ip6/::/tcp/4001", "/ip6/::/udp/4001/quic-v1"},
		Retention:     d.Retention,
		MaxLease:      d.MaxLease,
		MailboxTTL:    d.MailboxTTL,
		KeyPackageTTL: d.KeyPackageTTL,
		BlobTTL:       d.BlobTTL,
		Quotas:        d.Quotas,
		Circuit:       d.Circuit,
		MetricsAddr:   "127.0.0.1:9464",
	}
}

// DefaultDataDir is the relay's data directory unless configured:
// $XDG_DATA_HOME/canopy/relay, else ~/.local/share/canopy/relay.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "canopy", "relay")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "canopy", "relay")
	}
	return "canopy-relay"
}

// ConfigError reports a Config field that is not valid. Field is the
// field's name (Listen, Announce, Bootstrap, DataDir, MetricsAddr).
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "relay: " + e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Validate checks the configuration without touching the disk or the
// network beyond probing that explicit listen ports are free, so that a
// typo fails before anything is created. Run validates too.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return &ConfigError{"DataDir", errors.New("no data directory")}
	}
	if err := p2p.CheckListenAddrs(c.Listen); err != nil {
		return &ConfigError{"Listen", err}
	}
	for _, a := range c.Announce {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return &ConfigError{"Announce", fmt.Errorf("%q: %w", a, err)}
		}
	}
	if _, err := p2p.ParseAddrInfos(c.Bootstrap); err != nil {
		return &ConfigError{"Bootstrap", err}
	}
	return nil
}

// Relay is a running relay: the p2p relay service on its own SQLite store,
// and the metrics and health HTTP server.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	store   *sqlStore
	p2p     *p2p.Relay
	metrics net.Listener
	srv     *http.Server
	srvErr  chan error
}

// Start validates cfg, opens the store in cfg.DataDir (creating the data
// directory and identity on first use) and starts the relay. Close it when
// done. Run is Start, printing the relay's addresses and serving until the
// context ends.
func Start(ctx context.Context, cfg Config) (_ *Relay, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{cfg: cfg, log: log, srvErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	// Open the store first: its lock fails fast if another relay runs on
	// the same directory.
	if r.store, err = openSQLStore(ctx, cfg.DataDir); err != nil {
		return nil, fmt.Errorf("relay: opening the store in %s: %w", cfg.DataDir, err)
	}
	log.Info("opened relay store", "dir", cfg.DataDir)
	key, created, err := LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created relay identity", "dir", cfg.DataDir)
	}

	opts := []p2p.Option{
		p2p.WithListenAddrs(cfg.Listen...),
		p2p.WithAnnounceAddrs(cfg.Announce...),
		p2p.WithLogger(log),
	}
	if len(cfg.Bootstrap) > 0 {
		infos, err := p2p.ParseAddrInfos(cfg.Bootstrap)
		if err != nil {
			return nil, &ConfigError{"Bootstrap", err}
		}
		opts = append(opts, p2p.WithBootstrapPeers(infos...))
	}
	if cfg.MaxMemory > 0 {
		opts = append(opts, p2p.WithResourceLimits(cfg.MaxMemory, 4096))
	}
	rc := p2p.RelayConfig{
		TopicLog:      r.store.topicLog,
		Leases:        r.store.leases,
		Mailbox:       r.store.mailbox,
		KeyPackages:   r.store.keyPackages,
		Retention:     cfg.Retention,
		MaxLease:      cfg.MaxLease,
		MailboxTTL:    cfg.MailboxTTL,
		KeyPackageTTL: cfg.KeyPackageTTL,
		BlobTTL:       cfg.BlobTTL,
		Quotas:        cfg.Quotas, // p2p fills in the defaults (Quotas.WithDefaults)
		Circuit:       cfg.Circuit,
	}
	if !cfg.NoBlobs {
		rc.BlobDir = filepath.Join(cfg.DataDir, "blobs")
	}

	if cfg.MetricsAddr != "" {
		// Listen before starting the relay so a busy port fails fast.
		if r.metrics, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return nil, &ConfigError{"MetricsAddr", err}
		}
	}
	if r.p2p, err = p2p.NewRelay(ctx, key, rc, opts...); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if r.metrics != nil {
		r.serveHTTP()
	}
	return r, nil
}

// ID is the relay's peer id.
func (r *Relay) ID() peer.ID { return r.p2p.Node().ID() }

// Addrs are the addresses the relay advertises, each ending in /p2p/<id>.
func (r *Relay) Addrs() []ma.Multiaddr { return r.p2p.Node().Addrs() }

// MetricsAddr is the address the HTTP server listens on (nil: disabled).
func (r *Relay) MetricsAddr() net.Addr {
	if r.metrics == nil {
		return nil
	}
	return r.metrics.Addr()
}

// Close stops the HTTP server and the relay, then closes the store (the
// relay uses it until it has stopped). Problems are logged; it is safe to
// call more than once.
func (r *Relay) Close() {
	if r.srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = r.srv.Shutdown(sctx)
		cancel()
		r.srv = nil
	}
	if r.metrics != nil {
		_ = r.metrics.Close()
		r.metrics = nil
	}
	if r.p2p != nil {
		if err := r.p2p.Close(); err != nil {
			r.log.Warn("relay shutdown", "err", err)
		}
		r.p2p = nil
	}
	if r.store != nil {
		if err := r.store.Close(); err != nil {
			r.log.Warn("closing the store", "err", err)
		}
		r.store = nil
	}
}

// Run runs a relay with cfg until ctx ends: it starts it (see Start),
// prints its peer id, addresses and the --bootstrap argument for peers to
// cfg.Out, and serves. It returns nil when ctx ends, or the error that
// stopped the relay.
func Run(ctx context.Context, cfg Config) error {
	r, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer r.Close()
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintf(out, "canopy relay %s\n", r.ID())
	for _, a := range r.Addrs() {
		fmt.Fprintf(out, "  %s\n", a)
	}
	printBootstrapArg(out, r.Addrs())

	select {
	case <-ctx.Done():
		r.log.Info("shutting down")
	case err := <-r.srvErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("relay: metrics server: %w", err)
		}
	}
	return nil
}
