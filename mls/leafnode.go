package mls

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// LeafNodeSource says how a LeafNode came to be in the tree (§7.2):
//
//	enum {
//	    reserved(0),
//	    key_package(1),
//	    update(2),
//	    commit(3),
//	    (255)
//	} LeafNodeSource;
//
// The set is closed: any other value is a decoding error, since the select
// that depends on it has no other arms.
type LeafNodeSource uint8

const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

func (s LeafNodeSource) String() string {
	switch s {
	case LeafNodeSourceKeyPackage:
		return "key_package"
	case LeafNodeSourceUpdate:
		return "update"
	case LeafNodeSourceCommit:
		return "commit"
	}
	return fmt.Sprintf("LeafNodeSource(%d)", uint8(s))
}

// Capabilities lists what a client supports (§7.2):
//
//	struct {
//	    ProtocolVersion versions<V>;
//	    CipherSuite cipher_suites<V>;
//	    ExtensionType extensions<V>;
//	    ProposalType proposals<V>;
//	    CredentialType credentials<V>;
//	} Capabilities;
//
// Unknown values (including GREASE) are kept as decoded and ignored by the
// Supports* helpers' callers, as §13.4 requires.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

func (c *Capabilities) marshal(b *cryptobyte.Builder) {
	addUint16List(b, c.Versions)
	addUint16List(b, c.CipherSuites)
	addUint16List(b, c.Extensions)
	addUint16List(b, c.Proposals)
	addUint16List(b, c.Credentials)
}

func (c *Capabilities) unmarshal(s *cryptobyte.String) bool {
	return readUint16List(s, &c.Versions) &&
		readUint16List(s, &c.CipherSuites) &&
		readUint16List(s, &c.Extensions) &&
		readUint16List(s, &c.Proposals) &&
		readUint16List(s, &c.Credentials)
}

// addUint16List writes a uint16-based T<V>.
func addUint16List[T ~uint16](b *cryptobyte.Builder, list []T) {
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, v := range list {
			b.AddUint16(uint16(v))
		}
	})
}

// readUint16List reads a uint16-based T<V>; a body of odd length fails.
func readUint16List[T ~uint16](s *cryptobyte.String, out *[]T) bool {
	var body cryptobyte.String
	if !readVarVector(s, &body) || len(body)%2 != 0 {
		return false
	}
	list := make([]T, 0, len(body)/2)
	for !body.Empty() {
		var v uint16
		body.ReadUint16(&v)
		list = append(list, T(v))
	}
	*out = list
	return true
}

// isDefaultExtensionType reports whether t is one of the §7.2 "default"
// extension types every client implements and none lists.
func isDefaultExtensionType(t ExtensionType) bool {
	return t >= ExtensionApplicationID && t <= ExtensionExternalSenders
}

// isDefaultProposalType reports whether t is one of the seven RFC 9420
// proposal types (§7.2 "default" proposal types).
func isDefaultProposalType(t ProposalType) bool {
	return t >= ProposalTypeAdd && t <= ProposalTypeGroupContextExtensions
}

// SupportsVersion reports whether v is listed.
func (c *Capabilities) SupportsVersion(v ProtocolVersion) bool { return slices.Contains(c.Versions, v) }

// SupportsCipherSuite reports whether cs is listed.
func (c *Capabilities) SupportsCipherSuite(cs CipherSuite) bool {
	return slices.Contains(c.CipherSuites, cs)
}

// SupportsExtension reports whether t is a default extension type or listed.
func (c *Capabilities) SupportsExtension(t ExtensionType) bool {
	return isDefaultExtensionType(t) || slices.Contains(c.Extensions, t)
}

// SupportsProposal reports whether t is a default proposal type or listed.
func (c *Capabilities) SupportsProposal(t ProposalType) bool {
	return isDefaultProposalType(t) || slices.Contains(c.Proposals, t)
}

// SupportsCredential reports whether t is listed (credential types have no
// defaults, §11.1).
func (c *Capabilities) SupportsCredential(t CredentialType) bool {
	return slices.Contains(c.Credentials, t)
}

// SupportsRequired reports whether c meets a required_capabilities extension
// (§11.1).
func (c *Capabilities) SupportsRequired(rc *RequiredCapabilities) bool {
	for _, t := range rc.ExtensionTypes {
		if !c.SupportsExtension(t) {
			return false
		}
	}
	for _, t := range rc.ProposalTypes {
		if !c.SupportsProposal(t) {
			return false
		}
	}
	for _, t := range rc.CredentialTypes {
		if !c.SupportsCredential(t) {
			return false
		}
	}
	return true
}

