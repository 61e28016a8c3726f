package mls

import (
	"golang.org/x/crypto/cryptobyte"
)

// ExtensionType is an MLS extension type (§13, §17.3).
type ExtensionType uint16

// Extension types registered by RFC 9420 §17.3.
const (
	ExtensionApplicationID        ExtensionType = 0x0001
	ExtensionRatchetTree          ExtensionType = 0x0002
	ExtensionRequiredCapabilities ExtensionType = 0x0003
	ExtensionExternalPub          ExtensionType = 0x0004
	ExtensionExternalSenders      ExtensionType = 0x0005
	// ExtensionLastResort marks a KeyPackage that may be used more than once.
	// It comes from the MLS extensions draft, not RFC 9420; 0x000a is the
	// value deployed stacks use.
	ExtensionLastResort ExtensionType = 0x000a
)

// Extension is
//
//	struct {
//	    ExtensionType extension_type;
//	    opaque extension_data<V>;
//	} Extension;
//
// (§13). Extension lists are kept in wire order so that re-encoding is exact.
type Extension struct {
	Type ExtensionType
	Data []byte
}

func (e *Extension) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(e.Type))
	addOpaque(b, e.Data)
}

func (e *Extension) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint16((*uint16)(&e.Type)) && readOpaque(s, &e.Data)
}

// marshalExtensions writes Extension extensions<V>.
func marshalExtensions(b *cryptobyte.Builder, exts []Extension) {
	// The body's size is known: no intermediate buffer (a GroupInfo's
	// ratchet_tree extension can be megabytes).
	addVarint(b, uint64(extensionsSize(exts)))
	for i := range exts {
		exts[i].marshal(b)
	}
}

// extensionsSize is the length of the body of an Extension extensions<V>.
func extensionsSize(exts []Extension) int {
	n := 0
	for i := range exts {
		n += 2 + varintSize(len(exts[i].Data)) + len(exts[i].Data)
	}
	return n
}

// unmarshalExtensions reads Extension extensions<V>. Duplicate types are a
// validation error (§13.4 "MUST NOT contain more than one extension of the
// same type") checked by checkUniqueExtensionTypes where the list is
// validated, not a decoding error, so that round trips stay byte-exact.
func unmarshalExtensions(s *cryptobyte.String, out *[]Extension) bool {
	return readVectorExact(s, out, (*Extension).unmarshal)
}

// findExtension returns the extension of type t, if present.
func findExtension(exts []Extension, t ExtensionType) (*Extension, bool) {
	for i := range exts {
		if exts[i].Type == t {
			return &exts[i], true
		}
	}
	return nil, false
}
