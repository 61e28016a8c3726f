package mls

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/dh/x448"
)

// TestCryptoMalformedInputs feeds malformed keys, lengths and ciphertexts to
// every operation of every suite: each must fail with the right sentinel
// error and none may panic.
func TestCryptoMalformedInputs(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(cs.String(), func(t *testing.T) {
			p := cs.mustParams()
			sigPriv, sigPub, err := cs.GenerateSignatureKeyPair(cryptoTestRand(11))
			if err != nil {
				t.Fatal(err)
			}
			hpkePriv, hpkePub, err := cs.GenerateHPKEKeyPair(cryptoTestRand(12))
			if err != nil {
				t.Fatal(err)
			}
			content := []byte("content")
			sig, err := cs.SignWithLabel(sigPriv, "L", content, nil)
			if err != nil {
				t.Fatal(err)
			}
			kemOut, ct, err := cs.EncryptWithLabel(hpkePub, "L", nil, content, cryptoTestRand(13))
			if err != nil {
				t.Fatal(err)
			}

			// Byte strings of wrong length (and a few of the right length
			// with bad values) for every key slot.
			badLengths := func(n int) [][]byte {
				out := [][]byte{nil, {}, {0}, make([]byte, n-1), make([]byte, n+1), make([]byte, 2*n), bytes.Repeat([]byte{0xff}, n+1)}
				return out
			}

			// Signature private keys.
			badSigPriv := badLengths(len(sigPriv))
			if p.sigInfo.curve != nil {
				badSigPriv = append(badSigPriv, make([]byte, len(sigPriv)), bytes.Repeat([]byte{0xff}, len(sigPriv)))
			}
			for i, k := range badSigPriv {
				if _, err := cs.SignWithLabel(k, "L", content, nil); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("SignWithLabel bad priv %d: %v", i, err)
				}
				if _, err := cs.SignaturePublicKey(k); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("SignaturePublicKey bad priv %d: %v", i, err)
				}
			}

			// Signature public keys.
			badSigPub := badLengths(len(sigPub))
			badSigPub = append(badSigPub, cryptoBadSignaturePublicKeys(cs, sigPub)...)
			for i, k := range badSigPub {
				if err := cs.ValidateSignaturePublicKey(k); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("ValidateSignaturePublicKey bad pub %d (%x): %v", i, k, err)
				}
				if err := cs.VerifyWithLabel(k, "L", content, sig); !errors.Is(err, ErrInvalidSignature) {
					t.Errorf("VerifyWithLabel bad pub %d: %v", i, err)
				}
			}
			for i, k := range badLengths(len(sigPub)) {
				if err := cs.VerifyWithLabel(k, "L", content, sig); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("VerifyWithLabel bad pub length %d: %v", i, err)
				}
			}

			// Signatures.
			badSigs := [][]byte{nil, {}, {0}, sig[:len(sig)-1], append(bytes.Clone(sig), 0), make([]byte, len(sig)), bytes.Repeat([]byte{0xff}, len(sig))}
			if p.sigInfo.curve != nil {
				// DER: valid SEQUENCE of two zero INTEGERs, and a non-minimal length.
				badSigs = append(badSigs, []byte{0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00},
					append([]byte{0x30, 0x81, byte(len(sig) - 2)}, sig[2:]...))
			}
			for i, s := range badSigs {
				if err := cs.VerifyWithLabel(sigPub, "L", content, s); !errors.Is(err, ErrInvalidSignature) {
					t.Errorf("VerifyWithLabel bad sig %d: %v", i, err)
				}
			}

			// HPKE public keys.
			badHPKEPub := append(badLengths(len(hpkePub)), cryptoBadHPKEPublicKeys(cs)...)
			for i, k := range badHPKEPub {
				if err := cs.ValidateHPKEPublicKey(k); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("ValidateHPKEPublicKey bad pub %d (%x): %v", i, k, err)
				}
				if _, _, err := cs.EncryptWithLabel(k, "L", nil, content, cryptoTestRand(1)); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("EncryptWithLabel bad pub %d (%x): %v", i, k, err)
				}
				// As a kem_output, each is a decryption failure.
				if _, err := cs.DecryptWithLabel(hpkePriv, "L", nil, k, ct); !errors.Is(err, ErrDecryption) {
					t.Errorf("DecryptWithLabel bad kem_output %d: %v", i, err)
				}
			}

			// HPKE private keys.
			badHPKEPriv := badLengths(len(hpkePriv))
			if p.kemInfo.curve != nil {
				badHPKEPriv = append(badHPKEPriv, make([]byte, len(hpkePriv)), bytes.Repeat([]byte{0xff}, len(hpkePriv)))
			}
			for i, k := range badHPKEPriv {
				if _, err := cs.DecryptWithLabel(k, "L", nil, kemOut, ct); !errors.Is(err, ErrDecryption) || !errors.Is(err, ErrInvalidKey) {
					t.Errorf("DecryptWithLabel bad priv %d: %v", i, err)
				}
				if _, err := cs.HPKEPublicKey(k); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("HPKEPublicKey bad priv %d: %v", i, err)
				}
			}

			// Ciphertexts.
			for i, c := range [][]byte{nil, {}, ct[:1], ct[:len(ct)-1], make([]byte, len(ct)), append(bytes.Clone(ct), 0)} {
				if _, err := cs.DecryptWithLabel(hpkePriv, "L", nil, kemOut, c); !errors.Is(err, ErrDecryption) {
					t.Errorf("DecryptWithLabel bad ciphertext %d: %v", i, err)
				}
			}

			// Error messages follow the package convention.
			_, err = cs.SignWithLabel(nil, "L", nil, nil)
			if err == nil || !strings.HasPrefix(err.Error(), "mls: ") {
				t.Errorf("error %q does not start with \"mls: \"", err)
			}
		})
	}
}

