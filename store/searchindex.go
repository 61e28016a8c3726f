package store

import (
	"context"
	"database/sql"
)

// The search index is written in batches (migration 0006): inserting a
// message does not touch it; the transaction in which the unindexed
// messages reach searchIndexBatch indexes them all with one statement,
// and Search and CheckIntegrity index what is left first. So a member
// receiving a burst pays the trigram index once per batch instead of a
// segment flush per transaction, and search results are always complete.

// searchIndexBatch is how many unindexed messages trigger indexing inside
// a write transaction.
const searchIndexBatch = 256

// searchIndexChunk bounds the messages one flushSearchIndex transaction
// indexes (the writer is held that long).
const searchIndexChunk = 4096

// indexPendingTx indexes up to limit messages newer than the index, in
// seq order, and reports how many it indexed.
func indexPendingTx(ctx context.Context, tx *sql.Tx, limit int) (int, error) {
	var cur int64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM search_indexed WHERE id = 1`).Scan(&cur); err != nil {
		return 0, err
	}
	var hi int64
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), ?), count(*) FROM
		(SELECT seq FROM messages WHERE seq > ? ORDER BY seq LIMIT ?)`, cur, cur, limit).Scan(&hi, &n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO messages_fts (rowid, text)
		SELECT seq, text FROM messages WHERE seq > ? AND seq <= ? ORDER BY seq`, cur, hi); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE search_indexed SET seq = ? WHERE id = 1`, hi); err != nil {
		return 0, err
	}
	return n, nil
}

// indexIfDueTx indexes the unindexed messages inside a write transaction
// once there are searchIndexBatch of them.
func indexIfDueTx(ctx context.Context, cq *cachedTx) error {
	var pending int
	if err := cq.QueryRowContext(ctx, sqlSearchPending).Scan(&pending); err != nil {
		return err
	}
	if pending < searchIndexBatch {
		return nil
	}
	_, err := indexPendingTx(ctx, cq.tx, pending)
	return err
}

// flushSearchIndex indexes every message not in the index yet.
func (db *DB) flushSearchIndex(ctx context.Context) error {
	for {
		var n int
		err := db.write(ctx, "search index", func(tx *sql.Tx) error {
			var err error
			n, err = indexPendingTx(ctx, tx, searchIndexChunk)
			return err
		})
		if err != nil || n < searchIndexChunk {
			return err
		}
	}
}

// searchPending reports how many messages are not in the index yet
// (tests, status).
func (db *DB) searchPending(ctx context.Context) (int, error) {
	q, err := db.read()
	if err != nil {
		return 0, err
	}
	var n int
	err = q.QueryRowContext(ctx, `SELECT count(*) FROM messages
		WHERE seq > (SELECT seq FROM search_indexed WHERE id = 1)`).Scan(&n)
	return n, db.fail("search index", err)
}
