package mls

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// HashReference, KeyPackageRef and ProposalRef are the §5.2 hash-based
// identifiers:
//
//	opaque HashReference<V>;
//	HashReference KeyPackageRef;
//	HashReference ProposalRef;
type (
	KeyPackageRef []byte
	ProposalRef   []byte
)

// Labels of §5.2 (RefHash takes the full label).
const (
	keyPackageRefLabel = "MLS 1.0 KeyPackage Reference"
	proposalRefLabel   = "MLS 1.0 Proposal Reference"
)

// KeyPackage is a client's pre-published joining material (§10):
//
//	struct {
//	    ProtocolVersion version;
//	    CipherSuite cipher_suite;
//	    HPKEPublicKey init_key;
//	    LeafNode leaf_node;
//	    Extension extensions<V>;
//	    /* SignWithLabel(., "KeyPackageTBS", KeyPackageTBS) */
//	    opaque signature<V>;
//	} KeyPackage;
//
// Version and cipher suite are decoded as-is (they are open registries);
// Validate rejects the ones canopy cannot use.
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	InitKey     []byte
	LeafNode    LeafNode
	Extensions  []Extension
	Signature   []byte
}

// marshalTBS writes KeyPackageTBS (§10):
//
//	struct {
//	    ProtocolVersion version;
//	    CipherSuite cipher_suite;
//	    HPKEPublicKey init_key;
//	    LeafNode leaf_node;
//	    Extension extensions<V>;
//	} KeyPackageTBS;
func (kp *KeyPackage) marshalTBS(b *cryptobyte.Builder) {
	b.AddUint16(uint16(kp.Version))
	b.AddUint16(uint16(kp.CipherSuite))
	addOpaque(b, kp.InitKey)
	kp.LeafNode.marshal(b)
	marshalExtensions(b, kp.Extensions)
}

func (kp *KeyPackage) marshal(b *cryptobyte.Builder) {
	kp.marshalTBS(b)
	addOpaque(b, kp.Signature)
}

func (kp *KeyPackage) unmarshal(s *cryptobyte.String) bool {
	*kp = KeyPackage{}
	return s.ReadUint16((*uint16)(&kp.Version)) &&
		s.ReadUint16((*uint16)(&kp.CipherSuite)) &&
		readOpaque(s, &kp.InitKey) &&
		kp.LeafNode.unmarshal(s) &&
		unmarshalExtensions(s, &kp.Extensions) &&
		readOpaque(s, &kp.Signature)
}

// Marshal returns the encoding of kp.
func (kp *KeyPackage) Marshal() ([]byte, error) { return marshalStruct(kp) }

// Unmarshal decodes kp from data, rejecting trailing bytes.
func (kp *KeyPackage) Unmarshal(data []byte) error { return unmarshalStruct(data, kp, "KeyPackage") }

func (kp *KeyPackage) tbs() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	kp.marshalTBS(b)
	return b.Bytes()
}

// Ref returns MakeKeyPackageRef(kp) = RefHash("MLS 1.0 KeyPackage
// Reference", KeyPackage) using kp's own cipher suite (§5.2).
func (kp *KeyPackage) Ref() (KeyPackageRef, error) {
	if !kp.CipherSuite.Supported() {
		return nil, &UnsupportedCipherSuiteError{kp.CipherSuite}
	}
	enc, err := kp.Marshal()
	if err != nil {
		return nil, err
	}
	return kp.CipherSuite.RefHash(keyPackageRefLabel, enc), nil
}

// Sign sets kp.Signature to SignWithLabel(priv, "KeyPackageTBS",
// KeyPackageTBS). The leaf node must already be signed (LeafNode.Sign), since
// its signature is part of KeyPackageTBS.
func (kp *KeyPackage) Sign(priv []byte, rand io.Reader) error {
	if !kp.CipherSuite.Supported() {
		return &UnsupportedCipherSuiteError{kp.CipherSuite}
	}
	tbs, err := kp.tbs()
	if err != nil {
		return err
	}
	sig, err := kp.CipherSuite.SignWithLabel(priv, "KeyPackageTBS", tbs, rand)
	if err != nil {
		return err
	}
	kp.Signature = sig
	return nil
}

// VerifySignature checks the KeyPackage signature against
// leaf_node.signature_key (§10.1). It does not check the leaf node's own
// signature; Validate does both. Errors wrap ErrInvalidSignature when the
// signature is wrong.
func (kp *KeyPackage) VerifySignature() error {
	if !kp.CipherSuite.Supported() {
		return &UnsupportedCipherSuiteError{kp.CipherSuite}
	}
	tbs, err := kp.tbs()
	if err != nil {
		return err
	}
	if err := kp.CipherSuite.VerifyWithLabel(kp.LeafNode.SignatureKey, "KeyPackageTBS", tbs, kp.Signature); err != nil {
		return fmt.Errorf("mls: key package signature: %w", err)
	}
	return nil
}

// Validate performs the group-independent checks of §10.1 at time now:
//
//   - version is mls10 and the cipher suite is one canopy implements (the
//     caller compares them with the group's GroupContext);
//   - the leaf node is valid for a KeyPackage (LeafNode.Validate with source
//     key_package) and now lies within its lifetime;
//   - the KeyPackage signature verifies with leaf_node.signature_key;
//   - init_key is a valid HPKE public key for the suite and differs from
//     leaf_node.encryption_key;
//   - extensions holds no duplicate type (§13.4).
//
// Unknown extensions in extensions are ignored as §13.4 requires (GREASE
// values there need not be listed in the capabilities). Credential
// validation with the AS, the application's maximum-lifetime policy and the
// group's required_capabilities are the caller's. Errors wrap
// ErrInvalidKeyPackage (and ErrInvalidLeafNode / ErrInvalidSignature where
// they apply).
func (kp *KeyPackage) Validate(now time.Time) error {
	if kp.Version != ProtocolMLS10 {
		return fmt.Errorf("%w: unsupported protocol version %d", ErrInvalidKeyPackage, kp.Version)
	}
	if !kp.CipherSuite.Supported() {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, &UnsupportedCipherSuiteError{kp.CipherSuite})
	}
	if err := checkUniqueExtensionTypes(kp.Extensions); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	if err := kp.CipherSuite.ValidateHPKEPublicKey(kp.InitKey); err != nil {
		return fmt.Errorf("%w: init_key: %w", ErrInvalidKeyPackage, err)
	}
	if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
		return fmt.Errorf("%w: init_key equals leaf_node.encryption_key", ErrInvalidKeyPackage)
	}
	if err := kp.LeafNode.Validate(kp.CipherSuite, LeafNodeSourceKeyPackage, nil, 0); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	if !kp.LeafNode.Lifetime.Contains(now) {
		return fmt.Errorf("%w: %w: lifetime [%d, %d] does not contain %d", ErrInvalidKeyPackage, ErrInvalidLeafNode,
			kp.LeafNode.Lifetime.NotBefore, kp.LeafNode.Lifetime.NotAfter, now.Unix())
	}
	if err := kp.VerifySignature(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	return nil
}

// IsLastResort reports whether kp carries the last_resort extension and may
// therefore be used more than once (§16.8).
func (kp *KeyPackage) IsLastResort() bool {
	_, ok := findExtension(kp.Extensions, ExtensionLastResort)
	return ok
}
