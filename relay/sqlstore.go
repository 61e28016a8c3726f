package relay

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Adapters that let a relay (p2p.NewRelay) keep its topic log, keep-topic
// leases, mailboxes and KeyPackages in the SQLite store. store and p2p do
// not import each other (DESIGN.md §1), so the translation lives here, in
// the relay's wiring.
//
// What is mapped:
//
//   - Ids. p2p names frames, mail and KeyPackages by content (p2p.IDOf, the
//     SHA-256 of the bytes); the store de-duplicates frames and mail on the
//     same SHA-256 and gives them its own row ids. The adapters therefore
//     require id == p2p.IDOf(data) (p2p.Relay always builds them that way)
//     and recompute ids from the data they read back. A cached KeyPackage's
//     store Ref is its content id. Peer ids are stored as their text form
//     (peer.ID.String()).
//   - Cursors. LogEntry.Seq is the store's frame seq (AUTOINCREMENT: it only
//     grows, also across pruning and restarts). It is one counter for all
//     topics, so a topic's sequence numbers increase but have gaps and need
//     not start at 1; sync only uses them as an opaque cursor.
//   - Epochs. Every frame is stored with its epoch; the store's "no epoch"
//     (NULL) is never used, so its MinEpoch filter is p2p's. SQLite integers
//     are signed: a frame claiming an epoch above 2^63-1 is refused as a bad
//     request; cursors and epochs above it in queries match nothing.
//   - Leases. A p2p.Lease is a store.TopicKeep (KeepTopic, ReleaseTopic,
//     KeptTopics, PruneTopicKeeps), with the same bounds: a lease ending at
//     now is over.
//   - Errors. store.ErrNotFound, ErrQuotaExceeded, ErrInvalid and ErrClosed
//     become p2p.ErrNotFound, ErrQuotaExceeded, ErrBadRequest and
//     ErrUnavailable (the store error stays in the chain), which is what
//     p2p turns into the status a remote peer sees.
//   - Quotas, see below.
//
// Quotas. p2p passes a quota with every call; the store enforces quotas
// fixed when it is opened (store.WithQuotas), so openRelayStore derives the
// store's quotas from the relay's p2p.Quotas and each adapter handles the
// rest:
//
//   - Topic log: the store evicts a topic's oldest frames beyond TopicBytes,
//     and the largest topic's oldest frames beyond TopicLogBytes in all.
//     It cannot be given another bound per call, and the adapter cannot
//     evict by itself (the store has no per-frame delete), so Append checks
//     that the quota it is passed is the one the store was opened with and
//     fails otherwise (a wiring bug, not a peer's fault).
//   - Mailboxes: enforced exactly by the adapter, per call, from the
//     store's usage counters (the recipient's, and their sum over all
//     mailboxes for the total) and a scan of the recipient's mailbox (for
//     de-duplication and the sender's share of that mailbox, which the
//     store has no notion of: its SenderMailBytes bounds a sender across all
//     mailboxes). Deposits are serialized so check and insert are atomic.
//     The store's own mail quotas are off, except its item size cap, set
//     to MaxMailItem as a second line.
//   - KeyPackages: the count and byte quotas per owner are the store's
//     KeyPackagesPerOwner and KeyPackageBytesPerOwner (checked against the
//     call's quota like the topic quota). The store checks them on what the
//     owner holds at the end of the publishing transaction, so an upload
//     over quota stores nothing, and replaced last-resort packages count
//     as gone, as in p2p's stores.
//
// KeyPackage semantics match p2p's without bridging: the store remembers
// the one-time packages it handed out until they would have expired and
// ignores re-uploads of them (also across restarts), and re-publishing a
// last-resort package refreshes its expiry, as a replacement in p2p does.
// maxRelayMailboxItems bounds -quota-mailbox-items: the mailbox adapter
// scans a recipient's whole mailbox with one store query, and store caps
// queries at 10000 rows.
const maxRelayMailboxItems = 10000

// frameBatch is the page size List reads the store with (store caps pages
// at 10000 rows; p2p asks for at most p2p.MaxSyncLimit+1). A variable so
// that tests can exercise paging.
var frameBatch = 1024

