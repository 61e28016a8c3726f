package mls

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"

	"github.com/cloudflare/circl/ecc/goldilocks"
	"github.com/cloudflare/circl/math/fp25519"
	"github.com/cloudflare/circl/sign/ed448"
)

// Signatures (§5.1.2): SignWithLabel / VerifyWithLabel over
//
//	struct {
//	    opaque label<V>;   // "MLS 1.0 " + Label
//	    opaque content<V>;
//	} SignContent;
//
// Private keys are in the test-vector encoding of FORMAT.md: EdDSA seeds
// (32 bytes Ed25519, 57 bytes Ed448), ECDSA fixed-length big-endian scalars
// (32/48/66 bytes). Public keys: raw RFC 8032 Ed25519/Ed448 keys, uncompressed
// SEC1 points (UncompressedPointRepresentation) for ECDSA. Signatures are
// as TLS 1.3 encodes them: R||S for EdDSA, DER ECDSA-Sig-Value for ECDSA.
//
// Signing is deterministic for every scheme: EdDSA by construction and ECDSA
// with RFC 6979 nonces. The rand argument of SignWithLabel is therefore not
// read. (Since Go 1.26 crypto/ecdsa ignores a caller's reader for randomized
// signatures anyway and reads the system CSPRNG, which this pure package must
// not depend on; RFC 6979 keeps signatures reproducible in tests.)
//
// Hot path: verifying LeafNode signatures dominates joining a large group.
// VerifyWithLabel builds SignContent in one exact-size allocation and calls
// straight into crypto/ed25519; the public key is decoded inside
// ed25519.Verify (no API exists to keep a decoded key), which is a small
// fraction of the verification cost.

// cryptoError is the error type of this file family: it wraps one or more of
// the sentinel errors (ErrInvalidKey, ErrInvalidSignature, ErrDecryption)
// plus the underlying library error, if any.
type cryptoError struct {
	kinds  []error
	cause  error
	detail string
}

var (
	kindKey    = []error{ErrInvalidKey}
	kindSig    = []error{ErrInvalidSignature}
	kindSigKey = []error{ErrInvalidSignature, ErrInvalidKey}
	kindDec    = []error{ErrDecryption}
	kindDecKey = []error{ErrDecryption, ErrInvalidKey}
)

func cryptoErr(kinds []error, cause error, format string, args ...any) error {
	return &cryptoError{kinds: kinds, cause: cause, detail: fmt.Sprintf(format, args...)}
}

func (e *cryptoError) Error() string {
	var b strings.Builder
	for i, k := range e.kinds {
		if i > 0 {
			b.WriteString(" (")
			b.WriteString(strings.TrimPrefix(k.Error(), "mls: "))
			b.WriteString(")")
			continue
		}
		b.WriteString(k.Error())
	}
	b.WriteString(": ")
	b.WriteString(e.detail)
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	return b.String()
}

func (e *cryptoError) Unwrap() []error {
	if e.cause == nil {
		return e.kinds
	}
	return append(append([]error(nil), e.kinds...), e.cause)
}

// mlsLabeledPair encodes the two-vector struct shared by SignContent
// (§5.1.2) and EncryptContext (§5.1.3):
//
//	struct {
//	    opaque label<V>;   // "MLS 1.0 " + label
//	    opaque value<V>;
//	}
func mlsLabeledPair(label string, value []byte) ([]byte, error) {
	n := len(mlsLabel) + len(label)
	if n > maxVarint || len(value) > maxVarint {
		return nil, fmt.Errorf("%w: label or content exceeds the 2^30-1 byte vector limit", ErrMalformed)
	}
	out := make([]byte, 0, varintSize(n)+n+varintSize(len(value))+len(value))
	out = appendVarintPrefix(out, n)
	out = append(out, mlsLabel...)
	out = append(out, label...)
	out = appendVarintPrefix(out, len(value))
	return append(out, value...), nil
}

// GenerateSignatureKeyPair returns a fresh signature key pair. All key
// material is derived from bytes read from rand (an EdDSA seed, or an ECDSA
// scalar by rejection sampling), so a deterministic reader gives a
// deterministic key pair.
func (cs CipherSuite) GenerateSignatureKeyPair(rand io.Reader) (priv, pub []byte, err error) {
	p, err := cs.params()
	if err != nil {
		return nil, nil, err
	}
	s := &p.sigInfo
	switch p.sig {
	case sigEd25519, sigEd448:
		priv = make([]byte, s.privSize)
		if err := readRandom(rand, priv); err != nil {
			return nil, nil, err
		}
	default:
		priv = make([]byte, s.scalarSize)
		for tries := 0; ; tries++ {
			if tries == 256 {
				return nil, nil, fmt.Errorf("mls: ECDSA key generation: no valid scalar in 256 tries (broken random source?)")
			}
			if err := readRandom(rand, priv); err != nil {
				return nil, nil, err
			}
			if p.sig == sigECDSAP521SHA512 {
				priv[0] &= 0x01 // 521 bits
			}
			if _, err := ecdsa.ParseRawPrivateKey(s.curve, priv); err == nil {
				break // 0 < d < n
			}
		}
	}
	pub, err = p.signaturePublicKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return priv, pub, nil
}

