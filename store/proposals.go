package store

import (
	"context"
	"database/sql"
)

const proposalColumns = `group_id, ref, epoch, sender, data, private, own, created_at`

func proposalAD(groupID, ref []byte) []byte { return rowAD("proposals", "private", groupID, ref) }

func (db *DB) putProposal(ctx context.Context, tx *sql.Tx, p Proposal) error {
	if err := needID("group id", p.GroupID); err != nil {
		return err
	}
	if err := needID("proposal ref", p.Ref); err != nil {
		return err
	}
	if err := checkEpoch(p.Epoch); err != nil {
		return err
	}
	if err := checkSecret("proposal private data", p.Private); err != nil {
		return err
	}
	priv := db.seal.sealOpt(proposalAD(p.GroupID, p.Ref), p.Private)
	_, err := tx.ExecContext(ctx, `INSERT INTO proposals (`+proposalColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (group_id, ref) DO UPDATE SET epoch = excluded.epoch, sender = excluded.sender, data = excluded.data,
			private = excluded.private, own = excluded.own`,
		p.GroupID, p.Ref, int64(p.Epoch), p.Sender, nz(p.Data), priv, b2i(p.Own), ts(db.orNow(p.CreatedAt)))
	return err
}

func deleteProposals(ctx context.Context, tx *sql.Tx, groupID []byte, refs [][]byte) error {
	for _, r := range refs {
		if _, err := tx.ExecContext(ctx, `DELETE FROM proposals WHERE group_id = ? AND ref = ?`, nz(groupID), nz(r)); err != nil {
			return err
		}
	}
	return nil
}

// PutProposal stores a pending proposal (replacing one with the same ref).
func (db *DB) PutProposal(ctx context.Context, p Proposal) error {
	return db.write(ctx, "put proposal", func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, p.GroupID); err != nil {
			return err
		}
		return db.putProposal(ctx, tx, p)
	})
}

// Proposals lists a group's pending proposals in the order they were stored.
func (db *DB) Proposals(ctx context.Context, groupID []byte) ([]Proposal, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+proposalColumns+` FROM proposals WHERE group_id = ? ORDER BY rowid`, nz(groupID))
	if err != nil {
		return nil, db.fail("proposals", err)
	}
	defer rows.Close()
	var out []Proposal
	for rows.Next() {
		var p Proposal
		var priv []byte
		var created int64
		if err := rows.Scan(&p.GroupID, &p.Ref, &p.Epoch, &p.Sender, &p.Data, &priv, &p.Own, &created); err != nil {
			return nil, db.fail("proposals", err)
		}
		if p.Private, err = db.seal.openOpt(proposalAD(p.GroupID, p.Ref), priv); err != nil {
			return nil, err
		}
		p.CreatedAt = fromTS(created)
		out = append(out, p)
	}
	return out, db.fail("proposals", rows.Err())
}

// DeleteProposals deletes proposals by ref (absent ones are ignored).
func (db *DB) DeleteProposals(ctx context.Context, groupID []byte, refs ...[]byte) error {
	return db.write(ctx, "delete proposals", func(tx *sql.Tx) error { return deleteProposals(ctx, tx, groupID, refs) })
}

// DeleteProposalsBefore deletes a group's proposals with epoch < epoch.
func (db *DB) DeleteProposalsBefore(ctx context.Context, groupID []byte, epoch uint64) (int64, error) {
	if err := checkEpoch(epoch); err != nil {
		return 0, err
	}
	var n int64
	err := db.write(ctx, "delete proposals", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM proposals WHERE group_id = ? AND epoch < ?`, nz(groupID), int64(epoch))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
