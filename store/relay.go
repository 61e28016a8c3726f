package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Quotas bound what a relay stores for others. A zero field means no limit.
type Quotas struct {
	MaxFrameBytes           int           // largest frame accepted
	TopicBytes              int64         // bytes kept per topic; beyond it the oldest frames are evicted
	TopicLogBytes           int64         // bytes kept in all topics; beyond it the oldest frames of the largest topic are evicted
	PeerBytes               int64         // bytes of stored frames delivered by one peer
	MaxMailBytes            int           // largest mailbox item
	MailboxBytes            int64         // bytes waiting per recipient
	MailboxItems            int64         // items waiting per recipient
	SenderMailBytes         int64         // bytes waiting that one sender deposited
	MailTTL                 time.Duration // expiry of mail deposited without ExpiresAt
	KeyPackagesPerOwner     int           // packages held per owner
	KeyPackageBytesPerOwner int64         // bytes of the packages held per owner
	MaxKeyPackageBytes      int           // largest KeyPackage accepted
}

// DefaultQuotas suits a small community relay.
func DefaultQuotas() Quotas {
	return Quotas{
		MaxFrameBytes:           1 << 20,
		TopicBytes:              64 << 20,
		PeerBytes:               16 << 20,
		MaxMailBytes:            1 << 20,
		MailboxBytes:            8 << 20,
		MailboxItems:            1000,
		SenderMailBytes:         8 << 20,
		MailTTL:                 14 * 24 * time.Hour,
		KeyPackagesPerOwner:     100,
		KeyPackageBytesPerOwner: 1 << 20,
		MaxKeyPackageBytes:      64 << 10,
	}
}

const maxNameLen = 256

func checkName(what, s string) error {
	if s == "" || len(s) > maxNameLen {
		return fmt.Errorf("%w: %s must be 1 to %d bytes", ErrInvalid, what, maxNameLen)
	}
	return nil
}

func usage(ctx context.Context, q querier, scope, key string) (Usage, error) {
	var u Usage
	err := q.QueryRowContext(ctx, `SELECT bytes, items FROM relay_usage WHERE scope = ? AND key = ?`, scope, key).Scan(&u.Bytes, &u.Items)
	if errors.Is(err, sql.ErrNoRows) {
		return Usage{}, nil
	}
	return u, err
}

// ---------------------------------------------------------------------------
// TopicLog

// AppendFrame stores a frame; see TopicLog.
func (db *DB) AppendFrame(ctx context.Context, f Frame) (seq int64, inserted bool, err error) {
	if err := checkName("topic", f.Topic); err != nil {
		return 0, false, err
	}
	if len(f.Peer) > maxNameLen {
		return 0, false, fmt.Errorf("%w: peer id longer than %d bytes", ErrInvalid, maxNameLen)
	}
	if len(f.Data) == 0 {
		return 0, false, fmt.Errorf("%w: empty frame", ErrInvalid)
	}
	if f.Epoch != nil {
		if err := checkEpoch(*f.Epoch); err != nil {
			return 0, false, err
		}
	}
	quota := db.opts.quotas
	size := int64(len(f.Data))
	if quota.MaxFrameBytes > 0 && len(f.Data) > quota.MaxFrameBytes {
		return 0, false, fmt.Errorf("%w: frame of %d bytes exceeds the %d-byte limit", ErrQuotaExceeded, len(f.Data), quota.MaxFrameBytes)
	}
	hash := sha256.Sum256(f.Data)
	err = db.write(ctx, "append frame", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT seq FROM relay_frames WHERE topic = ? AND hash = ?`, f.Topic, hash[:]).Scan(&seq)
		if err == nil {
			return nil // already stored
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if quota.PeerBytes > 0 && f.Peer != "" {
			u, err := usage(ctx, tx, "peer", f.Peer)
			if err != nil {
				return err
			}
			if u.Bytes+size > quota.PeerBytes {
				return fmt.Errorf("%w: peer %s already has %d bytes stored (limit %d)", ErrQuotaExceeded, f.Peer, u.Bytes, quota.PeerBytes)
			}
		}
		if quota.TopicBytes > 0 {
			if size > quota.TopicBytes {
				return fmt.Errorf("%w: frame of %d bytes exceeds the topic limit of %d", ErrQuotaExceeded, size, quota.TopicBytes)
			}
			u, err := usage(ctx, tx, "topic", f.Topic)
			if err != nil {
				return err
			}
			if over := u.Bytes + size - quota.TopicBytes; over > 0 {
				if err := evictOldest(ctx, tx, f.Topic, over); err != nil {
					return err
				}
			}
		}
		if quota.TopicLogBytes > 0 {
			if size > quota.TopicLogBytes {
				return fmt.Errorf("%w: frame of %d bytes exceeds the log limit of %d", ErrQuotaExceeded, size, quota.TopicLogBytes)
			}
			if err := evictLargest(ctx, tx, quota.TopicLogBytes-size); err != nil {
				return err
			}
		}
		var epoch any
		if f.Epoch != nil {
			epoch = int64(*f.Epoch)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO relay_frames (topic, hash, epoch, peer, data, received_at) VALUES (?, ?, ?, ?, ?, ?)`,
			f.Topic, hash[:], epoch, f.Peer, f.Data, ts(db.orNow(f.ReceivedAt)))
		if err != nil {
			return err
		}
		seq, err = res.LastInsertId()
		inserted = true
		return err
	})
	if err != nil {
		return 0, false, err
	}
	return seq, inserted, nil
}

