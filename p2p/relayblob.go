package p2p

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtocolBlobPut uploads file ciphertext to a relay, which then serves it
// on /canopy/blob/1 like any holder until it expires (RelayConfig.BlobTTL).
// Only relays with a blob directory (RelayConfig.BlobDir) speak it.
//
// Request (one frame): id[32] || uvarint size || uvarint offset ||
// uvarint length, with 0 < size <= the relay's MaxBlob, length <=
// MaxBlobRange and offset+length <= size. Response: a status whose body is
// uvarint have, the bytes of the file the relay holds (have == size:
// complete). If length > 0 and the relay accepts the bytes (OK, have ==
// offset), the client then sends exactly length raw bytes and the relay
// answers with a second status and have: the bytes never travel to a relay
// that refuses them (quotas, request rate, a wrong offset).
//
// An upload starts with a query (length 0), whose answer tells where to go
// on: 0 for a new file (its whole size is then charged to the uploader's
// quotas), the end of a partial upload (resuming after a cut connection),
// or size if the relay has the file already. Bytes are accepted only at
// offset == have.
//
// What the relay cannot check: the id is derived from the file key (package
// blob), not from the ciphertext, and the relay never sees the key, so it
// cannot tell the right ciphertext from other bytes of the same size.
// Receivers authenticate every chunk and drop a relay serving bad bytes as
// they drop a lying member. The first complete upload of an id stands (it
// is never replaced, so a later upload cannot swap it), and members upload
// right after sending the announcement, when only the group and the peers
// it asked know the id.
const ProtocolBlobPut protocol.ID = "/canopy/blobput/1"

// An upload sends requests of up to MaxBlobRange and gives each
// blobPutTimeout (the relay gives a request DefaultHandlerTimeout, 60 s).
// A request cut off (a slow uplink, a reset) is retried with half the
// range, down to blobPutMinRange, so uplinks down to about 5 KB/s still
// upload; a refusal for the request rate waits and retries. After
// blobPutRetries failures in a row the upload gives up.
const (
	blobPutTimeout  = 50 * time.Second
	blobPutMinRange = 256 << 10
	blobPutRetries  = 8
)

// blobPartialIdle is how long a partial upload nobody continues is kept
// (its quota reserved) before it is deleted.
const blobPartialIdle = time.Hour

type blobPut struct {
	ID     [BlobIDLen]byte
	Size   uint64
	Offset uint64
	Length uint64
}

func encodeBlobPut(r blobPut) []byte {
	var e enc
	e.fixed(r.ID[:])
	e.uvarint(r.Size)
	e.uvarint(r.Offset)
	e.uvarint(r.Length)
	return e.body()
}

func decodeBlobPut(b []byte) (blobPut, error) {
	var r blobPut
	d := newDec(b)
	copy(r.ID[:], d.fixed(BlobIDLen))
	r.Size = d.uvarint()
	r.Offset = d.uvarint()
	r.Length = d.uvarint()
	if err := d.done(); err != nil {
		return r, err
	}
	// Bound the numbers before anything uses them: the size against
	// overflow here, against the relay's MaxBlob in the handler.
	if r.Size == 0 || r.Size > 1<<50 || r.Length > MaxBlobRange || r.Offset > r.Size || r.Length > r.Size-r.Offset {
		return r, fmt.Errorf("%w: upload %d+%d of %d bytes", ErrBadRequest, r.Offset, r.Length, r.Size)
	}
	return r, nil
}

