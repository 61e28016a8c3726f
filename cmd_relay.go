package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/relay"
)

// runRelay implements `canopy relay`: a headless relay peer (package
// relay) that runs until SIGINT or SIGTERM. It prints the relay's peer id
// and addresses on stdout (for others' --bootstrap) and logs to stderr
// with log/slog. -h prints the flags and returns nil.
func runRelay(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runRelayContext(ctx, args, stdout, stderr)
}

// runRelayContext is runRelay running until ctx ends: flags, then a
// relay.Config, then relay.Run. The flags are checked before anything is
// written (issue 16): addresses must parse, explicit listen ports be free,
// and -data hold no chat profile.
func runRelayContext(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := relayConfig(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return relayFlagError(err)
	}
	if err := notChatProfileDir(cfg.DataDir); err != nil {
		return err
	}
	return relayFlagError(relay.Run(ctx, *cfg))
}

// relayFlagFor names the flag that sets a relay.Config field.
var relayFlagFor = map[string]string{
	"DataDir": "data", "Listen": "listen", "Announce": "announce", "Bootstrap": "bootstrap", "MetricsAddr": "metrics",
}

// relayFlagError rewords a relay.ConfigError with the flag's name.
func relayFlagError(err error) error {
	var ce *relay.ConfigError
	if errors.As(err, &ce) {
		if name, ok := relayFlagFor[ce.Field]; ok {
			return fmt.Errorf("relay: -%s: %w", name, ce.Err)
		}
	}
	return err
}

