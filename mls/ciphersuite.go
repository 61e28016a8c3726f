package mls

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	"github.com/cloudflare/circl/hpke"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/cryptobyte"
)

// CipherSuite is an MLS cipher suite identifier (RFC 9420 §5.1, §17.1).
// canopy implements all seven suites registered by the RFC.
type CipherSuite uint16

// The cipher suites of RFC 9420 §17.1.
const (
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519        CipherSuite = 0x0001
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256             CipherSuite = 0x0002
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 CipherSuite = 0x0003
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448            CipherSuite = 0x0004
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521             CipherSuite = 0x0005
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448     CipherSuite = 0x0006
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384             CipherSuite = 0x0007
)

// CipherSuites lists every supported suite in registry order.
var CipherSuites = []CipherSuite{1, 2, 3, 4, 5, 6, 7}

type aeadAlg uint8

const (
	aeadAES128GCM aeadAlg = iota + 1
	aeadAES256GCM
	aeadChaCha20Poly1305
)

// SignatureScheme is a TLS SignatureScheme value as used by MLS (§5.1.2).
type SignatureScheme uint16

const (
	sigEd25519         SignatureScheme = 0x0807
	sigEd448           SignatureScheme = 0x0808
	sigECDSAP256SHA256 SignatureScheme = 0x0403
	sigECDSAP384SHA384 SignatureScheme = 0x0503
	sigECDSAP521SHA512 SignatureScheme = 0x0603
)

type suiteParams struct {
	name    string
	hash    crypto.Hash
	newHash func() hash.Hash
	aead    aeadAlg
	nk, nn  int
	kem     hpke.KEM
	kdf     hpke.KDF
	hpkeAE  hpke.AEAD
	sig     SignatureScheme
}

var suiteTable = map[CipherSuite]*suiteParams{
	0x0001: {"MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", crypto.SHA256, sha256.New, aeadAES128GCM, 16, 12,
		hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_AES128GCM, sigEd25519},
	0x0002: {"MLS_128_DHKEMP256_AES128GCM_SHA256_P256", crypto.SHA256, sha256.New, aeadAES128GCM, 16, 12,
		hpke.KEM_P256_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_AES128GCM, sigECDSAP256SHA256},
	0x0003: {"MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519", crypto.SHA256, sha256.New, aeadChaCha20Poly1305, 32, 12,
		hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_ChaCha20Poly1305, sigEd25519},
	0x0004: {"MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448", crypto.SHA512, sha512.New, aeadAES256GCM, 32, 12,
		hpke.KEM_X448_HKDF_SHA512, hpke.KDF_HKDF_SHA512, hpke.AEAD_AES256GCM, sigEd448},
	0x0005: {"MLS_256_DHKEMP521_AES256GCM_SHA512_P521", crypto.SHA512, sha512.New, aeadAES256GCM, 32, 12,
		hpke.KEM_P521_HKDF_SHA512, hpke.KDF_HKDF_SHA512, hpke.AEAD_AES256GCM, sigECDSAP521SHA512},
	0x0006: {"MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448", crypto.SHA512, sha512.New, aeadChaCha20Poly1305, 32, 12,
		hpke.KEM_X448_HKDF_SHA512, hpke.KDF_HKDF_SHA512, hpke.AEAD_ChaCha20Poly1305, sigEd448},
	0x0007: {"MLS_256_DHKEMP384_AES256GCM_SHA384_P384", crypto.SHA384, sha512.New384, aeadAES256GCM, 32, 12,
		hpke.KEM_P384_HKDF_SHA384, hpke.KDF_HKDF_SHA384, hpke.AEAD_AES256GCM, sigECDSAP384SHA384},
}

// UnsupportedCipherSuiteError reports a cipher suite canopy does not know.
type UnsupportedCipherSuiteError struct{ Suite CipherSuite }

func (e *UnsupportedCipherSuiteError) Error() string {
	return fmt.Sprintf("mls: unsupported cipher suite 0x%04x", uint16(e.Suite))
}

func (cs CipherSuite) params() (*suiteParams, error) {
	p, ok := suiteTable[cs]
	if !ok {
		return nil, &UnsupportedCipherSuiteError{cs}
	}
	return p, nil
}

// mustParams is for internal callers that have already validated cs (every
// group, key package and message is checked at its entry point).
func (cs CipherSuite) mustParams() *suiteParams {
	p, ok := suiteTable[cs]
	if !ok {
		panic("mls: internal error: unvalidated cipher suite " + cs.String())
	}
	return p
}