// PutBlob uploads the ciphertext id of size bytes, read from src, to relay
// (/canopy/blobput/1), resuming where the relay's copy ends. It returns nil
// once the relay holds the whole file; a relay without file storage answers
// ErrUnavailable (or the stream fails to open: not a relay), one over its
// quotas ErrQuotaExceeded with the limit in the message.
func (n *Node) PutBlob(ctx context.Context, relay peer.ID, id [BlobIDLen]byte, size int64, src io.ReaderAt) error {
	if size <= 0 {
		return fmt.Errorf("p2p: upload of %d bytes", size)
	}
	total := uint64(size)
	buf := make([]byte, min(int64(blobWriteSize), size))
	rng := uint64(MaxBlobRange)
	var have uint64
	known := false // have is the relay's answer to the last request
	for fails := 0; ; {
		var next uint64
		var err error
		if !known {
			next, err = n.putBlobRange(ctx, relay, blobPut{ID: id, Size: total}, nil)
		} else {
			req := blobPut{ID: id, Size: total, Offset: have, Length: min(total-have, rng)}
			next, err = n.putBlobRange(ctx, relay, req, func(f *frameStream) error {
				return sendBlobBytes(f, src, buf, int64(req.Offset), int64(req.Offset+req.Length))
			})
			if err == nil && next <= have {
				return &Error{Protocol: ProtocolBlobPut, Peer: relay, Op: "decode", Err: fmt.Errorf("%w: relay holds %d bytes after %d more from %d", ErrBadResponse, next, req.Length, have)}
			}
		}
		if err == nil {
			if known {
				fails = 0 // progress
			}
			have, known = next, true
			if have == total {
				return nil
			}
			continue
		}
		var pe *Error
		cut := errors.Is(err, ErrTimeout) || errors.As(err, &pe) && (pe.Op == "read" || pe.Op == "write")
		if ctx.Err() != nil || fails >= blobPutRetries || !(cut || errors.Is(err, ErrRateLimited)) {
			return err
		}
		if cut {
			// The relay may hold part of what we sent: ask again.
			rng = max(rng/2, blobPutMinRange)
			known = false
		}
		fails++
		select {
		case <-time.After(min(250*time.Millisecond<<fails, 10*time.Second)):
		case <-ctx.Done():
			return err
		}
	}
}

// sendBlobBytes writes src's bytes [off, end) to the stream.
func sendBlobBytes(f *frameStream, src io.ReaderAt, buf []byte, off, end int64) error {
	for off < end {
		c := buf[:min(int64(len(buf)), end-off)]
		if _, err := src.ReadAt(c, off); err != nil && !(errors.Is(err, io.EOF) && len(c) > 0) {
			return opError{"source", fmt.Errorf("reading the upload: %w", err)}
		}
		if err := f.s.SetWriteDeadline(f.nextDeadline()); err != nil {
			return opError{"write", err}
		}
		if _, err := f.s.Write(c); err != nil {
			return opError{"write", err}
		}
		off += int64(len(c))
	}
	return nil
}

// putBlobRange sends one upload request (body writes its raw bytes) and
// returns the relay's have.
func (n *Node) putBlobRange(ctx context.Context, relay peer.ID, req blobPut, body func(*frameStream) error) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, blobPutTimeout)
	defer cancel()
	var have uint64
	err := n.call(ctx, relay, ProtocolBlobPut, func(f *frameStream) error {
		if err := writeReq(f, encodeBlobPut(req), smallFrame); err != nil {
			return err
		}
		readHave := func() error {
			b, err := expectOK(f, 16)
			if err != nil {
				return err
			}
			d := newDec(b)
			have = d.uvarint()
			if err := d.done(); err != nil {
				return err
			}
			if have > req.Size {
				return fmt.Errorf("%w: relay holds %d of %d bytes", ErrBadResponse, have, req.Size)
			}
			return nil
		}
		if err := readHave(); err != nil || req.Length == 0 {
			return err
		}
		if have != req.Offset {
			return fmt.Errorf("%w: relay accepted bytes at %d for an upload at %d", ErrBadResponse, have, req.Offset)
		}
		if err := body(f); err != nil {
			return err
		}
		return readHave()
	})
	return have, err
}

// relayBlobs is a relay's file store: one file per id in a directory,
// "<id>.part" while an upload runs and "<id>" once complete, plus the
// accounting of the blob quotas. Ciphertext only: the relay never has a
// key.
type relayBlobs struct {
	dir         string
	ttl         time.Duration
	partialIdle time.Duration // blobPartialIdle; tests shorten it
	q           Quotas
	m           *metrics

	mu      sync.Mutex
	files   map[[BlobIDLen]byte]*relayBlob
	perPeer map[peer.ID]int64
	perIP   map[string]int64
	total   int64
	puts    blobLimits
}

type relayBlob struct {
	size     int64
	have     int64
	owner    peer.ID // "" for files found on disk at start
	ip       string
	complete bool
	writing  bool
	touched  time.Time // last write (partial) or completion
}

func (b *relayBlobs) path(id [BlobIDLen]byte) string {
	return filepath.Join(b.dir, hex.EncodeToString(id[:]))
}

