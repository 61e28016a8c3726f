package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// Tests specific to the SQLite implementation: files, keys, locks,
// migrations, damage.

func TestPragmasAndPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pro file?#%20")
	db := openTest(t, dir)
	for pragma, want := range map[string]string{
		"journal_mode": "wal", "foreign_keys": "1", "secure_delete": "1", "synchronous": "2", "application_id": fmt.Sprint(applicationID),
	} {
		var got string
		ok(t, db.w.QueryRow("PRAGMA "+pragma).Scan(&got))
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	var ro string
	ok(t, db.r.QueryRow("PRAGMA query_only").Scan(&ro))
	if ro != "1" {
		t.Errorf("reader connections are not query_only")
	}
	for name, want := range map[string]fs.FileMode{"": 0o700, DBFileName: 0o600, keyFileName: 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		ok(t, err)
		if st.Mode().Perm() != want {
			t.Errorf("%q has mode %o, want %o", name, st.Mode().Perm(), want)
		}
	}
	if v := SchemaVersion(); v < 1 {
		t.Fatalf("SchemaVersion %d", v)
	}
}

// Secrets never reach the disk in clear: not in the database, not in the WAL.
func TestSecretsSealedOnDisk(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	marker := func(s string) []byte { return []byte("SECRET-" + s + "-0123456789") }
	ok(t, db.PutIdentity(ctx, Identity{SignaturePrivate: marker("sig"), P2PPrivateKey: marker("p2p")}))
	ok(t, db.PutKeyPackage(ctx, KeyPackage{Ref: []byte("r"), Data: []byte("d"), Private: marker("kp")}))
	must[TransitionResult](t)(db.CommitEpoch(ctx, EpochTransition{GroupID: gid, State: marker("state"), Group: &Group{},
		OutboxAdd: []OutboxEntry{{ID: []byte("o"), Payload: marker("outbox")}}, ProposalsAdd: []Proposal{{Ref: []byte("p"), Data: []byte("d"), Private: marker("prop")}},
		HeldAdd: []HeldMessage{{ID: []byte("h"), Payload: marker("held")}}}))
	ok(t, db.PutInvitation(ctx, Invitation{ID: "inv", Payload: marker("invitation")}))
	scan := func() {
		t.Helper()
		for _, name := range []string{DBFileName, DBFileName + "-wal"} {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			if bytes.Contains(b, []byte("SECRET-")) {
				t.Fatalf("a secret is in clear in %s", name)
			}
		}
	}
	scan()
	// Consumed keys are deleted, and secure_delete leaves no copy.
	must[KeyPackage](t)(db.ConsumeKeyPackage(ctx, []byte("r")))
	ok(t, db.Close())
	scan()
	// Held messages are sealed too, and come back after a reopen.
	db = openTest(t, dir)
	if h := must[[]HeldMessage](t)(db.HeldMessages(ctx, gid)); len(h) != 1 || !bytes.Equal(h[0].Payload, marker("held")) {
		t.Fatalf("held messages after a reopen: %+v", h)
	}
	ok(t, db.Close())

	// A sealed value moved to another row does not open.
	db = openTest(t, dir)
	must[TransitionResult](t)(db.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, CommitHash: []byte("c"), State: []byte("s1")}))
	_, err := db.w.Exec(`UPDATE epoch_states SET state = (SELECT state FROM epoch_states WHERE epoch = 0) WHERE epoch = 1`)
	ok(t, err)
	_, err = db.CurrentState(ctx, gid)
	if err == nil || !strings.Contains(err.Error(), "failed authentication") {
		t.Fatalf("moved sealed value: %v", err)
	}
	// So does a damaged envelope.
	_, err = db.w.Exec(`UPDATE identity SET signature_private = x'0102'`)
	ok(t, err)
	_, err = db.Identity(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "store: ") {
		t.Fatalf("damaged envelope: %v", err)
	}
}