// SignaturePublicKey derives the public key of priv.
func (cs CipherSuite) SignaturePublicKey(priv []byte) ([]byte, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	return p.signaturePublicKey(priv)
}

func (p *suiteParams) signaturePublicKey(priv []byte) ([]byte, error) {
	k, err := p.newSigningKey(priv)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	switch {
	case k.ed != nil:
		return slices.Clone(k.ed[ed25519.SeedSize:]), nil
	case k.ed448 != nil:
		return slices.Clone(k.ed448[ed448.SeedSize:]), nil
	default:
		pub, err := k.ecdsa.PublicKey.Bytes()
		if err != nil {
			return nil, cryptoErr(kindKey, err, "ECDSA public key does not encode")
		}
		return pub, nil
	}
}

// SignWithLabel signs SignContent{"MLS 1.0 "+label, content}. Signing is
// deterministic (see the file comment); rand is accepted for API stability
// and is not read. A malformed priv gives an error wrapping ErrInvalidKey.
// Callers that sign repeatedly with one key keep a signingKey instead.
func (cs CipherSuite) SignWithLabel(priv []byte, label string, content []byte, rand io.Reader) ([]byte, error) {
	k, err := cs.newSigningKey(priv)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	return k.signWithLabel(label, content)
}

// signingKey is a signature private key parsed once. Parsing is not free:
// expanding an Ed25519 or Ed448 seed computes the public key, a base-point
// multiplication that costs half a signature, and crypto/ed25519 caches
// its precomputed form per expanded key. The signatures are the same as
// SignWithLabel's (all schemes here are deterministic).
type signingKey struct {
	p     *suiteParams
	seed  []byte // the private key as given (padded), to recognise it
	ed    ed25519.PrivateKey
	ed448 ed448.PrivateKey
	ecdsa *ecdsa.PrivateKey
}

func (cs CipherSuite) newSigningKey(priv []byte) (*signingKey, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	return p.newSigningKey(priv)
}

func (p *suiteParams) newSigningKey(priv []byte) (*signingKey, error) {
	s := &p.sigInfo
	priv = padScalar(priv, s.scalarSize)
	if len(priv) != s.privSize {
		return nil, cryptoErr(kindKey, nil, "signature private key is %d bytes, suite needs %d", len(priv), s.privSize)
	}
	k := &signingKey{p: p, seed: slices.Clone(priv)}
	switch p.sig {
	case sigEd25519:
		k.ed = ed25519.NewKeyFromSeed(priv)
	case sigEd448:
		k.ed448 = ed448.NewKeyFromSeed(priv)
	default:
		key, err := ecdsa.ParseRawPrivateKey(s.curve, priv)
		if err != nil {
			return nil, cryptoErr(kindKey, err, "ECDSA private key is not a scalar in [1, n-1]")
		}
		k.ecdsa = key
	}
	return k, nil
}

// is reports whether k was parsed from priv (in constant time).
func (k *signingKey) is(cs CipherSuite, priv []byte) bool {
	if k == nil {
		return false
	}
	if p, err := cs.params(); err != nil || p != k.p {
		return false
	}
	return subtle.ConstantTimeCompare(k.seed, padScalar(priv, k.p.sigInfo.scalarSize)) == 1
}

// wipe clears the key bytes k holds (an *ecdsa.PrivateKey cannot be
// cleared from outside; it is dropped).
func (k *signingKey) wipe() {
	if k == nil {
		return
	}
	clear(k.seed)
	clear(k.ed)
	clear(k.ed448)
	k.ecdsa = nil
}

func (k *signingKey) signWithLabel(label string, content []byte) ([]byte, error) {
	msg, err := mlsLabeledPair(label, content)
	if err != nil {
		return nil, err
	}
	switch {
	case k.ed != nil:
		return ed25519.Sign(k.ed, msg), nil
	case k.ed448 != nil:
		return ed448.Sign(k.ed448, msg, ""), nil
	default:
		s := &k.p.sigInfo
		h := s.hash.New()
		h.Write(msg)
		// A nil reader selects RFC 6979 deterministic nonces; the output is
		// a DER ECDSA-Sig-Value.
		sig, err := k.ecdsa.Sign(nil, h.Sum(nil), s.hash)
		if err != nil {
			return nil, fmt.Errorf("mls: ECDSA signing: %w", err)
		}
		return sig, nil
	}
}