// openRelayBlobs opens dir, counting the complete files in it against
// the total quota (their uploaders are not known any more; they expire
// BlobTTL after they were completed) and deleting partial uploads, which
// their uploaders resume from the start.
func openRelayBlobs(dir string, ttl time.Duration, q Quotas, m *metrics) (*relayBlobs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b := &relayBlobs{dir: dir, ttl: ttl, partialIdle: blobPartialIdle, q: q, m: m, files: map[[BlobIDLen]byte]*relayBlob{},
		perPeer: map[peer.ID]int64{}, perIP: map[string]int64{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		var id [BlobIDLen]byte
		raw, err := hex.DecodeString(name)
		if err != nil || len(raw) != BlobIDLen {
			if len(name) == 2*BlobIDLen+len(".part") && filepath.Ext(name) == ".part" {
				_ = os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		copy(id[:], raw)
		info, err := e.Info()
		if err != nil || info.Size() == 0 {
			continue
		}
		b.files[id] = &relayBlob{size: info.Size(), have: info.Size(), complete: true, touched: info.ModTime()}
		b.total += info.Size()
	}
	b.gauge()
	return b, nil
}

func (b *relayBlobs) gauge() {
	if b.m != nil {
		b.m.relayBlobBytes.Set(float64(b.total))
		b.m.relayBlobFiles.Set(float64(len(b.files)))
	}
}

// begin finds or creates the upload of req for peer from at ip and marks
// it as being written; end must follow. It returns the entry and what the
// relay holds; a complete file is returned with writing unset.
func (b *relayBlobs) begin(req blobPut, from peer.ID, ip string) (*relayBlob, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	size := int64(req.Size)
	f := b.files[req.ID]
	if f != nil {
		if f.size != size {
			return nil, fmt.Errorf("%w: the relay has this file with another size", ErrBadRequest)
		}
		if f.complete {
			return f, nil
		}
		if f.writing {
			return nil, fmt.Errorf("%w: this file is being uploaded", ErrRateLimited)
		}
		f.writing = true
		return f, nil
	}
	q := b.q
	switch {
	case size > q.MaxBlob:
		b.m.quota("blob_size")
		return nil, fmt.Errorf("%w: file of %d bytes, the relay keeps files up to %d", ErrQuotaExceeded, size, q.MaxBlob)
	case b.perPeer[from]+size > q.BlobBytesPerPeer:
		b.m.quota("blob_bytes_per_peer")
		return nil, fmt.Errorf("%w: this peer has %d bytes of files on the relay, limit %d", ErrQuotaExceeded, b.perPeer[from], q.BlobBytesPerPeer)
	case ip != "" && b.perIP[ip]+size > q.BlobBytesPerIP:
		b.m.quota("blob_bytes_per_ip")
		return nil, fmt.Errorf("%w: peers at this address have %d bytes of files on the relay, limit %d", ErrQuotaExceeded, b.perIP[ip], q.BlobBytesPerIP)
	case b.total+size > q.BlobBytes || len(b.files) >= q.Blobs:
		b.m.quota("blob_bytes")
		return nil, fmt.Errorf("%w: the relay's file storage is full", ErrQuotaExceeded)
	}
	f = &relayBlob{size: size, owner: from, ip: ip, writing: true, touched: time.Now()}
	b.files[req.ID] = f
	b.charge(f, size)
	return f, nil
}

func (b *relayBlobs) charge(f *relayBlob, n int64) {
	b.total += n
	if f.owner != "" {
		if b.perPeer[f.owner] += n; b.perPeer[f.owner] <= 0 {
			delete(b.perPeer, f.owner)
		}
	}
	if f.ip != "" {
		if b.perIP[f.ip] += n; b.perIP[f.ip] <= 0 {
			delete(b.perIP, f.ip)
		}
	}
	b.gauge()
}

// drop forgets f and gives its quota back (b.mu held).
func (b *relayBlobs) drop(id [BlobIDLen]byte, f *relayBlob) {
	if b.files[id] != f {
		return
	}
	delete(b.files, id)
	b.charge(f, -f.size)
	if f.complete {
		_ = os.Remove(b.path(id))
	} else {
		_ = os.Remove(b.path(id) + ".part")
	}
}

// write appends the request's bytes from r to the upload and ends the
// write: the file is complete once have reaches its size.
func (b *relayBlobs) write(id [BlobIDLen]byte, f *relayBlob, req blobPut, r io.Reader, ready func(have int64) error) (int64, error) {
	defer func() {
		b.mu.Lock()
		f.writing = false
		f.touched = time.Now()
		b.mu.Unlock()
	}()
	if req.Length == 0 {
		return f.have, nil
	}
	if int64(req.Offset) != f.have {
		return f.have, fmt.Errorf("%w: upload at %d, the relay holds %d bytes", ErrBadRequest, req.Offset, f.have)
	}
	if err := ready(f.have); err != nil {
		return f.have, err
	}
	part := b.path(id) + ".part"
	fd, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return f.have, err
	}
	// Truncate to what is counted (a write that failed may have left
	// more).
	if err := fd.Truncate(f.have); err != nil {
		fd.Close()
		return f.have, err
	}
	buf := make([]byte, blobWriteSize)
	n, err := io.CopyBuffer(io.NewOffsetWriter(fd, f.have), io.LimitReader(r, int64(req.Length)), buf)
	if err == nil && n != int64(req.Length) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		// Keep what arrived: the uploader resumes after it.
		fd.Close()
		b.m.blobBytes("uploaded", n)
		b.mu.Lock()
		f.have += n
		b.mu.Unlock()
		return f.have, err
	}
	if f.have+n == f.size {
		if err := fd.Sync(); err != nil {
			fd.Close()
			return f.have, err
		}
	}
	if err := fd.Close(); err != nil {
		return f.have, err
	}
	b.m.blobBytes("uploaded", n)
	if f.have+n == f.size {
		if err := os.Rename(part, b.path(id)); err != nil {
			return f.have, err
		}
		b.mu.Lock()
		f.complete = true
		b.mu.Unlock()
		b.m.blobBytes("stored_files", 1)
	}
	b.mu.Lock()
	f.have += n
	b.mu.Unlock()
	return f.have, nil
}

// open returns a complete, unexpired file for /canopy/blob/1.
func (b *relayBlobs) open(id [BlobIDLen]byte) (BlobReader, error) {
	b.mu.Lock()
	f := b.files[id]
	ok := f != nil && f.complete
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: the relay does not keep this file", ErrNotFound)
	}
	fd, err := os.Open(b.path(id))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	b.m.blobBytes("served_requests", 1)
	return &relayBlobReader{File: fd, n: f.size}, nil
}

