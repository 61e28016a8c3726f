package mls

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem"
	"golang.org/x/crypto/chacha20poly1305"
)

// CipherSuite is an MLS cipher suite identifier (RFC 9420 §5.1, §17.1).
// canopy implements all seven suites registered by the RFC and the hybrid
// post-quantum suite MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519.
//
// All methods are safe for concurrent use: a CipherSuite is a number, and the
// per-suite parameters behind it are immutable after package initialization.
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

// MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519 is the hybrid post-quantum
// suite OpenMLS and ts-mls ship under code point 0x004D: HPKE with the X-Wing
// KEM (ML-KEM-768 + X25519, HPKE KEM id 0x647A), HKDF-SHA256,
// ChaCha20-Poly1305 and Ed25519 signatures, SHA-256 as the MLS hash.
//
// The code point comes from a draft (draft-mahy-mls-xwing and the
// implementations that followed it); IANA has not registered it. The KEM is
// the one of draft-connolly-cfrg-xwing-kem, including its HPKE DeriveKeyPair
// (the X-Wing seed is SHAKE256(ikm, 32)); see crypto_xwing.go.
const MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519 CipherSuite = 0x004D

// CipherSuites lists every supported suite: the seven of the RFC in registry
// order, then the draft X-Wing suite.
var CipherSuites = []CipherSuite{1, 2, 3, 4, 5, 6, 7, MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519}

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

// suiteParams holds everything the crypto code needs about a suite. The
// first block is spelled out in suiteTable; the second is filled in once by
// init from the first, so that no hot path looks anything up or parses
// anything suite-wide again.
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

	// Derived by init.
	hpkeSuite hpke.Suite
	kemScheme kem.Scheme
	kemInfo   *kemParams // RFC 9180 §7.1 parameters of the suite's DHKEM
	sigInfo   sigParams
}

// kemParams are the RFC 9180 DHKEM parameters DeriveKeyPair and key
// validation need (§7.1, §7.1.3, §7.1.4).
type kemParams struct {
	id      uint16           // kem_id
	newHash func() hash.Hash // the KEM's own KDF hash (not the suite's)
	nsk     int              // Nsk: private key length
	npk     int              // Npk: public key length
	curve   ecdh.Curve       // NIST curves; nil for X25519/X448
	bitmask byte             // DeriveKeyPair rejection-sampling mask (NIST curves)
	xwing   bool             // the X-Wing KEM: not a DHKEM (see crypto_xwing.go)
}

var (
	kemX25519 = &kemParams{id: 0x0020, newHash: sha256.New, nsk: 32, npk: 32}
	kemX448   = &kemParams{id: 0x0021, newHash: sha512.New, nsk: 56, npk: 56}
	kemP256   = &kemParams{id: 0x0010, newHash: sha256.New, nsk: 32, npk: 65, curve: ecdh.P256(), bitmask: 0xff}
	kemP384   = &kemParams{id: 0x0011, newHash: sha512.New384, nsk: 48, npk: 97, curve: ecdh.P384(), bitmask: 0xff}
	kemP521   = &kemParams{id: 0x0012, newHash: sha512.New, nsk: 66, npk: 133, curve: ecdh.P521(), bitmask: 0x01}
	// X-Wing: the private key is the 32-byte seed, the public key the
	// 1184-byte ML-KEM-768 encapsulation key followed by the X25519 key.
	kemXWing = &kemParams{id: 0x647a, nsk: xwingSeedSize, npk: xwingPublicKeySize, xwing: true}
)

// sigParams describe the suite's signature scheme.
type sigParams struct {
	curve      elliptic.Curve // ECDSA only
	hash       crypto.Hash    // ECDSA only: the scheme's digest
	scalarSize int            // ECDSA only: private key length
	pubSize    int            // public key length
	privSize   int            // private key (seed or scalar) length
}

