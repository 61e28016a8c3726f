package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// testKDF keeps argon2id cheap in tests; DefaultKDFParams is exercised by
// TestDefaultKDFParams.
var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// full is what every implementation under test is: a DB on a file or in
// memory.
type full = *DB

// implementation is one implementation under contract test.
type implementation struct {
	name string
	open func(t testing.TB, opts ...Option) full
}

// implementations lists every implementation of the store interfaces; the
// contract tests run against each.
func implementations() []implementation {
	return []implementation{
		{"sqlite-keyfile", func(t testing.TB, opts ...Option) full {
			return openTest(t, t.TempDir(), opts...)
		}},
		{"sqlite-passphrase", func(t testing.TB, opts ...Option) full {
			return openTest(t, t.TempDir(), append([]Option{WithPassphrase([]byte("correct horse")), WithKDFParams(testKDF)}, opts...)...)
		}},
		{"memory", func(t testing.TB, opts ...Option) full { return openMemoryTest(t, opts...) }},
	}
}

// openMemoryTest opens an in-memory database closed when t ends.
func openMemoryTest(t testing.TB, opts ...Option) *DB {
	t.Helper()
	db, err := OpenMemory(context.Background(), opts...)
	if err != nil {
		t.Fatalf("OpenMemory: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openTest(t testing.TB, dir string, opts ...Option) *DB {
	t.Helper()
	db, err := Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
