package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-chat/canopy/internal/atomicfile"
	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Config configures an Engine. Zero fields take the defaults documented on
// each field.
type Config struct {
	// ProfileDir is the profile's directory (see store.ProfileDir); the
	// engine opens the store there, writes its log file (canopy.log) and
	// keeps pending invitations and the last contact card beside it.
	ProfileDir string
	// Store is an already open store to use instead of ProfileDir (tests
	// use store.OpenMemory). The engine does not close it. With Store and
	// no ProfileDir nothing is written outside the store.
	Store *store.DB
	// StoreOptions are passed to store.Open (after the passphrase).
	StoreOptions []store.Option
	// Nick is the nickname of a new profile. For an existing profile it is
	// ignored (use the /nick command). Default: $USER, else "anonymous".
	Nick string
	// Passphrase unlocks (or, for a new profile, protects) the store.
	// Empty: the profile uses a key file.
	Passphrase []byte

	// ListenAddrs are libp2p multiaddrs to listen on (default: TCP and
	// QUIC on all interfaces). With a ProfileDir, ports given as 0 are
	// chosen on the first start and kept (see ListenFileName).
	ListenAddrs []string
	// Bootstrap are full multiaddrs (…/p2p/<id>) of relays or other
	// peers to connect to at start: they are used as DHT bootstrap peers,
	// relays (circuit relay, topic keeping, mailboxes, KeyPackages).
	Bootstrap []string
	// MDNS switches LAN discovery on.
	MDNS bool
	// NoNAT switches AutoNAT and hole punching off (tests on loopback).
	NoNAT bool
	// P2POptions are appended to the engine's own p2p options.
	P2POptions []p2p.Option

	// DownloadDir is where received files are saved (default
	// ProfileDir/downloads). File transfer needs a ProfileDir: the
	// ciphertext of sent and received files is kept in ProfileDir/blobs.
	DownloadDir string
	// AutoFetchLimit is the size up to which received files are fetched
	// without being asked, unless a group sets its own (/transfers limit);
	// 0: DefaultAutoFetch, negative: never.
	AutoFetchLimit int64

	// Logger receives the engine's structured logs. Default: a text log
	// in ProfileDir/canopy.log at the level of $CANOPY_LOG (debug, info,
	// warn; default info), or nowhere without a ProfileDir. Secrets are
	// never logged.
	Logger *slog.Logger

	// BatchDelay is how long membership changes (invites, kicks, updates)
	// wait for more changes to commit together (default 100 ms).
	BatchDelay time.Duration
	// CommitDelay is how long the first designated member waits before it
	// commits proposals others sent (a member's /leave); every further
	// member in line waits CommitStagger longer (defaults 200 ms and 2 s).
	CommitDelay, CommitStagger time.Duration
	// RotateAfter and RotateMessages trigger an automatic commit with a
	// fresh path (post-compromise security) after that age of one's own
	// leaf or that many own messages (defaults 7 days and 1,000).
	RotateAfter    time.Duration
	RotateMessages int
	// ExternalTreeAbove leaves the ratchet tree out of Welcomes of groups
	// with more members than this (joiners fetch it over /canopy/tree/1).
	// Default 64; negative: always leave it out.
	ExternalTreeAbove int
	// ReceiptDelay batches delivery receipts (default 250 ms).
	ReceiptDelay time.Duration
	// SyncInterval is how often each group looks for new peers to catch
	// up from (default 2 s).
	SyncInterval time.Duration
	// MailboxInterval is how often relay mailboxes are polled (default
	// 30 s).
	MailboxInterval time.Duration
	// SettleTime is how long an own Commit must stay canonical before its
	// Welcome is sent (ordering.Config.SettleTime; default 2 s).
	SettleTime time.Duration
	// Ordering overrides the fork choice's local policy (timers, buffer
	// sizes); zero fields keep the ordering package's defaults. GroupID,
	// Self and WindowEpochs are the engine's.
	Ordering ordering.Config

	// offered lists the cipher suites this client offers (nil: all of
	// pq.go's offeredSuites); tests set it to stand in for an older client.
	offered []mls.CipherSuite
}