// Lifetime bounds the validity of a key_package LeafNode (§7.2):
//
//	struct {
//	    uint64 not_before;
//	    uint64 not_after;
//	} Lifetime;
//
// Times are seconds since the Unix epoch.
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

func (l *Lifetime) marshal(b *cryptobyte.Builder) {
	b.AddUint64(l.NotBefore)
	b.AddUint64(l.NotAfter)
}

func (l *Lifetime) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint64(&l.NotBefore) && s.ReadUint64(&l.NotAfter)
}

// Contains reports whether not_before <= now <= not_after. The package has
// no clock: the caller passes the time.
func (l Lifetime) Contains(now time.Time) bool {
	t := now.Unix()
	if t < 0 {
		return false
	}
	return l.NotBefore <= uint64(t) && uint64(t) <= l.NotAfter
}

// LeafNode describes one member (§7.2):
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    SignaturePublicKey signature_key;
//	    Credential credential;
//	    Capabilities capabilities;
//
//	    LeafNodeSource leaf_node_source;
//	    select (LeafNode.leaf_node_source) {
//	        case key_package:
//	            Lifetime lifetime;
//	        case update:
//	            struct{};
//	        case commit:
//	            opaque parent_hash<V>;
//	    };
//
//	    Extension extensions<V>;
//	    /* SignWithLabel(., "LeafNodeTBS", LeafNodeTBS) */
//	    opaque signature<V>;
//	} LeafNode;
//
// Lifetime is meaningful only for the key_package source and ParentHash only
// for commit; the encoder ignores the field the source does not select.
type LeafNode struct {
	EncryptionKey []byte
	SignatureKey  []byte
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      Lifetime // key_package
	ParentHash    []byte   // commit
	Extensions    []Extension
	Signature     []byte
}

// marshalContent writes the fields shared by LeafNode and LeafNodeTBS.
func (ln *LeafNode) marshalContent(b *cryptobyte.Builder) {
	addOpaque(b, ln.EncryptionKey)
	addOpaque(b, ln.SignatureKey)
	ln.Credential.marshal(b)
	ln.Capabilities.marshal(b)
	b.AddUint8(uint8(ln.Source))
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime.marshal(b)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		addOpaque(b, ln.ParentHash)
	default:
		b.SetError(fmt.Errorf("mls: cannot encode leaf node with source %v", ln.Source))
		return
	}
	marshalExtensions(b, ln.Extensions)
}

func (ln *LeafNode) marshal(b *cryptobyte.Builder) {
	ln.marshalContent(b)
	addOpaque(b, ln.Signature)
}

func (ln *LeafNode) unmarshal(s *cryptobyte.String) bool {
	*ln = LeafNode{}
	if !readOpaque(s, &ln.EncryptionKey) ||
		!readOpaque(s, &ln.SignatureKey) ||
		!ln.Credential.unmarshal(s) ||
		!ln.Capabilities.unmarshal(s) ||
		!s.ReadUint8((*uint8)(&ln.Source)) {
		return false
	}
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		if !ln.Lifetime.unmarshal(s) {
			return false
		}
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		if !readOpaque(s, &ln.ParentHash) {
			return false
		}
	default:
		return false
	}
	return unmarshalExtensions(s, &ln.Extensions) && readOpaque(s, &ln.Signature)
}

// Marshal returns the encoding of ln.
func (ln *LeafNode) Marshal() ([]byte, error) { return marshalStruct(ln) }

// Unmarshal decodes ln from data, rejecting trailing bytes.
func (ln *LeafNode) Unmarshal(data []byte) error { return unmarshalStruct(data, ln, "LeafNode") }

// tbs returns the encoded LeafNodeTBS (§7.2):
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    SignaturePublicKey signature_key;
//	    Credential credential;
//	    Capabilities capabilities;
//
//	    LeafNodeSource leaf_node_source;
//	    select (LeafNodeTBS.leaf_node_source) {
//	        case key_package:
//	            Lifetime lifetime;
//	        case update:
//	            struct{};
//	        case commit:
//	            opaque parent_hash<V>;
//	    };
//
//	    Extension extensions<V>;
//
//	    select (LeafNodeTBS.leaf_node_source) {
//	        case key_package:
//	            struct{};
//	        case update:
//	            opaque group_id<V>;
//	            uint32 leaf_index;
//	        case commit:
//	            opaque group_id<V>;
//	            uint32 leaf_index;
//	    };
//	} LeafNodeTBS;
//
// groupID and leafIndex are ignored for the key_package source.
func (ln *LeafNode) tbs(groupID []byte, leafIndex uint32) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	ln.marshalContent(b)
	if ln.Source == LeafNodeSourceUpdate || ln.Source == LeafNodeSourceCommit {
		addOpaque(b, groupID)
		b.AddUint32(leafIndex)
	}
	return b.Bytes()
}

