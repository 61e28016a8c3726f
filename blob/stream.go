package blob

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Chunked encryption. The plaintext is cut into ChunkSize pieces (the last
// may be shorter; an empty file is one empty chunk). Chunk i is sealed with
// ChaCha20-Poly1305 under a payload key derived from the file key, with the
// nonce
//
//	uint88 i (big endian) || uint8 final   // final = 1 on the last chunk only
//
// and no associated data. Chunk i's ciphertext starts at byte
// i × (ChunkSize+TagSize), so a range of chunks is a range of bytes. Opening
// chunk i as final when it is not (or the reverse) fails, which is how a
// cut-off file, reordered chunks and bytes after the final chunk are caught.

// Errors of the chunk layer.
var (
	// ErrChunk: a chunk did not open (wrong bytes, wrong place, or cut off).
	ErrChunk = errors.New("blob: chunk failed authentication")
	// ErrSize: the data is longer or shorter than announced.
	ErrSize = errors.New("blob: size differs from the announced size")
	// ErrHash: the plaintext does not hash to the announced SHA-256.
	ErrHash = errors.New("blob: content hash mismatch")
)

// ctChunkSize is the ciphertext size of a full chunk.
const ctChunkSize = ChunkSize + TagSize

// layout is the chunk arithmetic of one file and its payload cipher.
type layout struct {
	aead   cipher.AEAD
	size   uint64
	chunks int64
}

func newLayout(k Key, size uint64) (*layout, error) {
	if size > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrSize, size, uint64(MaxSize))
	}
	pk, err := hkdf.Key(sha256.New, k[:], nil, "canopy blob payload v1", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(pk)
	if err != nil {
		return nil, err
	}
	return &layout{aead: aead, size: size, chunks: chunkCount(size)}, nil
}

// plainLen is the plaintext length of chunk i.
func (l *layout) plainLen(i int64) int {
	if i < l.chunks-1 {
		return ChunkSize
	}
	return int(l.size - uint64(l.chunks-1)*ChunkSize)
}

// ctLen is the ciphertext length of chunk i.
func (l *layout) ctLen(i int64) int { return l.plainLen(i) + TagSize }

// offset is where chunk i's ciphertext starts.
func (l *layout) offset(i int64) int64 { return i * ctChunkSize }

func (l *layout) nonce(i int64) []byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(n[3:11], uint64(i))
	if i == l.chunks-1 {
		n[11] = 1
	}
	return n[:]
}

// seal appends chunk i's ciphertext of pt to dst.
func (l *layout) seal(dst []byte, i int64, pt []byte) []byte {
	return l.aead.Seal(dst, l.nonce(i), pt, nil)
}

// open appends chunk i's plaintext to dst; ct must be exactly chunk i.
func (l *layout) open(dst []byte, i int64, ct []byte) ([]byte, error) {
	if i < 0 || i >= l.chunks || len(ct) != l.ctLen(i) {
		return nil, fmt.Errorf("%w: chunk %d of %d bytes", ErrChunk, i, len(ct))
	}
	pt, err := l.aead.Open(dst, l.nonce(i), ct, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %d", ErrChunk, i)
	}
	return pt, nil
}

// Seal encrypts exactly size bytes of src under k, writing the ciphertext to
// dst chunk by chunk, and returns the plaintext's SHA-256. A src that yields
// fewer or more bytes than size (a file that changed while being sent)
// fails with ErrSize.
func Seal(dst io.Writer, src io.Reader, k Key, size uint64) ([32]byte, error) {
	var sum [32]byte
	l, err := newLayout(k, size)
	if err != nil {
		return sum, err
	}
	h := sha256.New()
	pt := make([]byte, ChunkSize)
	ct := make([]byte, 0, ctChunkSize)
	for i := int64(0); i < l.chunks; i++ {
		p := pt[:l.plainLen(i)]
		if _, err := io.ReadFull(src, p); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return sum, fmt.Errorf("%w: source ended early", ErrSize)
			}
			return sum, err
		}
		h.Write(p)
		if _, err := dst.Write(l.seal(ct[:0], i, p)); err != nil {
			return sum, err
		}
	}
	if err := expectEOF(src); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// Open decrypts the ciphertext of a size-byte file from src to dst, chunk
// by chunk, and returns the plaintext's SHA-256. Nothing of a chunk is
// written before it authenticated; the caller must still discard dst's
// content on error.
func Open(dst io.Writer, src io.Reader, k Key, size uint64) ([32]byte, error) {
	var sum [32]byte
	l, err := newLayout(k, size)
	if err != nil {
		return sum, err
	}
	h := sha256.New()
	ct := make([]byte, ctChunkSize)
	pt := make([]byte, 0, ChunkSize)
	for i := int64(0); i < l.chunks; i++ {
		c := ct[:l.ctLen(i)]
		if _, err := io.ReadFull(src, c); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return sum, fmt.Errorf("%w: ciphertext ends in chunk %d", ErrChunk, i)
			}
			return sum, err
		}
		p, err := l.open(pt[:0], i, c)
		if err != nil {
			return sum, err
		}
		h.Write(p)
		if _, err := dst.Write(p); err != nil {
			return sum, err
		}
	}
	if err := expectEOF(src); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// expectEOF fails unless r has nothing left.
func expectEOF(r io.Reader) error {
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n > 0 {
			return fmt.Errorf("%w: data after the final chunk", ErrSize)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
