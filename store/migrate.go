package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migrations are the files migrations/NNNN_name.sql, applied in order, each
// in its own transaction together with its schema_version row. The first
// line of each file is "-- version: N" and N must equal NNNN. Never edit a
// released migration: add the next one.

//go:embed migrations/*.sql
var embeddedMigrations embed.FS

// migrationSource is a variable so that tests can add migrations.
var migrationSource fs.FS = func() fs.FS {
	sub, err := fs.Sub(embeddedMigrations, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}()

type migration struct {
	version int
	name    string
	sql     string
}

// SchemaTooNewError is returned when the database was written by a newer
// canopy. errors.Is(err, ErrSchemaTooNew) holds.
type SchemaTooNewError struct {
	Version   int // the database's schema version
	Supported int // the newest version this binary knows
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("store: database schema version %d is newer than this binary supports (%d)", e.Version, e.Supported)
}

func (e *SchemaTooNewError) Is(target error) bool { return target == ErrSchemaTooNew }

// SchemaVersion is the schema version this binary creates and understands.
func SchemaVersion() int {
	m, err := loadMigrations(migrationSource)
	if err != nil {
		return 0
	}
	return len(m)
}

const maxMigrationHeader = 64

// parseMigrationHeader reads "-- version: N" from the first line of src.
func parseMigrationHeader(src string) (int, error) {
	line, _, _ := strings.Cut(src, "\n")
	line = strings.TrimSuffix(line, "\r")
	if len(line) > maxMigrationHeader {
		return 0, fmt.Errorf("store: migration header too long")
	}
	rest, ok := strings.CutPrefix(line, "-- version:")
	if !ok {
		return 0, fmt.Errorf("store: migration does not start with \"-- version: N\"")
	}
	rest = strings.TrimSpace(rest)
	if rest == "" || len(rest) > 9 || strings.TrimLeft(rest, "0123456789") != "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, fmt.Errorf("store: migration header has bad version %q", rest)
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("store: migration header has bad version %q", rest)
	}
	return n, nil
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("store: listing migrations: %w", err)
	}
	sort.Strings(names)
	var out []migration
	for i, name := range names {
		num, _, ok := strings.Cut(name, "_")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 {
			return nil, fmt.Errorf("store: migration file %s is not named NNNN_name.sql", name)
		}
		if n != i+1 {
			return nil, fmt.Errorf("store: migration %s out of sequence (want %04d)", name, i+1)
		}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("store: reading migration %s: %w", name, err)
		}
		v, err := parseMigrationHeader(string(src))
		if err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, path.Base(name))
		}
		if v != n {
			return nil, fmt.Errorf("store: migration %s declares version %d", name, v)
		}
		out = append(out, migration{version: n, name: name, sql: string(src)})
	}
	return out, nil
}

// schemaVersion reads the version without writing anything. A database
// with no tables is version 0; one with tables but no schema_version is not
// a canopy database.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'`).Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		var tables int
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&tables); err != nil {
			return 0, err
		}
		if tables > 0 {
			return 0, fmt.Errorf("%w: the file is a SQLite database but not a canopy database", ErrCorrupt)
		}
		return 0, nil
	}
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil {
		return 0, err
	}
	return int(v.Int64), nil
}

func migrate(ctx context.Context, conn *sql.Conn, migs []migration, from int, now time.Time) error {
	for _, m := range migs[from:] {
		err := inTx(ctx, conn, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
				version    INTEGER PRIMARY KEY,
				applied_at INTEGER NOT NULL
			) STRICT`); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			if m.version == 1 {
				if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA application_id = %d`, applicationID)); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`, m.version, now.UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
	}
	return nil
}