var suiteTable = map[CipherSuite]*suiteParams{
	0x0001: {name: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", hash: crypto.SHA256, newHash: sha256.New,
		aead: aeadAES128GCM, nk: 16, nn: 12,
		kem: hpke.KEM_X25519_HKDF_SHA256, kdf: hpke.KDF_HKDF_SHA256, hpkeAE: hpke.AEAD_AES128GCM, sig: sigEd25519},
	0x0002: {name: "MLS_128_DHKEMP256_AES128GCM_SHA256_P256", hash: crypto.SHA256, newHash: sha256.New,
		aead: aeadAES128GCM, nk: 16, nn: 12,
		kem: hpke.KEM_P256_HKDF_SHA256, kdf: hpke.KDF_HKDF_SHA256, hpkeAE: hpke.AEAD_AES128GCM, sig: sigECDSAP256SHA256},
	0x0003: {name: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519", hash: crypto.SHA256, newHash: sha256.New,
		aead: aeadChaCha20Poly1305, nk: 32, nn: 12,
		kem: hpke.KEM_X25519_HKDF_SHA256, kdf: hpke.KDF_HKDF_SHA256, hpkeAE: hpke.AEAD_ChaCha20Poly1305, sig: sigEd25519},
	0x0004: {name: "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448", hash: crypto.SHA512, newHash: sha512.New,
		aead: aeadAES256GCM, nk: 32, nn: 12,
		kem: hpke.KEM_X448_HKDF_SHA512, kdf: hpke.KDF_HKDF_SHA512, hpkeAE: hpke.AEAD_AES256GCM, sig: sigEd448},
	0x0005: {name: "MLS_256_DHKEMP521_AES256GCM_SHA512_P521", hash: crypto.SHA512, newHash: sha512.New,
		aead: aeadAES256GCM, nk: 32, nn: 12,
		kem: hpke.KEM_P521_HKDF_SHA512, kdf: hpke.KDF_HKDF_SHA512, hpkeAE: hpke.AEAD_AES256GCM, sig: sigECDSAP521SHA512},
	0x0006: {name: "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448", hash: crypto.SHA512, newHash: sha512.New,
		aead: aeadChaCha20Poly1305, nk: 32, nn: 12,
		kem: hpke.KEM_X448_HKDF_SHA512, kdf: hpke.KDF_HKDF_SHA512, hpkeAE: hpke.AEAD_ChaCha20Poly1305, sig: sigEd448},
	0x0007: {name: "MLS_256_DHKEMP384_AES256GCM_SHA384_P384", hash: crypto.SHA384, newHash: sha512.New384,
		aead: aeadAES256GCM, nk: 32, nn: 12,
		kem: hpke.KEM_P384_HKDF_SHA384, kdf: hpke.KDF_HKDF_SHA384, hpkeAE: hpke.AEAD_AES256GCM, sig: sigECDSAP384SHA384},
	0x004D: {name: "MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519", hash: crypto.SHA256, newHash: sha256.New,
		aead: aeadChaCha20Poly1305, nk: 32, nn: 12,
		kem: hpke.KEM_XWING, kdf: hpke.KDF_HKDF_SHA256, hpkeAE: hpke.AEAD_ChaCha20Poly1305, sig: sigEd25519},
}

func init() {
	for cs, p := range suiteTable {
		p.hpkeSuite = hpke.NewSuite(p.kem, p.kdf, p.hpkeAE)
		p.kemScheme = p.kem.Scheme()
		switch p.kem {
		case hpke.KEM_X25519_HKDF_SHA256:
			p.kemInfo = kemX25519
		case hpke.KEM_X448_HKDF_SHA512:
			p.kemInfo = kemX448
		case hpke.KEM_P256_HKDF_SHA256:
			p.kemInfo = kemP256
		case hpke.KEM_P384_HKDF_SHA384:
			p.kemInfo = kemP384
		case hpke.KEM_P521_HKDF_SHA512:
			p.kemInfo = kemP521
		case hpke.KEM_XWING:
			p.kemInfo = kemXWing
		default:
			panic("mls: internal error: no KEM parameters for " + cs.String())
		}
		if p.kemScheme.PrivateKeySize() != p.kemInfo.nsk || p.kemScheme.PublicKeySize() != p.kemInfo.npk {
			panic("mls: internal error: KEM sizes disagree with circl for " + cs.String())
		}
		switch p.sig {
		case sigEd25519:
			p.sigInfo = sigParams{pubSize: 32, privSize: 32}
		case sigEd448:
			p.sigInfo = sigParams{pubSize: 57, privSize: 57}
		case sigECDSAP256SHA256:
			p.sigInfo = sigParams{curve: elliptic.P256(), hash: crypto.SHA256, scalarSize: 32, pubSize: 65, privSize: 32}
		case sigECDSAP384SHA384:
			p.sigInfo = sigParams{curve: elliptic.P384(), hash: crypto.SHA384, scalarSize: 48, pubSize: 97, privSize: 48}
		case sigECDSAP521SHA512:
			p.sigInfo = sigParams{curve: elliptic.P521(), hash: crypto.SHA512, scalarSize: 66, pubSize: 133, privSize: 66}
		default:
			panic("mls: internal error: no signature parameters for " + cs.String())
		}
	}
}

// UnsupportedCipherSuiteError reports a cipher suite canopy does not know.
type UnsupportedCipherSuiteError struct{ Suite CipherSuite }

