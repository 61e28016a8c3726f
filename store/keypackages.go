package store

import (
	"context"
	"database/sql"
	"time"
)

const kpColumns = `ref, cipher_suite, data, private, last_resort, created_at, expires_at`

func kpAD(ref []byte) []byte { return rowAD("key_packages", "private", ref) }

func (db *DB) scanKeyPackage(sc interface{ Scan(...any) error }) (KeyPackage, error) {
	var kp KeyPackage
	var priv []byte
	var created, expires int64
	if err := sc.Scan(&kp.Ref, &kp.CipherSuite, &kp.Data, &priv, &kp.LastResort, &created, &expires); err != nil {
		return KeyPackage{}, err
	}
	p, err := db.seal.open(kpAD(kp.Ref), priv)
	if err != nil {
		return KeyPackage{}, err
	}
	kp.Private, kp.CreatedAt, kp.ExpiresAt = p, fromTS(created), fromTS(expires)
	return kp, nil
}

// PutKeyPackage stores kp; an existing package with the same Ref is replaced.
func (db *DB) PutKeyPackage(ctx context.Context, kp KeyPackage) error {
	if err := needID("key package ref", kp.Ref); err != nil {
		return err
	}
	if err := checkSecret("key package private keys", kp.Private); err != nil {
		return err
	}
	priv := db.seal.seal(kpAD(kp.Ref), kp.Private)
	return db.write(ctx, "put key package", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO key_packages (`+kpColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			kp.Ref, kp.CipherSuite, nz(kp.Data), priv, b2i(kp.LastResort), ts(db.orNow(kp.CreatedAt)), ts(kp.ExpiresAt))
		return err
	})
}

// KeyPackage returns the package with ref, or ErrNotFound.
func (db *DB) KeyPackage(ctx context.Context, ref []byte) (KeyPackage, error) {
	q, err := db.read()
	if err != nil {
		return KeyPackage{}, err
	}
	kp, err := db.scanKeyPackage(q.QueryRowContext(ctx, `SELECT `+kpColumns+` FROM key_packages WHERE ref = ?`, nz(ref)))
	if err != nil {
		return KeyPackage{}, db.fail("key package", err)
	}
	return kp, nil
}

// ConsumeKeyPackage returns the package and deletes it unless last-resort.
func (db *DB) ConsumeKeyPackage(ctx context.Context, ref []byte) (KeyPackage, error) {
	var kp KeyPackage
	err := db.write(ctx, "consume key package", func(tx *sql.Tx) error {
		var err error
		kp, err = db.scanKeyPackage(tx.QueryRowContext(ctx, `SELECT `+kpColumns+` FROM key_packages WHERE ref = ?`, nz(ref)))
		if err != nil {
			return err
		}
		return consumeKeyPackage(ctx, tx, ref)
	})
	return kp, err
}

// consumeKeyPackage deletes a used one-time package (secure_delete
// overwrites its private keys on disk).
func consumeKeyPackage(ctx context.Context, tx *sql.Tx, ref []byte) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE ref = ? AND last_resort = 0`, nz(ref))
	return err
}

// ListKeyPackages returns all packages, oldest first.
func (db *DB) ListKeyPackages(ctx context.Context) ([]KeyPackage, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+kpColumns+` FROM key_packages ORDER BY created_at, ref`)
	if err != nil {
		return nil, db.fail("list key packages", err)
	}
	defer rows.Close()
	var out []KeyPackage
	for rows.Next() {
		kp, err := db.scanKeyPackage(rows)
		if err != nil {
			return nil, db.fail("list key packages", err)
		}
		out = append(out, kp)
	}
	return out, db.fail("list key packages", rows.Err())
}

// DeleteKeyPackage deletes the package (no error if absent).
func (db *DB) DeleteKeyPackage(ctx context.Context, ref []byte) error {
	return db.write(ctx, "delete key package", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE ref = ?`, nz(ref))
		return err
	})
}

// DeleteExpiredKeyPackages deletes packages whose ExpiresAt is before now.
func (db *DB) DeleteExpiredKeyPackages(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, "delete expired key packages", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM key_packages WHERE expires_at <> 0 AND expires_at < ?`, ts(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
