package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// HPKE (§5.1.3): EncryptWithLabel / DecryptWithLabel over
//
//	struct {
//	    opaque label<V>;   // "MLS 1.0 " + Label
//	    opaque context<V>;
//	} EncryptContext;
//
// used as the HPKE info with base mode and empty AAD. Keys are serialized
// with the suite KEM's SerializePublicKey / SerializePrivateKey (RFC 9180
// §7.1.1, §7.1.2): raw 32/56-byte X25519/X448 keys, uncompressed SEC1 points
// and fixed-length big-endian scalars for P-256/P-384/P-521, and for X-Wing
// the 1216-byte public key and the 32-byte seed (crypto_xwing.go).
//
// HPKE itself is circl's hpke package (RFC 9180 base mode, single-shot: MLS
// seals exactly one message per context). DeriveKeyPair and
// GenerateHPKEKeyPair are in crypto_derive.go.

// readRandom fills buf from rand. The package never falls back to a global
// source: a nil reader is an error.
func readRandom(rand io.Reader, buf []byte) error {
	if rand == nil {
		return errors.New("mls: no random source (nil io.Reader)")
	}
	if _, err := io.ReadFull(rand, buf); err != nil {
		return fmt.Errorf("mls: reading randomness: %w", err)
	}
	return nil
}

// EncryptWithLabel seals plaintext to pub.
//
// Exactly the KEM's EncapsulationSeedSize bytes are read from rand (Nsk for
// the DHKEMs, 64 for X-Wing), so the output is a deterministic function of
// the bytes rand yields. A pub that is not a valid key for the suite (see
// ValidateHPKEPublicKey) gives an error wrapping ErrInvalidKey.
func (cs CipherSuite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte, rand io.Reader) (kemOutput, ciphertext []byte, err error) {
	p, err := cs.params()
	if err != nil {
		return nil, nil, err
	}
	if p.kemInfo.xwing {
		// circl's X-Wing accepts a low-order X25519 part (the draft
		// does not require the check); hold it to the leaf rules.
		if err := cs.ValidateHPKEPublicKey(pub); err != nil {
			return nil, nil, err
		}
	}
	pk, err := p.kemScheme.UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, nil, cryptoErr(kindKey, err, "HPKE public key of %d bytes does not decode", len(pub))
	}
	info, err := mlsLabeledPair(label, context)
	if err != nil {
		return nil, nil, err
	}
	sender, err := p.hpkeSuite.NewSender(pk, info)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: HPKE: %w", err)
	}
	// The ephemeral key is DeriveKeyPair(seed) (RFC 9180 §4.1 Encap); the
	// seed is read here so that a failing random source is reported as
	// such, and the only Setup failure left is a zero DH output.
	seed := make([]byte, p.kemScheme.EncapsulationSeedSize())
	if err := readRandom(rand, seed); err != nil {
		return nil, nil, err
	}
	enc, sealer, err := sender.Setup(bytes.NewReader(seed))
	if err != nil {
		return nil, nil, cryptoErr(kindKey, err, "HPKE public key is a low-order point")
	}
	ct, err := sealer.Seal(plaintext, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: HPKE seal: %w", err)
	}
	return enc, ct, nil
}

// DecryptWithLabel opens an EncryptWithLabel ciphertext; failures wrap
// ErrDecryption. A priv that is not a valid private key for the suite also
// wraps ErrInvalidKey.
func (cs CipherSuite) DecryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	sk, err := p.kemScheme.UnmarshalBinaryPrivateKey(p.padKEMScalar(priv))
	if err != nil {
		return nil, cryptoErr(kindDecKey, err, "HPKE private key of %d bytes does not decode", len(priv))
	}
	info, err := mlsLabeledPair(label, context)
	if err != nil {
		return nil, err
	}
	receiver, err := p.hpkeSuite.NewReceiver(sk, info)
	if err != nil {
		return nil, fmt.Errorf("mls: HPKE: %w", err)
	}
	opener, err := receiver.Setup(kemOutput)
	if err != nil {
		return nil, cryptoErr(kindDec, err, "invalid HPKE kem_output")
	}
	pt, err := opener.Open(ciphertext, nil)
	if err != nil {
		return nil, cryptoErr(kindDec, err, "HPKE ciphertext does not open")
	}
	return pt, nil
}

// HPKEPublicKey returns the serialized public key of the serialized HPKE
// private key priv, or an error wrapping ErrInvalidKey.
func (cs CipherSuite) HPKEPublicKey(priv []byte) ([]byte, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	return p.hpkePublicKey(priv)
}