// VerifyWithLabel verifies a SignWithLabel signature; it returns an error
// wrapping ErrInvalidSignature when the signature does not verify, and
// additionally ErrInvalidKey when pub has the wrong length or (ECDSA) is not
// a point on the curve. An EdDSA key of the right length that does not
// decode simply fails verification; VerifyWithLabel does not repeat the
// checks of ValidateSignaturePublicKey (small-order keys in particular),
// which belong to leaf and credential validation.
//
// Verification is RFC 8032 (cofactorless, S < L, as crypto/ed25519 and
// circl's ed448 implement it) for EdDSA and X9.62 with strict DER for ECDSA.
// ECDSA signatures are malleable: (r, s) and (r, n-s) both verify. Code
// that identifies a message by the hash of its signed bytes must keep that
// in mind.
func (cs CipherSuite) VerifyWithLabel(pub []byte, label string, content, sig []byte) error {
	p, err := cs.params()
	if err != nil {
		return err
	}
	s := &p.sigInfo
	if len(pub) != s.pubSize {
		return cryptoErr(kindSigKey, nil, "signature public key is %d bytes, suite needs %d", len(pub), s.pubSize)
	}
	msg, err := mlsLabeledPair(label, content)
	if err != nil {
		return err
	}
	switch p.sig {
	case sigEd25519:
		if !ed25519.Verify(pub, msg, sig) {
			return cryptoErr(kindSig, nil, "Ed25519 signature does not verify")
		}
	case sigEd448:
		if !ed448.Verify(pub, msg, sig, "") {
			return cryptoErr(kindSig, nil, "Ed448 signature does not verify")
		}
	default:
		key, err := ecdsa.ParseUncompressedPublicKey(s.curve, pub)
		if err != nil {
			return cryptoErr(kindSigKey, err, "ECDSA public key is not an uncompressed point on the curve")
		}
		h := s.hash.New()
		h.Write(msg)
		if !ecdsa.VerifyASN1(key, h.Sum(nil), sig) {
			return cryptoErr(kindSig, nil, "ECDSA signature does not verify")
		}
	}
	return nil
}

// ValidateSignaturePublicKey checks that pub is a well-formed signature
// public key for the suite (leaf signature_key, external sender keys):
//
//   - Ed25519 / Ed448: the RFC 8032 §5.1.3 / §5.2.3 decoding succeeds
//     (canonical y < p, x recoverable, no "negative zero" x), and the point
//     is not of small order. A small-order key (the identity, say) "verifies"
//     signatures nobody made, such as R = identity, S = 0 on any message.
//   - ECDSA: an uncompressed point on the curve other than the identity.
//
// Errors wrap ErrInvalidKey. It does no scalar multiplication.
func (cs CipherSuite) ValidateSignaturePublicKey(pub []byte) error {
	p, err := cs.params()
	if err != nil {
		return err
	}
	s := &p.sigInfo
	if len(pub) != s.pubSize {
		return cryptoErr(kindKey, nil, "signature public key is %d bytes, suite needs %d", len(pub), s.pubSize)
	}
	switch p.sig {
	case sigEd25519:
		return validateEd25519PublicKey(pub)
	case sigEd448:
		return validateEd448PublicKey(pub)
	default:
		if _, err := ecdsa.ParseUncompressedPublicKey(s.curve, pub); err != nil {
			return cryptoErr(kindKey, err, "ECDSA public key is not an uncompressed point on the curve")
		}
		return nil
	}
}

// Edwards25519 constants: p = 2^255 - 19, d = -121665/121666 mod p, and the
// y-coordinates of the small-order points. With x^2 = (y^2 - 1)/(d y^2 + 1):
// y = 1 is the identity, y = -1 the point of order 2, y = 0 the two points
// of order 4, and y = ±y8 the four points of order 8, where y8 solves
// d y^4 + 2 y^2 - 1 = 0 (doubling lands on y = 0). The tests re-derive y8.
var (
	ed25519P = x25519P
	ed25519D = func() *big.Int {
		d := new(big.Int).ModInverse(big.NewInt(121666), x25519P)
		d.Mul(d, big.NewInt(-121665))
		return d.Mod(d, x25519P)
	}()
	ed25519Y8 = littleEndianInt(cryptoConstHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))

	ed25519SmallOrderY = []*big.Int{
		big.NewInt(0),
		big.NewInt(1),
		new(big.Int).Sub(x25519P, big.NewInt(1)),
		ed25519Y8,
		new(big.Int).Sub(x25519P, ed25519Y8),
	}

	// Edwards448 shares its field with Curve448; its small-order points
	// have y in {0, 1, p-1}.
	ed448SmallOrderY = x448LowOrder
)

