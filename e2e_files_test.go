package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/canopy-chat/canopy/blob"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// transferOf decodes a "transfer" line of the headless stream.
type e2eTransfer struct {
	Type     string `json:"type"`
	Transfer struct {
		Group   string `json:"group"`
		Message string `json:"message"`
		File    struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			Size int64  `json:"size"`
		} `json:"file"`
		Own    bool   `json:"own"`
		Status string `json:"status"`
		Done   int64  `json:"done"`
		Total  int64  `json:"total"`
		Path   string `json:"path"`
		Error  string `json:"error"`
	} `json:"transfer"`
}

func transferOf(e *jev) (e2eTransfer, bool) {
	var tr e2eTransfer
	if e.Type != "transfer" || json.Unmarshal([]byte(e.raw), &tr) != nil {
		return tr, false
	}
	return tr, true
}

func isTransferE2E(name string, ok func(e2eTransfer) bool) func(*jev) bool {
	return func(e *jev) bool {
		tr, is := transferOf(e)
		return is && tr.Transfer.File.Name == name && ok(tr)
	}
}

// e2eBlobMB is the size of the file TestE2EFileResume moves
// (CANOPY_E2E_BLOB_MB, default 256; the target is checked with
// 1024).
func e2eBlobMB(t *testing.T) int {
	if s := os.Getenv("CANOPY_E2E_BLOB_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 16 {
			t.Fatalf("CANOPY_E2E_BLOB_MB=%q: want a number of MB >= 16", s)
		}
		return n
	}
	return 256
}

