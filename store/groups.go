package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"time"
)

func stateAD(groupID []byte, epoch uint64, commit []byte) []byte {
	return rowAD("epoch_states", "state", groupID, u64(epoch), commit)
}

func infoAD(groupID []byte, epoch uint64, commit []byte) []byte {
	return rowAD("epoch_states", "info", groupID, u64(epoch), commit)
}

func checkEpoch(e uint64) error {
	if e > math.MaxInt64 {
		return fmt.Errorf("%w: epoch %d exceeds 2^63-1", ErrInvalid, e)
	}
	return nil
}

// CommitEpoch writes a state transition in one transaction; see GroupStore.
func (db *DB) CommitEpoch(ctx context.Context, t EpochTransition) (TransitionResult, error) {
	var res TransitionResult
	if err := t.check(); err != nil {
		return res, err
	}
	commit := nz(t.CommitHash)
	at := db.orNow(t.At)
	sealed := db.seal.seal(stateAD(t.GroupID, t.Epoch, commit), t.State)
	sealedInfo := db.seal.sealOpt(infoAD(t.GroupID, t.Epoch, commit), t.CommitInfo)
	msgs, err := db.prepareMessages(t.GroupID, t.Messages, at)
	if err != nil {
		return res, err
	}
	res.Frames, _, err = checkFrames(t.Frames, t.FrameQuota)
	if err != nil {
		return res, err
	}
	held, err := db.prepareHeld(t.GroupID, t.HeldAdd, t.HeldDone, ts(at))
	if err != nil {
		return res, err
	}
	outbox := make([]OutboxEntry, len(t.OutboxAdd))
	for i, e := range t.OutboxAdd {
		if len(e.GroupID) == 0 {
			e.GroupID = t.GroupID
		}
		outbox[i] = e
	}
	props := make([]Proposal, len(t.ProposalsAdd))
	for i, p := range t.ProposalsAdd {
		if len(p.GroupID) == 0 {
			p.GroupID = t.GroupID
		}
		props[i] = p
	}

	db.prepareCommitEpoch(ctx)
	if len(t.Frames) > 0 {
		db.prepareFrameLog(ctx)
	}
	err = db.write(ctx, "commit epoch", func(tx *sql.Tx) error {
		ctx := statementContext(ctx)
		cq := db.cached(tx)
		if err := db.writeTip(ctx, cq, &t, commit, sealed, sealedInfo, at); err != nil {
			return err
		}
		n, flags, err := insertMessagesFlags(ctx, cq, msgs)
		if err != nil {
			return err
		}
		res.MessagesInserted, res.Inserted = n, flags
		if err := db.appendFramesTx(ctx, cq, t.Frames, t.FrameQuota, res.Frames); err != nil {
			return err
		}
		if err := writeHeld(ctx, tx, t.GroupID, held, t.HeldDone); err != nil {
			return err
		}
		return db.writeTransitionRest(ctx, tx, &t, outbox, props)
	})
	if err != nil {
		return TransitionResult{}, err
	}
	return res, nil
}

// check validates a transition before anything is written.
func (t *EpochTransition) check() error {
	if err := needID("group id", t.GroupID); err != nil {
		return err
	}
	if len(t.State) == 0 {
		return fmt.Errorf("%w: empty state", ErrInvalid)
	}
	if err := checkSecret("state", t.State); err != nil {
		return err
	}
	if len(t.CommitHash) > maxIDLen {
		return fmt.Errorf("%w: commit hash of %d bytes", ErrInvalid, len(t.CommitHash))
	}
	if err := checkEpoch(t.Epoch); err != nil {
		return err
	}
	if err := checkEpoch(t.PruneBelow); err != nil {
		return err
	}
	if t.Group != nil && t.Group.Retention < 0 {
		return fmt.Errorf("%w: negative retention", ErrInvalid)
	}
	return nil
}

