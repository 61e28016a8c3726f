package blob

import (
	"bytes"
	"io"
	"testing"
)

// Seeds live in testdata/fuzz/<Target>; gen_seeds_test.go (build tag
// devtools) regenerates them.

// FuzzParseAnnouncement: no input panics, and every accepted announcement
// has exactly one encoding.
func FuzzParseAnnouncement(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnnouncement(b)
		if err != nil {
			return
		}
		out, err := a.Marshal()
		if err != nil {
			t.Fatalf("re-marshal of an accepted announcement: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("not canonical:\n in %x\nout %x", b, out)
		}
	})
}

// fuzzKey is the key the chunk-framing fuzz target opens under; seeds are
// sealed with it.
var fuzzKey = Key{1, 2, 3}

// FuzzOpen feeds arbitrary ciphertext (and a claimed size) to Open: no
// panic, and what opens is exactly what re-seals to the input (only the
// genuine framing is accepted).
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, ct []byte, size uint32) {
		var pt bytes.Buffer
		sum, err := Open(&pt, bytes.NewReader(ct), fuzzKey, uint64(size))
		if err != nil {
			return
		}
		var again bytes.Buffer
		sum2, err := Seal(&again, bytes.NewReader(pt.Bytes()), fuzzKey, uint64(size))
		if err != nil || sum2 != sum || !bytes.Equal(again.Bytes(), ct) {
			t.Fatalf("opened a framing that does not re-seal to itself (err %v)", err)
		}
	})
}

// FuzzDownloadChunks: a peer answering a download with arbitrary bytes
// never makes Download panic or store bytes that do not open.
func FuzzDownloadChunks(f *testing.F) {
	f.Fuzz(func(t *testing.T, served []byte, size uint32) {
		size %= 4 * ChunkSize
		a := &Announcement{Key: fuzzKey, Size: uint64(size), Name: "x"}
		ps := newPeerSet()
		ps.data["p"] = served
		s, err := OpenStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Download(t.Context(), Fetch{Ann: a, Peers: []string{"p"}, Range: ps.rangeFunc}); err != nil {
			return
		}
		r, err := s.Open(a.ID())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := Open(io.Discard, io.NewSectionReader(r, 0, r.Size()), fuzzKey, a.Size); err != nil {
			t.Fatalf("stored a file that does not open: %v", err)
		}
	})
}
