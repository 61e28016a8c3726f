package mls

import (
	"fmt"
	"sync"

	"golang.org/x/crypto/cryptobyte"
)

// This file holds the wire-format plumbing shared by every struct: the
// QUIC-style variable-length integer of RFC 9420 §2.1.2 used as the length
// prefix of every opaque<V> and T<V> vector, optional<T>, and the
// marshal/unmarshal entry points that reject trailing bytes.
//
// Every struct in this package implements
//
//	marshal(b *cryptobyte.Builder)
//	unmarshal(s *cryptobyte.String) bool
//
// next to each other, in the style of crypto/tls handshake_messages.go.
// Parsers never allocate more than the input they were given: vectors are
// sub-slices of the input, and element loops consume at least one byte per
// iteration.

// maxVarint is the largest length a §2.1.2 variable-length integer can carry
// (30 bits); the 0b11 prefix is reserved and rejected.
const maxVarint = 1<<30 - 1

// readVarint reads a §2.1.2 variable-length integer, rejecting the reserved
// 0b11 prefix and any encoding that is not the shortest possible one.
func readVarint(s *cryptobyte.String, out *uint32) bool {
	var first uint8
	if !s.ReadUint8(&first) {
		return false
	}
	switch first >> 6 {
	case 0:
		*out = uint32(first & 0x3f)
		return true
	case 1:
		var rest uint8
		if !s.ReadUint8(&rest) {
			return false
		}
		v := uint32(first&0x3f)<<8 | uint32(rest)
		if v < 1<<6 {
			return false // non-minimal
		}
		*out = v
		return true
	case 2:
		var rest [3]byte
		if !s.CopyBytes(rest[:]) {
			return false
		}
		v := uint32(first&0x3f)<<24 | uint32(rest[0])<<16 | uint32(rest[1])<<8 | uint32(rest[2])
		if v < 1<<14 {
			return false // non-minimal
		}
		*out = v
		return true
	default:
		return false // 0b11 is reserved
	}
}

// addVarint writes n as the shortest §2.1.2 variable-length integer.
func addVarint(b *cryptobyte.Builder, n uint64) {
	switch {
	case n < 1<<6:
		b.AddUint8(uint8(n))
	case n < 1<<14:
		b.AddUint16(uint16(n) | 0x4000)
	case n <= maxVarint:
		b.AddUint32(uint32(n) | 0x80000000)
	default:
		b.SetError(fmt.Errorf("mls: vector of %d bytes exceeds the 2^30-1 limit", n))
	}
}

// readVarVector reads a variable-length vector and returns its body as a
// sub-string of s (no copy, no allocation).
func readVarVector(s *cryptobyte.String, out *cryptobyte.String) bool {
	var n uint32
	if !readVarint(s, &n) {
		return false
	}
	var body []byte
	if !s.ReadBytes(&body, int(n)) {
		return false
	}
	*out = cryptobyte.String(body)
	return true
}

// readOpaque reads opaque<V>. The result aliases the input; callers that
// keep it beyond the input's lifetime must not mutate it. An empty vector
// decodes to a non-nil empty slice so that re-encoding is exact.
func readOpaque(s *cryptobyte.String, out *[]byte) bool {
	var body cryptobyte.String
	if !readVarVector(s, &body) {
		return false
	}
	*out = []byte(body)
	return true
}

// addOpaque writes opaque<V>.
func addOpaque(b *cryptobyte.Builder, v []byte) {
	addVarint(b, uint64(len(v)))
	b.AddBytes(v)
}

// addVarVector writes a T<V> whose body is produced by f. The body is built
// in a pooled scratch buffer (the length prefix, whose size depends on the
// body's, comes first), copied after its prefix and wiped before the buffer
// is reused: encoding a struct allocates no intermediate buffers. Bodies
// over maxPooledBody are built in a fresh buffer that is not kept.
func addVarVector(b *cryptobyte.Builder, f func(b *cryptobyte.Builder)) {
	bufp := scratchPool.Get().(*[]byte)
	child := cryptobyte.NewBuilder((*bufp)[:0])
	f(child)
	body, err := child.Bytes()
	if err != nil {
		b.SetError(err)
	} else {
		addOpaque(b, body)
	}
	if cap(body) <= maxPooledBody {
		clear(body) // it may hold secrets (GroupSecrets, state snapshots)
		*bufp = body[:0]
		scratchPool.Put(bufp)
	}
}

