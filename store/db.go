package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DBFileName is the database file inside a profile directory.
const DBFileName = "canopy.db"

// applicationID marks canopy databases in the SQLite header ("cano").
const applicationID = 0x63616e6f

// DB is the SQLite implementation of every store interface. It is safe for
// concurrent use by multiple goroutines: writes are serialized through one
// connection, reads use a small pool and see committed data only (WAL).
type DB struct {
	w, r   *sql.DB // writer (one connection, BEGIN IMMEDIATE) and readers
	seal   *sealer
	dek    []byte
	kdf    string
	dir    string
	memory bool
	opts   options
	lock   *profileLock
	closed atomic.Bool
	mu     sync.Mutex // guards Close
	stmts  stmtCache  // the writer's prepared statements (stmtcache.go)
}

// Option configures Open and OpenMemory.
type Option func(*options)

type options struct {
	passphrase     []byte
	kdf            KDFParams
	busyTimeout    time.Duration
	readConns      int
	integrityCheck bool
	clock          func() time.Time
}

// WithPassphrase protects a new profile with a passphrase, or unlocks an
// existing one. Without it a new profile gets a key file.
func WithPassphrase(p []byte) Option { return func(o *options) { o.passphrase = p } }

// WithKDFParams sets the argon2id parameters for a new passphrase
// (DefaultKDFParams otherwise). Existing profiles use the parameters
// recorded in their database.
func WithKDFParams(p KDFParams) Option { return func(o *options) { o.kdf = p } }

// WithBusyTimeout sets how long a statement waits for another process's
// lock (default 5 s).
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithReadConns sets the size of the read connection pool (default 4).
func WithReadConns(n int) Option { return func(o *options) { o.readConns = n } }

// WithIntegrityCheck runs PRAGMA quick_check when opening (O(size) time) so
// that damage anywhere in the file is reported by Open.
func WithIntegrityCheck() Option { return func(o *options) { o.integrityCheck = true } }

// WithClock sets the clock used for timestamps the caller leaves zero.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

func buildOptions(opts []Option) options {
	o := options{
		kdf:         DefaultKDFParams,
		busyTimeout: 5 * time.Second,
		readConns:   4,
		clock:       time.Now,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.readConns < 1 {
		o.readConns = 1
	}
	return o
}

// Open opens (creating if needed) the profile database in dir. It takes the
// profile's lock (ErrProfileInUse if held), checks the file, unlocks the
// keys (ErrWrongPassphrase, ErrPassphraseRequired, ErrKeyFile) and only then
// applies pending migrations. A database written by a newer canopy gives
// ErrSchemaTooNew; a damaged one ErrCorrupt.
func Open(ctx context.Context, dir string, opts ...Option) (_ *DB, err error) {
	o := buildOptions(opts)
	if dir == "" {
		return nil, fmt.Errorf("%w: empty profile directory", ErrInvalid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating profile directory: %w", err)
	}
	lock, err := lockProfile(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.release()
		}
	}()
	path := filepath.Join(dir, DBFileName)
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	if f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	} else {
		f.Close()
	}
	db := &DB{dir: dir, opts: o, lock: lock}
	db.w, err = sql.Open("sqlite", fileDSN(path, o, true))
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxLifetime(0)
	db.w.SetConnMaxIdleTime(0)
	defer func() {
		if err != nil {
			db.w.Close()
		}
	}()
	if err := db.setup(ctx, path); err != nil {
		return nil, err
	}
	db.r, err = sql.Open("sqlite", fileDSN(path, o, false))
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	db.r.SetMaxOpenConns(o.readConns)
	db.r.SetMaxIdleConns(o.readConns)
	return db, nil
}

// OpenMemory opens a fresh in-memory database, for tests of other
// packages: same code and schema as Open, no file, no lock, a random data
// key, and one connection shared by readers and the writer.
func OpenMemory(ctx context.Context, opts ...Option) (*DB, error) {
	o := buildOptions(opts)
	db := &DB{memory: true, opts: o, dir: ":memory:"}
	w, err := sql.Open("sqlite", "file::memory:?"+pragmaQuery(o, true))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	db.w, db.r = w, w
	if err := db.setup(ctx, ":memory:"); err != nil {
		w.Close()
		return nil, err
	}
	return db, nil
}

// Pragmas, set on every connection:
//   - journal_mode=WAL: readers never block the writer, and a crash leaves
//     the last committed transaction intact.
//   - synchronous=FULL (not NORMAL): with NORMAL a power cut may lose the
//     last commits. For canopy that is not only lost messages: a state rolled
//     back to before messages we already sent would encrypt again with the
//     same secret-tree generation (key and nonce reuse). FULL syncs the WAL at
//     every commit; batching keeps the cost low.
//   - foreign_keys=ON, secure_delete=ON (deleted keys are overwritten with
//     zeros, not left in free pages), busy_timeout, cell_size_check=ON
//     (detects some corruption earlier), temp_store=MEMORY (no plaintext in
//     temp files).
func pragmaQuery(o options, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "secure_delete(1)")
	q.Add("_pragma", "cell_size_check(1)")
	q.Add("_pragma", "temp_store(2)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return q.Encode()
}

