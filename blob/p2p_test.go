package blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/blob"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// These tests move files between real libp2p hosts on 127.0.0.1 over
// /canopy/blob/1.

type node struct {
	*p2p.Node
	store *blob.Store
}

// serveStore is the BlobHandler of a store.
func serveStore(s *blob.Store, tamper func([]byte, int64)) p2p.BlobHandler {
	return func(_ context.Context, _ peer.ID, id [p2p.BlobIDLen]byte) (p2p.BlobReader, error) {
		r, err := s.Open(blob.ID(id))
		if errors.Is(err, blob.ErrNotFound) {
			return nil, p2p.ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		if tamper != nil {
			return tamperReader{r, tamper}, nil
		}
		return r, nil
	}
}

// tamperReader is a lying peer's view of its store.
type tamperReader struct {
	*blob.Reader
	tamper func([]byte, int64)
}

func (t tamperReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := t.Reader.ReadAt(p, off)
	t.tamper(p[:n], off)
	return n, err
}

func newNode(t testing.TB, tamper func([]byte, int64)) *node {
	t.Helper()
	s, err := blob.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n, err := p2p.New(context.Background(), nil,
		p2p.WithListenAddrs("/ip4/127.0.0.1/tcp/0"), p2p.WithMDNS(false), p2p.WithDHT(p2p.DHTOff),
		p2p.WithAutoNAT(false), p2p.WithHolePunching(false),
		p2p.WithHandlers(p2p.Handlers{Blob: serveStore(s, tamper)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return &node{n, s}
}

func connect(t testing.TB, a, b *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.AddrInfo()); err != nil {
		t.Fatal(err)
	}
}

// rangeFunc asks peers (string(peer.ID)) through n, counting bytes read
// from each.
func rangeFunc(n *node, served map[string]*atomic.Int64) blob.RangeFunc {
	return func(ctx context.Context, p string, id blob.ID, off, length int64, read func(io.Reader, int64) error) error {
		return n.FetchBlob(ctx, peer.ID(p), id, off, length, func(r io.Reader, avail int64) error {
			if c := served[p]; c != nil {
				r = countingReader{r, c}
			}
			return read(r, avail)
		})
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func sendFile(t testing.TB, n *node, size int) (*blob.Announcement, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	k, _ := blob.NewKey()
	sum, err := n.store.Put(bytes.NewReader(data), k, uint64(size))
	if err != nil {
		t.Fatal(err)
	}
	if sum != sha256.Sum256(data) {
		t.Fatal("Put returned a wrong hash")
	}
	return &blob.Announcement{Key: k, SHA256: sum, Size: uint64(size), Name: "data.bin"}, data
}

func receive(t testing.TB, n *node, a *blob.Announcement, peers []string, served map[string]*atomic.Int64) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.store.Download(ctx, blob.Fetch{Ann: a, Peers: peers, Range: rangeFunc(n, served)}); err != nil {
		t.Fatal(err)
	}
	p, err := n.store.Export(a, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestTransferFromAnyHolder: B fetches from the sender; once the sender is
// gone, C fetches from B, which serves the ciphertext it fetched.
func TestTransferFromAnyHolder(t *testing.T) {
	a, b, c := newNode(t, nil), newNode(t, nil), newNode(t, nil)
	connect(t, b, a)
	connect(t, c, b)
	ann, data := sendFile(t, a, 3*blob.RangeSize+12345)
	if got := receive(t, b, ann, []string{string(a.ID())}, nil); !bytes.Equal(got, data) {
		t.Fatal("B got different bytes")
	}
	a.Close()
	if got := receive(t, c, ann, []string{string(a.ID()), string(b.ID())}, nil); !bytes.Equal(got, data) {
		t.Fatal("C got different bytes")
	}
}

// TestTransferLyingPeer: a peer that serves flipped bytes from some point
// on is dropped at its first bad chunk; the rest comes from an honest peer
// and nothing is fetched twice.
func TestTransferLyingPeer(t *testing.T) {
	honest := newNode(t, nil)
	badFrom := int64(blob.RangeSize + 5*(blob.ChunkSize+blob.TagSize)) // in the second range
	liar := newNode(t, func(p []byte, off int64) {
		for i := range p {
			if off+int64(i) >= badFrom {
				p[i] ^= 0x55
			}
		}
	})
	recv := newNode(t, nil)
	connect(t, recv, honest)
	connect(t, recv, liar)
	ann, data := sendFile(t, honest, 4*blob.RangeSize)
	// The liar holds the same ciphertext.
	r, _ := honest.store.Open(ann.ID())
	if err := liar.store.Download(context.Background(), blob.Fetch{Ann: ann, Peers: []string{"x"},
		Range: func(_ context.Context, _ string, _ blob.ID, off, n int64, read func(io.Reader, int64) error) error {
			n = min(n, r.Size()-off)
			return read(io.NewSectionReader(r, off, n), n)
		}}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	served := map[string]*atomic.Int64{string(liar.ID()): {}, string(honest.ID()): {}}
	got := receive(t, recv, ann, []string{string(liar.ID()), string(honest.ID())}, served)
	if !bytes.Equal(got, data) {
		t.Fatal("received different bytes")
	}
	goodFromLiar := badFrom / (blob.ChunkSize + blob.TagSize) * (blob.ChunkSize + blob.TagSize)
	if h := served[string(honest.ID())].Load(); h != ann.CiphertextSize()-goodFromLiar {
		t.Errorf("honest peer served %d bytes, want %d (the rest after the liar's good chunks)", h, ann.CiphertextSize()-goodFromLiar)
	}
}

// BenchmarkBlob moves 100 MB between two hosts on loopback (fetch with
// per-chunk verification, then decrypt and hash into the downloads
// folder) and reports the peak Go heap seen during the transfer.
func BenchmarkBlob(b *testing.B) {
	const size = 100 << 20
	a, r := newNode(b, nil), newNode(b, nil)
	connect(b, r, a)
	// The sender streams the file from a random source: nothing in this
	// process holds 100 MB, so the peak heap is the transfer's own.
	k, _ := blob.NewKey()
	sum, err := a.store.Put(io.LimitReader(rand.Reader, size), k, size)
	if err != nil {
		b.Fatal(err)
	}
	ann := &blob.Announcement{Key: k, SHA256: sum, Size: size, Name: "data.bin"}
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := blob.OpenStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Download(context.Background(), blob.Fetch{Ann: ann, Peers: []string{string(a.ID())}, Range: rangeFunc(r, nil)}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Export(ann, b.TempDir()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
}