// writeTip writes the transition's state and, unless it is a retained
// (non-canonical) one, makes it the group's tip: the group row (created
// by the first transition), the canonical history.
func (db *DB) writeTip(ctx context.Context, cq *cachedTx, t *EpochTransition, commit, sealed, sealedInfo []byte, at time.Time) error {
	tx := cq.tx
	var exists int
	if err := cq.QueryRowContext(ctx, sqlGroupExists, t.GroupID).Scan(&exists); err != nil {
		return err
	}
	if exists == 0 {
		if t.Group == nil || t.Retained {
			return fmt.Errorf("%w: group %x does not exist (its first transition must set Group)", ErrNotFound, t.GroupID)
		}
		g := t.Group
		if _, err := tx.ExecContext(ctx, `INSERT INTO groups (id, name, retention, left_group, meta, epoch, commit_hash, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.GroupID, g.Name, int64(g.Retention), b2i(g.Left), g.Meta, int64(t.Epoch), commit, ts(orTime(g.CreatedAt, at)), ts(at)); err != nil {
			return err
		}
	} else if !t.Retained {
		if _, err := cq.ExecContext(ctx, sqlGroupTip,
			int64(t.Epoch), commit, ts(at), t.GroupID); err != nil {
			return err
		}
		if g := t.Group; g != nil {
			if _, err := cq.ExecContext(ctx, sqlGroupMeta,
				g.Name, int64(g.Retention), b2i(g.Left), g.Meta, t.GroupID); err != nil {
				return err
			}
		}
	}
	if _, err := cq.ExecContext(ctx, sqlPutState,
		t.GroupID, int64(t.Epoch), commit, sealed, sealedInfo, ts(at), ts(at)); err != nil {
		return err
	}
	if !t.Retained {
		if _, err := cq.ExecContext(ctx, sqlPutHistory,
			t.GroupID, int64(t.Epoch), commit, ts(at)); err != nil {
			return err
		}
		// Later epochs belonged to a branch that lost.
		if _, err := cq.ExecContext(ctx, sqlDropLaterHistory, t.GroupID, int64(t.Epoch)); err != nil {
			return err
		}
	}
	return nil
}

// writeTransitionRest writes what a transition settles besides the state
// and its messages: outbox and proposals, a consumed KeyPackage, an
// accepted invitation, pruned and discarded states.
func (db *DB) writeTransitionRest(ctx context.Context, tx *sql.Tx, t *EpochTransition, outbox []OutboxEntry, props []Proposal) error {
	if err := settleOutbox(ctx, tx, t.GroupID, t.OutboxDone); err != nil {
		return err
	}
	for _, e := range outbox {
		if err := db.enqueue(ctx, tx, e); err != nil {
			return err
		}
	}
	if err := deleteProposals(ctx, tx, t.GroupID, t.ProposalsDone); err != nil {
		return err
	}
	for _, p := range props {
		if err := db.putProposal(ctx, tx, p); err != nil {
			return err
		}
	}
	if len(t.ConsumedKeyPackage) > 0 {
		if err := consumeKeyPackage(ctx, tx, t.ConsumedKeyPackage); err != nil {
			return err
		}
	}
	if t.InvitationDone != "" {
		if err := deleteInvitation(ctx, tx, t.InvitationDone); err != nil {
			return err
		}
	}
	if t.PruneBelow > 0 {
		if _, err := deleteStatesBelow(ctx, tx, t.GroupID, t.PruneBelow); err != nil {
			return err
		}
	}
	for _, d := range t.Discard {
		if err := checkEpoch(d.Epoch); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM epoch_states WHERE group_id = ? AND epoch = ? AND commit_hash = ? AND NOT `+isCurrent,
			t.GroupID, int64(d.Epoch), nz(d.CommitHash)); err != nil {
			return err
		}
	}
	return nil
}

// isCurrent is true for the epoch_states row that is its group's current state.
const isCurrent = `EXISTS (SELECT 1 FROM groups g WHERE g.id = epoch_states.group_id
	AND g.epoch = epoch_states.epoch AND g.commit_hash = epoch_states.commit_hash)`