func fileDSN(path string, o options, writer bool) string {
	u := url.URL{Path: path}
	return "file:" + u.EscapedPath() + "?" + pragmaQuery(o, writer)
}

// checkHeader reads the SQLite header so that a file that is not a
// database, or was truncated, gets a clear error before SQLite sees it.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: opening %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, path)
	}
	size := st.Size()
	if size == 0 {
		return nil // created but never written: a new database
	}
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return fmt.Errorf("%w: %s is truncated (%d bytes, shorter than a SQLite header)", ErrCorrupt, path, size)
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return fmt.Errorf("%w: %s is not a SQLite database", ErrCorrupt, path)
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("%w: %s has an invalid page size %d", ErrCorrupt, path, pageSize)
	}
	if appID := binary.BigEndian.Uint32(h[68:72]); appID != 0 && appID != applicationID {
		return fmt.Errorf("%w: %s is a SQLite database of another application (application_id %#x)", ErrCorrupt, path, appID)
	}
	// The in-header page count is valid when the change counter matches
	// "version-valid-for". A WAL with frames may legitimately hold pages a
	// checkpoint had not finished copying, so only judge a file without one.
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	if pages > 0 && binary.BigEndian.Uint32(h[24:28]) == binary.BigEndian.Uint32(h[92:96]) {
		if wst, err := os.Stat(path + "-wal"); err != nil || wst.Size() == 0 {
			if size < pages*pageSize {
				return fmt.Errorf("%w: %s is truncated (%d bytes, header says %d pages of %d bytes)", ErrCorrupt, path, size, pages, pageSize)
			}
		}
	}
	return nil
}

// setup checks the schema version, unlocks or creates the keys and
// migrates. Nothing is written before the keys are unlocked.
func (db *DB) setup(ctx context.Context, path string) error {
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return db.fail("open "+path, err)
	}
	defer conn.Close()
	if db.opts.integrityCheck {
		if err := quickCheck(ctx, conn); err != nil {
			return err
		}
	}
	migs, err := loadMigrations(migrationSource)
	if err != nil {
		return err
	}
	version, err := schemaVersion(ctx, conn)
	if err != nil {
		return db.fail("reading schema version", err)
	}
	if version > len(migs) {
		return &SchemaTooNewError{Version: version, Supported: len(migs)}
	}
	var kc *keyConfig
	if version >= 1 {
		if kc, err = readKeyConfig(ctx, conn); err != nil {
			return db.fail("reading key configuration", err)
		}
	}
	if kc != nil {
		dek, err := unlock(kc, db.dir, db.opts.passphrase)
		if err != nil {
			return err
		}
		db.dek, db.kdf = dek, kc.kdf
		if kc.kdf == kdfArgon2id && !db.memory {
			// A key file left over from before a passphrase was set (a
			// crash between ChangePassphrase's commit and its cleanup).
			os.Remove(filepath.Join(db.dir, keyFileName))
		}
	}
	if err := migrate(ctx, conn, migs, version, db.opts.clock()); err != nil {
		return db.fail("migrating", err)
	}
	if kc == nil {
		// A new profile (or one whose creation was interrupted before its
		// keys were committed, so it holds no secrets yet).
		dek := make([]byte, keySize)
		rand.Read(dek)
		pass := db.opts.passphrase
		if db.memory {
			pass = nil
		}
		rows, keyFile, err := newKeyConfig(dek, pass, db.opts.kdf)
		if err != nil {
			return err
		}
		if keyFile != nil && !db.memory {
			if err := writeKeyFile(db.dir, keyFile); err != nil {
				return err
			}
		}
		if err := inTx(ctx, conn, func(tx *sql.Tx) error { return writeKeyConfig(ctx, tx, rows) }); err != nil {
			return db.fail("storing keys", err)
		}
		db.dek, db.kdf = dek, string(rows["kdf"])
	}
	db.seal, err = newSealer(db.dek)
	return err
}

