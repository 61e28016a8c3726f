package store

import (
	"context"
	"database/sql"
	"sync"
)

// Statements of the write path that run once per received frame are
// prepared once per writer connection instead of being parsed by SQLite
// on every call (parsing was most of the frame log's cost under load).
// The writer pool has one connection, so database/sql's Tx.StmtContext
// reuses the statement prepared on it.

type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// stmt returns the writer's prepared statement for query, or nil when
// it has not been prepared (prepare runs outside transactions: the writer's
// one connection is the transaction's).
func (db *DB) stmt(query string) *sql.Stmt {
	c := &db.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[query]
}

// prepare prepares queries on the writer, outside any transaction.
func (db *DB) prepare(ctx context.Context, queries ...string) error {
	c := &db.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range queries {
		if c.m[q] != nil {
			continue
		}
		s, err := db.w.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		if c.m == nil {
			c.m = map[string]*sql.Stmt{}
		}
		c.m[q] = s
	}
	return nil
}

// cachedTx runs statements of tx through the cache (a querier); queries
// not prepared run as usual. A prepared statement is bound to tx once
// (Tx.StmtContext) and the binding reused for the rest of the
// transaction, so a batch of frames does not bind the frame log's
// statements again per frame. One cachedTx serves one transaction.
type cachedTx struct {
	db *DB
	tx *sql.Tx
	// The statements bound so far, by query (a few: CommitEpoch's eight
	// and the frame log's three, which it runs too).
	n     int
	query [12]string
	bound [12]*sql.Stmt
}

func (db *DB) cached(tx *sql.Tx) *cachedTx { return &cachedTx{db: db, tx: tx} }

// bind returns query's prepared statement bound to the transaction, or nil
// when it is not prepared.
func (c *cachedTx) bind(ctx context.Context, query string) *sql.Stmt {
	for i := range c.n {
		if c.query[i] == query {
			return c.bound[i]
		}
	}
	s := c.db.stmt(query)
	if s == nil {
		return nil
	}
	ts := c.tx.StmtContext(ctx, s)
	if c.n < len(c.query) {
		c.query[c.n], c.bound[c.n] = query, ts
		c.n++
	}
	return ts
}

// Stmt returns query as a statement of tx, for running it several times:
// the prepared one when there is one, else prepared now. The caller
// closes it.
func (c *cachedTx) Stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s := c.db.stmt(query); s != nil {
		return c.tx.StmtContext(ctx, s), nil
	}
	return c.tx.PrepareContext(ctx, query)
}

func (c *cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := c.bind(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return c.tx.ExecContext(ctx, query, args...)
}

func (c *cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := c.bind(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return c.tx.QueryContext(ctx, query, args...)
}

func (c *cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := c.bind(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return c.tx.QueryRowContext(ctx, query, args...)
}

// The frame log's per-frame statements (appendFrameTx, usage).
const (
	sqlFrameByHash = `SELECT seq FROM relay_frames WHERE topic = ? AND hash = ?`
	sqlUsage       = `SELECT bytes, items FROM relay_usage WHERE scope = ? AND key = ?`
	sqlInsertFrame = `INSERT INTO relay_frames (topic, hash, epoch, peer, data, received_at) VALUES (?, ?, ?, ?, ?, ?)`
)

// prepareFrameLog prepares the frame log's statements once; on failure
// they run unprepared.
func (db *DB) prepareFrameLog(ctx context.Context) {
	if db.stmt(sqlInsertFrame) != nil || db.closed.Load() {
		return
	}
	_ = db.prepare(ctx, sqlFrameByHash, sqlUsage, sqlInsertFrame)
}

// CommitEpoch's statements that run on every persisted state.
const (
	sqlGroupExists = `SELECT count(*) FROM groups WHERE id = ?`
	sqlGroupTip    = `UPDATE groups SET epoch = ?, commit_hash = ?, updated_at = ? WHERE id = ?`
	sqlGroupMeta   = `UPDATE groups SET name = ?, retention = ?, left_group = ?, meta = ? WHERE id = ?`
	sqlPutState    = `INSERT INTO epoch_states (group_id, epoch, commit_hash, state, info, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (group_id, epoch, commit_hash) DO UPDATE SET state = excluded.state,
				info = coalesce(excluded.info, info), updated_at = excluded.updated_at`
	sqlPutHistory = `INSERT INTO epoch_history (group_id, epoch, commit_hash, at) VALUES (?, ?, ?, ?)
				ON CONFLICT (group_id, epoch) DO UPDATE SET
					at = CASE WHEN commit_hash = excluded.commit_hash THEN at ELSE excluded.at END,
					commit_hash = excluded.commit_hash`
	sqlDropLaterHistory = `DELETE FROM epoch_history WHERE group_id = ? AND epoch > ?`
	// insertMessagesFlags's, once per batch of messages.
	sqlInsertMessage = `INSERT INTO messages (group_id, msg_id, sender, epoch, kind, text, payload, reply_to, sent_at, received_at, state)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, msg_id) DO NOTHING`
	sqlSearchPending = `SELECT count(*) FROM messages
		WHERE seq > (SELECT seq FROM search_indexed WHERE id = 1)`
)

// prepareCommitEpoch prepares CommitEpoch's statements once.
func (db *DB) prepareCommitEpoch(ctx context.Context) {
	if db.stmt(sqlPutState) != nil || db.closed.Load() {
		return
	}
	_ = db.prepare(ctx, sqlGroupExists, sqlGroupTip, sqlGroupMeta, sqlPutState, sqlPutHistory, sqlDropLaterHistory,
		sqlInsertMessage, sqlSearchPending)
}
