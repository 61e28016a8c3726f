package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtocolBlob serves ranges of encrypted files by content id: the sender,
// members who fetched a file and relays keeping it answer. The bytes are
// ciphertext; the requester authenticates every chunk itself (package
// blob), so p2p needs no trust in the server and shows the server nothing
// but the id.
//
// Request (one frame): id[32] || uvarint offset || uvarint length, with
// 0 < length <= MaxBlobRange. Response: a status whose body is uvarint
// avail (0 < avail <= length: a holder of part of a file sends what it
// has), then exactly avail raw bytes.
const ProtocolBlob protocol.ID = "/canopy/blob/1"

// Limits of /canopy/blob/1.
const (
	// MaxBlobRange caps the bytes one request asks for: what a slow link
	// sends well within one request's deadline.
	MaxBlobRange = 8 << 20
	// BlobIDLen is the length of a content id.
	BlobIDLen = 32
	// blobPerPeer and blobGlobal cap concurrent blob responses, so one
	// peer cannot occupy the uplink and all peers together cannot occupy
	// every file descriptor and disk reader.
	blobPerPeer = 2
	blobGlobal  = 16
	// blobWriteSize is the size of the writes a response is sent in.
	blobWriteSize = 64 << 10
	// blobStallTimeout is how long a requester waits for the next bytes.
	blobStallTimeout = 10 * time.Second
)

// BlobReader is a stored ciphertext (or the verified prefix of one) that a
// BlobHandler hands out for one request.
type BlobReader interface {
	io.ReaderAt
	io.Closer
	// Size is the number of bytes that may be read.
	Size() int64
}

// BlobHandler opens the ciphertext with the given id for a peer; an
// unknown id is ErrNotFound.
type BlobHandler func(ctx context.Context, from peer.ID, id [BlobIDLen]byte) (BlobReader, error)

// blobLimits counts running blob responses.
type blobLimits struct {
	mu     sync.Mutex
	total  int
	byPeer map[peer.ID]int
}

func (l *blobLimits) acquire(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= blobGlobal || l.byPeer[p] >= blobPerPeer {
		return false
	}
	if l.byPeer == nil {
		l.byPeer = map[peer.ID]int{}
	}
	l.total++
	l.byPeer[p]++
	return true
}

func (l *blobLimits) release(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byPeer[p]--; l.byPeer[p] <= 0 {
		delete(l.byPeer, p)
	}
}

type blobRequest struct {
	ID     [BlobIDLen]byte
	Offset uint64
	Length uint64
}

func encodeBlobRequest(r blobRequest) []byte {
	var e enc
	e.fixed(r.ID[:])
	e.uvarint(r.Offset)
	e.uvarint(r.Length)
	return e.body()
}

func decodeBlobRequest(b []byte) (blobRequest, error) {
	var r blobRequest
	d := newDec(b)
	copy(r.ID[:], d.fixed(BlobIDLen))
	r.Offset = d.uvarint()
	r.Length = d.uvarint()
	if err := d.done(); err != nil {
		return r, err
	}
	if r.Length == 0 || r.Length > MaxBlobRange || r.Offset > 1<<62 {
		return r, fmt.Errorf("%w: range %d+%d", ErrBadRequest, r.Offset, r.Length)
	}
	return r, nil
}

func (n *Node) serveBlob(ctx context.Context, f *frameStream, from peer.ID, req []byte) error {
	r, err := decodeBlobRequest(req)
	if err != nil {
		return err
	}
	h := n.getHandlers().Blob
	if h == nil && n.relay != nil && n.relay.blobs != nil {
		h = func(context.Context, peer.ID, [BlobIDLen]byte) (BlobReader, error) { return n.relay.blobs.open(r.ID) }
	}
	if h == nil {
		return fmt.Errorf("%w: no files served", ErrUnavailable)
	}
	if !n.blobs.acquire(from) {
		return fmt.Errorf("%w: too many file transfers", ErrRateLimited)
	}
	defer n.blobs.release(from)
	br, err := h(ctx, from, r.ID)
	if err != nil {
		return err
	}
	defer br.Close()
	size := br.Size()
	if int64(r.Offset) >= size {
		return fmt.Errorf("%w: nothing at offset %d", ErrNotFound, r.Offset)
	}
	avail := min(int64(r.Length), size-int64(r.Offset))
	var e enc
	e.uvarint(uint64(avail))
	if err := f.writeStatus(CodeOK, "", e.body(), 16); err != nil {
		return statusErr{CodeInternal}
	}
	buf := make([]byte, min(avail, blobWriteSize))
	for off := int64(r.Offset); avail > 0; {
		c := buf[:min(avail, int64(len(buf)))]
		if _, err := br.ReadAt(c, off); err != nil && !(errors.Is(err, io.EOF) && len(c) > 0) {
			// The holder's file shrank under us (retention removed it):
			// the requester sees a short response and asks elsewhere.
			_ = f.s.Reset()
			return statusErr{CodeInternal}
		}
		if err := f.s.SetWriteDeadline(f.nextDeadline()); err != nil {
			return statusErr{CodeInternal}
		}
		if _, err := f.s.Write(c); err != nil {
			return statusErr{CodeInternal}
		}
		off += int64(len(c))
		avail -= int64(len(c))
	}
	return nil
}

// FetchBlob asks peer `from` for length bytes of the ciphertext id from
// offset and calls read with a reader of the avail bytes it answers with
// (0 < avail <= length). read must consume what it uses before returning;
// FetchBlob returns read's error. Reads have a deadline each, so a peer
// that stalls mid-response fails the call.
func (n *Node) FetchBlob(ctx context.Context, from peer.ID, id [BlobIDLen]byte, offset, length int64,
	read func(r io.Reader, avail int64) error) error {
	if length <= 0 || length > MaxBlobRange || offset < 0 {
		return fmt.Errorf("p2p: blob range %d+%d out of bounds", offset, length)
	}
	return n.call(ctx, from, ProtocolBlob, func(f *frameStream) error {
		// A holder that vanished without closing (killed, unplugged: over
		// QUIC nothing tells us) is given up after blobStallTimeout
		// without a byte, so the download moves on to another holder.
		f.timeout = min(f.timeout, blobStallTimeout)
		if err := writeReq(f, encodeBlobRequest(blobRequest{ID: id, Offset: uint64(offset), Length: uint64(length)}), smallFrame); err != nil {
			return err
		}
		body, err := expectOK(f, 16)
		if err != nil {
			return err
		}
		d := newDec(body)
		avail := d.uvarint()
		if err := d.done(); err != nil {
			return err
		}
		if avail == 0 || avail > uint64(length) {
			return fmt.Errorf("%w: %d bytes for a %d-byte request", ErrBadResponse, avail, length)
		}
		lr := &io.LimitedReader{R: deadlineReader{f}, N: int64(avail)}
		return read(lr, int64(avail))
	})
}

// deadlineReader reads the raw body of a response, renewing the read
// deadline before each read.
type deadlineReader struct{ f *frameStream }

func (d deadlineReader) Read(p []byte) (int, error) {
	if err := d.f.s.SetReadDeadline(d.f.nextDeadline()); err != nil {
		return 0, err
	}
	return d.f.r.Read(p)
}
