package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Fuzz targets for every parser in the package. Seed corpora are in
// testdata/fuzz/<FuzzName>/.

func fuzzSealer(tb testing.TB) *sealer {
	key := make([]byte, keySize)
	for i := range key {
		key[i] = byte(i)
	}
	s, err := newSealer(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// FuzzOpenSealed: any bytes in a sealed column give a clear error, never a
// panic, and sealing round-trips.
func FuzzOpenSealed(f *testing.F) {
	s := fuzzSealer(f)
	f.Add(s.seal(rowAD("t", "c", []byte("k")), []byte("secret")), []byte("k"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{sealVersion}, []byte("k"))
	f.Fuzz(func(t *testing.T, blob, key []byte) {
		ad := rowAD("t", "c", key)
		if _, err := s.open(ad, blob); err != nil && !strings.HasPrefix(err.Error(), "store: ") {
			t.Fatalf("unclear error %q", err)
		}
		if _, _, err := parseSealed(blob); err == nil && len(blob) < sealOverhead {
			t.Fatal("accepted a short envelope")
		}
		// Round trip of arbitrary plaintext, bound to its row.
		sealed := s.seal(ad, blob)
		back, err := s.open(ad, sealed)
		if err != nil || !bytes.Equal(back, blob) {
			t.Fatalf("round trip: %v", err)
		}
		if _, err := s.open(rowAD("t", "c", append(key, 0)), sealed); err == nil {
			t.Fatal("opened with another row's associated data")
		}
	})
}

// FuzzMigrationHeader: the "-- version: N" parser.
func FuzzMigrationHeader(f *testing.F) {
	f.Add("-- version: 1\nCREATE TABLE x (a);")
	f.Add("-- version: 0012\n")
	f.Add("-- version:\n")
	f.Fuzz(func(t *testing.T, src string) {
		n, err := parseMigrationHeader(src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "store: ") {
				t.Fatalf("unclear error %q", err)
			}
			return
		}
		if n < 1 {
			t.Fatalf("version %d accepted", n)
		}
		if m, err := parseMigrationHeader(fmt.Sprintf("-- version: %d\n", n)); err != nil || m != n {
			t.Fatalf("canonical header for %d: %d, %v", n, m, err)
		}
	})
}

var (
	fuzzDBOnce sync.Once
	fuzzDB     *DB
	fuzzDBErr  error
)

// FuzzSearchQuery: whatever a user types, Search either runs or says the
// query is invalid; FTS5 syntax can never be injected.
func FuzzSearchQuery(f *testing.F) {
	f.Add("hello world")
	f.Add(`"exact phrase" pre*`)
	f.Add(`NEAR(a b) OR c AND NOT d`)
	f.Add(`text:foo ^bar {a b}: -x +y`)
	f.Add("\u0301\u0300 ́")
	fuzzDBOnce.Do(func() {
		fuzzDB, fuzzDBErr = OpenMemory(context.Background())
		if fuzzDBErr == nil {
			createGroup(f, fuzzDB, gid)
			_, fuzzDBErr = fuzzDB.AddMessages(context.Background(),
				Message{GroupID: gid, ID: []byte("1"), Text: "hello world, an exact phrase with prefixes"},
				Message{GroupID: gid, ID: []byte("2"), Text: "Ünïcödé 東京 ελληνικά"})
		}
	})
	if fuzzDBErr != nil {
		f.Fatal(fuzzDBErr)
	}
	f.Fuzz(func(t *testing.T, text string) {
		q, qerr := ftsQuery(text)
		_, err := fuzzDB.Search(context.Background(), SearchQuery{Text: text})
		if qerr != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("query %q rejected by the parser (%v) but Search said %v", text, qerr, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("text %q → search %+v: %v", text, q, err)
		}
	})
}

// FuzzInvitation: any id and payload are stored and read back unchanged
// (sealed under the id), or refused with ErrInvalid; never a panic.
func FuzzInvitation(f *testing.F) {
	f.Add("a1b2c3d4", []byte(`{"group_name":"x"}`))
	f.Add("", []byte("x"))
	f.Add("id", []byte{})
	f.Add("\x00'; DROP TABLE invitations; --", []byte{0, 1, 2})
	db := openMemoryTest(f)
	f.Fuzz(func(t *testing.T, id string, payload []byte) {
		c := context.Background()
		err := db.PutInvitation(c, Invitation{ID: id, Payload: payload})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("put %q: %v", id, err)
			}
			return
		}
		inv, err := db.Invitation(c, id)
		if err != nil || inv.ID != id || !bytes.Equal(inv.Payload, payload) {
			t.Fatalf("round trip %q: %+v %v", id, inv, err)
		}
		if err := db.DeleteInvitation(c, id); err != nil {
			t.Fatal(err)
		}
	})
}