// relayStore is a relay's SQLite store and the adapters p2p.NewRelay uses.
type relayStore struct {
	db          *store.DB
	topicLog    *sqlTopicLog
	leases      *sqlLeaseStore
	mailbox     *sqlMailbox
	keyPackages *sqlKeyPackageCache
}

// openRelayStore opens (creating if needed) the relay's SQLite store in dir,
// protected by a key file (relays have no passphrase), with store quotas
// derived from q, which must be the quotas the relay runs with (see
// relayQuotas).
func openRelayStore(ctx context.Context, dir string, q p2p.Quotas) (*relayStore, error) {
	if q.MailboxItems > maxRelayMailboxItems {
		return nil, fmt.Errorf("relay: the mailbox quota may be at most %d items", maxRelayMailboxItems)
	}
	db, err := store.Open(ctx, dir, store.WithQuotas(store.Quotas{
		// Frame, mail and KeyPackage sizes are bounded by p2p's message
		// and request size limits; mail quotas are enforced by sqlMailbox.
		TopicBytes:              q.TopicBytes,
		TopicLogBytes:           q.TopicLogBytes,
		MaxMailBytes:            q.MaxMailItem,
		KeyPackagesPerOwner:     q.KeyPackages,
		KeyPackageBytesPerOwner: q.KeyPackageBytes,
	}))
	if err != nil {
		return nil, err
	}
	return &relayStore{
		db:          db,
		topicLog:    &sqlTopicLog{db: db, quota: p2p.LogQuota{PerTopic: p2p.Quota{Bytes: q.TopicBytes}, Total: p2p.Quota{Bytes: q.TopicLogBytes}}},
		leases:      &sqlLeaseStore{db: db},
		mailbox:     &sqlMailbox{db: db},
		keyPackages: &sqlKeyPackageCache{db: db, quota: p2p.Quota{Count: q.KeyPackages, Bytes: q.KeyPackageBytes}},
	}, nil
}

// Close closes the database. Close the relay first.
func (s *relayStore) Close() error { return s.db.Close() }

// relayQuotas fills zero (or negative) fields of q with p2p's defaults, as
// p2p.NewRelay does, so that the relay and the store agree on every quota.
func relayQuotas(q p2p.Quotas) p2p.Quotas { return q.WithDefaults() }

// p2pError maps store errors to the p2p sentinels relays and peers expect.
func p2pError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", p2p.ErrNotFound, err)
	case errors.Is(err, store.ErrQuotaExceeded):
		return fmt.Errorf("%w: %w", p2p.ErrQuotaExceeded, err)
	case errors.Is(err, store.ErrInvalid):
		return fmt.Errorf("%w: %w", p2p.ErrBadRequest, err)
	case errors.Is(err, store.ErrClosed):
		return fmt.Errorf("%w: %w", p2p.ErrUnavailable, err)
	}
	return err
}

// quotaExceeded reports whether count items of bytes total break q (zero
// fields: no limit), like p2p's own stores.
func quotaExceeded(q p2p.Quota, count, bytes int64) bool {
	return (q.Count > 0 && count > int64(q.Count)) || (q.Bytes > 0 && bytes > q.Bytes)
}

func peerOf(s string) (peer.ID, error) {
	if s == "" {
		return "", nil
	}
	id, err := peer.Decode(s)
	if err != nil {
		return "", fmt.Errorf("relay store: stored peer id %q: %w", s, err)
	}
	return id, nil
}

// ---------------------------------------------------------------------------
// TopicLog

// sqlTopicLog is a p2p.TopicLog on the store's relay frame log. It is safe
// for concurrent use.
type sqlTopicLog struct {
	db *store.DB
	// quota is the quota the store enforces.
	quota p2p.LogQuota
}

