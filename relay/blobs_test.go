package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/p2p"
)

// TestRelayKeepsFiles: `canopy relay` keeps uploaded ciphertext in
// DataDir/blobs and serves it again after a restart; with NoBlobs it
// takes none.
func TestRelayKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	r1 := startRelayCommand(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newTestMember(t)
	if err := a.Connect(ctx, r1.info); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 5<<20+3)
	rand.Read(data)
	id := [p2p.BlobIDLen]byte{42}
	if err := a.PutBlob(ctx, r1.info.ID, id, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatalf("PutBlob: %v\nrelay stderr:\n%s", err, r1.stderr)
	}
	if fi, err := os.Stat(filepath.Join(dir, "blobs", "2a"+string(bytes.Repeat([]byte("0"), 62)))); err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("stored file: %v", err)
	}
	r1.stop(t)

	r2 := startRelayCommand(t, dir)
	b := newTestMember(t)
	if err := b.Connect(ctx, r2.info); err != nil {
		t.Fatal(err)
	}
	var got []byte
	err := b.FetchBlob(ctx, r2.info.ID, id, 1<<20, 8<<20, func(r io.Reader, _ int64) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	if err != nil || !bytes.Equal(got, data[1<<20:]) {
		t.Fatalf("fetch after restart: %v (equal %v)", err, bytes.Equal(got, data[1<<20:]))
	}
	r2.stop(t)

	cfg := testConfig(t.TempDir())
	cfg.NoBlobs = true
	cfg.Circuit.Disabled = true
	rr, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	if err := b.Connect(ctx, p2p.AddrInfo{ID: rr.ID(), Addrs: rr.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutBlob(ctx, rr.ID(), id, 10, bytes.NewReader(data)); err == nil || errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("relay with NoBlobs: %v, want a refusal", err)
	}
}
