package mls

import (
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
)

// GroupInfo describes the group to a joiner (§12.4.3):
//
//	struct {
//	    GroupContext group_context;
//	    Extension extensions<V>;
//	    MAC confirmation_tag;
//	    uint32 signer;
//	    /* SignWithLabel(., "GroupInfoTBS", GroupInfoTBS) */
//	    opaque signature<V>;
//	} GroupInfo;
//
// Unknown extensions are kept and ignored (§13.4); RatchetTree and
// ExternalPub decode the two GroupInfo extensions RFC 9420 defines.
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      []Extension
	ConfirmationTag []byte
	Signer          uint32
	Signature       []byte
}

// marshalTBS writes GroupInfoTBS (§12.4.3):
//
//	struct {
//	    GroupContext group_context;
//	    Extension extensions<V>;
//	    MAC confirmation_tag;
//	    uint32 signer;
//	} GroupInfoTBS;
func (gi *GroupInfo) marshalTBS(b *cryptobyte.Builder) {
	gi.GroupContext.marshal(b)
	marshalExtensions(b, gi.Extensions)
	addOpaque(b, gi.ConfirmationTag)
	b.AddUint32(gi.Signer)
}

func (gi *GroupInfo) marshal(b *cryptobyte.Builder) {
	gi.marshalTBS(b)
	addOpaque(b, gi.Signature)
}

func (gi *GroupInfo) unmarshal(s *cryptobyte.String) bool {
	*gi = GroupInfo{}
	return gi.GroupContext.unmarshal(s) &&
		unmarshalExtensions(s, &gi.Extensions) &&
		readOpaque(s, &gi.ConfirmationTag) &&
		s.ReadUint32(&gi.Signer) &&
		readOpaque(s, &gi.Signature)
}

// Marshal returns the encoding of gi.
func (gi *GroupInfo) Marshal() ([]byte, error) { return marshalStruct(gi) }

// Unmarshal decodes gi from data, rejecting trailing bytes.
func (gi *GroupInfo) Unmarshal(data []byte) error { return unmarshalStruct(data, gi, "GroupInfo") }

func (gi *GroupInfo) tbs() ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, gi.sizeHint()))
	gi.marshalTBS(b)
	return b.Bytes()
}

// sizeHint is an upper estimate of the encoding's length.
func (gi *GroupInfo) sizeHint() int {
	gc := &gi.GroupContext
	n := 64 + len(gc.GroupID) + len(gc.TreeHash) + len(gc.ConfirmedTranscriptHash) + extensionsSize(gc.Extensions)
	return n + extensionsSize(gi.Extensions) + len(gi.ConfirmationTag) + len(gi.Signature)
}

// Sign sets gi.Signature to SignWithLabel(priv, "GroupInfoTBS",
// GroupInfoTBS) with the group's cipher suite; gi.Signer must already be the
// signer's leaf index.
func (gi *GroupInfo) Sign(priv []byte, rand io.Reader) error {
	cs := gi.GroupContext.CipherSuite
	if !cs.Supported() {
		return &UnsupportedCipherSuiteError{cs}
	}
	tbs, err := gi.tbs()
	if err != nil {
		return err
	}
	sig, err := cs.SignWithLabel(priv, "GroupInfoTBS", tbs, rand)
	if err != nil {
		return err
	}
	gi.Signature = sig
	return nil
}

// VerifySignature checks gi.Signature with pub, the signature key of the
// leaf at index gi.Signer in the group's ratchet tree (§12.4.3). Errors wrap
// ErrInvalidSignature when the signature is wrong.
func (gi *GroupInfo) VerifySignature(pub []byte) error {
	cs := gi.GroupContext.CipherSuite
	if !cs.Supported() {
		return &UnsupportedCipherSuiteError{cs}
	}
	tbs, err := gi.tbs()
	if err != nil {
		return err
	}
	if err := cs.VerifyWithLabel(pub, "GroupInfoTBS", tbs, gi.Signature); err != nil {
		return fmt.Errorf("mls: group info signature: %w", err)
	}
	return nil
}

// RatchetTree decodes the ratchet_tree extension (§12.4.3.3), reporting
// whether it is present.
func (gi *GroupInfo) RatchetTree() (RatchetTree, bool, error) {
	e, ok := findExtension(gi.Extensions, ExtensionRatchetTree)
	if !ok {
		return nil, false, nil
	}
	var t RatchetTree
	if err := t.Unmarshal(e.Data); err != nil {
		return nil, true, err
	}
	return t, true, nil
}

// ratchetTreeExtension is RatchetTree with the encodings of the leaves
// (see decodeRatchetTree).
func ratchetTreeExtension(gi *GroupInfo) (RatchetTree, [][]byte, bool, error) {
	e, ok := findExtension(gi.Extensions, ExtensionRatchetTree)
	if !ok {
		return nil, nil, false, nil
	}
	t, encs, err := decodeRatchetTree(e.Data)
	if err != nil {
		return nil, nil, true, err
	}
	return t, encs, true, nil
}

// ExternalPub decodes the external_pub extension (§12.4.3.2), reporting
// whether it is present.
func (gi *GroupInfo) ExternalPub() (*ExternalPub, bool, error) {
	e, ok := findExtension(gi.Extensions, ExtensionExternalPub)
	if !ok {
		return nil, false, nil
	}
	var ep ExternalPub
	if err := ep.Unmarshal(e.Data); err != nil {
		return nil, true, err
	}
	return &ep, true, nil
}

// ExternalPub is the external_pub GroupInfo extension (§12.4.3.2):
//
//	struct {
//	    HPKEPublicKey external_pub;
//	} ExternalPub;
type ExternalPub struct {
	ExternalPub []byte
}

func (e *ExternalPub) marshal(b *cryptobyte.Builder)       { addOpaque(b, e.ExternalPub) }
func (e *ExternalPub) unmarshal(s *cryptobyte.String) bool { return readOpaque(s, &e.ExternalPub) }

// Marshal returns the extension_data of an external_pub extension.
func (e *ExternalPub) Marshal() ([]byte, error) { return marshalStruct(e) }

// Unmarshal decodes the extension_data of an external_pub extension.
func (e *ExternalPub) Unmarshal(data []byte) error { return unmarshalStruct(data, e, "ExternalPub") }
