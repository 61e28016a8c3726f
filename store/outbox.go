package store

import (
	"context"
	"database/sql"
	"time"
)

const outboxColumns = `group_id, id, kind, epoch, payload, wire, attempts, created_at, last_attempt_at`

func outboxAD(groupID, id []byte) []byte { return rowAD("outbox", "payload", groupID, id) }

func (db *DB) enqueue(ctx context.Context, tx *sql.Tx, e OutboxEntry) error {
	if err := needID("group id", e.GroupID); err != nil {
		return err
	}
	if err := needID("outbox id", e.ID); err != nil {
		return err
	}
	if err := checkEpoch(e.Epoch); err != nil {
		return err
	}
	if err := checkSecret("outbox payload", e.Payload); err != nil {
		return err
	}
	payload := db.seal.sealOpt(outboxAD(e.GroupID, e.ID), e.Payload)
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (`+outboxColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (group_id, id) DO UPDATE SET kind = excluded.kind, epoch = excluded.epoch, payload = excluded.payload,
			wire = excluded.wire, attempts = excluded.attempts, last_attempt_at = excluded.last_attempt_at`,
		e.GroupID, e.ID, e.Kind, int64(e.Epoch), payload, e.Wire, e.Attempts, ts(db.orNow(e.CreatedAt)), ts(e.LastAttemptAt))
	return err
}

func settleOutbox(ctx context.Context, tx *sql.Tx, groupID []byte, ids [][]byte) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE group_id = ? AND id = ?`, nz(groupID), nz(id)); err != nil {
			return err
		}
	}
	return nil
}

// Enqueue adds e, or replaces the entry with the same (GroupID, ID). The
// group must exist.
func (db *DB) Enqueue(ctx context.Context, e OutboxEntry) error {
	return db.write(ctx, "enqueue", func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, e.GroupID); err != nil {
			return err
		}
		return db.enqueue(ctx, tx, e)
	})
}

// Outbox lists a group's entries (nil groupID: all groups), oldest first.
func (db *DB) Outbox(ctx context.Context, groupID []byte) ([]OutboxEntry, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	var rows *sql.Rows
	if groupID == nil {
		rows, err = q.QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox ORDER BY rowid`)
	} else {
		rows, err = q.QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE group_id = ? ORDER BY rowid`, groupID)
	}
	if err != nil {
		return nil, db.fail("outbox", err)
	}
	defer rows.Close()
	var out []OutboxEntry
	for rows.Next() {
		var e OutboxEntry
		var payload []byte
		var created, last int64
		if err := rows.Scan(&e.GroupID, &e.ID, &e.Kind, &e.Epoch, &payload, &e.Wire, &e.Attempts, &created, &last); err != nil {
			return nil, db.fail("outbox", err)
		}
		if e.Payload, err = db.seal.openOpt(outboxAD(e.GroupID, e.ID), payload); err != nil {
			return nil, err
		}
		e.CreatedAt, e.LastAttemptAt = fromTS(created), fromTS(last)
		out = append(out, e)
	}
	return out, db.fail("outbox", rows.Err())
}

// MarkAttempt records a send attempt.
func (db *DB) MarkAttempt(ctx context.Context, groupID, id []byte, epoch uint64, wire []byte, at time.Time) error {
	if err := checkEpoch(epoch); err != nil {
		return err
	}
	return db.write(ctx, "mark attempt", func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if wire != nil {
			res, err = tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?, wire = ?, epoch = ? WHERE group_id = ? AND id = ?`,
				ts(db.orNow(at)), wire, int64(epoch), nz(groupID), nz(id))
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ? WHERE group_id = ? AND id = ?`,
				ts(db.orNow(at)), nz(groupID), nz(id))
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// Settle deletes outbox entries (absent ones are ignored).
func (db *DB) Settle(ctx context.Context, groupID []byte, ids ...[]byte) error {
	return db.write(ctx, "settle", func(tx *sql.Tx) error { return settleOutbox(ctx, tx, groupID, ids) })
}

func groupExists(ctx context.Context, tx *sql.Tx, id []byte) error {
	if err := needID("group id", id); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM groups WHERE id = ?`, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