// cryptoBadSignaturePublicKeys returns right-length encodings that are not
// acceptable signature keys for cs.
func cryptoBadSignaturePublicKeys(cs CipherSuite, good []byte) [][]byte {
	n := len(good)
	switch cs.SignatureScheme() {
	case sigEd25519:
		var out [][]byte
		// Small-order points (canonical encodings, both signs).
		for _, y := range ed25519SmallOrderY {
			enc := cryptoTestLE(y, 32)
			out = append(out, enc)
			neg := bytes.Clone(enc)
			neg[31] |= 0x80
			out = append(out, neg)
		}
		// Non-canonical y = p (≡ 0) and y = p + 1 (≡ 1), and all-ones.
		out = append(out,
			cryptoTestLE(ed25519P, 32),
			cryptoTestLE(new(big.Int).Add(ed25519P, big.NewInt(1)), 32),
			bytes.Repeat([]byte{0xff}, 32))
		// A y with no x: y = 2 is not on the curve.
		out = append(out, cryptoTestLE(big.NewInt(2), 32))
		return out
	case sigEd448:
		var out [][]byte
		p := x448P
		for _, y := range []*big.Int{big.NewInt(0), big.NewInt(1), new(big.Int).Sub(p, big.NewInt(1))} {
			out = append(out, cryptoTestLE(y, 57))
		}
		bad := bytes.Clone(good)
		bad[56] |= 0x01 // reserved bits of the last byte
		out = append(out, bad,
			cryptoTestLE(p, 57),                     // non-canonical y
			append(make([]byte, 56), 0x80),          // y = 0 with sign... x = ±1 small order, sign bit
			cryptoTestLE(big.NewInt(1), 57)[:57:57], // identity
			bytes.Repeat([]byte{0xff}, 57))
		id := cryptoTestLE(big.NewInt(1), 57)
		id[56] = 0x80 // x = 0 with the sign bit set
		out = append(out, id)
		return out
	default:
		var out [][]byte
		inf := make([]byte, n)
		inf[0] = 4
		out = append(out, inf, make([]byte, n))
		compressed := bytes.Clone(good)
		compressed[0] = 2
		out = append(out, compressed)
		offCurve := bytes.Clone(good)
		offCurve[n-1] ^= 1
		out = append(out, offCurve)
		return out
	}
}