// writeBigFile writes n MB of random bytes and returns the path and hash.
func writeBigFile(t *testing.T, name string, mb int) (string, [32]byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, int64(mb)<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return p, sum
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// peakRSS is a process's peak resident set (Linux: VmHWM), 0 if unknown.
func peakRSS(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (p *peerProc) kill() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// TestE2EFileSendReceive: /send in one process, the file message and
// transfer events in the other's JSON stream, the file saved in its
// downloads folder under a name that cannot escape it, /transfers lists it.
func TestE2EFileSendReceive(t *testing.T) {
	t.Parallel()
	bin := canopyBinary(t)
	data := t.TempDir()
	alice := startPeer(t, bin, data, "alice")
	bob := startPeer(t, bin, data, "bob")
	g := alice.must("/create files " + bob.card()).group()
	bob.wait("invitation", func(e *jev) bool { return e.Type == "invitation" })
	bob.must("/accept")
	alice.wait("two members", membersAre(g, 2))

	src, sum := writeBigFile(t, "..notes.txt", 3)
	alice.must("/send " + src)
	msg := bob.wait("file message", func(e *jev) bool { return e.Type == "message" && e.Message.Kind == "file" })
	if msg.Message.Sender != "alice" || !strings.Contains(msg.Message.Body, "..notes.txt") {
		t.Fatalf("file message: %s", msg.raw)
	}
	done := bob.wait("transfer done", isTransferE2E("..notes.txt", func(tr e2eTransfer) bool { return tr.Transfer.Status == "done" }))
	tr, _ := transferOf(done)
	downloads := filepath.Join(data, "canopy", "bob", "downloads")
	if tr.Transfer.Path != filepath.Join(downloads, "notes.txt") {
		t.Fatalf("saved to %q, want %s/notes.txt (no hidden file, inside downloads)", tr.Transfer.Path, downloads)
	}
	if fileHash(t, tr.Transfer.Path) != sum {
		t.Fatal("received file differs")
	}
	if list := bob.must("/transfers").Text; !strings.Contains(list, "done") || !strings.Contains(list, tr.Transfer.Path) {
		t.Fatalf("/transfers: %q", list)
	}
	// The same file again: saved beside the first, never over it.
	alice.must("/send " + src)
	bob.wait("second copy", isTransferE2E("..notes.txt", func(tr e2eTransfer) bool {
		return tr.Transfer.Status == "done" && tr.Transfer.Path == filepath.Join(downloads, "notes (1).txt")
	}))
	alice.quit()
	bob.quit()
}

// TestE2EFileResume moves a large file and SIGKILLs each side in turn: the
// receiver resumes after its restart from what it had verified (at most
// one chunk fetched again), and after the sender's restart fetches the
// rest. The receiver's peak memory stays under 100 MB.
func TestE2EFileResume(t *testing.T) {
	t.Parallel()
	bin := canopyBinary(t)
	data := t.TempDir()
	alice := startPeer(t, bin, data, "alice")
	bob := startPeer(t, bin, data, "bob")
	g := alice.must("/create big " + bob.card()).group()
	bob.wait("invitation", func(e *jev) bool { return e.Type == "invitation" })
	bob.must("/accept")
	alice.wait("two members", membersAre(g, 2))
	bob.must("/transfers limit 20G")

	mb := e2eBlobMB(t)
	src, sum := writeBigFile(t, "big.bin", mb)
	alice.must("/send " + src)
	progressed := func(frac float64) func(e2eTransfer) bool {
		return func(tr e2eTransfer) bool {
			return tr.Transfer.Status == "fetching" && tr.Transfer.Total > 0 && float64(tr.Transfer.Done) >= frac*float64(tr.Transfer.Total)
		}
	}
	ev := bob.wait("a quarter fetched", isTransferE2E("big.bin", progressed(0.25)))
	bob.kill()
	tr, _ := transferOf(ev)
	part := filepath.Join(data, "canopy", "bob", "blobs", tr.Transfer.File.ID+".part")
	st, err := os.Stat(part)
	if err != nil {
		t.Fatalf("partial download after SIGKILL: %v", err)
	}
	if st.Size() >= tr.Transfer.Total {
		t.Fatalf("the whole file arrived before the kill (%d bytes): nothing to resume", st.Size())
	}
	const chunk = blob.ChunkSize + blob.TagSize
	onDisk := st.Size()
	t.Logf("bob killed with %d of %d bytes on disk", onDisk, tr.Transfer.Total)

	bob = startPeer(t, bin, data, "bob")
	resumed := bob.wait("resumed", isTransferE2E("big.bin", func(tr e2eTransfer) bool {
		return tr.Transfer.Status == "fetching" && tr.Transfer.Done > 0
	}))
	rt, _ := transferOf(resumed)
	if kept := rt.Transfer.Done; kept > onDisk || onDisk-kept >= chunk {
		t.Fatalf("resumed from %d bytes with %d on disk: more than one chunk (%d) fetched again", kept, onDisk, chunk)
	}

	from := bob.indexOf(resumed)
	bob.waitFrom(from, "half fetched", isTransferE2E("big.bin", progressed(0.5)))
	alice.kill()
	gone := bob.waitWithin(from, 2*e2eWait, "sender gone", isTransferE2E("big.bin", func(tr e2eTransfer) bool {
		return tr.Transfer.Status == "done" || tr.Transfer.Status == "failed" && strings.Contains(tr.Transfer.Error, "trying again")
	}))
	if gt, _ := transferOf(gone); gt.Transfer.Status == "done" {
		t.Fatal("the transfer finished before the sender was killed")
	}
	alice = startPeer(t, bin, data, "alice")
	done := bob.waitWithin(from, 3*e2eWait, "done after the sender's restart", isTransferE2E("big.bin", func(tr e2eTransfer) bool { return tr.Transfer.Status == "done" }))
	dt, _ := transferOf(done)
	if fileHash(t, dt.Transfer.Path) != sum {
		t.Fatal("received file differs")
	}
	if runtime.GOOS == "linux" {
		rss := peakRSS(bob.cmd.Process.Pid)
		t.Logf("receiver peak RSS after %d MB: %.1f MB", mb, float64(rss)/1e6)
		if rss == 0 || rss >= 100<<20 {
			t.Fatalf("receiver peak RSS %d bytes, want under 100 MB", rss)
		}
	}
	alice.quit()
	bob.quit()
}

// liarBlob is what a lying holder serves: random bytes for any file.
type liarBlob struct{ served *atomic.Int64 }

func (l liarBlob) ReadAt(p []byte, off int64) (int, error) {
	rand.Read(p)
	l.served.Add(int64(len(p)))
	return len(p), nil
}
func (liarBlob) Close() error { return nil }
func (liarBlob) Size() int64  { return 1 << 40 }

// TestE2EFileLyingPeer: with the sender offline, the receiver asks a peer
// that claims to hold every file (here: its relay) and serves garbage.
// The download fails naming the bad data, that peer is not asked again,
// and once the sender is back the file arrives intact.
func TestE2EFileLyingPeer(t *testing.T) {
	t.Parallel()
	bin := canopyBinary(t)
	data := t.TempDir()
	var served atomic.Int64
	liar, err := p2p.New(context.Background(), nil,
		p2p.WithListenAddrs("/ip4/127.0.0.1/tcp/0"), p2p.WithMDNS(false), p2p.WithDHT(p2p.DHTOff),
		p2p.WithAutoNAT(false), p2p.WithHolePunching(false),
		p2p.WithHandlers(p2p.Handlers{Blob: func(context.Context, peer.ID, [p2p.BlobIDLen]byte) (p2p.BlobReader, error) {
			return liarBlob{&served}, nil
		}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { liar.Close() })
	ai := liar.AddrInfo()
	addrs, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil || len(addrs) == 0 {
		t.Fatalf("liar's addresses: %v", err)
	}

	alice := startPeer(t, bin, data, "alice")
	bob := startPeer(t, bin, data, "bob", "--bootstrap", addrs[0].String())
	g := alice.must("/create lies " + bob.card()).group()
	bob.wait("invitation", func(e *jev) bool { return e.Type == "invitation" })
	bob.must("/accept")
	alice.wait("two members", membersAre(g, 2))
	bob.must("/transfers limit off")

	src, sum := writeBigFile(t, "true.bin", 2)
	alice.must("/send " + src)
	bob.wait("offered", isTransferE2E("true.bin", func(tr e2eTransfer) bool { return tr.Transfer.Status == "offered" }))
	alice.quit()

	bob.must("/transfers get 1")
	bob.wait("the liar dropped", isTransferE2E("true.bin", func(tr e2eTransfer) bool {
		return tr.Transfer.Status == "failed" && strings.Contains(tr.Transfer.Error, "1 peer(s) served bad data")
	}))
	if served.Load() == 0 {
		t.Fatal("the lying peer was never asked")
	}
	if _, err := os.Stat(filepath.Join(data, "canopy", "bob", "downloads", "true.bin")); err == nil {
		t.Fatal("a file was saved from bad data")
	}
	askedBefore := served.Load()

	alice = startPeer(t, bin, data, "alice")
	done := bob.waitWithin(0, 3*e2eWait, "done from the sender", isTransferE2E("true.bin", func(tr e2eTransfer) bool { return tr.Transfer.Status == "done" }))
	dt, _ := transferOf(done)
	if fileHash(t, dt.Transfer.Path) != sum {
		t.Fatal("received file differs")
	}
	if served.Load() != askedBefore {
		t.Fatalf("the lying peer was asked again (%d more bytes)", served.Load()-askedBefore)
	}
	alice.quit()
	bob.quit()
}
