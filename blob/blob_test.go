package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func testAnn(t testing.TB, size int) (*Announcement, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return &Announcement{Key: k, SHA256: sha256.Sum256(data), Size: uint64(size), Name: "f.bin", MediaType: "application/octet-stream"}, data
}

func TestAnnouncementRoundTrip(t *testing.T) {
	a, _ := testAnn(t, 12345)
	a.Width, a.Height, a.Name = 640, 480, "shot ü.png"
	b, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseAnnouncement(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *a {
		t.Fatalf("round trip: got %+v, want %+v", got, a)
	}
	if got.ID() != a.ID() || got.ID() == ID(a.Key) {
		t.Fatal("ID must be derived from, and differ from, the key")
	}
}

func TestAnnouncementRejects(t *testing.T) {
	a, _ := testAnn(t, 10)
	good, _ := a.Marshal()
	cases := map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{2}, good[1:]...),
		"trailing":  append(append([]byte{}, good...), 0),
		"truncated": good[:len(good)-1],
	}
	big := *a
	big.Size = MaxSize + 1
	raw := append([]byte{}, good...)
	copy(raw[65:73], []byte{0, 0, 0, 4, 0, 0, 0, 1}) // size field: 16 GiB + 1
	cases["size"] = raw
	for name, b := range cases {
		if _, err := ParseAnnouncement(b); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "version" && !errors.Is(err, ErrVersion) {
			t.Errorf("version: %v, want ErrVersion", err)
		} else if name != "version" && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := big.Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("marshal of a too large size: %v", err)
	}
	for _, bad := range []Announcement{
		{Name: ""}, {Name: strings.Repeat("a", MaxNameLen+1)}, {Name: "\xff"},
		{Name: "a", MediaType: "text/\n"}, {Name: "a", MediaType: strings.Repeat("a", MaxMediaTypeLen+1)},
	} {
		if _, err := bad.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("marshal of %q/%q: %v", bad.Name, bad.MediaType, err)
		}
	}
}

func seal(t testing.TB, a *Announcement, data []byte) []byte {
	t.Helper()
	var ct bytes.Buffer
	sum, err := Seal(&ct, bytes.NewReader(data), a.Key, a.Size)
	if err != nil {
		t.Fatal(err)
	}
	if sum != a.SHA256 {
		t.Fatal("Seal returned a wrong hash")
	}
	if int64(ct.Len()) != a.CiphertextSize() {
		t.Fatalf("ciphertext of %d bytes, want %d", ct.Len(), a.CiphertextSize())
	}
	return ct.Bytes()
}

func TestSealOpenSizes(t *testing.T) {
	for _, size := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 7} {
		a, data := testAnn(t, size)
		ct := seal(t, a, data)
		var pt bytes.Buffer
		sum, err := Open(&pt, bytes.NewReader(ct), a.Key, a.Size)
		if err != nil || sum != a.SHA256 || !bytes.Equal(pt.Bytes(), data) {
			t.Fatalf("size %d: err %v, equal %v", size, err, bytes.Equal(pt.Bytes(), data))
		}
	}
}

func TestSealSizeChanged(t *testing.T) {
	a, data := testAnn(t, 100)
	if _, err := Seal(io.Discard, bytes.NewReader(data[:99]), a.Key, a.Size); !errors.Is(err, ErrSize) {
		t.Errorf("short source: %v", err)
	}
	if _, err := Seal(io.Discard, bytes.NewReader(append(data, 1)), a.Key, a.Size); !errors.Is(err, ErrSize) {
		t.Errorf("long source: %v", err)
	}
}