func TestPassphrase(t *testing.T) {
	dir := t.TempDir()
	pass := WithPassphrase([]byte("hunter2"))
	db, err := Open(ctx, dir, pass, WithKDFParams(testKDF))
	ok(t, err)
	if !db.Passphrase() {
		t.Fatal("not passphrase-protected")
	}
	ok(t, db.PutIdentity(ctx, Identity{SignaturePrivate: []byte("k")}))
	// Parameters are recorded.
	var mem string
	ok(t, db.w.QueryRow(`SELECT CAST(value AS TEXT) FROM meta WHERE key = 'argon2id.memory'`).Scan(&mem))
	if mem != fmt.Sprint(testKDF.MemoryKiB) {
		t.Fatalf("memory param %q", mem)
	}
	ok(t, db.Close())
	if _, err := os.Stat(filepath.Join(dir, keyFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a passphrase profile has a key file")
	}
	before := hashFiles(t, dir)
	_, err = Open(ctx, dir, WithPassphrase([]byte("hunter3")))
	wantErr(t, err, ErrWrongPassphrase)
	if err.Error() != "store: wrong passphrase" {
		t.Fatalf("message %q", err)
	}
	_, err = Open(ctx, dir)
	wantErr(t, err, ErrPassphraseRequired)
	if after := hashFiles(t, dir); after != before {
		t.Fatal("a failed unlock changed the database files")
	}
	// The lock was released by the failed opens.
	db = openTest(t, dir, pass)
	if id := must[Identity](t)(db.Identity(ctx)); string(id.SignaturePrivate) != "k" {
		t.Fatal("identity lost")
	}

	// Change the passphrase, then drop it for a key file, then back.
	ok(t, db.ChangePassphrase(ctx, []byte("new pass")))
	ok(t, db.Close())
	_, err = Open(ctx, dir, pass)
	wantErr(t, err, ErrWrongPassphrase)
	db = openTest(t, dir, WithPassphrase([]byte("new pass")), WithKDFParams(testKDF))
	ok(t, db.ChangePassphrase(ctx, nil))
	ok(t, db.Close())
	db = openTest(t, dir)
	if db.Passphrase() {
		t.Fatal("still passphrase-protected")
	}
	ok(t, db.ChangePassphrase(ctx, nil)) // no-op, keeps the key file
	ok(t, db.ChangePassphrase(ctx, []byte("again")))
	ok(t, db.Close())
	if _, err := os.Stat(filepath.Join(dir, keyFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("obsolete key file kept")
	}
	db = openTest(t, dir, WithPassphrase([]byte("again")))
	if id := must[Identity](t)(db.Identity(ctx)); string(id.SignaturePrivate) != "k" {
		t.Fatal("identity lost across passphrase changes")
	}
	ok(t, db.Close())
	// Invalid parameters for a new passphrase.
	_, err = Open(ctx, t.TempDir(), WithPassphrase([]byte("x")), WithKDFParams(KDFParams{Time: 0, MemoryKiB: 8, Threads: 1}))
	wantErr(t, err, ErrInvalid)
}

func TestDefaultKDFParams(t *testing.T) {
	if testing.Short() {
		return // 64 MiB argon2id
	}
	dir := t.TempDir()
	db := openTest(t, dir, WithPassphrase([]byte("p")))
	ok(t, db.Close())
	start := time.Now()
	_, err := Open(ctx, dir, WithPassphrase([]byte("q")))
	wantErr(t, err, ErrWrongPassphrase)
	t.Logf("argon2id with default parameters: %v", time.Since(start))
}

func hashFiles(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	for _, name := range []string{DBFileName, DBFileName + "-wal", keyFileName} {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		fmt.Fprintf(h, "%s:%d:", name, len(b))
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	ok(t, db.PutIdentity(ctx, Identity{SignaturePrivate: []byte("k")}))
	ok(t, db.Close())
	keyPath := filepath.Join(dir, keyFileName)

	ok(t, os.Chmod(keyPath, 0o644))
	_, err := Open(ctx, dir)
	wantErr(t, err, ErrKeyFile)
	if !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("message %q", err)
	}
	ok(t, os.Chmod(keyPath, 0o600))

	_, err = Open(ctx, dir, WithPassphrase([]byte("x")))
	if err == nil || !strings.Contains(err.Error(), "not protected by a passphrase") {
		t.Fatalf("passphrase for a key-file profile: %v", err)
	}

	key, err := os.ReadFile(keyPath)
	ok(t, err)
	ok(t, os.Remove(keyPath))
	_, err = Open(ctx, dir)
	wantErr(t, err, ErrKeyFile)
	if !strings.Contains(err.Error(), "missing") {
		t.Fatalf("message %q", err)
	}

	// Another profile's key.
	other := t.TempDir()
	openTest(t, other).Close()
	otherKey, err := os.ReadFile(filepath.Join(other, keyFileName))
	ok(t, err)
	ok(t, os.WriteFile(keyPath, otherKey, 0o600))
	_, err = Open(ctx, dir)
	wantErr(t, err, ErrKeyFile)

	ok(t, os.WriteFile(keyPath, key[:10], 0o600))
	_, err = Open(ctx, dir)
	wantErr(t, err, ErrKeyFile)

	ok(t, os.WriteFile(keyPath, key, 0o600))
	db = openTest(t, dir)
	if id := must[Identity](t)(db.Identity(ctx)); string(id.SignaturePrivate) != "k" {
		t.Fatal("identity lost")
	}
}

func TestProfileLock(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	_, err := Open(ctx, dir)
	wantErr(t, err, ErrProfileInUse)
	if !strings.Contains(err.Error(), "profile in use") || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("message %q", err)
	}
	ok(t, db.Close())
	db = openTest(t, dir)
	ok(t, db.Close())

	// Another process holds it.
	exe, err := os.Executable()
	ok(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=hold", childDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	ok(t, err)
	ok(t, cmd.Start())
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		t.Fatalf("child: %q", line)
	}
	_, err = Open(ctx, dir)
	wantErr(t, err, ErrProfileInUse)
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Errorf("message does not name the holder: %q", err)
	}
	ok(t, cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()
	// The kernel released the lock with the process.
	db = openTest(t, dir)
	ok(t, db.Close())
}

func TestProfileDir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/xdg/data")
	if d := must[string](t)(ProfileDir("", "")); d != "/xdg/data/canopy/default" {
		t.Fatalf("default: %s", d)
	}
	if d := must[string](t)(ProfileDir("/flag", "work")); d != "/flag/canopy/work" {
		t.Fatalf("override: %s", d)
	}
	t.Setenv("XDG_DATA_HOME", "relative/ignored")
	t.Setenv("HOME", "/home/u")
	if d := must[string](t)(ProfileDir("", "alice.2")); d != "/home/u/.local/share/canopy/alice.2" {
		t.Fatalf("fallback: %s", d)
	}
	for _, bad := range []string{"..", ".hidden", "-x", "a/b", `a\b`, "a b", "ünï", strings.Repeat("x", 65), "x\x00"} {
		_, err := ProfileDir("/d", bad)
		wantErr(t, err, ErrInvalid)
	}
}