// Supported reports whether cs is one of the seven suites canopy implements.
func (cs CipherSuite) Supported() bool { _, ok := suiteTable[cs]; return ok }

func (cs CipherSuite) String() string {
	if p, ok := suiteTable[cs]; ok {
		return p.name
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(cs))
}

// Nh is the output size of the suite's hash and KDF.
func (cs CipherSuite) Nh() int { return cs.mustParams().hash.Size() }

// Nk is the AEAD key size.
func (cs CipherSuite) Nk() int { return cs.mustParams().nk }

// Nn is the AEAD nonce size.
func (cs CipherSuite) Nn() int { return cs.mustParams().nn }

// SignatureScheme is the suite's signature algorithm.
func (cs CipherSuite) SignatureScheme() SignatureScheme { return cs.mustParams().sig }

// Hash returns H(data).
func (cs CipherSuite) Hash(data []byte) []byte {
	h := cs.mustParams().newHash()
	h.Write(data)
	return h.Sum(nil)
}

// MAC returns HMAC(key, data) with the suite's hash (§5.1 "MAC").
func (cs CipherSuite) MAC(key, data []byte) []byte {
	m := hmac.New(cs.mustParams().newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// VerifyMAC checks a MAC in constant time.
func (cs CipherSuite) VerifyMAC(key, data, tag []byte) bool {
	return hmac.Equal(cs.MAC(key, data), tag)
}

// Extract is KDF.Extract(salt, ikm).
func (cs CipherSuite) Extract(salt, ikm []byte) []byte {
	p := cs.mustParams()
	if salt == nil {
		salt = []byte{}
	}
	out, err := hkdf.Extract(p.newHash, ikm, salt)
	if err != nil {
		panic("mls: internal error: HKDF-Extract: " + err.Error())
	}
	return out
}

// Expand is KDF.Expand(prk, info, length).
func (cs CipherSuite) Expand(prk, info []byte, length int) ([]byte, error) {
	out, err := hkdf.Expand(cs.mustParams().newHash, prk, string(info), length)
	if err != nil {
		return nil, fmt.Errorf("mls: HKDF-Expand: %w", err)
	}
	return out, nil
}

// mlsLabel is the prefix of every label in the protocol (§5.1.3, §5.2, §8).
const mlsLabel = "MLS 1.0 "

// ExpandWithLabel implements §8:
//
//	struct {
//	    uint16 length;
//	    opaque label<V>;
//	    opaque context<V>;
//	} KDFLabel;
func (cs CipherSuite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xffff {
		return nil, fmt.Errorf("mls: ExpandWithLabel length %d out of range", length)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 2+1+len(mlsLabel)+len(label)+2+len(context)))
	b.AddUint16(uint16(length))
	addOpaque(b, []byte(mlsLabel+label))
	addOpaque(b, context)
	info, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return cs.Expand(secret, info, length)
}

// DeriveSecret is ExpandWithLabel(secret, label, "", Nh) (§8).
func (cs CipherSuite) DeriveSecret(secret []byte, label string) ([]byte, error) {
	return cs.ExpandWithLabel(secret, label, nil, cs.Nh())
}

// DeriveTreeSecret is ExpandWithLabel(secret, label, uint32 generation, length) (§9).
func (cs CipherSuite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	ctx := []byte{byte(generation >> 24), byte(generation >> 16), byte(generation >> 8), byte(generation)}
	return cs.ExpandWithLabel(secret, label, ctx, length)
}

// RefHash implements §5.2:
//
//	struct {
//	    opaque label<V>;
//	    opaque value<V>;
//	} RefHashInput;
//
// Unlike the other labelled functions the label is passed in full (for
// example "MLS 1.0 KeyPackage Reference").
func (cs CipherSuite) RefHash(label string, value []byte) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(label)+len(value)+8))
	addOpaque(b, []byte(label))
	addOpaque(b, value)
	return cs.Hash(b.BytesOrPanic())
}

// AEAD returns the suite's AEAD keyed with key.
func (cs CipherSuite) AEAD(key []byte) (cipher.AEAD, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	if len(key) != p.nk {
		return nil, fmt.Errorf("mls: AEAD key is %d bytes, suite needs %d", len(key), p.nk)
	}
	switch p.aead {
	case aeadChaCha20Poly1305:
		return chacha20poly1305.New(key)
	default:
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	}
}