// Append implements p2p.TopicLog.
func (l *sqlTopicLog) Append(ctx context.Context, topic string, e p2p.LogEntry, q p2p.LogQuota) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if q != l.quota {
		return 0, fmt.Errorf("relay store: topic quota %+v differs from the %+v the store was opened with", q, l.quota)
	}
	if e.ID != p2p.IDOf(e.Data) {
		return 0, fmt.Errorf("%w: log entry id is not the SHA-256 of its data", p2p.ErrBadRequest)
	}
	if e.Epoch > math.MaxInt64 {
		return 0, fmt.Errorf("%w: epoch %d out of range", p2p.ErrBadRequest, e.Epoch)
	}
	epoch := e.Epoch
	seq, _, err := l.db.AppendFrame(ctx, store.Frame{Topic: topic, Epoch: &epoch, Data: e.Data, ReceivedAt: e.Received})
	if err != nil {
		return 0, p2pError(err)
	}
	return uint64(seq), nil
}

// List implements p2p.TopicLog.
func (l *sqlTopicLog) List(ctx context.Context, topic string, q p2p.LogQuery) ([]p2p.LogEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%w: limit must be positive", p2p.ErrBadRequest)
	}
	if q.After > math.MaxInt64 || q.MinEpoch > math.MaxInt64 {
		return nil, nil // no stored seq or epoch is that large
	}
	minEpoch := q.MinEpoch
	fq := store.FrameQuery{AfterSeq: int64(q.After), MinEpoch: &minEpoch}
	var out []p2p.LogEntry
	for len(out) < q.Limit {
		fq.Limit = min(q.Limit-len(out), frameBatch)
		frames, err := l.db.Frames(ctx, topic, fq)
		if err != nil {
			return nil, p2pError(err)
		}
		for _, f := range frames {
			e := p2p.LogEntry{Seq: uint64(f.Seq), Data: f.Data, Received: f.ReceivedAt}
			if len(f.Hash) == len(e.ID) {
				copy(e.ID[:], f.Hash)
			} else {
				e.ID = p2p.IDOf(f.Data)
			}
			if f.Epoch != nil {
				e.Epoch = *f.Epoch
			}
			out = append(out, e)
			fq.AfterSeq = f.Seq
		}
		if len(frames) < fq.Limit {
			break
		}
	}
	return out, nil
}

// Prune implements p2p.TopicLog.
func (l *sqlTopicLog) Prune(ctx context.Context, before time.Time) error {
	_, err := l.db.PruneFrames(ctx, before)
	return p2pError(err)
}

// ---------------------------------------------------------------------------
// LeaseStore

// sqlLeaseStore is a p2p.LeaseStore on the store's topic keeps. It is safe
// for concurrent use.
type sqlLeaseStore struct {
	db *store.DB
}

// PutLease implements p2p.LeaseStore.
func (s *sqlLeaseStore) PutLease(ctx context.Context, l p2p.Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p2pError(s.db.KeepTopic(ctx, store.TopicKeep{Topic: l.Topic, Peer: l.Peer.String(), Until: l.Until}))
}

// DeleteLease implements p2p.LeaseStore.
func (s *sqlLeaseStore) DeleteLease(ctx context.Context, topic string, p peer.ID) error {
	return p2pError(s.db.ReleaseTopic(ctx, topic, p.String()))
}

// Leases implements p2p.LeaseStore.
func (s *sqlLeaseStore) Leases(ctx context.Context, now time.Time) ([]p2p.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	keeps, err := s.db.KeptTopics(ctx, now)
	if err != nil {
		return nil, p2pError(err)
	}
	out := make([]p2p.Lease, 0, len(keeps))
	for _, k := range keeps {
		p, err := peerOf(k.Peer)
		if err != nil {
			return nil, err
		}
		out = append(out, p2p.Lease{Topic: k.Topic, Peer: p, Until: k.Until})
	}
	return out, nil
}

// Prune implements p2p.LeaseStore.
func (s *sqlLeaseStore) Prune(ctx context.Context, now time.Time) error {
	_, err := s.db.PruneTopicKeeps(ctx, now)
	return p2pError(err)
}

// ---------------------------------------------------------------------------
// Mailbox