// scratchPool holds the scratch buffers of addVarVector.
var scratchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 256)
	return &b
}}

const maxPooledBody = 64 << 10

// readVector reads a T<V>, calling elem until the body is consumed. elem must
// consume at least one byte or fail.
func readVector(s *cryptobyte.String, elem func(s *cryptobyte.String) bool) bool {
	var body cryptobyte.String
	if !readVarVector(s, &body) {
		return false
	}
	for !body.Empty() {
		before := len(body)
		if !elem(&body) || len(body) == before {
			return false
		}
	}
	return true
}

// readVectorExact reads a T<V> whose elements decode without allocating
// into a slice of exactly the right length: a first pass validates and
// counts the elements, a second decodes them in place. Compared with append
// this avoids the growth garbage (up to 4x the final size) on adversarial
// inputs made of tiny elements. elem must consume at least one byte or fail.
func readVectorExact[T any](s *cryptobyte.String, out *[]T, elem func(v *T, s *cryptobyte.String) bool) bool {
	var body cryptobyte.String
	if !readVarVector(s, &body) {
		return false
	}
	// One scratch value for the whole count pass: elem is an unknown
	// function, so its arguments escape to the heap.
	n, c, scratch := 0, body, new(T)
	for ; !c.Empty(); n++ {
		before := len(c)
		if !elem(scratch, &c) || len(c) == before {
			return false
		}
	}
	list := make([]T, n)
	for i := range list {
		elem(&list[i], &body)
	}
	*out = list
	return true
}

// readOptional reads optional<T>: a uint8 presence flag (0 or 1) followed by
// the value when present.
func readOptional(s *cryptobyte.String, present *bool, value func(s *cryptobyte.String) bool) bool {
	var flag uint8
	if !s.ReadUint8(&flag) {
		return false
	}
	switch flag {
	case 0:
		*present = false
		return true
	case 1:
		*present = true
		return value(s)
	default:
		return false
	}
}

// addOptional writes optional<T>.
func addOptional(b *cryptobyte.Builder, present bool, value func(b *cryptobyte.Builder)) {
	if !present {
		b.AddUint8(0)
		return
	}
	b.AddUint8(1)
	value(b)
}

// readBool reads an MLS/TLS boolean (a uint8 that must be 0 or 1).
func readBool(s *cryptobyte.String, out *bool) bool {
	var v uint8
	if !s.ReadUint8(&v) || v > 1 {
		return false
	}
	*out = v == 1
	return true
}

func addBool(b *cryptobyte.Builder, v bool) {
	if v {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
}

// wireStruct is implemented by every encodable struct of the package.
type wireStruct interface {
	marshal(b *cryptobyte.Builder)
	unmarshal(s *cryptobyte.String) bool
}

// marshalStruct encodes v. Structs that can be large (GroupInfo, Welcome
// and the MLSMessages carrying them) implement sizeHint, so that their
// encoding is built in one buffer instead of one that doubles.
func marshalStruct(v interface{ marshal(b *cryptobyte.Builder) }) ([]byte, error) {
	var buf []byte
	if h, ok := v.(interface{ sizeHint() int }); ok {
		buf = make([]byte, 0, h.sizeHint())
	}
	b := cryptobyte.NewBuilder(buf)
	v.marshal(b)
	return b.Bytes()
}

// unmarshalStruct decodes data into v, rejecting trailing bytes. what names
// the type in the error ("KeyPackage", "MLSMessage", ...).
func unmarshalStruct(data []byte, v interface {
	unmarshal(s *cryptobyte.String) bool
}, what string) error {
	s := cryptobyte.String(data)
	if !v.unmarshal(&s) {
		return fmt.Errorf("%w: invalid %s", ErrMalformed, what)
	}
	if !s.Empty() {
		return fmt.Errorf("%w: %d trailing bytes after %s", ErrMalformed, len(s), what)
	}
	return nil
}