// evictLargest deletes the oldest frames of the largest topics until all
// topics together hold at most limit bytes: a flooded topic pays for its
// flood, not the quiet ones.
func evictLargest(ctx context.Context, tx *sql.Tx, limit int64) error {
	prev := int64(-1)
	for {
		var total int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(bytes), 0) FROM relay_usage WHERE scope = 'topic'`).Scan(&total); err != nil {
			return err
		}
		if total <= limit {
			return nil
		}
		if prev >= 0 && total >= prev {
			return fmt.Errorf("store: evicting frames freed nothing (%d bytes stored, limit %d)", total, limit)
		}
		prev = total
		var topic string
		var bytes int64
		err := tx.QueryRowContext(ctx, `SELECT key, bytes FROM relay_usage WHERE scope = 'topic' ORDER BY bytes DESC LIMIT 1`).Scan(&topic, &bytes)
		if err != nil {
			return err
		}
		// Free the excess, but no more than brings this topic down to the
		// next one's size would (approximately: at least one frame).
		if err := evictOldest(ctx, tx, topic, min(total-limit, max(bytes/2, 1))); err != nil {
			return err
		}
	}
}

// evictOldest deletes a topic's oldest frames until at least need bytes
// are freed.
func evictOldest(ctx context.Context, tx *sql.Tx, topic string, need int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT seq, length(data) FROM relay_frames WHERE topic = ? ORDER BY seq`, topic)
	if err != nil {
		return err
	}
	var last, freed int64
	for freed < need && rows.Next() {
		var n int64
		if err := rows.Scan(&last, &n); err != nil {
			rows.Close()
			return err
		}
		freed += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM relay_frames WHERE topic = ? AND seq <= ?`, topic, last)
	return err
}

// Frames lists a topic's frames after a cursor, oldest first.
func (db *DB) Frames(ctx context.Context, topic string, fq FrameQuery) ([]Frame, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	query := `SELECT seq, topic, hash, epoch, peer, data, received_at FROM relay_frames WHERE topic = ? AND seq > ?`
	args := []any{topic, fq.AfterSeq}
	if fq.MinEpoch != nil {
		if err := checkEpoch(*fq.MinEpoch); err != nil {
			return nil, err
		}
		query += ` AND (epoch IS NULL OR epoch >= ?)`
		args = append(args, int64(*fq.MinEpoch))
	}
	query += ` ORDER BY seq LIMIT ?`
	args = append(args, limitOr(fq.Limit, 100, 10000))
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, db.fail("frames", err)
	}
	defer rows.Close()
	var out []Frame
	for rows.Next() {
		var f Frame
		var epoch sql.NullInt64
		var received int64
		if err := rows.Scan(&f.Seq, &f.Topic, &f.Hash, &epoch, &f.Peer, &f.Data, &received); err != nil {
			return nil, db.fail("frames", err)
		}
		if epoch.Valid && epoch.Int64 >= 0 {
			e := uint64(epoch.Int64)
			f.Epoch = &e
		}
		f.ReceivedAt = fromTS(received)
		out = append(out, f)
	}
	return out, db.fail("frames", rows.Err())
}

func (db *DB) deleteCount(ctx context.Context, op, query string, args ...any) (int64, error) {
	var n int64
	err := db.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// PruneFrames deletes frames received before t.
func (db *DB) PruneFrames(ctx context.Context, before time.Time) (int64, error) {
	return db.deleteCount(ctx, "prune frames", `DELETE FROM relay_frames WHERE received_at < ?`, ts(before))
}

// TopicUsage reports what a topic stores.
func (db *DB) TopicUsage(ctx context.Context, topic string) (Usage, error) {
	q, err := db.read()
	if err != nil {
		return Usage{}, err
	}
	u, err := usage(ctx, q, "topic", topic)
	return u, db.fail("topic usage", err)
}

// PeerUsage reports the stored frames a peer delivered.
func (db *DB) PeerUsage(ctx context.Context, peer string) (Usage, error) {
	q, err := db.read()
	if err != nil {
		return Usage{}, err
	}
	u, err := usage(ctx, q, "peer", peer)
	return u, db.fail("peer usage", err)
}

// KeepTopic records, or replaces, a peer's request to keep a topic.
func (db *DB) KeepTopic(ctx context.Context, k TopicKeep) error {
	if err := checkName("topic", k.Topic); err != nil {
		return err
	}
	if err := checkName("peer", k.Peer); err != nil {
		return err
	}
	return db.write(ctx, "keep topic", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO relay_topics (topic, peer, until) VALUES (?, ?, ?)
			ON CONFLICT (topic, peer) DO UPDATE SET until = excluded.until`, k.Topic, k.Peer, ts(k.Until))
		return err
	})
}

