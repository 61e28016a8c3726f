package store

import (
	"context"
	"database/sql"
	"errors"
)

var identityKey = []byte{1}

// Identity returns the stored identity or ErrNotFound.
func (db *DB) Identity(ctx context.Context) (Identity, error) {
	q, err := db.read()
	if err != nil {
		return Identity{}, err
	}
	var id Identity
	var sigPriv, p2p []byte
	var created, updated int64
	err = q.QueryRowContext(ctx, `SELECT signature_public, signature_private, credential, cipher_suite, p2p_private, created_at, updated_at
		FROM identity WHERE id = 1`).Scan(&id.SignaturePublic, &sigPriv, &id.Credential, &id.CipherSuite, &p2p, &created, &updated)
	if err != nil {
		return Identity{}, db.fail("identity", err)
	}
	if id.SignaturePrivate, err = db.seal.openOpt(rowAD("identity", "signature_private", identityKey), sigPriv); err != nil {
		return Identity{}, err
	}
	if id.P2PPrivateKey, err = db.seal.openOpt(rowAD("identity", "p2p_private", identityKey), p2p); err != nil {
		return Identity{}, err
	}
	id.CreatedAt, id.UpdatedAt = fromTS(created), fromTS(updated)
	return id, nil
}

// PutIdentity stores id, replacing any previous identity.
func (db *DB) PutIdentity(ctx context.Context, id Identity) error {
	if err := errors.Join(checkSecret("signature key", id.SignaturePrivate), checkSecret("libp2p key", id.P2PPrivateKey)); err != nil {
		return err
	}
	now := db.now()
	sigPriv := db.seal.sealOpt(rowAD("identity", "signature_private", identityKey), id.SignaturePrivate)
	p2p := db.seal.sealOpt(rowAD("identity", "p2p_private", identityKey), id.P2PPrivateKey)
	return db.write(ctx, "put identity", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO identity
			(id, signature_public, signature_private, credential, cipher_suite, p2p_private, created_at, updated_at)
			VALUES (1, ?, ?, ?, ?, ?, ?, ?)`,
			id.SignaturePublic, sigPriv, id.Credential, id.CipherSuite, p2p, ts(db.orNow(id.CreatedAt)), ts(now))
		return err
	})
}