// cryptoBadHPKEPublicKeys returns right-length encodings that are not
// acceptable HPKE public keys for cs.
func cryptoBadHPKEPublicKeys(cs CipherSuite) [][]byte {
	k := cs.mustParams().kemInfo
	var out [][]byte
	switch k {
	case kemX25519:
		for _, u := range x25519LowOrder {
			enc := cryptoTestLE(u, 32)
			out = append(out, enc)
			hi := bytes.Clone(enc)
			hi[31] |= 0x80
			out = append(out, hi)
		}
		out = append(out, cryptoTestLE(x25519P, 32), cryptoTestLE(new(big.Int).Add(x25519P, big.NewInt(1)), 32))
	case kemX448:
		for _, u := range x448LowOrder {
			out = append(out, cryptoTestLE(u, 56))
		}
		out = append(out, cryptoTestLE(x448P, 56), cryptoTestLE(new(big.Int).Add(x448P, big.NewInt(1)), 56))
	case kemXWing:
		out = append(out, cryptoBadXWingPublicKeys(cs)...)
	default:
		inf := make([]byte, k.npk)
		inf[0] = 4
		out = append(out, inf, make([]byte, k.npk))
		_, good, _ := cs.GenerateHPKEKeyPair(cryptoTestRand(99))
		off := bytes.Clone(good)
		off[len(off)-1] ^= 1
		out = append(out, off)
		comp := bytes.Clone(good)
		comp[0] = 3
		out = append(out, comp)
	}
	return out
}

// cryptoTestLE encodes x as n little-endian bytes.
func cryptoTestLE(x *big.Int, n int) []byte {
	be := x.FillBytes(make([]byte, n))
	out := make([]byte, n)
	for i := range be {
		out[n-1-i] = be[i]
	}
	return out
}

// TestMontgomeryLowOrderMatchesCircl checks the low-order tables against
// circl's own DH check (x25519.Shared / x448.Shared report a zero output):
// every table entry and its non-canonical or high-bit encodings is rejected
// by both, and random points are accepted by both.
func TestMontgomeryLowOrderMatchesCircl(t *testing.T) {
	var sk25519 x25519.Key
	var sk448 x448.Key
	for i := range sk25519 {
		sk25519[i] = byte(i + 1)
	}
	for i := range sk448 {
		sk448[i] = byte(i + 1)
	}
	circl25519 := func(pub []byte) bool { // true if low order
		var pk, ss x25519.Key
		copy(pk[:], pub)
		return !x25519.Shared(&ss, &sk25519, &pk)
	}
	circl448 := func(pub []byte) bool {
		var pk, ss x448.Key
		copy(pk[:], pub)
		return !x448.Shared(&ss, &sk448, &pk)
	}
	check := func(k *kemParams, circl func([]byte) bool, enc []byte) {
		t.Helper()
		if got, want := montgomeryLowOrder(k, enc), circl(enc); got != want {
			t.Fatalf("kem 0x%04x: %x: low order = %v, circl says %v", k.id, enc, got, want)
		}
	}
	for _, u := range x25519LowOrder {
		enc := cryptoTestLE(u, 32)
		if !circl25519(enc) {
			t.Fatalf("X25519 table entry %x is not low order", enc)
		}
		for _, v := range []*big.Int{u, new(big.Int).Add(u, x25519P)} {
			for _, hi := range []byte{0, 0x80} {
				if v.BitLen() > 255 {
					continue
				}
				e := cryptoTestLE(v, 32)
				e[31] |= hi
				check(kemX25519, circl25519, e)
			}
		}
	}
	for _, u := range x448LowOrder {
		enc := cryptoTestLE(u, 56)
		if !circl448(enc) {
			t.Fatalf("X448 table entry %x is not low order", enc)
		}
		if v := new(big.Int).Add(u, x448P); v.BitLen() <= 448 {
			check(kemX448, circl448, cryptoTestLE(v, 56))
		}
	}
	// Neighbours of the table entries and random values.
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		e := make([]byte, 32)
		for j := range e {
			e[j] = byte(r.Uint32())
		}
		check(kemX25519, circl25519, e)
		f := make([]byte, 56)
		for j := range f {
			f[j] = byte(r.Uint32())
		}
		check(kemX448, circl448, f)
	}
	for _, u := range x25519LowOrder {
		for _, d := range []int64{-2, -1, 1, 2} {
			v := new(big.Int).Add(u, big.NewInt(d))
			if v.Sign() >= 0 && v.BitLen() <= 255 {
				check(kemX25519, circl25519, cryptoTestLE(v, 32))
			}
		}
	}
}

