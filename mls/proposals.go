package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// ProposalType is an MLS proposal type (§12.1, §17.4).
type ProposalType uint16

// The proposal types of RFC 9420 §17.4.
const (
	ProposalTypeAdd                    ProposalType = 0x0001
	ProposalTypeUpdate                 ProposalType = 0x0002
	ProposalTypeRemove                 ProposalType = 0x0003
	ProposalTypePSK                    ProposalType = 0x0004
	ProposalTypeReInit                 ProposalType = 0x0005
	ProposalTypeExternalInit           ProposalType = 0x0006
	ProposalTypeGroupContextExtensions ProposalType = 0x0007
)

func (t ProposalType) String() string {
	switch t {
	case ProposalTypeAdd:
		return "add"
	case ProposalTypeUpdate:
		return "update"
	case ProposalTypeRemove:
		return "remove"
	case ProposalTypePSK:
		return "psk"
	case ProposalTypeReInit:
		return "reinit"
	case ProposalTypeExternalInit:
		return "external_init"
	case ProposalTypeGroupContextExtensions:
		return "group_context_extensions"
	}
	return fmt.Sprintf("ProposalType(0x%04x)", uint16(t))
}

// PathRequired is the "Path Required" column of §17.4: a Commit covering a
// proposal of this type must carry an UpdatePath (§12.4).
func (t ProposalType) PathRequired() bool {
	switch t {
	case ProposalTypeAdd, ProposalTypePSK, ProposalTypeReInit:
		return false
	}
	return true
}

// AllowedForExternalSender is the "Ext" column of §17.4 (§12.1.8).
func (t ProposalType) AllowedForExternalSender() bool {
	switch t {
	case ProposalTypeAdd, ProposalTypeRemove, ProposalTypePSK, ProposalTypeReInit, ProposalTypeGroupContextExtensions:
		return true
	}
	return false
}

// Proposal is a proposed change to the group (§12.1):
//
//	struct {
//	    ProposalType proposal_type;
//	    select (Proposal.proposal_type) {
//	        case add:                      Add;
//	        case update:                   Update;
//	        case remove:                   Remove;
//	        case psk:                      PreSharedKey;
//	        case reinit:                   ReInit;
//	        case external_init:            ExternalInit;
//	        case group_context_extensions: GroupContextExtensions;
//	    };
//	} Proposal;
//
// Exactly the body selected by Type is set. Decision on unknown proposal
// types: the select has no length prefix, so the body of an unknown type
// cannot be delimited, and §13.5 says an unsupported proposal_type causes
// the enclosing message to be rejected. A Proposal whose type is not one of
// the seven above is therefore a decoding error (ErrMalformed); canopy
// advertises no non-default proposal types in its capabilities, so no
// compliant peer sends one.
type Proposal struct {
	Type                   ProposalType
	Add                    *Add
	Update                 *Update
	Remove                 *Remove
	PreSharedKey           *PreSharedKey
	ReInit                 *ReInit
	ExternalInit           *ExternalInit
	GroupContextExtensions *GroupContextExtensions
}

func (p *Proposal) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(p.Type))
	var body interface{ marshal(*cryptobyte.Builder) }
	switch p.Type {
	case ProposalTypeAdd:
		if p.Add != nil {
			body = p.Add
		}
	case ProposalTypeUpdate:
		if p.Update != nil {
			body = p.Update
		}
	case ProposalTypeRemove:
		if p.Remove != nil {
			body = p.Remove
		}
	case ProposalTypePSK:
		if p.PreSharedKey != nil {
			body = p.PreSharedKey
		}
	case ProposalTypeReInit:
		if p.ReInit != nil {
			body = p.ReInit
		}
	case ProposalTypeExternalInit:
		if p.ExternalInit != nil {
			body = p.ExternalInit
		}
	case ProposalTypeGroupContextExtensions:
		if p.GroupContextExtensions != nil {
			body = p.GroupContextExtensions
		}
	default:
		b.SetError(fmt.Errorf("mls: cannot encode proposal of unknown type %v", p.Type))
		return
	}
	if body == nil {
		b.SetError(fmt.Errorf("mls: %v proposal has no body", p.Type))
		return
	}
	body.marshal(b)
}

