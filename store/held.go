package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Held messages (see HeldMessage): written and deleted only inside
// CommitEpoch, beside the state whose ratchet opened them.

func heldAD(groupID, id []byte) []byte { return rowAD("held_messages", "payload", groupID, id) }

// maxHeldPerTransition bounds EpochTransition.HeldAdd and HeldDone (the
// chat engine holds at most 4,096 messages per group).
const maxHeldPerTransition = 1 << 16

// prepareHeld checks and seals a transition's held messages before the
// write.
func (db *DB) prepareHeld(groupID []byte, add []HeldMessage, done [][]byte, at int64) ([][]any, error) {
	if len(add) > maxHeldPerTransition || len(done) > maxHeldPerTransition {
		return nil, fmt.Errorf("%w: %d held and %d released messages in one transition (at most %d)", ErrInvalid, len(add), len(done), maxHeldPerTransition)
	}
	rows := make([][]any, len(add))
	for i, h := range add {
		if len(h.GroupID) == 0 {
			h.GroupID = groupID
		} else if string(h.GroupID) != string(groupID) {
			return nil, fmt.Errorf("%w: held message %x belongs to group %x, not to the transition's group %x", ErrInvalid, h.ID, h.GroupID, groupID)
		}
		if err := needID("held message id", h.ID); err != nil {
			return nil, err
		}
		if err := checkEpoch(h.Epoch); err != nil {
			return nil, err
		}
		if err := checkSecret("held message", h.Payload); err != nil {
			return nil, err
		}
		heldAt := at
		if !h.At.IsZero() {
			heldAt = ts(h.At)
		}
		rows[i] = []any{h.GroupID, h.ID, h.Sender, int64(h.Epoch), int64(h.Gen),
			db.seal.seal(heldAD(h.GroupID, h.ID), h.Payload), heldAt}
	}
	for _, id := range done {
		if err := needID("released message id", id); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// writeHeld inserts the prepared held rows (an id held already keeps its
// row) and deletes the released ones, in the transition's transaction.
func writeHeld(ctx context.Context, tx *sql.Tx, groupID []byte, add [][]any, done [][]byte) error {
	for _, r := range add {
		if _, err := tx.ExecContext(ctx, `INSERT INTO held_messages (group_id, msg_id, sender, epoch, gen, payload, held_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, msg_id) DO NOTHING`, r...); err != nil {
			return err
		}
	}
	for _, id := range done {
		if _, err := tx.ExecContext(ctx, `DELETE FROM held_messages WHERE group_id = ? AND msg_id = ?`, groupID, id); err != nil {
			return err
		}
	}
	return nil
}

// HeldMessages lists a group's held messages in the order they were held.
func (db *DB) HeldMessages(ctx context.Context, groupID []byte) ([]HeldMessage, error) {
	if err := needID("group id", groupID); err != nil {
		return nil, err
	}
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT msg_id, sender, epoch, gen, payload, held_at FROM held_messages
		WHERE group_id = ? ORDER BY held_at, rowid`, groupID)
	if err != nil {
		return nil, db.fail("held messages", err)
	}
	defer rows.Close()
	var out []HeldMessage
	for rows.Next() {
		h := HeldMessage{GroupID: groupID}
		var epoch, gen, at int64
		var sealed []byte
		if err := rows.Scan(&h.ID, &h.Sender, &epoch, &gen, &sealed, &at); err != nil {
			return nil, db.fail("held messages", err)
		}
		if epoch < 0 || gen < 0 || gen > 1<<32-1 {
			return nil, fmt.Errorf("%w: held message %x at epoch %d, generation %d", ErrCorrupt, h.ID, epoch, gen)
		}
		h.Epoch, h.Gen, h.At = uint64(epoch), uint32(gen), fromTS(at)
		if h.Payload, err = db.seal.open(heldAD(groupID, h.ID), sealed); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, db.fail("held messages", rows.Err())
}