// The same constants as field elements (little-endian, circl fp25519).
var (
	ed25519DElt        = ed25519Elt(ed25519D)
	ed25519PElt        = fp25519.P()
	ed25519SmallOrderE = func() (out [][32]byte) {
		for _, y := range ed25519SmallOrderY {
			out = append(out, ed25519Elt(y))
		}
		return out
	}()
)

func ed25519Elt(x *big.Int) fp25519.Elt {
	var e fp25519.Elt
	be := x.FillBytes(make([]byte, 32))
	for i := range be {
		e[31-i] = be[i]
	}
	return e
}

// validateSignatureKeyToVerify is ValidateSignaturePublicKey for a key that
// is about to verify a signature: for Ed25519 it leaves out the on-curve
// test (a square root, about 6% of joining a large group), because the
// standard library's Verify decodes the point and fails for an off-curve
// key. The caller must then call ValidateSignaturePublicKey when Verify
// fails, so the error still names the key (see LeafNode.validateTBS).
func (cs CipherSuite) validateSignatureKeyToVerify(pub []byte) error {
	p, err := cs.params()
	if err != nil || p.sig != sigEd25519 || len(pub) != p.sigInfo.pubSize {
		return cs.ValidateSignaturePublicKey(pub)
	}
	_, err = ed25519CheapChecks(pub)
	return err
}

// validateEd25519PublicKey performs RFC 8032 §5.1.3 point decoding (only
// deciding whether x exists, in constant time with circl's fp25519) and
// rejects small-order points.
func validateEd25519PublicKey(pub []byte) error {
	y, err := ed25519CheapChecks(pub)
	if err != nil {
		return err
	}
	if !ed25519YOnCurve(&y) {
		return cryptoErr(kindKey, nil, "Ed25519 public key is not a point on the curve")
	}
	return nil
}

// ed25519CheapChecks runs the byte comparisons of validateEd25519PublicKey
// (canonical y, not small order) and returns y without its sign bit.
func ed25519CheapChecks(pub []byte) (fp25519.Elt, error) {
	var y fp25519.Elt
	copy(y[:], pub)
	y[31] &= 0x7f // the sign of x
	// Canonical: y < p (compare little-endian, most significant byte first).
	canonical := false
	for i := 31; i >= 0; i-- {
		if y[i] != ed25519PElt[i] {
			canonical = y[i] < ed25519PElt[i]
			break
		}
	}
	if !canonical {
		return y, cryptoErr(kindKey, nil, "Ed25519 public key has a non-canonical y-coordinate")
	}
	for _, lo := range ed25519SmallOrderE {
		if y == lo {
			return y, cryptoErr(kindKey, nil, "Ed25519 public key is a small-order point")
		}
	}
	return y, nil
}

// ed25519YOnCurve reports whether some x completes y to a curve point.
func ed25519YOnCurve(y *fp25519.Elt) bool {
	// x^2 = u/v with u = y^2 - 1, v = d y^2 + 1 (v is never 0: -1/d is not
	// a square). u = 0 (y = ±1) was rejected above as small order, so x != 0
	// and either sign bit is fine; x exists iff u/v is a square mod p.
	var one, y2, u, v, x fp25519.Elt
	fp25519.SetOne(&one)
	fp25519.Sqr(&y2, y)
	fp25519.Sub(&u, &y2, &one)
	fp25519.Mul(&v, &ed25519DElt, &y2)
	fp25519.Add(&v, &v, &one)
	return fp25519.InvSqrt(&x, &u, &v)
}

// validateEd448PublicKey performs RFC 8032 §5.2.3 point decoding with
// circl's goldilocks package and rejects the four small-order points
// (cofactor 4): (0, 1), (0, -1), (±1, 0), i.e. y in {0, 1, p-1}.
func validateEd448PublicKey(pub []byte) error {
	if _, err := goldilocks.FromBytes(pub); err != nil {
		return cryptoErr(kindKey, err, "Ed448 public key does not decode")
	}
	y := littleEndianInt(pub[:56]) // canonical: FromBytes checked y < p
	for _, lo := range ed448SmallOrderY {
		if y.Cmp(lo) == 0 {
			return cryptoErr(kindKey, nil, "Ed448 public key is a small-order point")
		}
	}
	return nil
}

// mustHex decodes a hex constant of this package; it is only called on
// literals during package initialization.
func cryptoConstHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic("mls: internal error: bad hex constant " + s)
	}
	return b
}

// padScalar left-pads a big-endian private scalar that another stack
// serialized without its leading zero bytes (P-521 keys of 65 bytes occur in
// the official vectors and in the wild). size is 0 for keys that are not
// scalars (EdDSA seeds, X25519/X448 keys), which are returned unchanged.
func padScalar(priv []byte, size int) []byte {
	if size == 0 || len(priv) == 0 || len(priv) >= size {
		return priv
	}
	out := make([]byte, size)
	copy(out[size-len(priv):], priv)
	return out
}
