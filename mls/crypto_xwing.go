package mls

import (
	"crypto/sha3"

	"github.com/cloudflare/circl/kem/xwing"
)

// The X-Wing KEM of suite 0x004D (draft-connolly-cfrg-xwing-kem; HPKE KEM
// id 0x647A). HPKE with it is circl's hpke package, like every other suite;
// the tests cross-check the bytes against Go's crypto/hpke (MLKEM768X25519),
// against X-Wing assembled from crypto/mlkem, crypto/ecdh and crypto/sha3,
// and against the draft's test vectors.
//
//   - Private key: the 32-byte seed. SHAKE256(seed) expands to the 64-byte
//     ML-KEM-768 seed d||z and the 32-byte X25519 scalar; the expanded key
//     never leaves the process (the draft forbids exchanging it).
//   - Public key (Npk 1216): ML-KEM-768 encapsulation key (1184) || X25519
//     public key (32). Ciphertext (Nenc 1120): ML-KEM (1088) || X25519 (32).
//   - Shared secret: SHA3-256(ss_M || ss_X || ct_X || pk_X || "\.//^\").
//   - HPKE DeriveKeyPair(ikm): the seed is SHAKE256(ikm, 32) ("Use in HPKE"
//     of the X-Wing draft; what circl, ts-mls' @hpke/hybridkem-x-wing and the
//     hpke-rs releases OpenMLS first shipped 0x004D with compute).
//     draft-ietf-hpke-pq, which reuses KEM id 0x647A as "MLKEM768-X25519",
//     instead derives the seed with SHAKE256.LabeledDerive(ikm,
//     "DeriveKeyPair", ...) - Go's crypto/hpke and later hpke-rs follow it.
//     The two give different TreeKEM node keys from the same path secret, so
//     a peer on the other variant cannot process our UpdatePaths (nor we
//     theirs): one of the reasons this draft suite is opt-in (README).
const (
	xwingSeedSize         = xwing.SeedSize       // Nsk
	xwingPublicKeySize    = xwing.PublicKeySize  // Npk
	xwingMLKEMKeySize     = 1184                 // the ML-KEM-768 part of the public key
	xwingCiphertextSize   = xwing.CiphertextSize // Nenc
	mlkemQ                = 3329                 // the ML-KEM modulus q
	mlkemEncodedPolyBytes = 384                  // ByteEncode12 of one polynomial
)

// xwingDeriveKeyPair is HPKE DeriveKeyPair for X-Wing on any ikm length.
func xwingDeriveKeyPair(ikm []byte) (priv, pub []byte) {
	seed := sha3.SumSHAKE256(ikm, xwingSeedSize)
	sk, pk := xwing.DeriveKeyPairPacked(seed)
	return sk, pk
}

// xwingValidatePublicKey checks an X-Wing public key of the right length:
//
//   - the ML-KEM-768 part passes the encapsulation key check of FIPS 203
//     §7.2 (every 12-bit coefficient of t-hat is below q); the X-Wing draft
//     makes its failure an HPKE EncapError, so a key that fails it could
//     never be encrypted to;
//   - the X25519 part is not a low-order point. X-Wing itself does not need
//     that check (the ML-KEM secret still protects the output), but Go's
//     crypto/hpke refuses to encapsulate to such a key, so a leaf carrying one
//     would make Commits impossible for members on that implementation, and
//     no honestly generated key is low-order.
//
// The modulus check is done here rather than with mlkem.NewEncapsulationKey768
// because that also expands the matrix A (about ten times the cost), and
// ValidateHPKEPublicKey runs on every node of a tree that is imported; the
// tests check it against crypto/mlkem on random and fuzzed keys.
func xwingValidatePublicKey(pub []byte) error {
	if !mlkemModulusCheck(pub[:xwingMLKEMKeySize]) {
		return cryptoErr(kindKey, nil, "X-Wing public key: ML-KEM-768 encapsulation key fails the modulus check")
	}
	if montgomeryLowOrder(kemX25519, pub[xwingMLKEMKeySize:]) {
		return cryptoErr(kindKey, nil, "X-Wing public key: X25519 part is a low-order point")
	}
	return nil
}

// mlkemModulusCheck reports whether the ByteEncode12 part of an ML-KEM
// encapsulation key (everything but the trailing 32-byte rho) decodes to
// coefficients that are all below q, which is FIPS 203's
// ByteEncode12(ByteDecode12(ek)) == ek.
func mlkemModulusCheck(ek []byte) bool {
	polys := ek[:len(ek)-32]
	if len(polys)%mlkemEncodedPolyBytes != 0 {
		return false
	}
	ok := true
	for i := 0; i+3 <= len(polys); i += 3 {
		a := uint16(polys[i]) | uint16(polys[i+1]&0x0f)<<8
		b := uint16(polys[i+1]>>4) | uint16(polys[i+2])<<4
		ok = ok && a < mlkemQ && b < mlkemQ
	}
	return ok
}