func deleteStatesBelow(ctx context.Context, tx *sql.Tx, groupID []byte, below uint64) (int64, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM epoch_states WHERE group_id = ? AND epoch < ? AND NOT `+isCurrent, groupID, int64(below))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

const groupColumns = `id, name, retention, left_group, meta, epoch, commit_hash, created_at, updated_at`

func scanGroup(sc interface{ Scan(...any) error }) (Group, error) {
	var g Group
	var retention, created, updated int64
	if err := sc.Scan(&g.ID, &g.Name, &retention, &g.Left, &g.Meta, &g.Epoch, &g.CommitHash, &created, &updated); err != nil {
		return Group{}, err
	}
	g.Retention, g.CreatedAt, g.UpdatedAt = time.Duration(retention), fromTS(created), fromTS(updated)
	return g, nil
}

// Group returns the group's row, or ErrNotFound.
func (db *DB) Group(ctx context.Context, id []byte) (Group, error) {
	q, err := db.read()
	if err != nil {
		return Group{}, err
	}
	g, err := scanGroup(q.QueryRowContext(ctx, `SELECT `+groupColumns+` FROM groups WHERE id = ?`, nz(id)))
	if err != nil {
		return Group{}, db.fail("group", err)
	}
	return g, nil
}

// ListGroups returns all groups ordered by name.
func (db *DB) ListGroups(ctx context.Context) ([]Group, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+groupColumns+` FROM groups ORDER BY name, id`)
	if err != nil {
		return nil, db.fail("list groups", err)
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, db.fail("list groups", err)
		}
		out = append(out, g)
	}
	return out, db.fail("list groups", rows.Err())
}

// UpdateGroup changes Name, Retention, Left and Meta.
func (db *DB) UpdateGroup(ctx context.Context, g Group) error {
	if g.Retention < 0 {
		return fmt.Errorf("%w: negative retention", ErrInvalid)
	}
	return db.write(ctx, "update group", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE groups SET name = ?, retention = ?, left_group = ?, meta = ?, updated_at = ? WHERE id = ?`,
			g.Name, int64(g.Retention), b2i(g.Left), g.Meta, ts(db.now()), nz(g.ID))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// DeleteGroup deletes the group and everything that belongs to it.
