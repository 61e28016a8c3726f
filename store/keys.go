package store

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/canopy-chat/canopy/internal/atomicfile"
	"golang.org/x/crypto/argon2"
)

// Key hierarchy.
//
// Secrets are sealed with a random 32-byte data key (DEK). The DEK is stored
// in the meta table, itself sealed with a key-encryption key (KEK) that
// comes either from the passphrase through argon2id (salt and parameters in
// meta) or from the 32-byte key file beside the database. Changing the
// passphrase only re-wraps the DEK. A wrong passphrase fails to open the
// wrapped DEK (the AEAD tag is the verifier) before anything is written.

// KDFParams are argon2id parameters (RFC 9106).
type KDFParams struct {
	Time      uint32 // passes
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// DefaultKDFParams is RFC 9106's second recommended option (t=3, m=64 MiB,
// p=4): about a tenth of a second on a laptop, and a cost for every guess.
var DefaultKDFParams = KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

func (p KDFParams) validate() error {
	switch {
	case p.Time < 1 || p.Time > 64:
		return fmt.Errorf("argon2id time %d out of range 1..64", p.Time)
	case p.Threads < 1 || p.Threads > 64:
		return fmt.Errorf("argon2id threads %d out of range 1..64", p.Threads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > 4<<20:
		return fmt.Errorf("argon2id memory %d KiB out of range %d..%d", p.MemoryKiB, 8*uint32(p.Threads), 4<<20)
	}
	return nil
}

const (
	kdfArgon2id = "argon2id"
	kdfKeyFile  = "keyfile"
	keySize     = 32
	saltSize    = 16
	keyFileName = "key"
)

// keyConfig is what meta says about the KEK.
type keyConfig struct {
	kdf    string
	salt   []byte
	params KDFParams
	dek    []byte // wrapped
}

func wrapAD(kdf string) []byte { return rowAD("meta", "dek", []byte(kdf)) }

func readKeyConfig(ctx context.Context, q querier) (*keyConfig, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, value FROM meta`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string][]byte{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if m["dek"] == nil {
		return nil, nil // keys never set up
	}
	c := &keyConfig{kdf: string(m["kdf"]), dek: m["dek"]}
	switch c.kdf {
	case kdfKeyFile:
	case kdfArgon2id:
		c.salt = m["argon2id.salt"]
		t, err1 := strconv.ParseUint(string(m["argon2id.time"]), 10, 32)
		mem, err2 := strconv.ParseUint(string(m["argon2id.memory"]), 10, 32)
		th, err3 := strconv.ParseUint(string(m["argon2id.threads"]), 10, 8)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("%w: argon2id parameters in meta are unreadable: %v", ErrCorrupt, err)
		}
		c.params = KDFParams{Time: uint32(t), MemoryKiB: uint32(mem), Threads: uint8(th)}
		if err := c.params.validate(); err != nil {
			return nil, fmt.Errorf("%w: meta: %v", ErrCorrupt, err)
		}
		if len(c.salt) < 8 || len(c.salt) > 64 {
			return nil, fmt.Errorf("%w: argon2id salt of %d bytes in meta", ErrCorrupt, len(c.salt))
		}
	default:
		return nil, fmt.Errorf("%w: unknown key derivation %q in meta", ErrCorrupt, c.kdf)
	}
	return c, nil
}

func deriveKEK(pass, salt []byte, p KDFParams) []byte {
	return argon2.IDKey(pass, salt, p.Time, p.MemoryKiB, p.Threads, keySize)
}

// unlock opens the wrapped DEK. It only reads.
func unlock(c *keyConfig, dir string, pass []byte) ([]byte, error) {
	var kek []byte
	switch c.kdf {
	case kdfKeyFile:
		if len(pass) > 0 {
			return nil, fmt.Errorf("store: this profile is not protected by a passphrase (it uses the key file %s); open it without one", filepath.Join(dir, keyFileName))
		}
		k, err := readKeyFile(dir)
		if err != nil {
			return nil, err
		}
		kek = k
	case kdfArgon2id:
		if len(pass) == 0 {
			return nil, ErrPassphraseRequired
		}
		kek = deriveKEK(pass, c.salt, c.params)
	}
	s, err := newSealer(kek)
	if err != nil {
		return nil, err
	}
	dek, err := s.open(wrapAD(c.kdf), c.dek)
	if err != nil || len(dek) != keySize {
		if c.kdf == kdfArgon2id {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("%w: %s does not unlock this database (it belongs to another profile, or was replaced)", ErrKeyFile, filepath.Join(dir, keyFileName))
	}
	return dek, nil
}

// newKeyConfig makes meta rows that wrap dek for pass (argon2id) or for a
// new key file (returned in keyFile, to be written before committing).
func newKeyConfig(dek, pass []byte, p KDFParams) (rows map[string][]byte, keyFile []byte, err error) {
	rows = map[string][]byte{}
	var kek []byte
	kdf := kdfKeyFile
	if len(pass) > 0 {
		if err := p.validate(); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		kdf = kdfArgon2id
		salt := make([]byte, saltSize)
		rand.Read(salt)
		rows["argon2id.salt"] = salt
		rows["argon2id.time"] = []byte(strconv.FormatUint(uint64(p.Time), 10))
		rows["argon2id.memory"] = []byte(strconv.FormatUint(uint64(p.MemoryKiB), 10))
		rows["argon2id.threads"] = []byte(strconv.FormatUint(uint64(p.Threads), 10))
		kek = deriveKEK(pass, salt, p)
	} else {
		keyFile = make([]byte, keySize)
		rand.Read(keyFile)
		kek = keyFile
	}
	s, err := newSealer(kek)
	if err != nil {
		return nil, nil, err
	}
	rows["kdf"] = []byte(kdf)
	rows["dek"] = s.seal(wrapAD(kdf), dek)
	return rows, keyFile, nil
}

func writeKeyConfig(ctx context.Context, tx *sql.Tx, rows map[string][]byte) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = 'kdf' OR key = 'dek' OR key LIKE 'argon2id.%'`); err != nil {
		return err
	}
	for k, v := range rows {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, k, v); err != nil {
			return err
		}
	}
	return nil
}

