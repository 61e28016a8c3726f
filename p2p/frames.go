package p2p

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/multiformats/go-varint"
	"golang.org/x/crypto/cryptobyte"
)

// Every canopy stream protocol is a sequence of frames. A frame is an
// unsigned LEB128 varint length (as in multistream and msgio, minimal
// encoding required) followed by that many bytes. Each protocol fixes a
// maximum frame size; a reader rejects a larger announced length before it
// reads or allocates the body.
//
// Frame bodies are encoded with enc/dec below, on cryptobyte: fixed-width
// integers are not used, integers are uvarints, byte strings are
// uvarint-length-prefixed, and every decoder rejects trailing bytes.

// ErrFrameTooLarge is returned when a frame exceeds the size cap of its
// protocol, on either side of a stream.
var ErrFrameTooLarge = errors.New("p2p: frame too large")

// errBadVarint reports a malformed frame length.
var errBadVarint = errors.New("p2p: malformed frame length")

// readUvarint reads a frame length: go-varint's reader, which refuses
// non-minimal encodings and values of 2^63 or more (no frame comes near).
func readUvarint(r io.ByteReader) (uint64, error) {
	n, err := varint.ReadUvarint(r)
	if errors.Is(err, varint.ErrNotMinimal) || errors.Is(err, varint.ErrOverflow) {
		return 0, fmt.Errorf("%w: %v", errBadVarint, err)
	}
	return n, err
}

// directAllocLimit is the largest frame body allocated up front. Larger
// bodies grow as bytes actually arrive, so a peer that announces a large
// frame and then stalls costs us little memory.
const directAllocLimit = 64 << 10

// frameReader is the byte source a frame is read from.
type frameReader interface {
	io.Reader
	io.ByteReader
}

// readFrame reads one frame of at most max bytes.
func readFrame(r frameReader, max int) ([]byte, error) {
	return readFrameReserving(r, max, nil)
}

// readFrameReserving reads one frame of at most max bytes, first calling
// reserve (if not nil) with the announced length: nothing of the body is
// buffered unless reserve accepted it.
func readFrameReserving(r frameReader, max int, reserve func(int) error) ([]byte, error) {
	n, err := readUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, n, max)
	}
	if reserve != nil {
		if err := reserve(int(n)); err != nil {
			return nil, err
		}
	}
	if n <= directAllocLimit {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return b, nil
	}
	// Grow by doubling, but never past n: the final buffer is exactly the
	// size that was announced (and reserved), not up to twice that.
	b := make([]byte, 0, directAllocLimit)
	for uint64(len(b)) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(2*uint64(cap(b)), n))
			copy(nb, b)
			b = nb
		}
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err != nil {
			if err == io.EOF {
				if uint64(len(b)) == n {
					break
				}
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return b, nil
}

// appendFrame appends body as a frame.
func appendFrame(dst, body []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// writeFrame writes body as one frame with a single Write call.
func writeFrame(w io.Writer, body []byte, max int) error {
	if len(body) > max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(body), max)
	}
	buf := make([]byte, 0, len(body)+binary.MaxVarintLen64)
	_, err := w.Write(appendFrame(buf, body))
	return err
}

// enc builds a frame body on a cryptobyte.Builder, the builder of every
// canopy wire format. Lengths and integers are uvarints here (the frame
// format predates the move to cryptobyte and stays byte-identical), which
// cryptobyte has no primitive for: uvarint appends them as raw bytes.
type enc struct{ b cryptobyte.Builder }

func (e *enc) u8(v uint8) { e.b.AddUint8(v) }
func (e *enc) uvarint(v uint64) {
	var buf [binary.MaxVarintLen64]byte
	e.b.AddBytes(binary.AppendUvarint(buf[:0], v))
}
func (e *enc) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}
func (e *enc) bytes(v []byte) { e.uvarint(uint64(len(v))); e.b.AddBytes(v) }
func (e *enc) str(v string)   { e.uvarint(uint64(len(v))); e.b.AddBytes([]byte(v)) }
func (e *enc) fixed(v []byte) { e.b.AddBytes(v) }

// body returns the encoded body. It cannot fail: enc adds no
// cryptobyte length prefixes, the only source of Builder errors.
func (e *enc) body() []byte { return e.b.BytesOrPanic() }

// errDecode is wrapped by every frame body decoding error.
var errDecode = errors.New("p2p: malformed frame")

// dec parses a frame body from a cryptobyte.String. The first error
// sticks; later reads return zero values, so decoders read every field and
// check err once at the end.
type dec struct {
	s   cryptobyte.String
	err error
}

func newDec(body []byte) dec { return dec{s: cryptobyte.String(body)} }

func (d *dec) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{errDecode}, args...)...)
	}
}

func (d *dec) u8() uint8 {
	var v uint8
	if d.err == nil && !d.s.ReadUint8(&v) {
		d.fail("short body")
	}
	return v
}

func (d *dec) bool() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad boolean")
	return false
}

// uvarint reads a body integer. Body fields use the whole uint64 range
// (enc writes them with binary.AppendUvarint), which go-varint's 63-bit
// decoder would refuse, hence encoding/binary here.
func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.s)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	if n > 1 && d.s[n-1] == 0 {
		d.fail("non-minimal varint")
		return 0
	}
	d.s.Skip(n)
	return v
}

// bytes reads a length-prefixed byte string of at most max bytes. The result
// aliases the frame body.
func (d *dec) bytes(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail("field of %d bytes exceeds limit %d", n, max)
		return nil
	}
	if n > uint64(len(d.s)) {
		d.fail("field of %d bytes exceeds remaining %d", n, len(d.s))
		return nil
	}
	return d.fixed(int(n))
}

// str reads a length-prefixed UTF-8 string of at most max bytes.
func (d *dec) str(max int) string {
	v := d.bytes(max)
	if d.err == nil && !utf8.Valid(v) {
		d.fail("invalid UTF-8")
		return ""
	}
	return string(v)
}

// fixed reads n bytes; the result aliases the frame body, capped so that
// appending to it never writes into the rest of the body.
func (d *dec) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	var v []byte
	if !d.s.ReadBytes(&v, n) {
		d.fail("short body")
		return nil
	}
	return v[:n:n]
}

// rest returns the unread bytes of the body.
func (d *dec) rest() []byte { return d.s }

// done returns the first error, or an error if bytes remain.
func (d *dec) done() error {
	if d.err == nil && !d.s.Empty() {
		d.fail("%d trailing bytes", len(d.s))
	}
	return d.err
}