func (db *DB) DeleteGroup(ctx context.Context, id []byte) error {
	return db.write(ctx, "delete group", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM groups WHERE id = ?`, nz(id))
		return err
	})
}

func (db *DB) scanState(sc interface{ Scan(...any) error }) (EpochState, error) {
	var s EpochState
	var sealed, sealedInfo []byte
	var created, updated int64
	if err := sc.Scan(&s.GroupID, &s.Epoch, &s.CommitHash, &sealed, &sealedInfo, &created, &updated); err != nil {
		return EpochState{}, err
	}
	st, err := db.seal.open(stateAD(s.GroupID, s.Epoch, nz(s.CommitHash)), sealed)
	if err != nil {
		return EpochState{}, err
	}
	info, err := db.seal.openOpt(infoAD(s.GroupID, s.Epoch, nz(s.CommitHash)), sealedInfo)
	if err != nil {
		return EpochState{}, err
	}
	s.State, s.Info, s.CreatedAt, s.UpdatedAt = st, info, fromTS(created), fromTS(updated)
	return s, nil
}

// CurrentState returns the group's current state, or ErrNotFound.
func (db *DB) CurrentState(ctx context.Context, groupID []byte) (EpochState, error) {
	q, err := db.read()
	if err != nil {
		return EpochState{}, err
	}
	s, err := db.scanState(q.QueryRowContext(ctx, `SELECT s.group_id, s.epoch, s.commit_hash, s.state, s.info, s.created_at, s.updated_at
		FROM groups g JOIN epoch_states s ON s.group_id = g.id AND s.epoch = g.epoch AND s.commit_hash = g.commit_hash
		WHERE g.id = ?`, nz(groupID)))
	if err != nil {
		return EpochState{}, db.fail("current state", err)
	}
	return s, nil
}

// EpochState returns a retained state, or ErrNotFound.
func (db *DB) EpochState(ctx context.Context, groupID []byte, ref EpochRef) (EpochState, error) {
	if err := checkEpoch(ref.Epoch); err != nil {
		return EpochState{}, err
	}
	q, err := db.read()
	if err != nil {
		return EpochState{}, err
	}
	s, err := db.scanState(q.QueryRowContext(ctx, `SELECT group_id, epoch, commit_hash, state, info, created_at, updated_at
		FROM epoch_states WHERE group_id = ? AND epoch = ? AND commit_hash = ?`, nz(groupID), int64(ref.Epoch), nz(ref.CommitHash)))
	if err != nil {
		return EpochState{}, db.fail("epoch state", err)
	}
	return s, nil
}

// CanonicalChain returns the retained canonical states up to the current
// one, oldest first; see GroupStore.
func (db *DB) CanonicalChain(ctx context.Context, groupID []byte) ([]EpochState, error) {
	cur, err := db.CurrentState(ctx, groupID)
	if err != nil {
		return nil, err
	}
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	// Newest first: the current state, then each retained state of the
	// history below it while the epochs are consecutive.
	rows, err := q.QueryContext(ctx, `SELECT s.group_id, s.epoch, s.commit_hash, s.state, s.info, s.created_at, s.updated_at
		FROM groups g
		JOIN epoch_states s ON s.group_id = g.id AND s.epoch <= g.epoch
		JOIN epoch_history h ON h.group_id = s.group_id AND h.epoch = s.epoch AND h.commit_hash = s.commit_hash
		WHERE g.id = ? AND (s.epoch < g.epoch OR s.commit_hash = g.commit_hash)
		ORDER BY s.epoch DESC`, nz(groupID))
	if err != nil {
		return nil, db.fail("canonical chain", err)
	}
	defer rows.Close()
	var out []EpochState
	for rows.Next() {
		s, err := db.scanState(rows)
		if err != nil {
			return nil, db.fail("canonical chain", err)
		}
		if len(out) == 0 && (s.Epoch != cur.Epoch || !bytes.Equal(s.CommitHash, cur.CommitHash)) ||
			len(out) > 0 && s.Epoch+1 != out[len(out)-1].Epoch {
			break
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("canonical chain", err)
	}
	if len(out) == 0 {
		// No history row for the current state: the current state alone.
		return []EpochState{cur}, nil
	}
	slices.Reverse(out)
	return out, nil
}

// RetainedEpochs lists the group's retained states by epoch.
func (db *DB) RetainedEpochs(ctx context.Context, groupID []byte) ([]EpochRef, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT epoch, commit_hash FROM epoch_states WHERE group_id = ? ORDER BY epoch, commit_hash`, nz(groupID))
	if err != nil {
		return nil, db.fail("retained epochs", err)
	}
	defer rows.Close()
	var out []EpochRef
	for rows.Next() {
		var r EpochRef
		if err := rows.Scan(&r.Epoch, &r.CommitHash); err != nil {
			return nil, db.fail("retained epochs", err)
		}
		out = append(out, r)
	}
	return out, db.fail("retained epochs", rows.Err())
}

// DeleteEpochStates deletes retained states with epoch < below, except the
// current one.
func (db *DB) DeleteEpochStates(ctx context.Context, groupID []byte, below uint64) (int64, error) {
	if err := checkEpoch(below); err != nil {
		return 0, err
	}
	var n int64
	err := db.write(ctx, "delete epoch states", func(tx *sql.Tx) error {
		var err error
		n, err = deleteStatesBelow(ctx, tx, nz(groupID), below)
		return err
	})
	return n, err
}

// EpochHistory returns canonical history entries with epoch >= from.
func (db *DB) EpochHistory(ctx context.Context, groupID []byte, from uint64) ([]EpochRecord, error) {
	if err := checkEpoch(from); err != nil {
		return nil, err
	}
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT epoch, commit_hash, at FROM epoch_history WHERE group_id = ? AND epoch >= ? ORDER BY epoch`, nz(groupID), int64(from))
	if err != nil {
		return nil, db.fail("epoch history", err)
	}
	defer rows.Close()
	var out []EpochRecord
	for rows.Next() {
		var r EpochRecord
		var at int64
		if err := rows.Scan(&r.Epoch, &r.CommitHash, &at); err != nil {
			return nil, db.fail("epoch history", err)
		}
		r.At = fromTS(at)
		out = append(out, r)
	}
	return out, db.fail("epoch history", rows.Err())
}
