package mls

import (
	"golang.org/x/crypto/cryptobyte"
)

// ProtocolVersion is the MLS protocol version (§6); only mls10 exists.
type ProtocolVersion uint16

// ProtocolMLS10 is MLS 1.0.
const ProtocolMLS10 ProtocolVersion = 1

// GroupContext is the state every member of an epoch agrees on (§8.1):
//
//	struct {
//	    ProtocolVersion version = mls10;
//	    CipherSuite cipher_suite;
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    opaque tree_hash<V>;
//	    opaque confirmed_transcript_hash<V>;
//	    Extension extensions<V>;
//	} GroupContext;
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              []Extension
}

func (g *GroupContext) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(g.Version))
	b.AddUint16(uint16(g.CipherSuite))
	addOpaque(b, g.GroupID)
	b.AddUint64(g.Epoch)
	addOpaque(b, g.TreeHash)
	addOpaque(b, g.ConfirmedTranscriptHash)
	marshalExtensions(b, g.Extensions)
}

func (g *GroupContext) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint16((*uint16)(&g.Version)) &&
		s.ReadUint16((*uint16)(&g.CipherSuite)) &&
		readOpaque(s, &g.GroupID) &&
		s.ReadUint64(&g.Epoch) &&
		readOpaque(s, &g.TreeHash) &&
		readOpaque(s, &g.ConfirmedTranscriptHash) &&
		unmarshalExtensions(s, &g.Extensions)
}

// Marshal returns the TLS-presentation encoding of g.
func (g *GroupContext) Marshal() ([]byte, error) { return marshalStruct(g) }

// Unmarshal decodes g from data, rejecting trailing bytes.
func (g *GroupContext) Unmarshal(data []byte) error { return unmarshalStruct(data, g, "GroupContext") }
