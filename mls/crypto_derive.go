package mls

import (
	"crypto/hkdf"
	"errors"
	"fmt"
	"io"
)

// RFC 9180 §7.1.3 DeriveKeyPair for the five DHKEMs of the MLS suites (and,
// in one line, for the X-Wing KEM of crypto_xwing.go).
//
// circl's kem.Scheme.DeriveKeyPair panics unless the seed is exactly
// SeedSize() bytes, but MLS derives node key pairs from Nh-byte path secrets
// (§7.4), which for X448 (Nh = 64, Nsk = 56) and P-521 (Nh = 64, Nsk = 66)
// differ from the seed size. The construction itself accepts any ikm length,
// so it is implemented here in full, with circl used only to serialize keys
// and, in tests, as a cross-check for seeds of SeedSize bytes.
//
// The labelled KDF functions of RFC 9180 §4, with the KEM's suite_id:
//
//	suite_id = concat("KEM", I2OSP(kem_id, 2))
//	LabeledExtract(salt, label, ikm) =
//	    Extract(salt, concat("HPKE-v1", suite_id, label, ikm))
//	LabeledExpand(prk, label, info, L) =
//	    Expand(prk, concat(I2OSP(L, 2), "HPKE-v1", suite_id, label, info), L)

const hpkeVersionLabel = "HPKE-v1"

// errDeriveKeyPair is RFC 9180's DeriveKeyPairError: 256 candidates in a row
// were out of range (probability below 2^-8000 for every MLS curve).
var errDeriveKeyPair = errors.New("mls: DeriveKeyPair: no valid candidate")

func (k *kemParams) suiteID() [5]byte {
	return [5]byte{'K', 'E', 'M', byte(k.id >> 8), byte(k.id)}
}

// labeledExtract is RFC 9180 LabeledExtract with the KEM's suite_id.
func (k *kemParams) labeledExtract(salt []byte, label string, ikm []byte) []byte {
	sid := k.suiteID()
	labeled := make([]byte, 0, len(hpkeVersionLabel)+len(sid)+len(label)+len(ikm))
	labeled = append(labeled, hpkeVersionLabel...)
	labeled = append(labeled, sid[:]...)
	labeled = append(labeled, label...)
	labeled = append(labeled, ikm...)
	return hkdfExtract(k.newHash, salt, labeled)
}

// labeledExpand is RFC 9180 LabeledExpand with the KEM's suite_id.
func (k *kemParams) labeledExpand(prk []byte, label string, info []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xffff {
		return nil, fmt.Errorf("mls: LabeledExpand length %d out of range", length)
	}
	sid := k.suiteID()
	labeled := make([]byte, 0, 2+len(hpkeVersionLabel)+len(sid)+len(label)+len(info))
	labeled = append(labeled, byte(length>>8), byte(length))
	labeled = append(labeled, hpkeVersionLabel...)
	labeled = append(labeled, sid[:]...)
	labeled = append(labeled, label...)
	labeled = append(labeled, info...)
	out, err := hkdf.Expand(k.newHash, prk, string(labeled), length)
	if err != nil {
		return nil, fmt.Errorf("mls: LabeledExpand: %w", err)
	}
	return out, nil
}

// deriveKeyPair is RFC 9180 §7.1.3 DeriveKeyPair; it returns the serialized
// private key (SerializePrivateKey) and the serialized public key.
//
//   - X25519, X448: sk = LabeledExpand(dkp_prk, "sk", "", Nsk). The raw
//     expanded bytes are the serialized private key; clamping (RFC 7748 §5)
//     happens inside the DH function, which is what circl's
//     UnmarshalBinaryPrivateKey / x25519.KeyGen expect.
//   - P-256, P-384, P-521: rejection sampling. For counter = 0..255,
//     candidate = LabeledExpand(dkp_prk, "candidate", I2OSP(counter, 1), Nsk)
//     with its first byte masked by 0xff (P-256, P-384) or 0x01 (P-521); the
//     first candidate with 0 < sk < order wins.
//   - X-Wing: the seed SHAKE256(ikm, 32) (crypto_xwing.go).
func (p *suiteParams) deriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	k := p.kemInfo
	if k.xwing {
		priv, pub := xwingDeriveKeyPair(ikm)
		return priv, pub, nil
	}
	dkpPRK := k.labeledExtract(nil, "dkp_prk", ikm)
	if k.curve == nil {
		sk, err := k.labeledExpand(dkpPRK, "sk", nil, k.nsk)
		if err != nil {
			return nil, nil, err
		}
		pub, err := p.hpkePublicKey(sk)
		if err != nil {
			return nil, nil, err
		}
		return sk, pub, nil
	}
	var counter [1]byte
	for c := 0; c <= 255; c++ {
		counter[0] = byte(c)
		candidate, err := k.labeledExpand(dkpPRK, "candidate", counter[:], k.nsk)
		if err != nil {
			return nil, nil, err
		}
		candidate[0] &= k.bitmask
		// NewPrivateKey accepts exactly the fixed-length big-endian scalars
		// with 0 < sk < order.
		key, err := k.curve.NewPrivateKey(candidate)
		if err != nil {
			continue
		}
		return candidate, key.PublicKey().Bytes(), nil
	}
	return nil, nil, errDeriveKeyPair
}

// DeriveKeyPair is the KEM's DeriveKeyPair (RFC 9180 §7.1.3) on an
// arbitrary-length ikm (MLS passes Nh-byte secrets). It is deterministic and
// returns the keys in SerializePrivateKey / SerializePublicKey form.
func (cs CipherSuite) DeriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	p, err := cs.params()
	if err != nil {
		return nil, nil, err
	}
	return p.deriveKeyPair(ikm)
}

// GenerateHPKEKeyPair returns a fresh HPKE key pair: DeriveKeyPair on Nsk
// bytes read from rand (RFC 9180 §7.1.3 allows GenerateKeyPair to be
// implemented this way; it makes key generation reproducible in tests).
func (cs CipherSuite) GenerateHPKEKeyPair(rand io.Reader) (priv, pub []byte, err error) {
	p, err := cs.params()
	if err != nil {
		return nil, nil, err
	}
	ikm := make([]byte, p.kemInfo.nsk)
	if err := readRandom(rand, ikm); err != nil {
		return nil, nil, err
	}
	return p.deriveKeyPair(ikm)
}
