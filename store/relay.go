package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const maxNameLen = 256

func checkName(what, s string) error {
	if s == "" || len(s) > maxNameLen {
		return fmt.Errorf("%w: %s must be 1 to %d bytes", ErrInvalid, what, maxNameLen)
	}
	return nil
}

func usage(ctx context.Context, q querier, scope, key string) (Usage, error) {
	var u Usage
	err := q.QueryRowContext(ctx, sqlUsage, scope, key).Scan(&u.Bytes, &u.Items)
	if errors.Is(err, sql.ErrNoRows) {
		return Usage{}, nil
	}
	return u, err
}

// ---------------------------------------------------------------------------
// TopicLog

// AppendFrame stores f within q and returns its cursor. It is idempotent
// on (Topic, SHA-256(Data)): for a frame the topic holds it returns the
// existing Seq and inserted=false. A frame larger than
// q.MaxFrameBytes or either byte limit on its own, or one that would take
// its peer over q.PerPeer, is refused with ErrQuotaExceeded; otherwise
// the topic's oldest frames are evicted to keep q.PerTopic, and the
// largest topic's oldest to keep q.Total.
func (db *DB) AppendFrame(ctx context.Context, f Frame, q FrameQuota) (seq int64, inserted bool, err error) {
	if err := checkFrame(f, q); err != nil {
		return 0, false, err
	}
	db.prepareFrameLog(ctx)
	err = db.write(ctx, "append frame", func(tx *sql.Tx) error {
		seq, inserted, err = db.appendFrameTx(statementContext(ctx), db.cached(tx), f, q)
		return err
	})
	if err != nil {
		return 0, false, err
	}
	return seq, inserted, nil
}

// checkFrame refuses a frame before any write: in the transaction a frame
// is refused only before anything is written for it (AppendFrames goes on
// with the next frame).
func checkFrame(f Frame, q FrameQuota) error {
	if err := checkName("topic", f.Topic); err != nil {
		return err
	}
	if len(f.Peer) > maxNameLen {
		return fmt.Errorf("%w: peer id longer than %d bytes", ErrInvalid, maxNameLen)
	}
	if len(f.Data) == 0 {
		return fmt.Errorf("%w: empty frame", ErrInvalid)
	}
	if f.Epoch != nil {
		if err := checkEpoch(*f.Epoch); err != nil {
			return err
		}
	}
	size := int64(len(f.Data))
	if q.MaxFrameBytes > 0 && len(f.Data) > q.MaxFrameBytes {
		return fmt.Errorf("%w: frame of %d bytes exceeds the %d-byte limit", ErrQuotaExceeded, len(f.Data), q.MaxFrameBytes)
	}
	for _, l := range []Limit{q.PerTopic, q.Total} {
		if l.Bytes > 0 && size > l.Bytes {
			return fmt.Errorf("%w: frame of %d bytes exceeds the log limit of %d", ErrQuotaExceeded, size, l.Bytes)
		}
	}
	return nil
}