// TestOpenDetectsTampering: truncation at a chunk boundary, reordering,
// extension, a flipped bit and the wrong key all fail.
func TestOpenDetectsTampering(t *testing.T) {
	a, data := testAnn(t, 3*ChunkSize)
	ct := seal(t, a, data)
	c0, c1, c2 := ct[:ctChunkSize], ct[ctChunkSize:2*ctChunkSize], ct[2*ctChunkSize:]
	flip := append([]byte{}, ct...)
	flip[ctChunkSize+5] ^= 1
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	cases := map[string]struct {
		ct   []byte
		size uint64
	}{
		"truncated, size claimed shorter": {cat(c0, c1), 2 * ChunkSize},
		"truncated":                       {cat(c0, c1), a.Size},
		"reordered":                       {cat(c1, c0, c2), a.Size},
		"extended":                        {cat(c0, c1, c2, c2), a.Size},
		"extended, size claimed longer":   {cat(c0, c1, c2, c2), 4 * ChunkSize},
		"flipped bit":                     {flip, a.Size},
		"trailing byte":                   {cat(ct, []byte{0}), a.Size},
	}
	for name, c := range cases {
		if _, err := Open(io.Discard, bytes.NewReader(c.ct), a.Key, c.size); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	other, _ := NewKey()
	if _, err := Open(io.Discard, bytes.NewReader(ct), other, a.Size); !errors.Is(err, ErrChunk) {
		t.Errorf("wrong key: %v", err)
	}
}

// peerSet serves ciphertexts to Download like remote peers would, counting
// the bytes each serves.
type peerSet struct {
	mu     sync.Mutex
	data   map[string][]byte // peer → what it serves for the one file
	served map[string]int64
	fail   map[string]int // fail after this many bytes (network error)
}

func (ps *peerSet) rangeFunc(ctx context.Context, peer string, id ID, off, n int64, read func(io.Reader, int64) error) error {
	ps.mu.Lock()
	d, ok := ps.data[peer]
	ps.mu.Unlock()
	if !ok || off >= int64(len(d)) {
		return fmt.Errorf("%s: %w", peer, ErrNotFound)
	}
	avail := min(n, int64(len(d))-off)
	var r io.Reader = bytes.NewReader(d[off : off+avail])
	r = &countReader{r: r, ps: ps, peer: peer}
	return read(r, avail)
}

type countReader struct {
	r    io.Reader
	ps   *peerSet
	peer string
}

func (c *countReader) Read(p []byte) (int, error) {
	c.ps.mu.Lock()
	limit, hasLimit := c.ps.fail[c.peer]
	served := c.ps.served[c.peer]
	c.ps.mu.Unlock()
	if hasLimit && served >= int64(limit) {
		return 0, errors.New("connection reset")
	}
	if hasLimit {
		p = p[:min(int64(len(p)), int64(limit)-served)]
	}
	n, err := c.r.Read(p)
	c.ps.mu.Lock()
	c.ps.served[c.peer] += int64(n)
	c.ps.mu.Unlock()
	return n, err
}

func newPeerSet() *peerSet {
	return &peerSet{data: map[string][]byte{}, served: map[string]int64{}, fail: map[string]int{}}
}

func TestDownloadAndExport(t *testing.T) {
	a, data := testAnn(t, 5*ChunkSize+3)
	ct := seal(t, a, data)
	ps := newPeerSet()
	ps.data["good"] = ct
	s, _ := OpenStore(t.TempDir())
	var last int64
	err := s.Download(context.Background(), Fetch{Ann: a, Peers: []string{"good"}, Range: ps.rangeFunc,
		Progress: func(done, total int64) { last = done }})
	if err != nil {
		t.Fatal(err)
	}
	if last != a.CiphertextSize() || ps.served["good"] != a.CiphertextSize() {
		t.Fatalf("progress %d, served %d, want %d", last, ps.served["good"], a.CiphertextSize())
	}
	dir := t.TempDir()
	p, err := s.Export(a, dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, data) || filepath.Base(p) != "f.bin" {
		t.Fatalf("exported %s, equal %v", p, bytes.Equal(got, data))
	}
	// A second export never overwrites.
	p2, err := s.Export(a, dir)
	if err != nil || filepath.Base(p2) != "f (1).bin" {
		t.Fatalf("second export: %s, %v", p2, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("%d files in the downloads folder, want 2 (no temporary left)", len(ents))
	}
}

// TestDownloadDropsLyingPeer: a peer whose bytes do not authenticate is
// dropped after its first bad chunk and the file comes from the next peer.
func TestDownloadDropsLyingPeer(t *testing.T) {
	a, data := testAnn(t, 4*ChunkSize)
	ct := seal(t, a, data)
	bad := append([]byte{}, ct...)
	bad[2*ctChunkSize+10] ^= 0x80 // chunk 2 is wrong
	ps := newPeerSet()
	ps.data["liar"], ps.data["good"] = bad, ct
	s, _ := OpenStore(t.TempDir())
	if err := s.Download(context.Background(), Fetch{Ann: a, Peers: []string{"liar", "good"}, Range: ps.rangeFunc}); err != nil {
		t.Fatal(err)
	}
	// The liar's two good chunks were kept: the good peer served only the rest.
	if got, want := ps.served["good"], a.CiphertextSize()-2*ctChunkSize; got != want {
		t.Errorf("good peer served %d bytes, want %d", got, want)
	}
	if _, err := s.Export(a, t.TempDir()); err != nil {
		t.Fatal(err)
	}

	// Only liars: a FetchError naming why.
	a2, data2 := testAnn(t, ChunkSize)
	ct2 := seal(t, a2, data2)
	ct2[0] ^= 1
	ps.data["liar"] = ct2
	err := s.Download(context.Background(), Fetch{Ann: a2, Peers: []string{"liar", "absent"}, Range: ps.rangeFunc})
	var fe *FetchError
	if !errors.As(err, &fe) || !errors.Is(err, ErrNoSource) || !errors.Is(fe.Reasons["liar"], ErrLyingPeer) || fe.Reasons["absent"] == nil {
		t.Fatalf("download from liars: %v", err)
	}
}

// TestDownloadResumes: a download cut off (network error) and then
// "restarted" with a torn chunk at the end of the partial file fetches only
// what is missing, plus at most the torn chunk.
func TestDownloadResumes(t *testing.T) {
	a, data := testAnn(t, 300*ChunkSize+5)
	ct := seal(t, a, data)
	ps := newPeerSet()
	ps.data["p"] = ct
	cut := 100*ctChunkSize + 500 // the connection breaks inside chunk 100
	ps.fail["p"] = cut
	s, _ := OpenStore(t.TempDir())
	err := s.Download(context.Background(), Fetch{Ann: a, Peers: []string{"p"}, Range: ps.rangeFunc})
	if !errors.Is(err, ErrNoSource) {
		t.Fatalf("cut-off download: %v", err)
	}
	if got := s.Progress(a.ID(), a.Size); got != 100*ctChunkSize {
		t.Fatalf("kept %d bytes, want %d", got, 100*ctChunkSize)
	}
	// A crash mid-write leaves a torn chunk after the verified prefix.
	f, _ := os.OpenFile(s.partPath(a.ID()), os.O_WRONLY|os.O_APPEND, 0)
	f.Write(ct[100*ctChunkSize : 100*ctChunkSize+1000])
	f.Close()
	// Restart: a new store on the same directory.
	s2, _ := OpenStore(s.Dir())
	delete(ps.fail, "p")
	ps.served["p"] = 0
	var refetched int64
	if err := s2.Download(context.Background(), Fetch{Ann: a, Peers: []string{"p"}, Range: ps.rangeFunc,
		Refetched: func(n int64) { refetched = n }}); err != nil {
		t.Fatal(err)
	}
	if want := a.CiphertextSize() - 100*ctChunkSize; ps.served["p"] != want {
		t.Errorf("resumed download fetched %d bytes, want %d", ps.served["p"], want)
	}
	if refetched != 1000 {
		t.Errorf("dropped %d torn bytes, want 1000", refetched)
	}
	p, err := s2.Export(a, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, data) {
		t.Fatal("resumed file differs")
	}
}

// TestDownloadResumeDropsCorruptPrefix: a partial file whose content was
// damaged on disk is cut at the damage.
func TestDownloadResumeDropsCorruptPrefix(t *testing.T) {
	a, data := testAnn(t, 10*ChunkSize)
	ct := seal(t, a, data)
	s, _ := OpenStore(t.TempDir())
	bad := append([]byte{}, ct[:6*ctChunkSize]...)
	bad[4*ctChunkSize+1] ^= 1
	os.WriteFile(s.partPath(a.ID()), bad, 0o600)
	ps := newPeerSet()
	ps.data["p"] = ct
	if err := s.Download(context.Background(), Fetch{Ann: a, Peers: []string{"p"}, Range: ps.rangeFunc}); err != nil {
		t.Fatal(err)
	}
	if want := a.CiphertextSize() - 4*ctChunkSize; ps.served["p"] != want {
		t.Errorf("fetched %d bytes, want %d", ps.served["p"], want)
	}
}

// TestExportHashMismatch: a member with the key who sealed other content
// gets past the AEAD, but not the hash check; nothing lands in the folder.
func TestExportHashMismatch(t *testing.T) {
	a, _ := testAnn(t, 1000)
	other := make([]byte, 1000)
	ct := seal(t, &Announcement{Key: a.Key, Size: 1000, SHA256: sha256.Sum256(other), Name: "x"}, other)
	ps := newPeerSet()
	ps.data["member"] = ct
	s, _ := OpenStore(t.TempDir())
	if err := s.Download(context.Background(), Fetch{Ann: a, Peers: []string{"member"}, Range: ps.rangeFunc}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := s.Export(a, dir); !errors.Is(err, ErrHash) {
		t.Fatalf("export: %v, want ErrHash", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 || s.Has(a.ID()) {
		t.Fatalf("after a hash mismatch: %d files, ciphertext kept %v", len(ents), s.Has(a.ID()))
	}
}

func TestSafeName(t *testing.T) {
	cases := map[string]string{
		"../../etc/passwd":                "passwd",
		`..\..\win.ini`:                   "win.ini",
		"..":                              "file",
		".bashrc":                         "bashrc",
		"a\x00b\nc":                       "a_b_c",
		"":                                "file",
		"/":                               "file",
		"report\u202egnp.exe":             "report_gnp.exe",
		"ok name.txt":                     "ok name.txt",
		strings.Repeat("é", 200) + ".txt": strings.Repeat("é", 98) + ".txt",
	}
	for in, want := range cases {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestExportStaysInFolder: whatever the announced name, the file lands in
// the folder given.
func TestExportStaysInFolder(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "downloads")
	for _, name := range []string{"../escape", "/abs/path", "../../x", "..", "sub/../../y"} {
		a, data := testAnn(t, 10)
		a.Name = name
		s, _ := OpenStore(filepath.Join(root, "store"))
		if _, err := s.Put(bytes.NewReader(data), a.Key, a.Size); err != nil {
			t.Fatal(err)
		}
		p, err := s.Export(a, dir)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(p) != dir {
			t.Errorf("name %q landed at %s", name, p)
		}
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 2 {
		t.Errorf("%d entries next to the downloads folder, want 2", len(ents))
	}
}

func TestStoreServesVerifiedPrefixOnly(t *testing.T) {
	a, data := testAnn(t, 8*ChunkSize)
	ct := seal(t, a, data)
	s, _ := OpenStore(t.TempDir())
	if _, err := s.Open(a.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of an absent file: %v", err)
	}
	ps := newPeerSet()
	ps.data["p"] = ct
	ps.fail["p"] = 3*ctChunkSize + 10
	_ = s.Download(context.Background(), Fetch{Ann: a, Peers: []string{"p"}, Range: ps.rangeFunc,
		Progress: func(done, _ int64) {
			if done == 2*ctChunkSize {
				r, err := s.Open(a.ID())
				if err != nil || r.Size() != 2*ctChunkSize {
					t.Errorf("serving mid-download: %v, size %v", err, r)
				} else {
					r.Close()
				}
			}
		}})
	// After the download stopped, an unverified partial file is not served.
	if _, err := s.Open(a.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of a stopped partial file: %v", err)
	}
}

func TestRemoveTemporary(t *testing.T) {
	s, _ := OpenStore(t.TempDir())
	a, data := testAnn(t, 100)
	if _, err := s.Put(bytes.NewReader(data), a.Key, a.Size); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.Dir(), tempPut+"123"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(s.Dir(), tempNote+"123"), []byte("x"), 0o600)
	dl := t.TempDir()
	os.WriteFile(filepath.Join(dl, tempExport+"9"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dl, "mine.txt"), []byte("x"), 0o600)
	s.RemoveTemporary()
	RemoveTemporary(dl)
	ents, _ := os.ReadDir(s.Dir())
	if len(ents) != 1 || !s.Has(a.ID()) {
		t.Fatalf("store after cleanup: %d entries", len(ents))
	}
	ents, _ = os.ReadDir(dl)
	if len(ents) != 1 || ents[0].Name() != "mine.txt" {
		t.Fatalf("downloads after cleanup: %v", ents)
	}
}
