package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Pending invitations: one sealed payload per row (see Invitation for why
// the store does not split it into columns).

const invitationColumns = `id, payload, created_at`

func invitationAD(id string) []byte { return rowAD("invitations", "payload", []byte(id)) }

func checkInvitationID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: invitation id must be 1 to %d bytes", ErrInvalid, maxIDLen)
	}
	return nil
}

func deleteInvitation(ctx context.Context, tx *sql.Tx, id string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE id = ?`, id)
	return err
}

// PutInvitation stores inv; an invitation with the same ID gets the new
// payload and keeps its CreatedAt.
func (db *DB) PutInvitation(ctx context.Context, inv Invitation) error {
	if err := checkInvitationID(inv.ID); err != nil {
		return err
	}
	if len(inv.Payload) == 0 {
		return fmt.Errorf("%w: empty invitation payload", ErrInvalid)
	}
	if err := checkSecret("invitation payload", inv.Payload); err != nil {
		return err
	}
	sealed := db.seal.seal(invitationAD(inv.ID), inv.Payload)
	return db.write(ctx, "put invitation", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO invitations (`+invitationColumns+`) VALUES (?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET payload = excluded.payload`,
			inv.ID, sealed, ts(db.orNow(inv.CreatedAt)))
		return err
	})
}

func (db *DB) scanInvitation(sc interface{ Scan(...any) error }) (Invitation, error) {
	var inv Invitation
	var sealed []byte
	var created int64
	if err := sc.Scan(&inv.ID, &sealed, &created); err != nil {
		return Invitation{}, err
	}
	p, err := db.seal.open(invitationAD(inv.ID), sealed)
	if err != nil {
		return Invitation{}, err
	}
	inv.Payload, inv.CreatedAt = p, fromTS(created)
	return inv, nil
}

// Invitation returns the invitation with id, or ErrNotFound.
func (db *DB) Invitation(ctx context.Context, id string) (Invitation, error) {
	q, err := db.read()
	if err != nil {
		return Invitation{}, err
	}
	inv, err := db.scanInvitation(q.QueryRowContext(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE id = ?`, id))
	return inv, db.fail("invitation", err)
}

// ListInvitations returns every pending invitation, oldest first.
func (db *DB) ListInvitations(ctx context.Context) ([]Invitation, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+invitationColumns+` FROM invitations ORDER BY created_at, id`)
	if err != nil {
		return nil, db.fail("invitations", err)
	}
	defer rows.Close()
	var out []Invitation
	for rows.Next() {
		inv, err := db.scanInvitation(rows)
		if err != nil {
			return nil, db.fail("invitations", err)
		}
		out = append(out, inv)
	}
	return out, db.fail("invitations", rows.Err())
}

// DeleteInvitation deletes the invitation (no error if absent).
func (db *DB) DeleteInvitation(ctx context.Context, id string) error {
	return db.write(ctx, "delete invitation", func(tx *sql.Tx) error { return deleteInvitation(ctx, tx, id) })
}