func (p *Proposal) unmarshal(s *cryptobyte.String) bool {
	*p = Proposal{}
	if !s.ReadUint16((*uint16)(&p.Type)) {
		return false
	}
	switch p.Type {
	case ProposalTypeAdd:
		p.Add = new(Add)
		return p.Add.unmarshal(s)
	case ProposalTypeUpdate:
		p.Update = new(Update)
		return p.Update.unmarshal(s)
	case ProposalTypeRemove:
		p.Remove = new(Remove)
		return p.Remove.unmarshal(s)
	case ProposalTypePSK:
		p.PreSharedKey = new(PreSharedKey)
		return p.PreSharedKey.unmarshal(s)
	case ProposalTypeReInit:
		p.ReInit = new(ReInit)
		return p.ReInit.unmarshal(s)
	case ProposalTypeExternalInit:
		p.ExternalInit = new(ExternalInit)
		return p.ExternalInit.unmarshal(s)
	case ProposalTypeGroupContextExtensions:
		p.GroupContextExtensions = new(GroupContextExtensions)
		return p.GroupContextExtensions.unmarshal(s)
	default:
		return false
	}
}

// Marshal returns the encoding of p.
func (p *Proposal) Marshal() ([]byte, error) { return marshalStruct(p) }

// Unmarshal decodes p from data, rejecting trailing bytes.
func (p *Proposal) Unmarshal(data []byte) error { return unmarshalStruct(data, p, "Proposal") }

// Add proposes adding the client of a KeyPackage (§12.1.1):
//
//	struct {
//	    KeyPackage key_package;
//	} Add;
type Add struct {
	KeyPackage KeyPackage
}

func (a *Add) marshal(b *cryptobyte.Builder)       { a.KeyPackage.marshal(b) }
func (a *Add) unmarshal(s *cryptobyte.String) bool { return a.KeyPackage.unmarshal(s) }

// Marshal returns the encoding of a.
func (a *Add) Marshal() ([]byte, error) { return marshalStruct(a) }

// Unmarshal decodes a from data, rejecting trailing bytes.
func (a *Add) Unmarshal(data []byte) error { return unmarshalStruct(data, a, "Add") }

// Update proposes replacing the sender's leaf (§12.1.2):
//
//	struct {
//	    LeafNode leaf_node;
//	} Update;
type Update struct {
	LeafNode LeafNode
}

func (u *Update) marshal(b *cryptobyte.Builder)       { u.LeafNode.marshal(b) }
func (u *Update) unmarshal(s *cryptobyte.String) bool { return u.LeafNode.unmarshal(s) }

// Marshal returns the encoding of u.
func (u *Update) Marshal() ([]byte, error) { return marshalStruct(u) }

// Unmarshal decodes u from data, rejecting trailing bytes.
func (u *Update) Unmarshal(data []byte) error { return unmarshalStruct(data, u, "Update") }

// Remove proposes removing the member at a leaf index (§12.1.3):
//
//	struct {
//	    uint32 removed;
//	} Remove;
type Remove struct {
	Removed uint32
}

func (r *Remove) marshal(b *cryptobyte.Builder)       { b.AddUint32(r.Removed) }
func (r *Remove) unmarshal(s *cryptobyte.String) bool { return s.ReadUint32(&r.Removed) }

// Marshal returns the encoding of r.
func (r *Remove) Marshal() ([]byte, error) { return marshalStruct(r) }

// Unmarshal decodes r from data, rejecting trailing bytes.
func (r *Remove) Unmarshal(data []byte) error { return unmarshalStruct(data, r, "Remove") }

// PreSharedKey proposes injecting a PSK into the next epoch (§12.1.4):
//
//	struct {
//	    PreSharedKeyID psk;
//	} PreSharedKey;
//
// psktype and usage are closed sets (decoded strictly by PreSharedKeyID).
type PreSharedKey struct {
	PSK PreSharedKeyID
}

func (p *PreSharedKey) marshal(b *cryptobyte.Builder) { p.PSK.marshal(b) }
func (p *PreSharedKey) unmarshal(s *cryptobyte.String) bool {
	p.PSK = PreSharedKeyID{}
	return p.PSK.unmarshal(s)
}

// Marshal returns the encoding of p.
func (p *PreSharedKey) Marshal() ([]byte, error) { return marshalStruct(p) }

// Unmarshal decodes p from data, rejecting trailing bytes.
func (p *PreSharedKey) Unmarshal(data []byte) error {
	return unmarshalStruct(data, p, "PreSharedKey")
}

