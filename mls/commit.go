package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// ProposalOrRefType says whether a Commit carries a proposal by value or by
// reference (§12.4):
//
//	enum {
//	  reserved(0),
//	  proposal(1),
//	  reference(2),
//	  (255)
//	} ProposalOrRefType;
//
// The set is closed; any other value is a decoding error.
type ProposalOrRefType uint8

const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

// ProposalOrRef is one entry of Commit.proposals (§12.4):
//
//	struct {
//	  ProposalOrRefType type;
//	  select (ProposalOrRef.type) {
//	    case proposal:  Proposal proposal;
//	    case reference: ProposalRef reference;
//	  };
//	} ProposalOrRef;
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal   // proposal
	Reference ProposalRef // reference
}

func (p *ProposalOrRef) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.Type))
	switch p.Type {
	case ProposalOrRefProposal:
		if p.Proposal == nil {
			b.SetError(fmt.Errorf("mls: ProposalOrRef of type proposal has no proposal"))
			return
		}
		p.Proposal.marshal(b)
	case ProposalOrRefReference:
		addOpaque(b, p.Reference)
	default:
		b.SetError(fmt.Errorf("mls: cannot encode ProposalOrRef of type %d", p.Type))
	}
}

func (p *ProposalOrRef) unmarshal(s *cryptobyte.String) bool {
	*p = ProposalOrRef{}
	if !s.ReadUint8((*uint8)(&p.Type)) {
		return false
	}
	switch p.Type {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		return p.Proposal.unmarshal(s)
	case ProposalOrRefReference:
		return readOpaque(s, (*[]byte)(&p.Reference))
	default:
		return false
	}
}

// Commit starts a new epoch (§12.4):
//
//	struct {
//	    ProposalOrRef proposals<V>;
//	    optional<UpdatePath> path;
//	} Commit;
//
// A nil Path encodes the absent optional.
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

func (c *Commit) marshal(b *cryptobyte.Builder) {
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range c.Proposals {
			c.Proposals[i].marshal(b)
		}
	})
	addOptional(b, c.Path != nil, func(b *cryptobyte.Builder) { c.Path.marshal(b) })
}

func (c *Commit) unmarshal(s *cryptobyte.String) bool {
	*c = Commit{}
	props := []ProposalOrRef{}
	if !readVector(s, func(s *cryptobyte.String) bool {
		var p ProposalOrRef
		if !p.unmarshal(s) {
			return false
		}
		props = append(props, p)
		return true
	}) {
		return false
	}
	c.Proposals = props
	var present bool
	path := new(UpdatePath)
	if !readOptional(s, &present, path.unmarshal) {
		return false
	}
	if present {
		c.Path = path
	}
	return true
}

// Marshal returns the encoding of c.
func (c *Commit) Marshal() ([]byte, error) { return marshalStruct(c) }

// Unmarshal decodes c from data, rejecting trailing bytes.
func (c *Commit) Unmarshal(data []byte) error { return unmarshalStruct(data, c, "Commit") }

// HPKECiphertext is an EncryptWithLabel output (§7.6):
//
//	struct {
//	    opaque kem_output<V>;
//	    opaque ciphertext<V>;
//	} HPKECiphertext;
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (h *HPKECiphertext) marshal(b *cryptobyte.Builder) {
	addOpaque(b, h.KEMOutput)
	addOpaque(b, h.Ciphertext)
}

func (h *HPKECiphertext) unmarshal(s *cryptobyte.String) bool {
	return readOpaque(s, &h.KEMOutput) && readOpaque(s, &h.Ciphertext)
}

// UpdatePathNode is one node of an UpdatePath (§7.6):
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    HPKECiphertext encrypted_path_secret<V>;
//	} UpdatePathNode;
type UpdatePathNode struct {
	EncryptionKey       []byte
	EncryptedPathSecret []HPKECiphertext
}

func (n *UpdatePathNode) marshal(b *cryptobyte.Builder) {
	addOpaque(b, n.EncryptionKey)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range n.EncryptedPathSecret {
			n.EncryptedPathSecret[i].marshal(b)
		}
	})
}

func (n *UpdatePathNode) unmarshal(s *cryptobyte.String) bool {
	*n = UpdatePathNode{}
	if !readOpaque(s, &n.EncryptionKey) {
		return false
	}
	return readVectorExact(s, &n.EncryptedPathSecret, (*HPKECiphertext).unmarshal)
}

// UpdatePath is the committer's new leaf and filtered direct path (§7.6):
//
//	struct {
//	    LeafNode leaf_node;
//	    UpdatePathNode nodes<V>;
//	} UpdatePath;
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

func (u *UpdatePath) marshal(b *cryptobyte.Builder) {
	u.LeafNode.marshal(b)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range u.Nodes {
			u.Nodes[i].marshal(b)
		}
	})
}

func (u *UpdatePath) unmarshal(s *cryptobyte.String) bool {
	*u = UpdatePath{}
	if !u.LeafNode.unmarshal(s) {
		return false
	}
	nodes := []UpdatePathNode{}
	ok := readVector(s, func(s *cryptobyte.String) bool {
		var n UpdatePathNode
		if !n.unmarshal(s) {
			return false
		}
		nodes = append(nodes, n)
		return true
	})
	u.Nodes = nodes
	return ok
}

// Marshal returns the encoding of u.
func (u *UpdatePath) Marshal() ([]byte, error) { return marshalStruct(u) }

// Unmarshal decodes u from data, rejecting trailing bytes.
func (u *UpdatePath) Unmarshal(data []byte) error { return unmarshalStruct(data, u, "UpdatePath") }