func (p *suiteParams) hpkePublicKey(priv []byte) ([]byte, error) {
	sk, err := p.kemScheme.UnmarshalBinaryPrivateKey(p.padKEMScalar(priv))
	if err != nil {
		return nil, cryptoErr(kindKey, err, "HPKE private key of %d bytes does not decode", len(priv))
	}
	pub, err := sk.Public().MarshalBinary()
	if err != nil {
		return nil, cryptoErr(kindKey, err, "HPKE public key does not encode")
	}
	return pub, nil
}

// ValidateHPKEPublicKey checks that pub is a public key any member can
// encrypt to (leaf and parent encryption_key, KeyPackage init_key,
// external_pub): RFC 9180 §7.1.4 validation for the NIST curves (an
// uncompressed point on the curve, not the identity), and for X25519/X448
// the right length and not one of the low-order points whose DH output is
// all zeros. HPKE encryption to such a point always fails, so a leaf that
// carried one would make every Commit whose path covers it impossible; it
// must be rejected when the leaf is validated. For X-Wing: the right length,
// the FIPS 203 modulus check on the ML-KEM part and a not-low-order X25519
// part (xwingValidatePublicKey). Errors wrap ErrInvalidKey.
//
// The check is table-driven (no scalar multiplication), cheap enough to run
// on every node of a large tree.
func (cs CipherSuite) ValidateHPKEPublicKey(pub []byte) error {
	p, err := cs.params()
	if err != nil {
		return err
	}
	k := p.kemInfo
	if len(pub) != k.npk {
		return cryptoErr(kindKey, nil, "HPKE public key is %d bytes, suite needs %d", len(pub), k.npk)
	}
	if k.xwing {
		return xwingValidatePublicKey(pub)
	}
	if k.curve != nil {
		if _, err := k.curve.NewPublicKey(pub); err != nil {
			return cryptoErr(kindKey, err, "HPKE public key is not an uncompressed point on the curve")
		}
		return nil
	}
	if montgomeryLowOrder(k, pub) {
		return cryptoErr(kindKey, nil, "HPKE public key is a low-order point")
	}
	return nil
}

// Low-order u-coordinates (RFC 7748): the u of every point whose order
// divides the cofactor, on the curve or on its quadratic twist, reduced
// mod p. A scalar multiple of any of them by a clamped scalar is zero.
//
//   - Curve25519 (cofactor 8, twist cofactor 4): 0 (order 2), 1 and p-1
//     (order 4, one on the curve and one on the twist), and the two
//     u-coordinates of the points of order 8.
//   - Curve448 (cofactor 4, twist cofactor 4): 0, 1, p-1.
//
// The tests check every entry (and its non-canonical encodings) against
// circl's x25519.Shared / x448.Shared.
var (
	x25519P        = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	x448P          = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 448), new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 224), big.NewInt(1)))
	x25519LowOrder = []*big.Int{
		big.NewInt(0),
		big.NewInt(1),
		new(big.Int).Sub(x25519P, big.NewInt(1)),
		littleEndianInt(cryptoConstHex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")),
		littleEndianInt(cryptoConstHex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157")),
	}
	x448LowOrder = []*big.Int{
		big.NewInt(0),
		big.NewInt(1),
		new(big.Int).Sub(x448P, big.NewInt(1)),
	}
)

// montgomeryLowOrder reports whether the X25519/X448 public key pub (of the
// right length) is a low-order point. X25519 ignores the top bit of the
// encoding (RFC 7748 §5); both curves accept non-canonical u >= p, which are
// reduced before the comparison.
func montgomeryLowOrder(k *kemParams, pub []byte) bool {
	u := make([]byte, len(pub))
	copy(u, pub)
	modulus, table := x448P, x448LowOrder
	if k == kemX25519 {
		u[len(u)-1] &= 0x7f
		modulus, table = x25519P, x25519LowOrder
	}
	n := littleEndianInt(u)
	if n.Cmp(modulus) >= 0 {
		n.Sub(n, modulus)
	}
	for _, lo := range table {
		if n.Cmp(lo) == 0 {
			return true
		}
	}
	return false
}

// leBig interprets b as a little-endian unsigned integer.
func littleEndianInt(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i, v := range b {
		be[len(b)-1-i] = v
	}
	return new(big.Int).SetBytes(be)
}

// padKEMScalar left-pads a short NIST-curve HPKE private key (see padScalar).
func (p *suiteParams) padKEMScalar(priv []byte) []byte {
	if p.kemInfo.curve == nil {
		return priv
	}
	return padScalar(priv, p.kemInfo.nsk)
}