// TestEd25519SmallOrderTable re-derives the small-order y-coordinates: y8
// solves d y^4 + 2 y^2 - 1 = 0 (its double has y = 0), and y = 0 has
// x^2 = -1, a square. It also demonstrates why such keys are rejected: with
// the identity as public key, R = identity and S = 0 verify any message.
func TestEd25519SmallOrderTable(t *testing.T) {
	p, d := ed25519P, ed25519D
	y := ed25519Y8
	y2 := new(big.Int).Mul(y, y)
	y4 := new(big.Int).Mul(y2, y2)
	lhs := new(big.Int).Mul(d, y4)
	lhs.Add(lhs, new(big.Int).Lsh(y2, 1))
	lhs.Sub(lhs, big.NewInt(1))
	if lhs.Mod(lhs, p).Sign() != 0 {
		t.Fatal("y8 does not satisfy d y^4 + 2 y^2 - 1 = 0")
	}
	// And the other root pair of that quartic has no x (so no other
	// order-8 y exists): y^2 = (-1 - sqrt(1+d))/d vs (-1 + sqrt(1+d))/d.
	s := new(big.Int).ModSqrt(new(big.Int).Mod(new(big.Int).Add(d, big.NewInt(1)), p), p)
	if s == nil {
		t.Fatal("1+d is not a square")
	}
	dInv := new(big.Int).ModInverse(d, p)
	var roots int
	for _, sign := range []int64{1, -1} {
		yy := new(big.Int).Mul(big.NewInt(sign), s)
		yy.Sub(yy, big.NewInt(1))
		yy.Mul(yy, dInv)
		yy.Mod(yy, p)
		if r := new(big.Int).ModSqrt(yy, p); r != nil {
			roots++
			if r.Cmp(y) != 0 && new(big.Int).Sub(p, r).Cmp(y) != 0 {
				t.Fatalf("unexpected order-8 y %v", r)
			}
		}
	}
	if roots != 1 {
		t.Fatalf("%d square roots of y8^2 candidates", roots)
	}

	identity := cryptoTestLE(big.NewInt(1), 32)
	forged := append(bytes.Clone(identity), make([]byte, 32)...)
	if !ed25519.Verify(identity, []byte("anything"), forged) {
		t.Fatal("expected the identity key to accept the trivial forgery")
	}
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	if err := cs.ValidateSignaturePublicKey(identity); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("identity key accepted: %v", err)
	}
}

// TestEd25519ValidationRandom: for random encodings, the decodability
// verdict agrees with an explicit square root and the curve equation, and
// about half of all y are on the curve.
func TestEd25519ValidationRandom(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	p, d := ed25519P, ed25519D
	r := mrand.New(mrand.NewPCG(3, 4))
	valid := 0
	const n = 2000
	for i := 0; i < n; i++ {
		enc := make([]byte, 32)
		for j := range enc {
			enc[j] = byte(r.Uint32())
		}
		err := cs.ValidateSignaturePublicKey(enc)
		yb := bytes.Clone(enc)
		yb[31] &= 0x7f
		y := littleEndianInt(yb)
		if y.Cmp(p) >= 0 {
			if err == nil {
				t.Fatalf("non-canonical %x accepted", enc)
			}
			continue
		}
		y2 := new(big.Int).Mul(y, y)
		u := new(big.Int).Sub(y2, big.NewInt(1))
		v := new(big.Int).Mul(d, y2)
		v.Add(v, big.NewInt(1))
		x2 := new(big.Int).Mul(u, new(big.Int).ModInverse(v.Mod(v, p), p))
		x2.Mod(x2, p)
		x := new(big.Int).ModSqrt(x2, p)
		if (x != nil) != (err == nil) {
			t.Fatalf("%x: sqrt exists = %v, validation error = %v", enc, x != nil, err)
		}
		if x != nil {
			valid++
			// -x^2 + y^2 == 1 + d x^2 y^2
			l := new(big.Int).Sub(y2, new(big.Int).Mul(x, x))
			rr := new(big.Int).Mul(d, new(big.Int).Mul(new(big.Int).Mul(x, x), y2))
			rr.Add(rr, big.NewInt(1))
			if new(big.Int).Sub(l, rr).Mod(new(big.Int).Sub(l, rr), p).Sign() != 0 {
				t.Fatal("curve equation fails")
			}
		}
	}
	if valid < n/3 || valid > 2*n/3 {
		t.Fatalf("%d of %d random encodings valid", valid, n)
	}
	// Every real public key validates.
	for i := 0; i < 200; i++ {
		_, pub, err := cs.GenerateSignatureKeyPair(cryptoTestRand(byte(i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.ValidateSignaturePublicKey(pub); err != nil {
			t.Fatalf("generated key %x rejected: %v", pub, err)
		}
	}
}