// sqlMailbox is a p2p.Mailbox on the store's relay mailboxes. It is safe
// for concurrent use; it assumes it is the only writer of the mailboxes
// (the store's profile lock keeps other processes out).
type sqlMailbox struct {
	db *store.DB
	mu sync.Mutex // makes Deposit's quota check and insert atomic
}

// allMail lists every item of recipient's mailbox, expired or not (an item
// is unexpired at the zero time unless it expired before 1970).
func (m *sqlMailbox) allMail(ctx context.Context, recipient string) ([]store.MailItem, error) {
	items, err := m.db.PeekMail(ctx, recipient, time.Time{}, maxRelayMailboxItems)
	return items, p2pError(err)
}

// Deposit implements p2p.Mailbox.
func (m *sqlMailbox) Deposit(ctx context.Context, item p2p.MailItem, q p2p.MailQuota) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if item.ID != p2p.IDOf(item.Data) {
		return fmt.Errorf("%w: mail id is not the SHA-256 of its data", p2p.ErrBadRequest)
	}
	recipient, from := item.Recipient.String(), item.From.String()
	size := int64(len(item.Data))

	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := m.db.MailboxUsage(ctx, recipient)
	if err != nil {
		return p2pError(err)
	}
	var fromItems, fromBytes int64
	if u.Items > 0 {
		items, err := m.allMail(ctx, recipient)
		if err != nil {
			return err
		}
		for _, it := range items {
			if sha256.Sum256(it.Data) == item.ID {
				return nil // already there
			}
			if it.Sender == from {
				fromItems++
				fromBytes += int64(len(it.Data))
			}
		}
	}
	if quotaExceeded(q.PerRecipient, u.Items+1, u.Bytes+size) {
		return fmt.Errorf("%w: mailbox of recipient is full", p2p.ErrQuotaExceeded)
	}
	if quotaExceeded(q.PerSender, fromItems+1, fromBytes+size) {
		return fmt.Errorf("%w: sender's share of the mailbox is full", p2p.ErrQuotaExceeded)
	}
	if q.SenderTotal != (p2p.Quota{}) {
		su, err := m.db.SenderMailUsage(ctx, from)
		if err != nil {
			return p2pError(err)
		}
		if quotaExceeded(q.SenderTotal, su.Items+1, su.Bytes+size) {
			return fmt.Errorf("%w: sender has too much mail waiting", p2p.ErrQuotaExceeded)
		}
	}
	if q.Total != (p2p.Quota{}) {
		tu, err := m.db.MailTotals(ctx)
		if err != nil {
			return p2pError(err)
		}
		if quotaExceeded(q.Total, tu.Items+1, tu.Bytes+size) {
			return fmt.Errorf("%w: the relay's mailboxes are full", p2p.ErrQuotaExceeded)
		}
	}
	_, err = m.db.Deposit(ctx, store.MailItem{
		Recipient:   recipient,
		Sender:      from,
		Data:        item.Data,
		DepositedAt: item.Deposited,
		ExpiresAt:   item.Expires, // zero: never (the store's MailTTL is off)
	})
	return p2pError(err)
}

// Fetch implements p2p.Mailbox.
func (m *sqlMailbox) Fetch(ctx context.Context, recipient peer.ID, now time.Time, limit int) ([]p2p.MailItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	items, err := m.db.PeekMail(ctx, recipient.String(), now, limit)
	if err != nil {
		return nil, p2pError(err)
	}
	out := make([]p2p.MailItem, 0, len(items))
	for _, it := range items {
		from, err := peerOf(it.Sender)
		if err != nil {
			return nil, err
		}
		out = append(out, p2p.MailItem{
			ID:        p2p.IDOf(it.Data),
			Recipient: recipient,
			From:      from,
			Data:      it.Data,
			Deposited: it.DepositedAt,
			Expires:   it.ExpiresAt,
		})
	}
	return out, nil
}