func (c *Config) defaults() {
	if c.Nick == "" {
		c.Nick = os.Getenv("USER")
		if validNick(c.Nick) != nil {
			c.Nick = "anonymous"
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.BatchDelay, 100*time.Millisecond)
	def(&c.CommitDelay, 200*time.Millisecond)
	def(&c.CommitStagger, 2*time.Second)
	def(&c.RotateAfter, 7*24*time.Hour)
	def(&c.ReceiptDelay, 250*time.Millisecond)
	def(&c.SyncInterval, 2*time.Second)
	def(&c.MailboxInterval, 30*time.Second)
	def(&c.SettleTime, 2*time.Second)
	if c.RotateMessages == 0 {
		c.RotateMessages = 1000
	}
	if c.ExternalTreeAbove == 0 {
		c.ExternalTreeAbove = 64
	}
}

// Engine is canopy's messenger engine. It implements Client. All methods
// are safe for concurrent use: each group's mutable state is owned by that
// group's goroutine, and engine-wide state is guarded by a mutex.
type Engine struct {
	cfg     Config
	db      *store.DB
	ownDB   bool
	node    *p2p.Node
	id      *identity
	log     *slog.Logger
	logFile *os.File
	events  *eventQueue
	relays  []p2p.AddrInfo
	xfers   *transfers // nil without a ProfileDir

	// peerEvents (PeerUp, PeerDown) and localEvents (reachability, own
	// addresses) are the node's, subscribed to as soon as it starts.
	peerEvents, localEvents *p2p.Subscription

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	kpMu     sync.Mutex
	kpGrants map[p2p.PeerID][]kpGrant // one-time KeyPackages handed out, by requester (kpMu)

	// heldFrameBytes is what all groups' frame gates hold (framegate.go).
	heldFrameBytes atomic.Int64

	mu       sync.Mutex
	selfNick string
	groups   map[string]*group // by group id
	byTopic  map[string]*group // by topic name
	invites  map[string]*invitation
	contacts map[p2p.PeerID]*contactInfo
	nearby   map[p2p.PeerID]*Card
	helloAt  map[p2p.PeerID]time.Time
	closed   bool
	lastCard string
	welcomes []*pendingWelcome
	// reinitWaiting: Welcomes that need the PSK of a ReInit not seen yet
	// (reinit.go).
	reinitWaiting []waitingWelcome

	closeOnce sync.Once
}

var _ Client = (*Engine)(nil)

// ErrQuit is returned by Execute for /quit: the front end should stop.
var ErrQuit = errors.New("chat: quit")

// Open opens (creating on first use) a profile and starts the engine: the
// store, the identity, the p2p node, KeyPackages, and every group.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	cfg.defaults()
	// Bad flags fail here, before a profile is created on disk.
	if err := cfg.CheckNetwork(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:      cfg,
		events:   newEventQueue(),
		groups:   make(map[string]*group),
		byTopic:  make(map[string]*group),
		invites:  make(map[string]*invitation),
		contacts: make(map[p2p.PeerID]*contactInfo),
		nearby:   make(map[p2p.PeerID]*Card),
		helloAt:  make(map[p2p.PeerID]time.Time),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			e.shutdown()
		}
	}()
	if err := e.openStore(ctx); err != nil {
		return nil, err
	}
	e.setupLog()
	id, created, err := loadIdentity(ctx, e.db)
	if err != nil {
		return nil, err
	}
	e.id = id
	if err := e.loadSelf(ctx, created); err != nil {
		return nil, err
	}
	if err := e.loadContacts(ctx); err != nil {
		return nil, err
	}
	if err := e.fillKeyPackages(ctx); err != nil {
		return nil, err
	}
	if err := e.openTransfers(); err != nil {
		return nil, err
	}
	if err := e.startNode(ctx); err != nil {
		return nil, err
	}
	if err := e.loadGroups(ctx); err != nil {
		return nil, err
	}
	e.resumeReInits()
	e.loadInvitations()
	e.startBackground()
	if e.xfers != nil {
		e.xfers.resume(ctx)
	}
	e.watchBacklog()
	e.writeCardFile()
	e.statusChanged()
	e.log.Info("engine started", "peer", e.id.id, "new_profile", created, "groups", len(e.groups))
	ok = true
	return e, nil
}

func (e *Engine) openStore(ctx context.Context) error {
	if e.cfg.Store != nil {
		e.db = e.cfg.Store
		return nil
	}
	if e.cfg.ProfileDir == "" {
		return errors.New("chat: Config needs a ProfileDir or a Store")
	}
	var opts []store.Option
	if len(e.cfg.Passphrase) > 0 {
		opts = append(opts, store.WithPassphrase(e.cfg.Passphrase))
	}
	opts = append(opts, e.cfg.StoreOptions...)
	db, err := store.Open(ctx, e.cfg.ProfileDir, opts...)
	if err != nil {
		return err
	}
	e.db, e.ownDB = db, true
	return nil
}

