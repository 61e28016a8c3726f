package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// bytesBlob serves a byte slice as a BlobReader.
type bytesBlob struct{ *bytes.Reader }

func (b bytesBlob) Close() error { return nil }

func serveBytes(files map[[BlobIDLen]byte][]byte) BlobHandler {
	return func(_ context.Context, _ peer.ID, id [BlobIDLen]byte) (BlobReader, error) {
		d, ok := files[id]
		if !ok {
			return nil, ErrNotFound
		}
		return bytesBlob{bytes.NewReader(d)}, nil
	}
}

func fetchAll(t *testing.T, n *Node, from peer.ID, id [BlobIDLen]byte, off, length int64) ([]byte, error) {
	t.Helper()
	var got []byte
	err := n.FetchBlob(testCtx(t, 20*time.Second), from, id, off, length, func(r io.Reader, avail int64) error {
		var err error
		got, err = io.ReadAll(r)
		if int64(len(got)) != avail {
			t.Errorf("read %d of %d announced bytes", len(got), avail)
		}
		return err
	})
	return got, err
}

// TestBlobFetchRanges: ranges of a served file arrive intact, a range past
// the end is cut to what exists, an unknown id and a node without files
// answer with clear errors.
func TestBlobFetchRanges(t *testing.T) {
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	id := [BlobIDLen]byte{1}
	a := newTestNode(t, WithHandlers(Handlers{Blob: serveBytes(map[[BlobIDLen]byte][]byte{id: data})}))
	b := newTestNode(t)
	connect(t, b, a)

	got, err := fetchAll(t, b, a.ID(), id, 100, 2<<20)
	if err != nil || !bytes.Equal(got, data[100:100+2<<20]) {
		t.Fatalf("range: %v (equal %v)", err, bytes.Equal(got, data[100:100+2<<20]))
	}
	got, err = fetchAll(t, b, a.ID(), id, 3<<20, 1<<20)
	if err != nil || !bytes.Equal(got, data[3<<20:]) {
		t.Fatalf("range past the end: %v, %d bytes", err, len(got))
	}
	if _, err := fetchAll(t, b, a.ID(), id, int64(len(data)), 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("range after the end: %v", err)
	}
	if _, err := fetchAll(t, b, a.ID(), [BlobIDLen]byte{2}, 0, 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := fetchAll(t, a, b.ID(), id, 0, 10); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("node without files: %v", err)
	}
	if err := b.FetchBlob(context.Background(), a.ID(), id, 0, MaxBlobRange+1, nil); err == nil {
		t.Fatal("a range over MaxBlobRange was asked for")
	}
}

// TestBlobServeLimits: a peer gets at most blobPerPeer responses at a
// time; the next one is refused as rate limited, not queued.
func TestBlobServeLimits(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	started := 0
	h := func(ctx context.Context, _ peer.ID, id [BlobIDLen]byte) (BlobReader, error) {
		mu.Lock()
		started++
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return bytesBlob{bytes.NewReader([]byte("data"))}, nil
	}
	a := newTestNode(t, WithHandlers(Handlers{Blob: h}))
	b := newTestNode(t)
	connect(t, b, a)
	errs := make(chan error, blobPerPeer)
	for i := 0; i < blobPerPeer; i++ {
		go func() {
			_, err := fetchAll(t, b, a.ID(), [BlobIDLen]byte{}, 0, 4)
			errs <- err
		}()
	}
	waitFor(t, 10*time.Second, "responses running", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return started == blobPerPeer
	})
	if _, err := fetchAll(t, b, a.ID(), [BlobIDLen]byte{}, 0, 4); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("request over the per-peer limit: %v", err)
	}
	close(release)
	for i := 0; i < blobPerPeer; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Slots are given back.
	if _, err := fetchAll(t, b, a.ID(), [BlobIDLen]byte{}, 0, 4); err != nil {
		t.Fatalf("after the others finished: %v", err)
	}
}

// TestBlobShortResponse: a server that announces more bytes than it sends
// fails the call (the requester never waits forever or takes a short
// answer as whole).
func TestBlobShortResponse(t *testing.T) {
	a := newTestNode(t)
	b := newTestNode(t)
	connect(t, b, a)
	a.h.SetStreamHandler(ProtocolBlob, func(s network.Stream) {
		f := newFrameStream(s, time.Second, time.Time{})
		_, _ = f.read(smallFrame)
		var e enc
		e.uvarint(1000)
		_ = f.writeStatus(CodeOK, "", e.body(), 16)
		_, _ = s.Write([]byte("only this"))
		_ = s.Close()
	})
	var got int64
	err := b.FetchBlob(testCtx(t, 10*time.Second), a.ID(), [BlobIDLen]byte{}, 0, 1000, func(r io.Reader, avail int64) error {
		n, err := io.Copy(io.Discard, r)
		got = n
		if err == nil && n < avail {
			err = io.ErrUnexpectedEOF
		}
		return err
	})
	if err == nil || got != 9 {
		t.Fatalf("short response: %v after %d bytes", err, got)
	}
}

func FuzzBlobRequest(f *testing.F) {
	f.Add(encodeBlobRequest(blobRequest{ID: [BlobIDLen]byte{1}, Offset: 65552 * 3, Length: 64 * 65552}))
	f.Add(encodeBlobRequest(blobRequest{Length: 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeBlobRequest(data)
		if err != nil {
			return
		}
		if r.Length == 0 || r.Length > MaxBlobRange {
			t.Fatalf("accepted length %d", r.Length)
		}
		if enc := encodeBlobRequest(r); !bytes.Equal(enc, data) {
			t.Fatalf("round trip: %x != %x", enc, data)
		}
	})
}