// appendFrameTx stores a checked frame inside tx (AppendFrame,
// AppendFrames).
func (db *DB) appendFrameTx(ctx context.Context, cq *cachedTx, f Frame, q FrameQuota) (seq int64, inserted bool, err error) {
	size := int64(len(f.Data))
	hash := sha256.Sum256(f.Data)
	tx := cq.tx
	err = func() error {
		err := cq.QueryRowContext(ctx, sqlFrameByHash, f.Topic, hash[:]).Scan(&seq)
		if err == nil {
			return nil // already stored
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if q.PerPeer != (Limit{}) {
			u, err := usage(ctx, cq, "peer", f.Peer)
			if err != nil {
				return err
			}
			if q.PerPeer.exceeded(u.Items+1, u.Bytes+size) {
				return fmt.Errorf("%w: peer %s already has %d bytes in %d frames stored", ErrQuotaExceeded, f.Peer, u.Bytes, u.Items)
			}
		}
		if q.PerTopic != (Limit{}) {
			u, err := usage(ctx, cq, "topic", f.Topic)
			if err != nil {
				return err
			}
			if q.PerTopic.exceeded(u.Items+1, u.Bytes+size) {
				if err := evictOldest(ctx, tx, f.Topic, excess(q.PerTopic, u, size)); err != nil {
					return err
				}
			}
		}
		if q.Total != (Limit{}) {
			if err := evictLargest(ctx, tx, q.Total, size); err != nil {
				return err
			}
		}
		var epoch any
		if f.Epoch != nil {
			epoch = int64(*f.Epoch)
		}
		res, err := cq.ExecContext(ctx, sqlInsertFrame,
			f.Topic, hash[:], epoch, f.Peer, f.Data, ts(db.orNow(f.ReceivedAt)))
		if err != nil {
			return err
		}
		seq, err = res.LastInsertId()
		inserted = true
		return err
	}()
	if err != nil {
		return 0, false, err
	}
	return seq, inserted, nil
}

// excess is what must go from u so that one more item of size fits in l.
func excess(l Limit, u Usage, size int64) Usage {
	var need Usage
	if l.Items > 0 {
		need.Items = max(u.Items+1-l.Items, 0)
	}
	if l.Bytes > 0 {
		need.Bytes = max(u.Bytes+size-l.Bytes, 0)
	}
	return need
}

// evictLargest deletes the oldest frames of the largest topics until one
// more frame of size fits in limit: a flooded topic pays for its flood,
// not the quiet ones.
func evictLargest(ctx context.Context, tx *sql.Tx, limit Limit, size int64) error {
	prev := Usage{Items: -1}
	for {
		var total Usage
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(bytes), 0), coalesce(sum(items), 0) FROM relay_usage WHERE scope = 'topic'`).Scan(&total.Bytes, &total.Items); err != nil {
			return err
		}
		if !limit.exceeded(total.Items+1, total.Bytes+size) {
			return nil
		}
		if prev.Items >= 0 && total.Items >= prev.Items {
			return fmt.Errorf("store: evicting frames freed nothing (%d frames, %d bytes stored)", total.Items, total.Bytes)
		}
		prev = total
		var topic string
		var largest Usage
		err := tx.QueryRowContext(ctx, `SELECT key, bytes, items FROM relay_usage WHERE scope = 'topic' ORDER BY bytes DESC LIMIT 1`).Scan(&topic, &largest.Bytes, &largest.Items)
		if err != nil {
			return err
		}
		// Free the excess, but no more than about half of this topic
		// (at least one frame), so the next largest pays its share.
		need := excess(limit, total, size)
		need.Items = min(need.Items, max(largest.Items/2, 1))
		need.Bytes = min(need.Bytes, max(largest.Bytes/2, 1))
		if err := evictOldest(ctx, tx, topic, need); err != nil {
			return err
		}
	}
}

// evictOldest deletes a topic's oldest frames until at least need.Items
// frames and need.Bytes bytes are freed (or the topic is empty).
func evictOldest(ctx context.Context, tx *sql.Tx, topic string, need Usage) error {
	rows, err := tx.QueryContext(ctx, `SELECT seq, length(data) FROM relay_frames WHERE topic = ? ORDER BY seq`, topic)
	if err != nil {
		return err
	}
	var last int64
	var freed Usage
	for (freed.Items < need.Items || freed.Bytes < need.Bytes) && rows.Next() {
		var n int64
		if err := rows.Scan(&last, &n); err != nil {
			rows.Close()
			return err
		}
		freed.Items++
		freed.Bytes += n
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

// Deposit stores m for m.Recipient within q and returns its id. It is
// idempotent per recipient on SHA-256(Data): depositing what the mailbox
// holds returns the existing id. Beyond any bound of q it stores nothing
// and fails with ErrQuotaExceeded.
func (db *DB) Deposit(ctx context.Context, m MailItem, q MailQuota) (int64, error) {
	if err := checkName("recipient", m.Recipient); err != nil {
		return 0, err
	}
	if len(m.Sender) > maxNameLen {
		return 0, fmt.Errorf("%w: sender longer than %d bytes", ErrInvalid, maxNameLen)
	}
	if len(m.Data) == 0 {
		return 0, fmt.Errorf("%w: empty mail item", ErrInvalid)
	}
	size := int64(len(m.Data))
	if q.MaxItemBytes > 0 && len(m.Data) > q.MaxItemBytes {
		return 0, fmt.Errorf("%w: mail item of %d bytes exceeds the %d-byte limit", ErrQuotaExceeded, len(m.Data), q.MaxItemBytes)
	}
	deposited := db.orNow(m.DepositedAt)
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
		if err := checkMailQuota(ctx, tx, m, size, q); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO relay_mail (recipient, sender, hash, data, deposited_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			m.Recipient, m.Sender, hash[:], m.Data, ts(deposited), ts(m.ExpiresAt))
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

// checkMailQuota fails with ErrQuotaExceeded if m, of size bytes, does not
// fit in q. It runs in the deposit's transaction, so check and insert are
// atomic.
func checkMailQuota(ctx context.Context, tx *sql.Tx, m MailItem, size int64, q MailQuota) error {
	checks := []struct {
		limit Limit
		what  string
		usage func() (Usage, error)
	}{
		{q.PerRecipient, "mailbox of recipient is full", func() (Usage, error) { return usage(ctx, tx, "mailbox", m.Recipient) }},
		{q.PerSender, "sender's share of the mailbox is full", func() (Usage, error) {
			var u Usage
			err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(length(data)), 0) FROM relay_mail WHERE recipient = ? AND sender = ?`,
				m.Recipient, m.Sender).Scan(&u.Items, &u.Bytes)
			return u, err
		}},
		{q.SenderTotal, "sender has too much mail waiting", func() (Usage, error) { return usage(ctx, tx, "sender", m.Sender) }},
		{q.Total, "the relay's mailboxes are full", func() (Usage, error) { return mailTotals(ctx, tx) }},
	}
	for _, c := range checks {
		if c.limit == (Limit{}) {
			continue
		}
		u, err := c.usage()
		if err != nil {
			return err
		}
		if c.limit.exceeded(u.Items+1, u.Bytes+size) {
			return fmt.Errorf("%w: %s (%d items, %d bytes)", ErrQuotaExceeded, c.what, u.Items, u.Bytes)
		}
	}
	return nil
}

