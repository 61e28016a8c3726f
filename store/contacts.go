package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const contactColumns = `id, petname, fingerprint, verification, verified_at, card, created_at, updated_at`

func scanContact(sc interface{ Scan(...any) error }) (Contact, error) {
	var c Contact
	var verifiedAt, created, updated int64
	if err := sc.Scan(&c.ID, &c.Petname, &c.Fingerprint, &c.Verification, &verifiedAt, &c.Card, &created, &updated); err != nil {
		return Contact{}, err
	}
	c.VerifiedAt, c.CreatedAt, c.UpdatedAt = fromTS(verifiedAt), fromTS(created), fromTS(updated)
	return c, nil
}

func checkContactID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: contact id must be 1 to %d bytes", ErrInvalid, maxIDLen)
	}
	return nil
}

// PutContact inserts or updates c; see ContactStore.
func (db *DB) PutContact(ctx context.Context, c Contact) (keyChanged bool, err error) {
	if err := checkContactID(c.ID); err != nil {
		return false, err
	}
	if c.Verification > KeyChanged {
		return false, fmt.Errorf("%w: verification state %d", ErrInvalid, c.Verification)
	}
	now := db.now()
	err = db.write(ctx, "put contact", func(tx *sql.Tx) error {
		if c.Petname != "" {
			var other string
			err := tx.QueryRowContext(ctx, `SELECT id FROM contacts WHERE petname = ? COLLATE NOCASE AND id <> ?`, c.Petname, c.ID).Scan(&other)
			if err == nil {
				return fmt.Errorf("%w: petname %q is already used by contact %s", ErrConflict, c.Petname, other)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		old, err := scanContact(tx.QueryRowContext(ctx, `SELECT `+contactColumns+` FROM contacts WHERE id = ?`, c.ID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO contacts (`+contactColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				c.ID, c.Petname, nz(c.Fingerprint), c.Verification, ts(c.VerifiedAt), c.Card, ts(db.orNow(c.CreatedAt)), ts(now))
		case err != nil:
			return err
		default:
			verification, verifiedAt := old.Verification, old.VerifiedAt
			if !bytes.Equal(old.Fingerprint, c.Fingerprint) {
				keyChanged = true
				if verification == Verified {
					// A verification is of a key, not of a person.
					verification, verifiedAt = KeyChanged, time.Time{}
				}
			}
			_, err = tx.ExecContext(ctx, `UPDATE contacts SET petname = ?, fingerprint = ?, verification = ?, verified_at = ?, card = ?, updated_at = ? WHERE id = ?`,
				c.Petname, nz(c.Fingerprint), verification, ts(verifiedAt), c.Card, ts(now), c.ID)
		}
		if err != nil {
			return err
		}
		if len(c.Fingerprint) > 0 {
			_, err = tx.ExecContext(ctx, `INSERT INTO contact_keys (contact_id, fingerprint, first_seen, last_seen) VALUES (?, ?, ?, ?)
				ON CONFLICT (contact_id, fingerprint) DO UPDATE SET last_seen = excluded.last_seen`, c.ID, c.Fingerprint, ts(now), ts(now))
		}
		return err
	})
	return keyChanged, err
}

func (db *DB) contactWhere(ctx context.Context, op, where string, arg any) (Contact, error) {
	q, err := db.read()
	if err != nil {
		return Contact{}, err
	}
	c, err := scanContact(q.QueryRowContext(ctx, `SELECT `+contactColumns+` FROM contacts WHERE `+where, arg))
	if err != nil {
		return Contact{}, db.fail(op, err)
	}
	return c, nil
}

// Contact returns the contact with id, or ErrNotFound.
func (db *DB) Contact(ctx context.Context, id string) (Contact, error) {
	return db.contactWhere(ctx, "contact", `id = ?`, id)
}

// ContactByPetname finds a contact by petname (ASCII case-insensitive).
func (db *DB) ContactByPetname(ctx context.Context, petname string) (Contact, error) {
	if petname == "" {
		return Contact{}, ErrNotFound
	}
	return db.contactWhere(ctx, "contact by petname", `petname = ? COLLATE NOCASE`, petname)
}

// ListContacts returns all contacts ordered by petname, then id.
func (db *DB) ListContacts(ctx context.Context) ([]Contact, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+contactColumns+` FROM contacts ORDER BY petname COLLATE NOCASE, id`)
	if err != nil {
		return nil, db.fail("list contacts", err)
	}
	defer rows.Close()
	var out []Contact
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			return nil, db.fail("list contacts", err)
		}
		out = append(out, c)
	}
	return out, db.fail("list contacts", rows.Err())
}

// SetVerification sets the verification state of the contact's key.
func (db *DB) SetVerification(ctx context.Context, id string, fingerprint []byte, v Verification, at time.Time) error {
	if v > KeyChanged {
		return fmt.Errorf("%w: verification state %d", ErrInvalid, v)
	}
	return db.write(ctx, "set verification", func(tx *sql.Tx) error {
		var cur []byte
		if err := tx.QueryRowContext(ctx, `SELECT fingerprint FROM contacts WHERE id = ?`, id).Scan(&cur); err != nil {
			return err
		}
		if !bytes.Equal(cur, fingerprint) {
			return fmt.Errorf("%w: contact %s's key changed; compare the new safety number", ErrConflict, id)
		}
		if v != Verified {
			at = time.Time{}
		} else {
			at = db.orNow(at)
		}
		_, err := tx.ExecContext(ctx, `UPDATE contacts SET verification = ?, verified_at = ?, updated_at = ? WHERE id = ?`, v, ts(at), ts(db.now()), id)
		return err
	})
}

// KeyHistory lists every key seen for the contact, oldest first.
func (db *DB) KeyHistory(ctx context.Context, id string) ([]KeyRecord, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT fingerprint, first_seen, last_seen FROM contact_keys WHERE contact_id = ? ORDER BY first_seen, rowid`, id)
	if err != nil {
		return nil, db.fail("key history", err)
	}
	defer rows.Close()
	var out []KeyRecord
	for rows.Next() {
		var k KeyRecord
		var first, last int64
		if err := rows.Scan(&k.Fingerprint, &first, &last); err != nil {
			return nil, db.fail("key history", err)
		}
		k.FirstSeen, k.LastSeen = fromTS(first), fromTS(last)
		out = append(out, k)
	}
	return out, db.fail("key history", rows.Err())
}

// DeleteContact deletes the contact and its key history.
func (db *DB) DeleteContact(ctx context.Context, id string) error {
	return db.write(ctx, "delete contact", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM contacts WHERE id = ?`, id)
		return err
	})
}
