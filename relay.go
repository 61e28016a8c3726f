package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// runRelay implements `canopy relay`: a headless relay peer (DHT server,
// circuit relay, topic log, mailboxes, KeyPackages) that runs until SIGINT or
// SIGTERM. It prints the relay's peer id and addresses on stdout (for
// others' --bootstrap) and logs to stderr with log/slog. -h prints the flags
// and returns nil.
//
// Everything the relay keeps lives in the -data directory: the SQLite store
// (canopy.db with its -wal/-shm files, lock, and key, the key file that
// seals it: relays have no passphrase) holds the topic log, the members'
// keep-topic leases, mailboxes and KeyPackages through the adapters of
// relaystore.go, so they survive restarts (a restarted relay rejoins every
// topic with an unexpired lease); identity.key holds the relay's libp2p key (kept in its own file
// rather than in the store's identity row: it is the only secret a relay
// has, operators back it up or provision it on its own, and relays created
// before the store existed keep their peer id). The store's lock also keeps
// two relays from sharing a directory.
func runRelay(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runRelayContext(ctx, args, stdout, stderr)
}

// runRelayContext is runRelay running until ctx ends.
func runRelayContext(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("relay", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "usage: canopy relay [flags]\n\nRuns a headless canopy relay peer.\n\nflags:\n")
		fl.PrintDefaults()
	}
	dq := p2p.DefaultQuotas()
	var (
		listen    = fl.String("listen", "/ip4/0.0.0.0/tcp/4001,/ip4/0.0.0.0/udp/4001/quic-v1,/ip6/::/tcp/4001,/ip6/::/udp/4001/quic-v1", "comma-separated multiaddrs to listen on")
		announce  = fl.String("announce", "", "comma-separated multiaddrs to advertise instead of the listen addresses (e.g. the public address behind port forwarding)")
		bootstrap = fl.String("bootstrap", "", "comma-separated full multiaddrs (/…/p2p/<id>) of other relays to join the DHT through")
		dataDir   = fl.String("data", defaultRelayDataDir(), "data directory: the relay's database (topic log, leases, mailboxes, KeyPackages) and identity key")
		retention = fl.Duration("retention", 7*24*time.Hour, "how long frames of kept topics are stored")
		maxLease  = fl.Duration("max-lease", 24*time.Hour, "longest a member's keep-topic request lasts before renewal")
		mailTTL   = fl.Duration("mailbox-ttl", 14*24*time.Hour, "longest mail waits for its recipient")
		kpTTL     = fl.Duration("keypackage-ttl", 30*24*time.Hour, "how long uploaded KeyPackages are kept")
		metrics   = fl.String("metrics", "127.0.0.1:9464", "address serving /metrics (Prometheus text) and /healthz; empty disables")
		logLevel  = fl.String("log-level", "info", "log level: debug, info, warn, error")
		logFormat = fl.String("log-format", "text", "log format: text or json")

		qTopics      = fl.Int("quota-topics", dq.Topics, "topics kept in total")
		qTopicsPeer  = fl.Int("quota-topics-per-peer", dq.TopicsPerPeer, "topics one peer may have kept")
		qTopicsIP    = fl.Int("quota-topics-per-ip", dq.TopicsPerIP, "topics the peers at one IP address (IPv6: one /64) may have kept")
		qMailItems   = fl.Int("quota-mailbox-items", dq.MailboxItems, "items in one recipient's mailbox (at most 10000)")
		qMailSender  = fl.Int("quota-mailbox-per-sender", dq.MailboxItemsPerSender, "items one sender may leave in one mailbox")
		qKPs         = fl.Int("quota-keypackages", dq.KeyPackages, "KeyPackages held for one user")
		qRate        = fl.Float64("quota-rate", dq.RequestRate.Rate, "requests per second one peer may make (sustained)")
		qBurst       = fl.Float64("quota-burst", dq.RequestRate.Burst, "requests one peer may make in a burst")
		maxRsvp      = fl.Int("max-reservations", 1024, "circuit relay reservations in total")
		maxCircuits  = fl.Int("max-circuits", 16, "open relayed connections per peer")
		noCircuit    = fl.Bool("no-circuit", false, "disable the circuit relay service")
		qTopicBytes  = relayByteSize(dq.TopicBytes)
		qLogBytes    = relayByteSize(dq.TopicLogBytes)
		qMailBytes   = relayByteSize(dq.MailboxBytes)
		qSenderBytes = relayByteSize(dq.MailboxBytesPerSender)
		qMailItem    = relayByteSize(dq.MaxMailItem)
		qMailTotal   = relayByteSize(dq.MailBytes)
		qKPBytes     = relayByteSize(dq.KeyPackageBytes)
		maxResMemory = relayByteSize(0)
	)
	fl.Var(&qTopicBytes, "quota-topic-bytes", "bytes stored per topic; the oldest frames are evicted (e.g. 256MiB)")
	fl.Var(&qLogBytes, "quota-topic-log-bytes", "bytes stored for all topics; the largest topic's oldest frames are evicted")
	fl.Var(&qMailBytes, "quota-mailbox-bytes", "bytes in one recipient's mailbox")
	fl.Var(&qSenderBytes, "quota-mailbox-sender-bytes", "bytes one sender may leave in one mailbox")
	fl.Var(&qMailItem, "quota-mail-item", "largest message one may leave in a mailbox")
	fl.Var(&qMailTotal, "quota-mail-bytes", "bytes in all mailboxes together")
	fl.Var(&qKPBytes, "quota-keypackage-bytes", "bytes of KeyPackages held for one user")
	fl.Var(&maxResMemory, "max-memory", "memory budget of the libp2p resource manager (default: 1/8 of RAM)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("relay: unexpected arguments %q", fl.Args())
	}

	logger, err := newRelayLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	// The relay and its store must agree on every quota: fill in p2p's
	// defaults for zero flags here, as p2p.NewRelay would.
	quotas := relayQuotas(p2p.Quotas{
		Topics:                *qTopics,
		TopicsPerPeer:         *qTopicsPeer,
		TopicsPerIP:           *qTopicsIP,
		TopicBytes:            int64(qTopicBytes),
		TopicLogBytes:         int64(qLogBytes),
		MailboxItems:          *qMailItems,
		MailboxBytes:          int64(qMailBytes),
		MailboxItemsPerSender: *qMailSender,
		MailboxBytesPerSender: int64(qSenderBytes),
		MaxMailItem:           int(min(int64(qMailItem), 1<<31-1)),
		MailBytes:             int64(qMailTotal),
		KeyPackages:           *qKPs,
		KeyPackageBytes:       int64(qKPBytes),
		RequestRate:           p2p.RateLimit{Rate: *qRate, Burst: *qBurst},
	})
	// Flags are checked before anything is written (issue 16): addresses
	// must parse, explicit listen ports be free, and -data hold no chat
	// profile.
	if err := relayCheckFlags(*listen, *announce, *bootstrap, *dataDir); err != nil {
		return err
	}
	// Open the store first: its lock fails fast if another relay runs on
	// the same directory.
	rs, err := openRelayStore(ctx, *dataDir, quotas)
	if err != nil {
		return fmt.Errorf("relay: opening the store in %s: %w", *dataDir, err)
	}
	// Deferred before the relay's Close, so it runs after it: the relay
	// uses the store until it has stopped.
	defer func() {
		if err := rs.Close(); err != nil {
			logger.Warn("closing the store", "err", err)
		}
	}()
	logger.Info("opened relay store", "dir", *dataDir)
	key, created, err := loadOrCreateRelayIdentity(*dataDir)
	if err != nil {
		return err
	}
	if created {
		logger.Info("created relay identity", "dir", *dataDir)
	}

	opts := []p2p.Option{
		p2p.WithListenAddrs(relaySplitList(*listen)...),
		p2p.WithAnnounceAddrs(relaySplitList(*announce)...),
		p2p.WithLogger(logger),
	}
	if bs := relaySplitList(*bootstrap); len(bs) > 0 {
		infos, err := p2p.ParseAddrInfos(bs)
		if err != nil {
			return fmt.Errorf("relay: -bootstrap: %w", err)
		}
		opts = append(opts, p2p.WithBootstrapPeers(infos...))
	}
	if maxResMemory > 0 {
		opts = append(opts, p2p.WithResourceLimits(int64(maxResMemory), 4096))
	}
	cfg := p2p.RelayConfig{
		TopicLog:      rs.topicLog,
		Leases:        rs.leases,
		Mailbox:       rs.mailbox,
		KeyPackages:   rs.keyPackages,
		Retention:     *retention,
		MaxLease:      *maxLease,
		MailboxTTL:    *mailTTL,
		KeyPackageTTL: *kpTTL,
		Quotas:        quotas,
		Circuit: p2p.CircuitLimits{
			Disabled:        *noCircuit,
			MaxReservations: *maxRsvp,
			MaxCircuits:     *maxCircuits,
		},
	}

	var metricsLn net.Listener
	if *metrics != "" {
		// Listen before starting the relay so a busy port fails fast.
		if metricsLn, err = net.Listen("tcp", *metrics); err != nil {
			return fmt.Errorf("relay: -metrics: %w", err)
		}
		defer metricsLn.Close()
	}

	relay, err := p2p.NewRelay(ctx, key, cfg, opts...)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	defer func() {
		if err := relay.Close(); err != nil {
			logger.Warn("relay shutdown", "err", err)
		}
	}()

	fmt.Fprintf(stdout, "canopy relay %s\n", relay.Node().ID())
	for _, a := range relay.Node().Addrs() {
		fmt.Fprintf(stdout, "  %s\n", a)
	}
	printBootstrapArg(stdout, relay.Node().Addrs())

	var srv *http.Server
	srvErr := make(chan error, 1)
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", relay.MetricsHandler())
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			h := relay.Health(r.Context())
			w.Header().Set("Content-Type", "application/json")
			if !h.OK {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(w).Encode(h)
		})
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
		go func() { srvErr <- srv.Serve(metricsLn) }()
		logger.Info("serving metrics and health", "addr", metricsLn.Addr().String())
	}

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-srvErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("relay: metrics server: %w", err)
		}
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return nil
}

func relaySplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func defaultRelayDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "canopy", "relay")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "canopy", "relay")
	}
	return "canopy-relay"
}

func newRelayLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("relay: -log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("relay: -log-format must be text or json, not %q", format)
}

// relayKeyFile holds the relay's libp2p identity (p2p.MarshalIdentity), so
// that its peer id, which others put in their --bootstrap addresses, stays
// the same across restarts.
const relayKeyFile = "identity.key"

func loadOrCreateRelayIdentity(dir string) (crypto.PrivKey, bool, error) {
	path := filepath.Join(dir, relayKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := p2p.UnmarshalIdentity(b)
		if err != nil {
			return nil, false, fmt.Errorf("relay: %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("relay: reading identity: %w", err)
	}
	k, err := p2p.GenerateIdentity()
	if err != nil {
		return nil, false, err
	}
	b, err = p2p.MarshalIdentity(k)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("relay: data directory: %w", err)
	}
	if err := writeIdentityFile(dir, path, b); err != nil {
		return nil, false, fmt.Errorf("relay: writing identity: %w", err)
	}
	return k, true, nil
}

// syncIdentityFile flushes the new identity file to disk; a variable so
// that tests can make it fail.
var syncIdentityFile = (*os.File).Sync

// writeIdentityFile writes b to path atomically: a temporary file in dir,
// synced, then renamed over path. Every step's failure is returned, so that
// a relay never reports an identity it did not keep (its peer id would
// change at the next start while others' --bootstrap addresses name the
// old one).
func writeIdentityFile(dir, path string, b []byte) (err error) {
	tmp, err := os.CreateTemp(dir, relayKeyFile+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		return err
	}
	if err := syncIdentityFile(tmp); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// relayByteSize is a flag.Value for sizes like 256MiB, 1GB or 1048576.
type relayByteSize int64

func (b *relayByteSize) String() string {
	v := int64(*b)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v != 0 && v%u.n == 0 {
			return strconv.FormatInt(v/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

func (b *relayByteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
	} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.n
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return fmt.Errorf("invalid size %q", s)
	}
	*b = relayByteSize(v * mult)
	return nil
}
