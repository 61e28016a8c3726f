package p2p

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestRelayBlobUploadServe: a member uploads ciphertext to a relay in
// several requests, another fetches any range of it from the relay, a
// second upload is a no-op, and a restarted relay still serves it.
func TestRelayBlobUploadServe(t *testing.T) {
	dir := t.TempDir()
	r := newTestRelay(t, RelayConfig{BlobDir: dir})
	alice, bob := newTestNode(t), newTestNode(t)
	connect(t, alice, r.Node())
	connect(t, bob, r.Node())

	data := randomBytes(9<<20 + 17) // three upload requests
	id := [BlobIDLen]byte{7}
	start := time.Now()
	if err := alice.PutBlob(testCtx(t, 60*time.Second), r.Node().ID(), id, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	el := time.Since(start)
	t.Logf("uploaded %d MiB to the relay in %v (%.0f MiB/s)", len(data)>>20, el.Round(time.Millisecond), float64(len(data))/(1<<20)/el.Seconds())

	got, err := fetchAll(t, bob, r.Node().ID(), id, 0, MaxBlobRange)
	if err != nil || !bytes.Equal(got, data[:MaxBlobRange]) {
		t.Fatalf("fetch head: %v", err)
	}
	got, err = fetchAll(t, bob, r.Node().ID(), id, MaxBlobRange, MaxBlobRange)
	if err != nil || !bytes.Equal(got, data[MaxBlobRange:]) {
		t.Fatalf("fetch tail: %v (%d bytes)", err, len(got))
	}
	if _, err := fetchAll(t, bob, r.Node().ID(), [BlobIDLen]byte{8}, 0, 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
	// Uploading again sends nothing and succeeds.
	if err := bob.PutBlob(testCtx(t, 10*time.Second), r.Node().ID(), id, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatalf("second PutBlob: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || strings.HasSuffix(ents[0].Name(), ".part") {
		t.Fatalf("blob dir holds %v, want one complete file", ents)
	}
	rec := httptest.NewRecorder()
	r.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		"canopy_p2p_relay_blob_bytes " + strconv.FormatFloat(float64(len(data)), 'g', -1, 64),
		"canopy_p2p_relay_blob_files 1",
		`canopy_p2p_relay_blob_total{op="uploaded"} ` + strconv.FormatFloat(float64(len(data)), 'g', -1, 64),
		`canopy_p2p_relay_blob_total{op="stored_files"} 1`,
		`canopy_p2p_relay_blob_total{op="served_requests"} 2`,
		`canopy_p2p_stream_requests_total{code="ok",protocol="/canopy/blobput/1"}`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// A relay without a blob directory does not take files.
	plain := newTestRelay(t, RelayConfig{})
	connect(t, alice, plain.Node())
	if err := alice.PutBlob(testCtx(t, 10*time.Second), plain.Node().ID(), id, 10, bytes.NewReader(data)); err == nil {
		t.Fatal("relay without BlobDir took a file")
	}

	// A restarted relay serves what it stored.
	_ = r.Close()
	r2 := newTestRelay(t, RelayConfig{BlobDir: dir})
	connect(t, bob, r2.Node())
	got, err = fetchAll(t, bob, r2.Node().ID(), id, 5, 100)
	if err != nil || !bytes.Equal(got, data[5:105]) {
		t.Fatalf("fetch after restart: %v", err)
	}
}

// TestRelayBlobQuotas: the announced size is checked against the file,
// per-peer, per-address and total quotas before a byte is taken, with
// errors that say which limit it was.
func TestRelayBlobQuotas(t *testing.T) {
	r := newTestRelay(t, RelayConfig{BlobDir: t.TempDir(), Quotas: Quotas{
		MaxBlob: 1 << 20, BlobBytesPerPeer: 2 << 20, BlobBytesPerIP: 3 << 20, BlobBytes: 4 << 20,
	}})
	alice, carol := newTestNode(t), newTestNode(t) // both at 127.0.0.1
	dave := newHonestNode(t)                       // 127.0.0.2
	for _, n := range []*Node{alice, carol, dave} {
		connect(t, n, r.Node())
	}
	mib := randomBytes(1 << 20)
	put := func(n *Node, id byte, size int) error {
		return n.PutBlob(testCtx(t, 20*time.Second), r.Node().ID(), [BlobIDLen]byte{id}, int64(size), bytes.NewReader(mib))
	}
	expect := func(err error, what string) {
		t.Helper()
		if !errors.Is(err, ErrQuotaExceeded) || !strings.Contains(err.Error(), what) {
			t.Fatalf("got %v, want a quota error naming %q", err, what)
		}
	}
	expect(put(alice, 1, 1<<20+1), "files up to 1048576")
	for i := range 2 {
		if err := put(alice, byte(10+i), 1<<20); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	expect(put(alice, 12, 1), "this peer has 2097152 bytes")
	if err := put(carol, 20, 1<<20); err != nil {
		t.Fatal(err)
	}
	expect(put(carol, 21, 1), "peers at this address")
	if err := put(dave, 30, 1<<20); err != nil {
		t.Fatal(err)
	}
	expect(put(dave, 31, 1), "storage is full")
	// The bytes it refused were never stored.
	if ents, _ := os.ReadDir(r.cfg.BlobDir); len(ents) != 4 {
		t.Fatalf("blob dir holds %d files, want 4", len(ents))
	}
}

// TestRelayBlobExpiry: a file is served until BlobTTL after its upload,
// then deleted from disk, and its quota is free again; so is an upload
// left unfinished.
func TestRelayBlobExpiry(t *testing.T) {
	dir := t.TempDir()
	r := newTestRelay(t, RelayConfig{BlobDir: dir, BlobTTL: 300 * time.Millisecond, PruneInterval: 50 * time.Millisecond,
		Quotas: Quotas{BlobBytesPerPeer: 1 << 20}})
	alice := newTestNode(t)
	connect(t, alice, r.Node())
	data := randomBytes(1 << 20)
	id := [BlobIDLen]byte{3}
	if err := alice.PutBlob(testCtx(t, 20*time.Second), r.Node().ID(), id, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := fetchAll(t, alice, r.Node().ID(), id, 0, 10); err != nil {
		t.Fatalf("fetch before expiry: %v", err)
	}
	waitFor(t, 10*time.Second, "the file to expire", func() bool {
		_, err := os.Stat(filepath.Join(dir, "0300000000000000000000000000000000000000000000000000000000000000"))
		return os.IsNotExist(err)
	})
	if _, err := fetchAll(t, alice, r.Node().ID(), id, 0, 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fetch after expiry: %v, want ErrNotFound", err)
	}
	// An upload nobody finishes is deleted once idle, and its quota (the
	// whole announced size) is free again.
	r.blobs.mu.Lock()
	r.blobs.partialIdle = 300 * time.Millisecond
	r.blobs.mu.Unlock()
	ctx := testCtx(t, 20*time.Second)
	half := blobPut{ID: [BlobIDLen]byte{4}, Size: uint64(len(data)), Length: uint64(len(data) / 2)}
	if _, err := alice.putBlobRange(ctx, r.Node().ID(), half, func(f *frameStream) error {
		_, err := f.s.Write(data[:half.Length])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := alice.PutBlob(ctx, r.Node().ID(), [BlobIDLen]byte{6}, 10, bytes.NewReader(data)); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("partial upload not charged in full: %v", err)
	}
	waitFor(t, 10*time.Second, "the abandoned upload to go", func() bool {
		ents, _ := os.ReadDir(dir)
		return len(ents) == 0
	})
	if err := alice.PutBlob(ctx, r.Node().ID(), [BlobIDLen]byte{6}, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatalf("quota not released by expiry: %v", err)
	}
}

// TestRelayBlobResumeAndFirstStands: an upload cut off resumes where the
// relay's copy ends; bytes at any other offset are refused; once complete,
// a file is never replaced by another upload of the same id (the relay
// cannot verify ciphertext against an id derived from a key it never
// sees, so the first complete upload stands).
func TestRelayBlobResumeAndFirstStands(t *testing.T) {
	r := newTestRelay(t, RelayConfig{BlobDir: t.TempDir()})
	alice, mallory := newTestNode(t), newTestNode(t)
	connect(t, alice, r.Node())
	connect(t, mallory, r.Node())
	rid := r.Node().ID()
	data := randomBytes(6 << 20)
	id := [BlobIDLen]byte{5}
	size := uint64(len(data))
	ctx := testCtx(t, 60*time.Second)

	have, err := alice.putBlobRange(ctx, rid, blobPut{ID: id, Size: size}, nil)
	if err != nil || have != 0 {
		t.Fatalf("query: %d, %v", have, err)
	}
	sendRaw := func(b []byte) func(*frameStream) error {
		return func(f *frameStream) error { _, err := f.s.Write(b); return err }
	}
	if have, err = alice.putBlobRange(ctx, rid, blobPut{ID: id, Size: size, Length: 1 << 20}, sendRaw(data[:1<<20])); err != nil || have != 1<<20 {
		t.Fatalf("first part: %d, %v", have, err)
	}
	_, err = mallory.putBlobRange(ctx, rid, blobPut{ID: id, Size: size, Offset: 2 << 20, Length: 10}, sendRaw(make([]byte, 10)))
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("upload at a gap: %v, want ErrBadRequest", err)
	}
	if _, err = mallory.putBlobRange(ctx, rid, blobPut{ID: id, Size: size + 1}, nil); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("other size: %v, want ErrBadRequest", err)
	}
	if err := alice.PutBlob(ctx, rid, id, int64(size), bytes.NewReader(data)); err != nil {
		t.Fatalf("resume: %v", err)
	}
	junk := randomBytes(len(data))
	if err := mallory.PutBlob(ctx, rid, id, int64(size), bytes.NewReader(junk)); err != nil {
		t.Fatalf("upload of a complete file: %v", err)
	}
	_, err = mallory.putBlobRange(ctx, rid, blobPut{ID: id, Size: size, Length: 10}, sendRaw(junk[:10]))
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("overwrite: %v, want ErrBadRequest", err)
	}
	got, err := fetchAll(t, mallory, rid, id, 0, int64(size))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetch: %v (equal %v)", err, bytes.Equal(got, data))
	}
}

// TestRelayBlobUploadPaced: an uploader over the relay's request rate
// waits and goes on instead of failing.
func TestRelayBlobUploadPaced(t *testing.T) {
	r := newTestRelay(t, RelayConfig{BlobDir: t.TempDir(), Quotas: Quotas{RequestRate: RateLimit{Rate: 2, Burst: 2}}})
	alice := newTestNode(t)
	connect(t, alice, r.Node())
	data := randomBytes(3*MaxBlobRange + 1) // a query and four requests
	id := [BlobIDLen]byte{9}
	if err := alice.PutBlob(testCtx(t, 60*time.Second), r.Node().ID(), id, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatalf("PutBlob over the request rate: %v", err)
	}
	bob := newTestNode(t) // alice has used up her requests
	connect(t, bob, r.Node())
	got, err := fetchAll(t, bob, r.Node().ID(), id, 3*MaxBlobRange, 10)
	if err != nil || !bytes.Equal(got, data[3*MaxBlobRange:]) {
		t.Fatalf("fetch: %v", err)
	}
}

// stallingReader stalls once, for d, when asked for bytes at or past at.
type stallingReader struct {
	*bytes.Reader
	at      int64
	d       time.Duration
	stalled atomic.Bool
}

func (s *stallingReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.at && !s.stalled.Swap(true) {
		time.Sleep(s.d)
	}
	return s.Reader.ReadAt(p, off)
}

// TestRelayBlobUploadCutResumes: an uploader that stalls mid-request past
// the relay's read timeout is cut off; it asks the relay what it holds and
// goes on from there with smaller requests, and the file arrives whole.
func TestRelayBlobUploadCutResumes(t *testing.T) {
	r := newTestRelay(t, RelayConfig{BlobDir: t.TempDir()}, WithTimeouts(30*time.Second, 300*time.Millisecond, 30*time.Second))
	alice, bob := newTestNode(t), newTestNode(t)
	connect(t, alice, r.Node())
	connect(t, bob, r.Node())
	data := randomBytes(2*MaxBlobRange + 5)
	id := [BlobIDLen]byte{11}
	src := &stallingReader{Reader: bytes.NewReader(data), at: MaxBlobRange + 3<<20, d: time.Second}
	if err := alice.PutBlob(testCtx(t, 60*time.Second), r.Node().ID(), id, int64(len(data)), src); err != nil {
		t.Fatalf("PutBlob with a stall: %v", err)
	}
	if !src.stalled.Load() {
		t.Fatal("the upload never stalled")
	}
	for off := int64(0); off < int64(len(data)); off += MaxBlobRange {
		got, err := fetchAll(t, bob, r.Node().ID(), id, off, MaxBlobRange)
		if err != nil || !bytes.Equal(got, data[off:min(off+MaxBlobRange, int64(len(data)))]) {
			t.Fatalf("fetch at %d: %v", off, err)
		}
	}
}

func FuzzBlobPutRequest(f *testing.F) {
	f.Add(encodeBlobPut(blobPut{ID: [BlobIDLen]byte{1}, Size: 9 << 20, Offset: 4 << 20, Length: 4 << 20}))
	f.Add(encodeBlobPut(blobPut{Size: 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeBlobPut(data)
		if err != nil {
			return
		}
		if r.Size == 0 || r.Length > MaxBlobRange || r.Offset+r.Length > r.Size || r.Size > 1<<50 {
			t.Fatalf("accepted %+v", r)
		}
		if enc := encodeBlobPut(r); !bytes.Equal(enc, data) {
			t.Fatalf("round trip: %x != %x", enc, data)
		}
	})
}

// BenchmarkRelayBlobPut uploads 64 MiB to a relay on loopback (TCP), the
// relay writing it to disk.
func BenchmarkRelayBlobPut(b *testing.B) {
	r := newTestRelay(b, RelayConfig{BlobDir: b.TempDir(), Quotas: Quotas{BlobBytesPerPeer: 1 << 40, BlobBytesPerIP: 1 << 40, BlobBytes: 1 << 40}})
	alice := newTestNode(b)
	connect(b, alice, r.Node())
	data := randomBytes(64 << 20)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		id := [BlobIDLen]byte{byte(i), byte(i >> 8), 1}
		if err := alice.PutBlob(testCtx(b, time.Minute), r.Node().ID(), id, int64(len(data)), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