// Sign sets ln.Signature to SignWithLabel(priv, "LeafNodeTBS", LeafNodeTBS).
// groupID and leafIndex are the signing context for the update and commit
// sources and are ignored for key_package.
func (ln *LeafNode) Sign(cs CipherSuite, priv, groupID []byte, leafIndex uint32, rand io.Reader) error {
	if !cs.Supported() {
		return &UnsupportedCipherSuiteError{cs}
	}
	tbs, err := ln.tbs(groupID, leafIndex)
	if err != nil {
		return err
	}
	sig, err := cs.SignWithLabel(priv, "LeafNodeTBS", tbs, rand)
	if err != nil {
		return err
	}
	ln.Signature = sig
	return nil
}

// VerifySignature checks ln.Signature against ln.SignatureKey (§7.3). The
// returned error wraps ErrInvalidSignature when the signature is wrong.
func (ln *LeafNode) VerifySignature(cs CipherSuite, groupID []byte, leafIndex uint32) error {
	if !cs.Supported() {
		return &UnsupportedCipherSuiteError{cs}
	}
	tbs, err := ln.tbs(groupID, leafIndex)
	if err != nil {
		return err
	}
	if err := cs.VerifyWithLabel(ln.SignatureKey, "LeafNodeTBS", tbs, ln.Signature); err != nil {
		return fmt.Errorf("mls: leaf node signature: %w", err)
	}
	return nil
}

// Validate performs the group-independent checks of §7.3 on ln:
//
//   - leaf_node_source is source (key_package in a KeyPackage, update in an
//     Update proposal, commit in an UpdatePath);
//   - encryption_key and signature_key are valid public keys for cs;
//   - the signature verifies (with groupID/leafIndex as context for the
//     update and commit sources);
//   - the credential type is listed in capabilities.credentials (§7.2);
//   - every non-default extension in extensions is listed in
//     capabilities.extensions, and no extension type appears twice (§13.4).
//
// Group-dependent checks (required_capabilities, credential support by all
// members, uniqueness of keys, Update's new encryption key) and the lifetime
// check (Lifetime.Contains with the caller's clock) are the caller's. Errors
// wrap ErrInvalidLeafNode, and ErrInvalidSignature for a bad signature.
func (ln *LeafNode) Validate(cs CipherSuite, source LeafNodeSource, groupID []byte, leafIndex uint32) error {
	if !cs.Supported() {
		return fmt.Errorf("%w: %w", ErrInvalidLeafNode, &UnsupportedCipherSuiteError{cs})
	}
	if ln.Source != source {
		return fmt.Errorf("%w: leaf_node_source is %v, want %v", ErrInvalidLeafNode, ln.Source, source)
	}
	return ln.validateTBS(cs, func() ([]byte, error) { return ln.tbs(groupID, leafIndex) })
}

// validateEnc is Validate for a LeafNode whose encoding enc is known (nil:
// unknown): the signed content is then taken from enc instead of being
// encoded again (enc is LeafNodeTBS's content followed by the signature).
func (ln *LeafNode) validateEnc(cs CipherSuite, source LeafNodeSource, groupID []byte, leafIndex uint32, enc []byte) error {
	sigField := varintSize(len(ln.Signature)) + len(ln.Signature)
	if enc == nil || len(enc) < sigField || ln.Source != source || !cs.Supported() {
		return ln.Validate(cs, source, groupID, leafIndex)
	}
	return ln.validateTBS(cs, func() ([]byte, error) {
		content := enc[:len(enc)-sigField]
		if ln.Source != LeafNodeSourceUpdate && ln.Source != LeafNodeSourceCommit {
			return content, nil
		}
		if len(groupID) > maxVarint {
			return ln.tbs(groupID, leafIndex) // reports the error
		}
		tbs := make([]byte, 0, len(content)+4+len(groupID)+4)
		tbs = append(tbs, content...)
		tbs = appendVarintPrefix(tbs, len(groupID))
		tbs = append(tbs, groupID...)
		return binary.BigEndian.AppendUint32(tbs, leafIndex), nil
	})
}