func (e *UnsupportedCipherSuiteError) Error() string {
	return fmt.Sprintf("mls: unsupported cipher suite 0x%04x", uint16(e.Suite))
}

// MembersLackCipherSuiteError reports the members whose leaves do not list
// a cipher suite the operation needs (ProposeReInit to a suite some member
// cannot use).
type MembersLackCipherSuiteError struct {
	Suite  CipherSuite
	Leaves []LeafIndex
}

func (e *MembersLackCipherSuiteError) Error() string {
	return fmt.Sprintf("mls: members at leaves %v do not support %v", e.Leaves, e.Suite)
}

func (cs CipherSuite) params() (*suiteParams, error) {
	p, ok := suiteTable[cs]
	if !ok {
		return nil, &UnsupportedCipherSuiteError{cs}
	}
	return p, nil
}

// mustParams is for internal callers that have already validated cs (every
// group, key package and message is checked at its entry point). Only the
// methods that cannot return an error (Nh, Nk, Nn, Hash, MAC, Extract,
// RefHash, SignatureScheme) use it; every method that returns an error
// reports an unsupported suite as *UnsupportedCipherSuiteError instead.
func (cs CipherSuite) mustParams() *suiteParams {
	p, ok := suiteTable[cs]
	if !ok {
		panic("mls: internal error: unvalidated cipher suite " + cs.String())
	}
	return p
}

// Supported reports whether cs is one of the suites canopy implements (see
// CipherSuites).
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
	return hkdfExtract(cs.mustParams().newHash, salt, ikm)
}

// hkdfExtract is HKDF-Extract (RFC 5869 §2.2). An empty salt is the same as
// HashLen zero bytes (HMAC pads its key with zeros).
func hkdfExtract(h func() hash.Hash, salt, ikm []byte) []byte {
	// crypto/hkdf.Extract only fails in FIPS 140-only mode for short salts;
	// HMAC itself cannot fail, so compute it directly.
	m := hmac.New(h, salt)
	m.Write(ikm)
	return m.Sum(nil)
}

// Expand is KDF.Expand(prk, info, length).
func (cs CipherSuite) Expand(prk, info []byte, length int) ([]byte, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	out, err := hkdf.Expand(p.newHash, prk, string(info), length)
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
	fullLabel := len(mlsLabel) + len(label)
	if fullLabel > maxVarint || len(context) > maxVarint {
		return nil, fmt.Errorf("mls: ExpandWithLabel label or context exceeds 2^30-1 bytes")
	}
	info := make([]byte, 0, 2+varintSize(fullLabel)+fullLabel+varintSize(len(context))+len(context))
	info = append(info, byte(length>>8), byte(length))
	info = appendVarintPrefix(info, fullLabel)
	info = append(info, mlsLabel...)
	info = append(info, label...)
	info = appendVarintPrefix(info, len(context))
	info = append(info, context...)
	return cs.Expand(secret, info, length)
}

// DeriveSecret is ExpandWithLabel(secret, label, "", Nh) (§8).
func (cs CipherSuite) DeriveSecret(secret []byte, label string) ([]byte, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	return cs.ExpandWithLabel(secret, label, nil, p.hash.Size())
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
//
// The input is streamed into the hash, so value (a whole KeyPackage or
// AuthenticatedContent) is never copied. A label or value longer than the
// 2^30-1 bytes an MLS vector can hold has no RefHashInput encoding; RefHash
// returns nil for it (no encoded or decoded MLS object can be that long).
func (cs CipherSuite) RefHash(label string, value []byte) []byte {
	if len(label) > maxVarint || len(value) > maxVarint {
		return nil
	}
	h := cs.mustParams().newHash()
	var hdr [4]byte
	h.Write(appendVarintPrefix(hdr[:0], len(label)))
	h.Write([]byte(label))
	h.Write(appendVarintPrefix(hdr[:0], len(value)))
	h.Write(value)
	return h.Sum(nil)
}

// varintSize is the length of the §2.1.2 variable-length integer for n
// (n <= maxVarint).
func varintSize(n int) int {
	switch {
	case n < 1<<6:
		return 1
	case n < 1<<14:
		return 2
	default:
		return 4
	}
}

// appendVarintPrefix appends n (0 <= n <= maxVarint, checked by the caller)
// as the shortest §2.1.2 variable-length integer. It is the allocation-free
// twin of addVarint for the labelled constructions of this file family,
// which are built on hot paths (every signature check).
func appendVarintPrefix(dst []byte, n int) []byte {
	switch {
	case n < 1<<6:
		return append(dst, byte(n))
	case n < 1<<14:
		return append(dst, byte(n>>8)|0x40, byte(n))
	default:
		return append(dst, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
	}
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