func mailTotals(ctx context.Context, q querier) (Usage, error) {
	var u Usage
	err := q.QueryRowContext(ctx, `SELECT coalesce(sum(bytes), 0), coalesce(sum(items), 0) FROM relay_usage WHERE scope = 'mailbox'`).Scan(&u.Bytes, &u.Items)
	return u, err
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

// AckMailByHash deletes recipient's items whose data has one of the given
// SHA-256 hashes (the content ids relays use); unknown hashes are ignored.
func (db *DB) AckMailByHash(ctx context.Context, recipient string, hashes ...[]byte) error {
	return db.write(ctx, "ack mail", func(tx *sql.Tx) error {
		for _, h := range hashes {
			if _, err := tx.ExecContext(ctx, `DELETE FROM relay_mail WHERE recipient = ? AND hash = ?`, recipient, h); err != nil {
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
	u, err := mailTotals(ctx, q)
	return u, db.fail("mail totals", err)
}

// PruneMail deletes items that expired at or before now.
func (db *DB) PruneMail(ctx context.Context, now time.Time) (int64, error) {
	return db.deleteCount(ctx, "prune mail", `DELETE FROM relay_mail WHERE expires_at <> 0 AND expires_at <= ?`, ts(now))
}

// ---------------------------------------------------------------------------
// KeyPackageCache

const cachedKPColumns = `owner, ref, cipher_suite, data, last_resort, published_at, expires_at`

// PublishKeyPackages stores KeyPackages for owner within q.
//
// In order, for each package: a ref owner already has stored is not stored
// again, but if the package is published as last-resort the stored row
// becomes the owner's last-resort package of its suite (replacing another
// one) and takes the new ExpiresAt: re-publishing a last-resort package
// refreshes it. A one-time package that was handed out (and has not
// expired) is ignored. A new last-resort package replaces the owner's
// previous one of its suite. q.PerOwner applies to what owner holds once
// all packages are in, and only if something was added: over it, nothing
// changes (ErrQuotaExceeded).
func (db *DB) PublishKeyPackages(ctx context.Context, owner string, q KeyPackageQuota, kps ...CachedKeyPackage) error {
	if err := checkName("owner", owner); err != nil {
		return err
	}
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
		if q.MaxBytes > 0 && len(kp.Data) > q.MaxBytes {
			return fmt.Errorf("%w: key package of %d bytes exceeds the %d-byte limit", ErrQuotaExceeded, len(kp.Data), q.MaxBytes)
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
		if q.PerOwner.exceeded(u.Items, u.Bytes) {
			return fmt.Errorf("%w: %s would hold %d key packages of %d bytes", ErrQuotaExceeded, owner, u.Items, u.Bytes)
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

// TakeKeyPackage hands out one unexpired package of owner for suite (0:
// any): the oldest one-time package, deleted and recorded as handed out in
// the same transaction, or else the last-resort package, which is kept.
// None: ErrNotFound.
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