// relayConfig parses the flags of `canopy relay` into a relay.Config.
// After -h it returns flag.ErrHelp.
func relayConfig(args []string, stdout, stderr io.Writer) (*relay.Config, error) {
	fl := flag.NewFlagSet("relay", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "usage: canopy relay [flags]\n\nRuns a headless canopy relay peer.\n\nflags:\n")
		fl.PrintDefaults()
	}
	dc := relay.DefaultConfig()
	dq := dc.Quotas
	var (
		listen    = fl.String("listen", strings.Join(dc.Listen, ","), "comma-separated multiaddrs to listen on")
		announce  = fl.String("announce", "", "comma-separated multiaddrs to advertise instead of the listen addresses (e.g. the public address behind port forwarding)")
		bootstrap = fl.String("bootstrap", "", "comma-separated full multiaddrs (/…/p2p/<id>) of other relays to join the DHT through")
		dataDir   = fl.String("data", dc.DataDir, "data directory: the relay's database (topic log, leases, mailboxes, KeyPackages), identity key and kept files (blobs/)")
		retention = fl.Duration("retention", dc.Retention, "how long frames of kept topics are stored")
		maxLease  = fl.Duration("max-lease", dc.MaxLease, "longest a member's keep-topic request lasts before renewal")
		mailTTL   = fl.Duration("mailbox-ttl", dc.MailboxTTL, "longest mail waits for its recipient")
		kpTTL     = fl.Duration("keypackage-ttl", dc.KeyPackageTTL, "how long uploaded KeyPackages are kept")
		blobTTL   = fl.Duration("blob-ttl", dc.BlobTTL, "how long file ciphertext uploaded by members is kept (in <data>/blobs)")
		noBlobs   = fl.Bool("no-blobs", false, "keep no files for members (refuse /canopy/blobput/1)")
		metrics   = fl.String("metrics", dc.MetricsAddr, "address serving /metrics (Prometheus text) and /healthz; empty disables")
		logLevel  = fl.String("log-level", "info", "log level: debug, info, warn, error")
		logFormat = fl.String("log-format", "text", "log format: text or json")

		qTopics      = fl.Int("quota-topics", dq.Topics, "topics kept in total")
		qTopicsPeer  = fl.Int("quota-topics-per-peer", dq.TopicsPerPeer, "topics one peer may have kept")
		qTopicsIP    = fl.Int("quota-topics-per-ip", dq.TopicsPerIP, "topics the peers at one IP address (IPv6: one /64) may have kept")
		qMailItems   = fl.Int("quota-mailbox-items", dq.MailboxItems, "items in one recipient's mailbox")
		qMailSender  = fl.Int("quota-mailbox-per-sender", dq.MailboxItemsPerSender, "items one sender may leave in one mailbox")
		qKPs         = fl.Int("quota-keypackages", dq.KeyPackages, "KeyPackages held for one user")
		qRate        = fl.Float64("quota-rate", dq.RequestRate.Rate, "requests per second one peer may make (sustained)")
		qBurst       = fl.Float64("quota-burst", dq.RequestRate.Burst, "requests one peer may make in a burst")
		maxRsvp      = fl.Int("max-reservations", dc.Circuit.MaxReservations, "circuit relay reservations in total")
		maxCircuits  = fl.Int("max-circuits", dc.Circuit.MaxCircuits, "open relayed connections per peer")
		noCircuit    = fl.Bool("no-circuit", false, "disable the circuit relay service")
		qTopicBytes  = byteSize(dq.TopicBytes)
		qLogBytes    = byteSize(dq.TopicLogBytes)
		qMailBytes   = byteSize(dq.MailboxBytes)
		qSenderBytes = byteSize(dq.MailboxBytesPerSender)
		qMailItem    = byteSize(dq.MaxMailItem)
		qMailTotal   = byteSize(dq.MailBytes)
		qKPBytes     = byteSize(dq.KeyPackageBytes)
		qMaxBlob     = byteSize(dq.MaxBlob)
		qBlobPeer    = byteSize(dq.BlobBytesPerPeer)
		qBlobIP      = byteSize(dq.BlobBytesPerIP)
		qBlobTotal   = byteSize(dq.BlobBytes)
		qBlobs       = fl.Int("quota-blobs", dq.Blobs, "files kept in total")
		maxResMemory = byteSize(dc.MaxMemory)
	)
	fl.Var(&qTopicBytes, "quota-topic-bytes", "bytes stored per topic; the oldest frames are evicted (e.g. 256MiB)")
	fl.Var(&qLogBytes, "quota-topic-log-bytes", "bytes stored for all topics; the largest topic's oldest frames are evicted")
	fl.Var(&qMailBytes, "quota-mailbox-bytes", "bytes in one recipient's mailbox")
	fl.Var(&qSenderBytes, "quota-mailbox-sender-bytes", "bytes one sender may leave in one mailbox")
	fl.Var(&qMailItem, "quota-mail-item", "largest message one may leave in a mailbox")
	fl.Var(&qMailTotal, "quota-mail-bytes", "bytes in all mailboxes together")
	fl.Var(&qKPBytes, "quota-keypackage-bytes", "bytes of KeyPackages held for one user")
	fl.Var(&qMaxBlob, "quota-blob-size", "largest file (ciphertext) a member may upload")
	fl.Var(&qBlobPeer, "quota-blob-peer-bytes", "file bytes one peer may have on the relay")
	fl.Var(&qBlobIP, "quota-blob-ip-bytes", "file bytes the peers at one IP address (IPv6: one /64) may have on the relay")
	fl.Var(&qBlobTotal, "quota-blob-bytes", "file bytes kept in total")
	fl.Var(&maxResMemory, "max-memory", "memory budget of the libp2p resource manager (default: 1/8 of RAM)")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("relay: unexpected arguments %q", fl.Args())
	}
	logger, err := newRelayLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return nil, err
	}
	return &relay.Config{
		DataDir:       *dataDir,
		Listen:        splitList(*listen),
		Announce:      splitList(*announce),
		Bootstrap:     splitList(*bootstrap),
		Retention:     *retention,
		MaxLease:      *maxLease,
		MailboxTTL:    *mailTTL,
		KeyPackageTTL: *kpTTL,
		BlobTTL:       *blobTTL,
		NoBlobs:       *noBlobs,
		// Fields without a flag keep their zero value: p2p's default.
		Quotas: p2p.Quotas{
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
			MaxBlob:               int64(qMaxBlob),
			BlobBytesPerPeer:      int64(qBlobPeer),
			BlobBytesPerIP:        int64(qBlobIP),
			BlobBytes:             int64(qBlobTotal),
			Blobs:                 *qBlobs,
		},
		Circuit:     p2p.CircuitLimits{Disabled: *noCircuit, MaxReservations: *maxRsvp, MaxCircuits: *maxCircuits},
		MaxMemory:   int64(maxResMemory),
		MetricsAddr: *metrics,
		Logger:      logger,
		Out:         stdout,
	}, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
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

// byteSize is a flag.Value for sizes like 256MiB, 1GB or 1048576.
type byteSize int64

func (b *byteSize) String() string {
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

func (b *byteSize) Set(s string) error {
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
	*b = byteSize(v * mult)
	return nil
}