func (e *Engine) setupLog() {
	if e.cfg.Logger != nil {
		e.log = e.cfg.Logger
		return
	}
	if e.cfg.ProfileDir == "" {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
		return
	}
	level := slog.LevelInfo
	switch strings.ToLower(os.Getenv("CANOPY_LOG")) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	f, err := os.OpenFile(filepath.Join(e.cfg.ProfileDir, "canopy.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
		return
	}
	e.logFile = f
	e.log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level}))
}

// loadSelf reads (or, for a new profile, writes) the own contact row, which
// holds the nickname in its card.
func (e *Engine) loadSelf(ctx context.Context, created bool) error {
	c, err := e.db.Contact(ctx, e.id.id.String())
	if err == nil {
		if card, err := UnmarshalCard(c.Card); err == nil {
			e.selfNick = card.Nick
			if !bytes.Equal(card.Fingerprint, e.id.fp) {
				return e.saveSelf(ctx) // the signature key was rotated
			}
			return nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	nick := e.cfg.Nick
	if err := validNick(nick); err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	e.selfNick = nick
	_ = created
	return e.saveSelf(ctx)
}

func (e *Engine) saveSelf(ctx context.Context) error {
	card := Card{PeerID: e.id.id, Fingerprint: e.id.fp, Nick: e.nick()}
	b, err := card.Marshal()
	if err != nil {
		return err
	}
	_, err = e.db.PutContact(ctx, store.Contact{ID: e.id.id.String(), Fingerprint: e.id.fp, Card: b})
	return err
}

func (e *Engine) nick() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.selfNick
}

func (e *Engine) now() time.Time { return time.Now() }

// maxSkippedKeys is how many skipped generations of each sender's ratchet
// a member keeps the keys of (mls.DefaultMaxSkippedKeys is 128). A frame
// gossip lost comes back by sync (catchUpForGap) while its sender goes on
// sending; at 128 a sender at gossip's flood limit (50 frames/s) would
// have moved past the key in under 3 s, and the message would be lost
// for good. 1,000 (the default forward distance) gives 20 s at that
// rate, for ~28 KiB per sender with a gap; each key is deleted once used.
const maxSkippedKeys = 1000

// mlsOptions is the local MLS policy of every group.
func (e *Engine) mlsOptions() []mls.Option {
	// No clock: the validity of others' Commits must not depend on the
	// local time (ordering.Processor), so KeyPackage lifetimes are checked
	// when a KeyPackage is fetched (fetchKeyPackage), not in Commits.
	return []mls.Option{
		mls.WithCredentialValidator(validateCredential),
		mls.WithPastEpochs(4),
		mls.WithOutOfOrder(mls.SecretTreeOptions{MaxSkippedKeys: maxSkippedKeys}),
	}
}

// goBackground runs f in a goroutine that Close waits for.
func (e *Engine) goBackground(f func(ctx context.Context)) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		f(e.ctx)
	}()
}

func (e *Engine) emit(ev Event) { e.events.emit(ev) }

func (e *Engine) notice(g GroupID, level NoticeLevel, format string, args ...any) {
	e.emit(NoticeEvent{Group: g, Text: fmt.Sprintf(format, args...), Level: level})
}

// Close stops the engine: groups, network, store. Events is closed.
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() { err = e.shutdown() })
	return err
}

func (e *Engine) shutdown() error {
	e.mu.Lock()
	e.closed = true
	groups := make([]*group, 0, len(e.groups))
	for _, g := range e.groups {
		groups = append(groups, g)
	}
	e.mu.Unlock()
	if e.cancel != nil {
		e.cancel()
	}
	for _, g := range groups {
		g.stop()
	}
	var errs []error
	if e.node != nil {
		errs = append(errs, e.node.Close())
	}
	e.wg.Wait()
	if e.ownDB && e.db != nil {
		errs = append(errs, e.db.Close())
	}
	if e.log != nil {
		e.log.Info("engine stopped")
	}
	if e.logFile != nil {
		errs = append(errs, e.logFile.Close())
	}
	e.events.close()
	return errors.Join(errs...)
}