// validateTBS runs the checks of Validate after the source check, with
// tbs producing the signed content LeafNodeTBS.
func (ln *LeafNode) validateTBS(cs CipherSuite, tbs func() ([]byte, error)) error {
	if err := cs.ValidateHPKEPublicKey(ln.EncryptionKey); err != nil {
		return fmt.Errorf("%w: encryption_key: %w", ErrInvalidLeafNode, err)
	}
	if err := cs.validateSignatureKeyToVerify(ln.SignatureKey); err != nil {
		return fmt.Errorf("%w: signature_key: %w", ErrInvalidLeafNode, err)
	}
	if !ln.Capabilities.SupportsCredential(ln.Credential.Type) {
		return fmt.Errorf("%w: credential type %v not listed in capabilities", ErrInvalidLeafNode, ln.Credential.Type)
	}
	if err := checkUniqueExtensionTypes(ln.Extensions); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidLeafNode, err)
	}
	for _, e := range ln.Extensions {
		if !ln.Capabilities.SupportsExtension(e.Type) {
			return fmt.Errorf("%w: extension 0x%04x not listed in capabilities", ErrInvalidLeafNode, uint16(e.Type))
		}
	}
	content, err := tbs()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidLeafNode, err)
	}
	if err := cs.VerifyWithLabel(ln.SignatureKey, "LeafNodeTBS", content, ln.Signature); err != nil {
		if kerr := cs.ValidateSignaturePublicKey(ln.SignatureKey); kerr != nil {
			return fmt.Errorf("%w: signature_key: %w", ErrInvalidLeafNode, kerr)
		}
		return fmt.Errorf("%w: %w", ErrInvalidLeafNode, fmt.Errorf("mls: leaf node signature: %w", err))
	}
	return nil
}

// checkUniqueExtensionTypes enforces §13.4: "Any field containing a list of
// extensions MUST NOT have more than one extension of any given type."
// Lists are short, but a bitmap keeps it linear anyway.
func checkUniqueExtensionTypes(exts []Extension) error {
	if len(exts) < 2 {
		return nil
	}
	var seen [1 << 16 / 64]uint64
	for _, e := range exts {
		w, bit := e.Type/64, uint64(1)<<(e.Type%64)
		if seen[w]&bit != 0 {
			return fmt.Errorf("mls: duplicate extension 0x%04x", uint16(e.Type))
		}
		seen[w] |= bit
	}
	return nil
}

// Equal reports whether ln and o have identical encodings.
func (ln *LeafNode) Equal(o *LeafNode) bool {
	a, err1 := ln.Marshal()
	b, err2 := o.Marshal()
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// RequiredCapabilities is the required_capabilities GroupContext extension
// (§11.1):
//
//	struct {
//	    ExtensionType extension_types<V>;
//	    ProposalType proposal_types<V>;
//	    CredentialType credential_types<V>;
//	} RequiredCapabilities;
type RequiredCapabilities struct {
	ExtensionTypes  []ExtensionType
	ProposalTypes   []ProposalType
	CredentialTypes []CredentialType
}

func (r *RequiredCapabilities) marshal(b *cryptobyte.Builder) {
	addUint16List(b, r.ExtensionTypes)
	addUint16List(b, r.ProposalTypes)
	addUint16List(b, r.CredentialTypes)
}

func (r *RequiredCapabilities) unmarshal(s *cryptobyte.String) bool {
	return readUint16List(s, &r.ExtensionTypes) &&
		readUint16List(s, &r.ProposalTypes) &&
		readUint16List(s, &r.CredentialTypes)
}

// Marshal returns the extension_data of a required_capabilities extension.
func (r *RequiredCapabilities) Marshal() ([]byte, error) { return marshalStruct(r) }

// Unmarshal decodes the extension_data of a required_capabilities extension.
func (r *RequiredCapabilities) Unmarshal(data []byte) error {
	return unmarshalStruct(data, r, "RequiredCapabilities")
}

// ApplicationID is the application_id LeafNode extension (§5.3.3):
//
//	opaque application_id<V>;
//
// The extension_data is the encoded vector (length prefix included). Its
// content is application-defined and not authenticated by the AS.
type ApplicationID []byte

func (a *ApplicationID) marshal(b *cryptobyte.Builder) { addOpaque(b, *a) }

func (a *ApplicationID) unmarshal(s *cryptobyte.String) bool {
	return readOpaque(s, (*[]byte)(a))
}

// Marshal returns the extension_data of an application_id extension.
func (a *ApplicationID) Marshal() ([]byte, error) { return marshalStruct(a) }

// Unmarshal decodes the extension_data of an application_id extension.
func (a *ApplicationID) Unmarshal(data []byte) error {
	return unmarshalStruct(data, a, "ApplicationID")
}