// ReleaseTopic deletes peer's request to keep topic; an unknown request is
// no error.
func (db *DB) ReleaseTopic(ctx context.Context, topic, peer string) error {
	return db.write(ctx, "release topic", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM relay_topics WHERE topic = ? AND peer = ?`, topic, peer)
		return err
	})
}

// KeptTopics lists keep requests still valid at now (Until after now), by
// topic, then peer.
func (db *DB) KeptTopics(ctx context.Context, now time.Time) ([]TopicKeep, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT topic, peer, until FROM relay_topics WHERE until > ? ORDER BY topic, peer`, ts(now))
	if err != nil {
		return nil, db.fail("kept topics", err)
	}
	defer rows.Close()
	var out []TopicKeep
	for rows.Next() {
		var k TopicKeep
		var until int64
		if err := rows.Scan(&k.Topic, &k.Peer, &until); err != nil {
			return nil, db.fail("kept topics", err)
		}
		k.Until = fromTS(until)
		out = append(out, k)
	}
	return out, db.fail("kept topics", rows.Err())
}

// PruneTopicKeeps deletes keep requests that ended at or before now.
func (db *DB) PruneTopicKeeps(ctx context.Context, now time.Time) (int64, error) {
	return db.deleteCount(ctx, "prune topic keeps", `DELETE FROM relay_topics WHERE until <= ?`, ts(now))
}

// ---------------------------------------------------------------------------
// Mailbox

const mailColumns = `id, recipient, sender, data, deposited_at, expires_at`