// Delete implements p2p.Mailbox.
func (m *sqlMailbox) Delete(ctx context.Context, recipient peer.ID, ids []p2p.MessageID) error {
	if len(ids) == 0 {
		return nil
	}
	r := recipient.String()
	items, err := m.allMail(ctx, r)
	if err != nil {
		return err
	}
	drop := make(map[p2p.MessageID]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	var rows []int64
	for _, it := range items {
		if drop[p2p.IDOf(it.Data)] {
			rows = append(rows, it.ID)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	return p2pError(m.db.AckMail(ctx, r, rows...))
}

// Prune implements p2p.Mailbox.
func (m *sqlMailbox) Prune(ctx context.Context, now time.Time) error {
	_, err := m.db.PruneMail(ctx, now)
	return p2pError(err)
}

// ---------------------------------------------------------------------------
// KeyPackageCache

// sqlKeyPackageCache is a p2p.KeyPackageCache on the store's relay
// KeyPackage cache. It is safe for concurrent use.
type sqlKeyPackageCache struct {
	db *store.DB
	// quota is the per-owner quota the store enforces.
	quota p2p.Quota
}

// Put implements p2p.KeyPackageCache.
func (c *sqlKeyPackageCache) Put(ctx context.Context, owner peer.ID, kps []p2p.KeyPackage, expires time.Time, q p2p.Quota) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if q != c.quota {
		return 0, fmt.Errorf("relay store: KeyPackage quota %+v differs from the %+v the store was opened with", q, c.quota)
	}
	batch := make([]store.CachedKeyPackage, 0, len(kps))
	for _, kp := range kps {
		if len(kp.Data) == 0 {
			return 0, fmt.Errorf("%w: empty KeyPackage", p2p.ErrBadRequest)
		}
		id := p2p.IDOf(kp.Data)
		batch = append(batch, store.CachedKeyPackage{
			Ref: id[:], CipherSuite: kp.CipherSuite, Data: kp.Data, LastResort: kp.LastResort, ExpiresAt: expires,
		})
	}
	o := owner.String()
	if len(batch) > 0 {
		if err := c.db.PublishKeyPackages(ctx, o, batch...); err != nil {
			return 0, p2pError(err)
		}
	}
	// Every stored package counts, expired or not, as in p2p's stores.
	u, err := c.db.KeyPackageUsage(ctx, o)
	if err != nil {
		return 0, p2pError(err)
	}
	return int(u.Items), nil
}

// Take implements p2p.KeyPackageCache.
func (c *sqlKeyPackageCache) Take(ctx context.Context, owner peer.ID, suite uint16, now time.Time) (p2p.KeyPackage, error) {
	if err := ctx.Err(); err != nil {
		return p2p.KeyPackage{}, err
	}
	kp, err := c.db.TakeKeyPackage(ctx, owner.String(), suite, now)
	if err != nil {
		return p2p.KeyPackage{}, p2pError(err)
	}
	return p2p.KeyPackage{Data: kp.Data, CipherSuite: kp.CipherSuite, LastResort: kp.LastResort}, nil
}

// LastResort implements p2p.KeyPackageCache.
func (c *sqlKeyPackageCache) LastResort(ctx context.Context, owner peer.ID, suite uint16, now time.Time) (p2p.KeyPackage, error) {
	if err := ctx.Err(); err != nil {
		return p2p.KeyPackage{}, err
	}
	kp, err := c.db.LastResortKeyPackage(ctx, owner.String(), suite, now)
	if err != nil {
		return p2p.KeyPackage{}, p2pError(err)
	}
	return p2p.KeyPackage{Data: kp.Data, CipherSuite: kp.CipherSuite, LastResort: true}, nil
}

// Prune implements p2p.KeyPackageCache.
func (c *sqlKeyPackageCache) Prune(ctx context.Context, now time.Time) error {
	_, err := c.db.PruneKeyPackages(ctx, now)
	return p2pError(err)
}

var (
	_ p2p.TopicLog        = (*sqlTopicLog)(nil)
	_ p2p.LeaseStore      = (*sqlLeaseStore)(nil)
	_ p2p.Mailbox         = (*sqlMailbox)(nil)
	_ p2p.KeyPackageCache = (*sqlKeyPackageCache)(nil)
)