func quickCheck(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, `PRAGMA quick_check`)
	if err != nil {
		return mapErr("integrity check", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return mapErr("integrity check", err)
		}
		if s != "ok" && len(problems) < 5 {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return mapErr("integrity check", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: integrity check failed: %s", ErrCorrupt, strings.Join(problems, "; "))
	}
	return nil
}

func inTx(ctx context.Context, conn *sql.Conn, fn func(*sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close releases the database and the profile lock. It is safe to call
// more than once.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed.Swap(true) {
		return nil
	}
	var errs []error
	if db.r != nil && db.r != db.w {
		errs = append(errs, db.r.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.Close())
	}
	if db.lock != nil {
		errs = append(errs, db.lock.release())
	}
	clear(db.dek)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Dir returns the profile directory (":memory:" for OpenMemory).
func (db *DB) Dir() string { return db.dir }

// Passphrase reports whether the profile is protected by a passphrase
// (false: by the key file).
func (db *DB) Passphrase() bool { return db.kdf == kdfArgon2id }

// CheckIntegrity runs SQLite's full integrity check and FTS5's index check.
func (db *DB) CheckIntegrity(ctx context.Context) error {
	if db.closed.Load() {
		return ErrClosed
	}
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return db.fail("integrity check", err)
	}
	defer conn.Close()
	if err := quickCheck(ctx, conn); err != nil {
		return err
	}
	conn.Close() // the writer's only connection: flushSearchIndex needs it
	if err := db.flushSearchIndex(ctx); err != nil {
		return err
	}
	if conn, err = db.w.Conn(ctx); err != nil {
		return db.fail("integrity check", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)`); err != nil {
		return fmt.Errorf("%w: search index check failed: %v", ErrCorrupt, err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&n); err != nil {
		return db.fail("integrity check", err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %d foreign key violations", ErrCorrupt, n)
	}
	return nil
}

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) now() time.Time { return db.opts.clock() }

// write runs fn in one write transaction (BEGIN IMMEDIATE on the single
// writer connection) and commits it.
func (db *DB) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if db.closed.Load() {
		return ErrClosed
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return db.fail(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return db.fail(op, err)
	}
	if err := ctx.Err(); err != nil {
		// Statements may run under statementContext: the end of ctx is
		// seen here at the latest.
		tx.Rollback()
		return db.fail(op, err)
	}
	if err := tx.Commit(); err != nil {
		return db.fail(op, err)
	}
	return nil
}

// statementContext is ctx without its cancellation, for the statements of
// a write transaction. The driver watches a cancellable context with a
// goroutine per statement (to interrupt it), which costs more CPU than the
// short statements of a transition themselves. The transaction still ends
// with ctx: database/sql rolls it back when ctx is done, and write checks
// ctx before it commits. Only the hot paths' short statements use it
// (CommitEpoch, the frame log): write does not impose it, because a long
// statement elsewhere (pruning, reindexing) should stay interruptible.
func statementContext(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// read returns the querier for reads, or ErrClosed.
func (db *DB) read() (querier, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	return db.r, nil
}

// fail turns an error into a "store: ..." error.
func (db *DB) fail(op string, err error) error {
	if db.closed.Load() && errors.Is(err, sql.ErrConnDone) || errors.Is(err, errDBClosed) {
		return ErrClosed
	}
	return mapErr(op, err)
}

// errDBClosed is database/sql's unexported "sql: database is closed", taken
// once from a DB closed on purpose so that fail matches it with errors.Is
// instead of by its text.
var errDBClosed = func() error {
	db := sql.OpenDB(noConnector{})
	db.Close()
	_, err := db.Conn(context.Background())
	return err
}()

// noConnector is the connector of the DB errDBClosed comes from, which is
// closed before it connects.
type noConnector struct{}

func (noConnector) Connect(context.Context) (driver.Conn, error) { return nil, driver.ErrBadConn }
func (noConnector) Driver() driver.Driver                        { return nil }

// ours reports whether err is already one of the package's errors (it
// wraps one of the sentinels), which mapErr returns unchanged.
func ours(err error) bool {
	for _, s := range []error{ErrNotFound, ErrWrongPassphrase, ErrPassphraseRequired, ErrProfileInUse,
		ErrSchemaTooNew, ErrCorrupt, ErrKeyFile, ErrQuotaExceeded, ErrConflict, ErrInvalid, ErrClosed,
		errSealAuth, errSealFormat} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if ours(err) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, op, err)
		case sqlite3.SQLITE_FULL:
			return fmt.Errorf("store: %s: disk full: %w", op, err)
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%w: %s: %v", ErrConflict, op, err)
		}
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// ---------------------------------------------------------------------------
// Small conversion helpers shared by the concern files.

// ts stores a time as Unix nanoseconds; the zero time is 0.
func ts(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromTS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// nz returns b, or an empty non-nil slice for NOT NULL blob columns.
func nz(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (db *DB) orNow(t time.Time) time.Time {
	if t.IsZero() {
		return db.now()
	}
	return t
}

func needID(what string, id []byte) error {
	if len(id) == 0 {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrInvalid, what, len(id), maxIDLen)
	}
	return nil
}

const maxIDLen = 1024

func limitOr(n, def, max int) int {
	if n <= 0 {
		return def
	}
	if n > max {
		return max
	}
	return n
}