// Deposit stores a mail item; see Mailbox.
func (db *DB) Deposit(ctx context.Context, m MailItem) (int64, error) {
	if err := checkName("recipient", m.Recipient); err != nil {
		return 0, err
	}
	if len(m.Sender) > maxNameLen {
		return 0, fmt.Errorf("%w: sender longer than %d bytes", ErrInvalid, maxNameLen)
	}
	if len(m.Data) == 0 {
		return 0, fmt.Errorf("%w: empty mail item", ErrInvalid)
	}
	quota := db.opts.quotas
	size := int64(len(m.Data))
	if quota.MaxMailBytes > 0 && len(m.Data) > quota.MaxMailBytes {
		return 0, fmt.Errorf("%w: mail item of %d bytes exceeds the %d-byte limit", ErrQuotaExceeded, len(m.Data), quota.MaxMailBytes)
	}
	deposited := db.orNow(m.DepositedAt)
	expires := m.ExpiresAt
	if expires.IsZero() && quota.MailTTL > 0 {
		expires = deposited.Add(quota.MailTTL)
	}
	hash := sha256.Sum256(m.Data)
	var id int64
	err := db.write(ctx, "deposit", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT id FROM relay_mail WHERE recipient = ? AND hash = ?`, m.Recipient, hash[:]).Scan(&id)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		u, err := usage(ctx, tx, "mailbox", m.Recipient)
		if err != nil {
			return err
		}
		if quota.MailboxItems > 0 && u.Items+1 > quota.MailboxItems {
			return fmt.Errorf("%w: mailbox of %s holds %d items (limit %d)", ErrQuotaExceeded, m.Recipient, u.Items, quota.MailboxItems)
		}
		if quota.MailboxBytes > 0 && u.Bytes+size > quota.MailboxBytes {
			return fmt.Errorf("%w: mailbox of %s holds %d bytes (limit %d)", ErrQuotaExceeded, m.Recipient, u.Bytes, quota.MailboxBytes)
		}
		if quota.SenderMailBytes > 0 && m.Sender != "" {
			s, err := usage(ctx, tx, "sender", m.Sender)
			if err != nil {
				return err
			}
			if s.Bytes+size > quota.SenderMailBytes {
				return fmt.Errorf("%w: sender %s has %d bytes waiting (limit %d)", ErrQuotaExceeded, m.Sender, s.Bytes, quota.SenderMailBytes)
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO relay_mail (recipient, sender, hash, data, deposited_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			m.Recipient, m.Sender, hash[:], m.Data, ts(deposited), ts(expires))
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

func scanMail(rows *sql.Rows) ([]MailItem, error) {
	defer rows.Close()
	var out []MailItem
	for rows.Next() {
		var m MailItem
		var dep, exp int64
		if err := rows.Scan(&m.ID, &m.Recipient, &m.Sender, &m.Data, &dep, &exp); err != nil {
			return nil, err
		}
		m.DepositedAt, m.ExpiresAt = fromTS(dep), fromTS(exp)
		out = append(out, m)
	}
	return out, rows.Err()
}

const unexpiredMail = `recipient = ? AND (expires_at = 0 OR expires_at > ?) ORDER BY id LIMIT ?`

// PeekMail returns unexpired items for recipient, oldest first.
func (db *DB) PeekMail(ctx context.Context, recipient string, now time.Time, limit int) ([]MailItem, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+mailColumns+` FROM relay_mail WHERE `+unexpiredMail, recipient, ts(now), limitOr(limit, 100, 10000))
	if err != nil {
		return nil, db.fail("peek mail", err)
	}
	out, err := scanMail(rows)
	return out, db.fail("peek mail", err)
}

// AckMail deletes delivered items.
func (db *DB) AckMail(ctx context.Context, recipient string, ids ...int64) error {
	return db.write(ctx, "ack mail", func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM relay_mail WHERE recipient = ? AND id = ?`, recipient, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// TakeMail returns and deletes up to limit items in one transaction.
func (db *DB) TakeMail(ctx context.Context, recipient string, now time.Time, limit int) ([]MailItem, error) {
	var out []MailItem
	err := db.write(ctx, "take mail", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+mailColumns+` FROM relay_mail WHERE `+unexpiredMail, recipient, ts(now), limitOr(limit, 100, 10000))
		if err != nil {
			return err
		}
		if out, err = scanMail(rows); err != nil {
			return err
		}
		for _, m := range out {
			if _, err := tx.ExecContext(ctx, `DELETE FROM relay_mail WHERE id = ?`, m.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MailboxUsage reports what waits for recipient.
func (db *DB) MailboxUsage(ctx context.Context, recipient string) (Usage, error) {
	q, err := db.read()
	if err != nil {
		return Usage{}, err
	}
	u, err := usage(ctx, q, "mailbox", recipient)
	return u, db.fail("mailbox usage", err)
}

// SenderMailUsage reports what one sender has waiting in all mailboxes.
func (db *DB) SenderMailUsage(ctx context.Context, sender string) (Usage, error) {
	q, err := db.read()
	if err != nil {
		return Usage{}, err
	}
	u, err := usage(ctx, q, "sender", sender)
	return u, db.fail("sender mail usage", err)
}

// MailTotals reports what waits in all mailboxes together.
func (db *DB) MailTotals(ctx context.Context) (Usage, error) {
	q, err := db.read()
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	err = q.QueryRowContext(ctx, `SELECT coalesce(sum(bytes), 0), coalesce(sum(items), 0) FROM relay_usage WHERE scope = 'mailbox'`).Scan(&u.Bytes, &u.Items)
	return u, db.fail("mail totals", err)
}

// PruneMail deletes items that expired at or before now.
func (db *DB) PruneMail(ctx context.Context, now time.Time) (int64, error) {
	return db.deleteCount(ctx, "prune mail", `DELETE FROM relay_mail WHERE expires_at <> 0 AND expires_at <= ?`, ts(now))
}

// ---------------------------------------------------------------------------
// KeyPackageCache

const cachedKPColumns = `owner, ref, cipher_suite, data, last_resort, published_at, expires_at`

// PublishKeyPackages stores KeyPackages for owner; see KeyPackageCache.
//
// In order, for each package: a ref owner already has stored is not stored
// again, but if the package is published as last-resort the stored row
// becomes the owner's last-resort package of its suite (replacing another
// one) and takes the new ExpiresAt: re-publishing a last-resort package
// refreshes it. A one-time package that was handed out (and has not
// expired) is ignored. A new last-resort package replaces the owner's
// previous one of its suite. The quotas apply to what owner holds once all
// packages are in, and only if something was added: over a quota, nothing
// changes.
func (db *DB) PublishKeyPackages(ctx context.Context, owner string, kps ...CachedKeyPackage) error {
	if err := checkName("owner", owner); err != nil {
		return err
	}
	quota := db.opts.quotas
	for _, kp := range kps {
		if kp.Owner != "" && kp.Owner != owner {
			return fmt.Errorf("%w: key package owned by %s published for %s", ErrInvalid, kp.Owner, owner)
		}
		if err := needID("key package ref", kp.Ref); err != nil {
			return err
		}
		if len(kp.Data) == 0 {
			return fmt.Errorf("%w: empty key package", ErrInvalid)
		}
		if quota.MaxKeyPackageBytes > 0 && len(kp.Data) > quota.MaxKeyPackageBytes {
			return fmt.Errorf("%w: key package of %d bytes exceeds the %d-byte limit", ErrQuotaExceeded, len(kp.Data), quota.MaxKeyPackageBytes)
		}
	}
	now := db.now()
	return db.write(ctx, "publish key packages", func(tx *sql.Tx) error {
		added := false
		for _, kp := range kps {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM relay_keypackages WHERE owner = ? AND ref = ?`, owner, kp.Ref).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				if kp.LastResort {
					if err := refreshLastResort(ctx, tx, owner, kp); err != nil {
						return err
					}
				}
				continue
			}
			if !kp.LastResort {
				// Handed out before. (An expired record still counts
				// until pruning deletes it, like an expired package.)
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM relay_keypackages_taken WHERE owner = ? AND ref = ?`, owner, kp.Ref).Scan(&n); err != nil {
					return err
				}
				if n > 0 {
					continue
				}
			} else if _, err := tx.ExecContext(ctx, `DELETE FROM relay_keypackages WHERE owner = ? AND cipher_suite = ? AND last_resort = 1`, owner, kp.CipherSuite); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO relay_keypackages (`+cachedKPColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				owner, kp.Ref, kp.CipherSuite, kp.Data, b2i(kp.LastResort), ts(orTime(kp.PublishedAt, now)), ts(kp.ExpiresAt)); err != nil {
				return err
			}
			added = true
		}
		if !added {
			return nil
		}
		u, err := usage(ctx, tx, "keypackages", owner)
		if err != nil {
			return err
		}
		if quota.KeyPackagesPerOwner > 0 && u.Items > int64(quota.KeyPackagesPerOwner) {
			return fmt.Errorf("%w: %s would hold %d key packages (limit %d)", ErrQuotaExceeded, owner, u.Items, quota.KeyPackagesPerOwner)
		}
		if quota.KeyPackageBytesPerOwner > 0 && u.Bytes > quota.KeyPackageBytesPerOwner {
			return fmt.Errorf("%w: %s would hold %d bytes of key packages (limit %d)", ErrQuotaExceeded, owner, u.Bytes, quota.KeyPackageBytesPerOwner)
		}
		return nil
	})
}

// refreshLastResort makes owner's stored package kp.Ref the last-resort
// package of kp.CipherSuite, expiring at kp.ExpiresAt.
func refreshLastResort(ctx context.Context, tx *sql.Tx, owner string, kp CachedKeyPackage) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM relay_keypackages WHERE owner = ? AND cipher_suite = ? AND last_resort = 1 AND ref <> ?`,
		owner, kp.CipherSuite, kp.Ref); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE relay_keypackages SET cipher_suite = ?, last_resort = 1, expires_at = ? WHERE owner = ? AND ref = ?`,
		kp.CipherSuite, ts(kp.ExpiresAt), owner, kp.Ref)
	return err
}

func orTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// TakeKeyPackage hands out one of owner's packages; see KeyPackageCache.
func (db *DB) TakeKeyPackage(ctx context.Context, owner string, suite uint16, now time.Time) (CachedKeyPackage, error) {
	var kp CachedKeyPackage
	err := db.write(ctx, "take key package", func(tx *sql.Tx) error {
		var published, expires int64
		var rowid int64
		err := tx.QueryRowContext(ctx, `SELECT rowid, `+cachedKPColumns+` FROM relay_keypackages
			WHERE owner = ? AND (? = 0 OR cipher_suite = ?) AND (expires_at = 0 OR expires_at > ?)
			ORDER BY last_resort, published_at, rowid LIMIT 1`, owner, suite, suite, ts(now)).
			Scan(&rowid, &kp.Owner, &kp.Ref, &kp.CipherSuite, &kp.Data, &kp.LastResort, &published, &expires)
		if err != nil {
			return err
		}
		kp.PublishedAt, kp.ExpiresAt = fromTS(published), fromTS(expires)
		if kp.LastResort {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM relay_keypackages WHERE rowid = ?`, rowid); err != nil {
			return err
		}
		// Remember the hand-out until the package would have expired (a
		// package that never expires is remembered for good).
		_, err = tx.ExecContext(ctx, `INSERT INTO relay_keypackages_taken (owner, ref, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (owner, ref) DO UPDATE SET expires_at =
				CASE WHEN expires_at = 0 OR excluded.expires_at = 0 THEN 0 ELSE max(expires_at, excluded.expires_at) END`,
			owner, kp.Ref, expires)
		return err
	})
	if err != nil {
		return CachedKeyPackage{}, err
	}
	return kp, nil
}

// LastResortKeyPackage returns owner's unexpired last-resort package of
// suite (0: the lowest suite), handing out no one-time package. None:
// ErrNotFound.
func (db *DB) LastResortKeyPackage(ctx context.Context, owner string, suite uint16, now time.Time) (CachedKeyPackage, error) {
	q, err := db.read()
	if err != nil {
		return CachedKeyPackage{}, err
	}
	var kp CachedKeyPackage
	var published, expires int64
	err = q.QueryRowContext(ctx, `SELECT `+cachedKPColumns+` FROM relay_keypackages
		WHERE owner = ? AND last_resort = 1 AND (? = 0 OR cipher_suite = ?) AND (expires_at = 0 OR expires_at > ?)
		ORDER BY cipher_suite LIMIT 1`, owner, suite, suite, ts(now)).
		Scan(&kp.Owner, &kp.Ref, &kp.CipherSuite, &kp.Data, &kp.LastResort, &published, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return CachedKeyPackage{}, fmt.Errorf("%w: no last-resort key package of %s", ErrNotFound, owner)
	}
	if err != nil {
		return CachedKeyPackage{}, db.fail("last-resort key package", err)
	}
	kp.PublishedAt, kp.ExpiresAt = fromTS(published), fromTS(expires)
	return kp, nil
}

// CountKeyPackages counts owner's unexpired packages.
func (db *DB) CountKeyPackages(ctx context.Context, owner string, now time.Time) (oneTime, lastResort int, err error) {
	q, err := db.read()
	if err != nil {
		return 0, 0, err
	}
	err = q.QueryRowContext(ctx, `SELECT coalesce(sum(last_resort = 0), 0), coalesce(sum(last_resort = 1), 0) FROM relay_keypackages
		WHERE owner = ? AND (expires_at = 0 OR expires_at > ?)`, owner, ts(now)).Scan(&oneTime, &lastResort)
	return oneTime, lastResort, db.fail("count key packages", err)
}

// KeyPackageUsage reports the packages stored for owner, expired or not
// (until pruned): what the per-owner quotas are checked against.
func (db *DB) KeyPackageUsage(ctx context.Context, owner string) (Usage, error) {
	q, err := db.read()
	if err != nil {
		return Usage{}, err
	}
	u, err := usage(ctx, q, "keypackages", owner)
	return u, db.fail("key package usage", err)
}

// PruneKeyPackages deletes packages that expired at or before now, and
// forgets handed-out packages that would have expired by now. It returns
// the number of packages deleted.
func (db *DB) PruneKeyPackages(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, "prune key packages", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM relay_keypackages WHERE expires_at <> 0 AND expires_at <= ?`, ts(now))
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM relay_keypackages_taken WHERE expires_at <> 0 AND expires_at <= ?`, ts(now))
		return err
	})
	return n, err
}