// Events implements Client.
func (e *Engine) Events() <-chan Event { return e.events.out }

// Self implements Client.
func (e *Engine) Self() Self {
	card := e.card()
	return Self{Nick: card.Nick, PeerID: e.id.id.String(), Fingerprint: FormatFingerprint(e.id.fp), Card: card.String()}
}

// Card returns the profile's current contact card.
func (e *Engine) Card() *Card { return e.card() }

func (e *Engine) card() *Card {
	c := &Card{PeerID: e.id.id, Fingerprint: e.id.fp, Nick: e.nick()}
	if e.node != nil {
		// The relays' circuit addresses first (they outlive moves and
		// restarts, see relayCircuitAddrs), then the direct ones; the host's
		// own circuit addresses are among the first.
		direct := e.node.DirectAddrs()
		for _, a := range append(e.relayCircuitAddrs(), direct...) {
			if len(c.Addrs) == maxCardAddrs {
				break
			}
			if len(a.Bytes()) > 255 || slices.ContainsFunc(c.Addrs, a.Equal) {
				continue
			}
			c.Addrs = append(c.Addrs, a)
		}
	}
	return c
}

// writeCardFile keeps ProfileDir/card up to date for `canopy id` while the
// profile is open (and locked) by a running engine.
func (e *Engine) writeCardFile() {
	if e.cfg.ProfileDir == "" {
		return
	}
	c := e.card()
	text := c.Text() + "\n" + c.String() + "\n"
	e.mu.Lock()
	same := text == e.lastCard
	e.lastCard = text
	e.mu.Unlock()
	if same {
		return
	}
	if err := atomicfile.Write(filepath.Join(e.cfg.ProfileDir, CardFileName), []byte(text), 0o600); err != nil {
		e.log.Warn("writing card file", "err", err)
	}
}

// CardFileName is the file in the profile directory where a running engine
// keeps its contact card (text form, then the compact form on the last
// line).
const CardFileName = "card"

// groupList returns the engine's groups, copied under e.mu so that the
// caller can visit them without holding it.
func (e *Engine) groupList() []*group {
	e.mu.Lock()
	defer e.mu.Unlock()
	gs := make([]*group, 0, len(e.groups))
	for _, g := range e.groups {
		gs = append(gs, g)
	}
	return gs
}

// Groups implements Client.
func (e *Engine) Groups() []GroupView {
	gs := e.groupList()
	out := make([]GroupView, 0, len(gs))
	for _, g := range gs {
		out = append(out, g.view.snapshot())
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].LastAt.Equal(out[j].LastAt) {
			return out[i].LastAt.After(out[j].LastAt)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func (e *Engine) group(id GroupID) *group {
	raw, err := hex.DecodeString(string(id))
	if err != nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.groups[string(raw)]
}

// Members implements Client.
func (e *Engine) Members(id GroupID) []Member {
	g := e.group(id)
	if g == nil {
		return nil
	}
	return g.view.memberList()
}

// History implements Client.
func (e *Engine) History(id GroupID, before MessageID, limit int) []Message {
	g := e.group(id)
	if g == nil {
		return nil
	}
	if limit <= 0 {
		limit = 100
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	q := store.MessageQuery{Limit: limit}
	if before != "" {
		bid, err := hex.DecodeString(string(before))
		if err != nil {
			return nil
		}
		m, err := e.db.Message(ctx, g.id, bid)
		if err != nil {
			return nil
		}
		q.BeforeSeq = m.Seq
	}
	rows, err := e.db.Messages(ctx, g.id, q)
	if err != nil {
		e.log.Warn("reading history", "err", err)
		return nil
	}
	out := make([]Message, 0, len(rows))
	for i := len(rows) - 1; i >= 0; i-- {
		out = append(out, e.messageFromRow(g, rows[i]))
	}
	return out
}

// Invitations implements Client.
func (e *Engine) Invitations() []Invitation {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Invitation, 0, len(e.invites))
	for _, inv := range e.invites {
		out = append(out, inv.view())
	}
	slices.SortFunc(out, func(a, b Invitation) int { return a.At.Compare(b.At) })
	return out
}

// MarkRead implements Client.
func (e *Engine) MarkRead(id GroupID) {
	if g := e.group(id); g != nil {
		g.markRead()
	}
}

// newID returns a fresh random message id.
func newID() []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}