type relayBlobReader struct {
	*os.File
	n int64
}

func (r *relayBlobReader) Size() int64 { return r.n }

// prune deletes complete files older than the TTL and partial uploads idle
// for blobPartialIdle.
func (b *relayBlobs) prune(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, f := range b.files {
		switch {
		case f.writing:
		case f.complete && now.Sub(f.touched) >= b.ttl,
			!f.complete && now.Sub(f.touched) >= b.partialIdle:
			b.drop(id, f)
			b.m.blobBytes("expired_files", 1)
		}
	}
}

// serveBlobPut handles /canopy/blobput/1.
func (r *Relay) serveBlobPut(ctx context.Context, f *frameStream, from peer.ID, raw []byte) error {
	if r.blobs == nil {
		return fmt.Errorf("%w: this relay keeps no files", ErrUnavailable)
	}
	req, err := decodeBlobPut(raw)
	if err != nil {
		return err
	}
	if req.Length > 0 {
		if !r.blobs.puts.acquire(from) {
			return fmt.Errorf("%w: too many uploads", ErrRateLimited)
		}
		defer r.blobs.puts.release(from)
	}
	b, err := r.blobs.begin(req, from, sourceOf(f.s.Conn()))
	if err != nil {
		return err
	}
	var have int64
	if b.complete {
		if req.Length > 0 {
			return fmt.Errorf("%w: the relay has this file already", ErrBadRequest)
		}
		have = b.size
	} else {
		ready := func(have int64) error {
			var e enc
			e.uvarint(uint64(have))
			return f.writeStatus(CodeOK, "", e.body(), 16)
		}
		// The raw bytes follow once the client has our go-ahead.
		have, err = r.blobs.write(req.ID, b, req, deadlineReader{f}, ready)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				r.n.log.Debug("relay: upload failed", "peer", from, "err", err)
				_ = f.s.Reset()
				return statusErr{CodeInternal}
			}
			return err
		}
	}
	var e enc
	e.uvarint(uint64(have))
	return f.writeStatus(CodeOK, "", e.body(), 16)
}