func TestSchemaTooNew(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	_, err := db.w.Exec(`INSERT INTO schema_version (version, applied_at) VALUES (99, 0)`)
	ok(t, err)
	ok(t, db.Close())
	_, err = Open(ctx, dir)
	wantErr(t, err, ErrSchemaTooNew)
	want := fmt.Sprintf("store: database schema version 99 is newer than this binary supports (%d)", SchemaVersion())
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

func TestMigrations(t *testing.T) {
	orig := migrationSource
	t.Cleanup(func() { migrationSource = orig })
	base, err := fs.ReadFile(orig, "0001_init.sql")
	ok(t, err)
	dir := t.TempDir()
	migrationSource = fstest.MapFS{"0001_init.sql": {Data: base}}
	openTest(t, dir).Close()

	// A failing migration is rolled back whole: version and schema unchanged.
	migrationSource = fstest.MapFS{
		"0001_init.sql":  {Data: base},
		"0002_extra.sql": {Data: []byte("-- version: 2\nCREATE TABLE extra (x INTEGER);\nINSERT INTO nowhere VALUES (1);\n")},
	}
	_, err = Open(ctx, dir)
	if err == nil || !strings.Contains(err.Error(), "migration 0002_extra.sql") {
		t.Fatalf("failing migration: %v", err)
	}
	migrationSource = fstest.MapFS{"0001_init.sql": {Data: base}}
	db := openTest(t, dir)
	var v, n int
	ok(t, db.w.QueryRow(`SELECT max(version) FROM schema_version`).Scan(&v))
	ok(t, db.w.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'extra'`).Scan(&n))
	if v != 1 || n != 0 {
		t.Fatalf("after failed migration: version %d, extra table %d", v, n)
	}
	ok(t, db.Close())
}

func TestMigrationsApply(t *testing.T) {
	orig := migrationSource
	t.Cleanup(func() { migrationSource = orig })
	base, err := fs.ReadFile(orig, "0001_init.sql")
	ok(t, err)
	dir := t.TempDir()
	migrationSource = fstest.MapFS{"0001_init.sql": {Data: base}}
	db := openTest(t, dir)
	ok(t, db.PutIdentity(ctx, Identity{SignaturePrivate: []byte("k")}))
	ok(t, db.Close())
	migrationSource = fstest.MapFS{
		"0001_init.sql":  {Data: base},
		"0002_extra.sql": {Data: []byte("-- version: 2\nALTER TABLE contacts ADD COLUMN note TEXT;\n")},
	}
	db = openTest(t, dir)
	var v int
	ok(t, db.w.QueryRow(`SELECT max(version) FROM schema_version`).Scan(&v))
	if v != 2 {
		t.Fatalf("version %d", v)
	}
	if id := must[Identity](t)(db.Identity(ctx)); string(id.SignaturePrivate) != "k" {
		t.Fatal("data lost in migration")
	}
	ok(t, db.Close())

	for name, m := range map[string]fstest.MapFS{
		"no header":     {"0001_a.sql": {Data: []byte("CREATE TABLE a (x);")}},
		"wrong version": {"0001_a.sql": {Data: []byte("-- version: 2\n")}},
		"gap":           {"0001_a.sql": {Data: []byte("-- version: 1\n")}, "0003_c.sql": {Data: []byte("-- version: 3\n")}},
		"bad name":      {"1_a.sql": {Data: []byte("-- version: 1\n")}},
	} {
		if _, err := loadMigrations(m); err == nil || !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCorruptFiles(t *testing.T) {
	// A real database with some content to damage.
	src := t.TempDir()
	db := openTest(t, src)
	createGroup(t, db, gid)
	for i := range 300 {
		must[int](t)(db.AddMessages(ctx, Message{GroupID: gid, ID: fmt.Appendf(nil, "m%d", i), Text: strings.Repeat("lorem ipsum ", 50)}))
	}
	ok(t, db.Close())
	good, err := os.ReadFile(filepath.Join(src, DBFileName))
	ok(t, err)
	key, err := os.ReadFile(filepath.Join(src, keyFileName))
	ok(t, err)
	if len(good) < 100_000 {
		t.Fatalf("database only %d bytes", len(good))
	}
	garbage := bytes.Repeat([]byte{0xA5, 0x5A, 0xFF, 0x00}, 4096)
	damaged := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }

	cases := []struct {
		name  string
		data  []byte
		check bool // WithIntegrityCheck
	}{
		{"random bytes", bytes.Repeat([]byte("not a database "), 1000), false},
		{"tiny", []byte("SQLite"), false},
		{"truncated to the header", good[:100], false},
		{"truncated to half", good[:len(good)/2], false},
		{"truncated by one page", good[:len(good)-4096], false},
		{"bad page size", damaged(func(b []byte) []byte { b[16], b[17] = 0x03, 0x00; return b }), false},
		{"garbage pages", damaged(func(b []byte) []byte { copy(b[len(b)/3:], garbage); return b }), true},
		{"garbage first pages", damaged(func(b []byte) []byte { copy(b[100:], garbage[:8000]); return b }), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ok(t, os.WriteFile(filepath.Join(dir, DBFileName), c.data, 0o600))
			ok(t, os.WriteFile(filepath.Join(dir, keyFileName), key, 0o600))
			var opts []Option
			if c.check {
				opts = append(opts, WithIntegrityCheck())
			}
			db, err := Open(ctx, dir, opts...)
			if err == nil {
				db.Close()
				t.Fatal("opened a damaged database")
			}
			wantErr(t, err, ErrCorrupt)
			t.Logf("%v", err)
			// The failed open released the lock and left the file alone.
			now, _ := os.ReadFile(filepath.Join(dir, DBFileName))
			if !bytes.Equal(now, c.data) {
				t.Fatal("a failed open changed the damaged file")
			}
		})
	}

	// Damage that only a full read finds: Open without the integrity check
	// may succeed, but no operation panics and errors are clear.
	t.Run("damage found later", func(t *testing.T) {
		dir := t.TempDir()
		ok(t, os.WriteFile(filepath.Join(dir, DBFileName), damaged(func(b []byte) []byte { copy(b[len(b)/2:], garbage); return b }), 0o600))
		ok(t, os.WriteFile(filepath.Join(dir, keyFileName), key, 0o600))
		db, err := Open(ctx, dir)
		if err != nil {
			wantErr(t, err, ErrCorrupt)
			return
		}
		defer db.Close()
		var errs []error
		_, err = db.Messages(ctx, gid, MessageQuery{Limit: 1000})
		errs = append(errs, err)
		_, err = db.Search(ctx, SearchQuery{Text: "lorem"})
		errs = append(errs, err)
		_, err = db.AddMessages(ctx, Message{GroupID: gid, ID: []byte("new"), Text: "x"})
		errs = append(errs, err)
		errs = append(errs, db.CheckIntegrity(ctx))
		failed := 0
		for _, e := range errs {
			if e != nil {
				failed++
				if !strings.HasPrefix(e.Error(), "store: ") {
					t.Errorf("unclear error %q", e)
				}
			}
		}
		if !errors.Is(errs[len(errs)-1], ErrCorrupt) {
			t.Fatalf("CheckIntegrity: %v", errs[len(errs)-1])
		}
		t.Logf("opened; %d of %d operations failed; integrity check: %v", failed, len(errs), errs[len(errs)-1])
	})

	t.Run("another application's database", func(t *testing.T) {
		dir := t.TempDir()
		other, err := sql.Open("sqlite", filepath.Join(dir, DBFileName))
		ok(t, err)
		_, err = other.Exec(`CREATE TABLE photos (id INTEGER)`)
		ok(t, err)
		other.Close()
		_, err = Open(ctx, dir)
		wantErr(t, err, ErrCorrupt)
		if !strings.Contains(err.Error(), "not a canopy database") {
			t.Fatalf("message %q", err)
		}
	})

	t.Run("directory in place of the file", func(t *testing.T) {
		dir := t.TempDir()
		ok(t, os.Mkdir(filepath.Join(dir, DBFileName), 0o700))
		_, err := Open(ctx, dir)
		wantErr(t, err, ErrCorrupt)
	})

	t.Run("empty file is a new database", func(t *testing.T) {
		dir := t.TempDir()
		ok(t, os.WriteFile(filepath.Join(dir, DBFileName), nil, 0o600))
		openTest(t, dir).Close()
	})
}

func TestConcurrentUse(t *testing.T) {
	db := openTest(t, t.TempDir())
	createGroup(t, db, gid)
	errc := make(chan error, 8)
	for w := range 4 {
		go func() {
			for i := range 25 {
				if _, err := db.AddMessages(ctx, Message{GroupID: gid, ID: fmt.Appendf(nil, "w%d-%d", w, i), Text: "concurrent words"}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		go func() {
			for range 25 {
				if _, err := db.Search(ctx, SearchQuery{Text: "concurrent"}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 8 {
		ok(t, <-errc)
	}
	if m := must[[]Message](t)(db.Messages(ctx, gid, MessageQuery{Limit: 1000})); len(m) != 100 {
		t.Fatalf("%d messages", len(m))
	}
}

// TestRandomDamage flips random bytes all over a real database, many
// times: every outcome must be a clear error or success, never a panic.
func TestRandomDamage(t *testing.T) {
	src := t.TempDir()
	db := openTest(t, src)
	createGroup(t, db, gid)
	ok(t, db.PutIdentity(ctx, Identity{SignaturePrivate: []byte("k")}))
	for i := range 200 {
		must[int](t)(db.AddMessages(ctx, Message{GroupID: gid, ID: fmt.Appendf(nil, "m%d", i), Text: fmt.Sprintf("word%d lorem ipsum dolor", i)}))
	}
	ok(t, db.Close())
	good, err := os.ReadFile(filepath.Join(src, DBFileName))
	ok(t, err)
	key, err := os.ReadFile(filepath.Join(src, keyFileName))
	ok(t, err)
	rng := newBenchVocab(3).rng
	iterations := 40
	if testing.Short() {
		iterations = 10
	}
	clear := func(err error) {
		t.Helper()
		if err != nil && !strings.HasPrefix(err.Error(), "store: ") {
			t.Fatalf("unclear error %q", err)
		}
	}
	for it := range iterations {
		b := append([]byte(nil), good...)
		for range 1 + rng.IntN(40) {
			b[100+rng.IntN(len(b)-100)] = byte(rng.IntN(256))
		}
		dir := t.TempDir()
		ok(t, os.WriteFile(filepath.Join(dir, DBFileName), b, 0o600))
		ok(t, os.WriteFile(filepath.Join(dir, keyFileName), key, 0o600))
		var opts []Option
		if it%2 == 0 {
			opts = append(opts, WithIntegrityCheck())
		}
		db, err := Open(ctx, dir, opts...)
		clear(err)
		if err != nil {
			continue
		}
		_, err = db.Identity(ctx)
		clear(err)
		_, err = db.CurrentState(ctx, gid)
		clear(err)
		_, err = db.Messages(ctx, gid, MessageQuery{Limit: 500})
		clear(err)
		_, err = db.Search(ctx, SearchQuery{Text: "lorem"})
		clear(err)
		_, err = db.AddMessages(ctx, Message{GroupID: gid, ID: []byte("new"), Text: "new words"})
		clear(err)
		_, err = db.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, State: []byte("s")})
		clear(err)
		clear(db.CheckIntegrity(ctx))
		clear(db.Close())
	}
}

// TestErrDBClosedCaptured checks that fail's errors.Is match has database/sql's
// "database is closed" error to match: a Go release that changed how it is
// returned would otherwise turn ErrClosed into a generic error unnoticed.
func TestErrDBClosedCaptured(t *testing.T) {
	if errDBClosed == nil || errDBClosed.Error() != "sql: database is closed" {
		t.Fatalf("errDBClosed = %v", errDBClosed)
	}
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := db.ExecContext(context.Background(), "SELECT 1"); !errors.Is(err, errDBClosed) {
		t.Fatalf("query on a closed DB: %v, want errDBClosed", err)
	}
}
