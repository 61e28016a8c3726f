package relay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The relay keeps its topic log, keep-topic leases, mailboxes and
// KeyPackages in its SQLite store, behind p2p's relay storage contract
// (p2p.TopicLog, LeaseStore, Mailbox, KeyPackageCache; p2ptest checks every
// implementation against it). store and p2p do not import each other
// (DESIGN.md §1), so the types are mapped here; the semantics are the same
// on both sides and nothing is adapted:
//
//   - Ids. p2p names frames, mail and KeyPackages by content (p2p.IDOf, the
//     SHA-256 of the bytes); the store de-duplicates frames and mail on the
//     same SHA-256 and deletes mail by it. The implementations therefore
//     require id == p2p.IDOf(data) (p2p.Relay always builds them that way)
//     and recompute ids from the data they read back. A cached
//     KeyPackage's store Ref is its content id. Peer ids are stored as
//     their text form (peer.ID.String()).
//   - Cursors. LogEntry.Seq is the store's frame seq (AUTOINCREMENT: it only
//     grows, also across pruning and restarts). It is one counter for all
//     topics, so a topic's sequence numbers increase but have gaps and need
//     not start at 1; sync only uses them as an opaque cursor.
//   - Epochs. Every frame is stored with its epoch; the store's "no epoch"
//     (NULL) is never used, so its MinEpoch filter is p2p's. SQLite integers
//     are signed: a frame claiming an epoch above 2^63-1 is refused as a bad
//     request; cursors and epochs above it in queries match nothing.
//   - Leases. A p2p.Lease is a store.TopicKeep, with the same bounds: a
//     lease ending at now is over.
//   - Quotas. Both sides take the quota with every call (a p2p.Quota is a
//     store.Limit), so the store holds no quota policy: the relay's
//     p2p.Quotas, with defaults filled in by Quotas.WithDefaults, are the
//     only one. Mail quotas are checked in the deposit's transaction.
//   - Errors. store.ErrNotFound, ErrQuotaExceeded, ErrInvalid and ErrClosed
//     become p2p.ErrNotFound, ErrQuotaExceeded, ErrBadRequest and
//     ErrUnavailable (the store error stays in the chain), which is what
//     p2p turns into the status a remote peer sees.

// frameBatch is the page size List reads the store with (store caps pages
// at 10000 rows; p2p asks for at most p2p.MaxSyncLimit+1). A variable so
// that tests can exercise paging.
var frameBatch = 1024

// sqlStore is a relay's SQLite store and its implementations of p2p's
// relay storage contract.
type sqlStore struct {
	db          *store.DB
	topicLog    *sqlTopicLog
	leases      *sqlLeaseStore
	mailbox     *sqlMailbox
	keyPackages *sqlKeyPackageCache
}

// openSQLStore opens (creating if needed) the relay's SQLite store in dir,
// protected by a key file (relays have no passphrase).
func openSQLStore(ctx context.Context, dir string) (*sqlStore, error) {
	db, err := store.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	return &sqlStore{
		db:          db,
		topicLog:    &sqlTopicLog{db: db},
		leases:      &sqlLeaseStore{db: db},
		mailbox:     &sqlMailbox{db: db},
		keyPackages: &sqlKeyPackageCache{db: db},
	}, nil
}

// Close closes the database. Close the relay first.
func (s *sqlStore) Close() error { return s.db.Close() }

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

// limit is q as the store spells it.
func limit(q p2p.Quota) store.Limit { return store.Limit{Items: int64(q.Count), Bytes: q.Bytes} }

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
}

// Append implements p2p.TopicLog.
func (l *sqlTopicLog) Append(ctx context.Context, topic string, e p2p.LogEntry, q p2p.LogQuota) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if e.ID != p2p.IDOf(e.Data) {
		return 0, fmt.Errorf("%w: log entry id is not the SHA-256 of its data", p2p.ErrBadRequest)
	}
	if e.Epoch > math.MaxInt64 {
		return 0, fmt.Errorf("%w: epoch %d out of range", p2p.ErrBadRequest, e.Epoch)
	}
	epoch := e.Epoch
	seq, _, err := l.db.AppendFrame(ctx, store.Frame{Topic: topic, Epoch: &epoch, Data: e.Data, ReceivedAt: e.Received},
		store.FrameQuota{PerTopic: limit(q.PerTopic), Total: limit(q.Total)})
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
// for concurrent use.
type sqlMailbox struct {
	db *store.DB
}

// Deposit implements p2p.Mailbox.
func (m *sqlMailbox) Deposit(ctx context.Context, item p2p.MailItem, q p2p.MailQuota) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if item.ID != p2p.IDOf(item.Data) {
		return fmt.Errorf("%w: mail id is not the SHA-256 of its data", p2p.ErrBadRequest)
	}
	_, err := m.db.Deposit(ctx, store.MailItem{
		Recipient:   item.Recipient.String(),
		Sender:      item.From.String(),
		Data:        item.Data,
		DepositedAt: item.Deposited,
		ExpiresAt:   item.Expires,
	}, store.MailQuota{
		PerRecipient: limit(q.PerRecipient),
		PerSender:    limit(q.PerSender),
		SenderTotal:  limit(q.SenderTotal),
		Total:        limit(q.Total),
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
	hashes := make([][]byte, len(ids))
	for i := range ids {
		hashes[i] = ids[i][:]
	}
	return p2pError(m.db.AckMailByHash(ctx, recipient.String(), hashes...))
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
}

// Put implements p2p.KeyPackageCache.
func (c *sqlKeyPackageCache) Put(ctx context.Context, owner peer.ID, kps []p2p.KeyPackage, expires time.Time, q p2p.Quota) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
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
		if err := c.db.PublishKeyPackages(ctx, o, store.KeyPackageQuota{PerOwner: limit(q)}, batch...); err != nil {
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