// ReInit proposes reinitializing the group with new parameters (§12.1.5):
//
//	struct {
//	    opaque group_id<V>;
//	    ProtocolVersion version;
//	    CipherSuite cipher_suite;
//	    Extension extensions<V>;
//	} ReInit;
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  []Extension
}

func (r *ReInit) marshal(b *cryptobyte.Builder) {
	addOpaque(b, r.GroupID)
	b.AddUint16(uint16(r.Version))
	b.AddUint16(uint16(r.CipherSuite))
	marshalExtensions(b, r.Extensions)
}

func (r *ReInit) unmarshal(s *cryptobyte.String) bool {
	*r = ReInit{}
	return readOpaque(s, &r.GroupID) &&
		s.ReadUint16((*uint16)(&r.Version)) &&
		s.ReadUint16((*uint16)(&r.CipherSuite)) &&
		unmarshalExtensions(s, &r.Extensions)
}

// Marshal returns the encoding of r.
func (r *ReInit) Marshal() ([]byte, error) { return marshalStruct(r) }

// Unmarshal decodes r from data, rejecting trailing bytes.
func (r *ReInit) Unmarshal(data []byte) error { return unmarshalStruct(data, r, "ReInit") }

// ExternalInit carries the KEM output of an external join (§12.1.6):
//
//	struct {
//	    opaque kem_output<V>;
//	} ExternalInit;
type ExternalInit struct {
	KEMOutput []byte
}

func (e *ExternalInit) marshal(b *cryptobyte.Builder)       { addOpaque(b, e.KEMOutput) }
func (e *ExternalInit) unmarshal(s *cryptobyte.String) bool { return readOpaque(s, &e.KEMOutput) }

// Marshal returns the encoding of e.
func (e *ExternalInit) Marshal() ([]byte, error) { return marshalStruct(e) }

// Unmarshal decodes e from data, rejecting trailing bytes.
func (e *ExternalInit) Unmarshal(data []byte) error {
	return unmarshalStruct(data, e, "ExternalInit")
}

// GroupContextExtensions replaces the GroupContext extensions (§12.1.7):
//
//	struct {
//	    Extension extensions<V>;
//	} GroupContextExtensions;
type GroupContextExtensions struct {
	Extensions []Extension
}

func (g *GroupContextExtensions) marshal(b *cryptobyte.Builder) {
	marshalExtensions(b, g.Extensions)
}

func (g *GroupContextExtensions) unmarshal(s *cryptobyte.String) bool {
	return unmarshalExtensions(s, &g.Extensions)
}

// Marshal returns the encoding of g.
func (g *GroupContextExtensions) Marshal() ([]byte, error) { return marshalStruct(g) }

// Unmarshal decodes g from data, rejecting trailing bytes.
func (g *GroupContextExtensions) Unmarshal(data []byte) error {
	return unmarshalStruct(data, g, "GroupContextExtensions")
}

// ExternalSender is one entry of the external_senders GroupContext
// extension (§12.1.8.1):
//
//	struct {
//	    SignaturePublicKey signature_key;
//	    Credential credential;
//	} ExternalSender;
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

func (e *ExternalSender) marshal(b *cryptobyte.Builder) {
	addOpaque(b, e.SignatureKey)
	e.Credential.marshal(b)
}

func (e *ExternalSender) unmarshal(s *cryptobyte.String) bool {
	return readOpaque(s, &e.SignatureKey) && e.Credential.unmarshal(s)
}

// ExternalSenders is the extension_data of the external_senders extension
// (§12.1.8.1):
//
//	ExternalSender external_senders<V>;
//
// Sender.SenderIndex of an external sender indexes this list.
type ExternalSenders []ExternalSender

func (l *ExternalSenders) marshal(b *cryptobyte.Builder) {
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range *l {
			(*l)[i].marshal(b)
		}
	})
}

func (l *ExternalSenders) unmarshal(s *cryptobyte.String) bool {
	list := ExternalSenders{}
	ok := readVector(s, func(s *cryptobyte.String) bool {
		var e ExternalSender
		if !e.unmarshal(s) {
			return false
		}
		list = append(list, e)
		return true
	})
	*l = list
	return ok
}

// Marshal returns the extension_data of an external_senders extension.
func (l *ExternalSenders) Marshal() ([]byte, error) { return marshalStruct(l) }

// Unmarshal decodes the extension_data of an external_senders extension.
func (l *ExternalSenders) Unmarshal(data []byte) error {
	return unmarshalStruct(data, l, "ExternalSenders")
}