// readKeyFile reads the key file and refuses one that others can read.
func readKeyFile(dir string) ([]byte, error) {
	path := filepath.Join(dir, keyFileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing; without it this profile's secrets cannot be decrypted", ErrKeyFile, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrKeyFile, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has permissions %04o; it must be readable by its owner only (chmod 600 %s)", ErrKeyFile, path, perm, path)
	}
	buf := make([]byte, keySize+1)
	n, _ := f.Read(buf)
	if n != keySize {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrKeyFile, path, n, keySize)
	}
	return buf[:keySize], nil
}

// writeKeyFile writes the key file atomically (temp file, fsync, rename,
// fsync of the directory) with mode 0600.
func writeKeyFile(dir string, key []byte) error {
	if err := atomicfile.Write(filepath.Join(dir, keyFileName), key, 0o600); err != nil {
		return fmt.Errorf("store: writing key file: %w", err)
	}
	return nil
}

// ChangePassphrase re-wraps the data key for a new passphrase; an empty
// passphrase switches the profile to a key file. The KDF parameters are
// those given to Open (WithKDFParams) or DefaultKDFParams. Sealed rows are
// not rewritten: they are sealed with the data key, which does not change.
func (db *DB) ChangePassphrase(ctx context.Context, newPassphrase []byte) error {
	if db.memory {
		return fmt.Errorf("%w: an in-memory database has no passphrase", ErrInvalid)
	}
	if db.closed.Load() {
		return ErrClosed
	}
	if len(newPassphrase) == 0 && db.kdf == kdfKeyFile {
		return nil // already protected by the key file; never overwrite it
	}
	rows, keyFile, err := newKeyConfig(db.dek, newPassphrase, db.opts.kdf)
	if err != nil {
		return err
	}
	if keyFile != nil {
		// The old key (if any) was a passphrase, so overwriting the file
		// loses nothing; if the commit below fails the file is unused.
		if err := writeKeyFile(db.dir, keyFile); err != nil {
			return err
		}
	}
	err = db.write(ctx, "change passphrase", func(tx *sql.Tx) error {
		return writeKeyConfig(ctx, tx, rows)
	})
	if err != nil {
		return err
	}
	db.kdf = string(rows["kdf"])
	if keyFile == nil {
		// Now protected by the passphrase: the key file is obsolete.
		if err := os.Remove(filepath.Join(db.dir, keyFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: removing obsolete key file: %w", err)
		}
	}
	// Push the old wrapped key out of the WAL into the (secure-deleted)
	// main file.
	_, _ = db.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return nil
}

func equalBytes(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
