package mls

import (
	"bytes"
	"crypto/hpke"
	"errors"
	"testing"
)

// FuzzXWingPublicKey decodes X-Wing public keys: arbitrary bytes (raw), or a
// key derived from seed with one byte set (pos, val), which keeps most
// inputs near the valid set where the modulus and low-order checks decide.
// canopy's verdict must be crypto/hpke's, errors must wrap ErrInvalidKey,
// and a key that passes must be one EncryptWithLabel can encrypt to.
func FuzzXWingPublicKey(f *testing.F) {
	f.Add([]byte("seed"), uint16(0), byte(0x01), []byte(nil))
	f.Add([]byte("seed"), uint16(1), byte(0x0d), []byte(nil))
	f.Add([]byte("seed"), uint16(1151), byte(0xff), []byte(nil))
	f.Add([]byte("seed"), uint16(1184), byte(0x00), []byte(nil))
	f.Add([]byte("seed"), uint16(1215), byte(0x80), []byte(nil))
	f.Add([]byte(nil), uint16(0), byte(0), []byte{0})
	f.Add([]byte(nil), uint16(0), byte(0), make([]byte, xwingPublicKeySize))
	f.Fuzz(func(t *testing.T, seed []byte, pos uint16, val byte, raw []byte) {
		pub := raw
		if len(raw) == 0 {
			_, derived, err := csXWing.DeriveKeyPair(seed)
			if err != nil {
				t.Fatal(err)
			}
			pub = bytes.Clone(derived)
			pub[int(pos)%len(pub)] = val
		}
		err := csXWing.ValidateHPKEPublicKey(pub)
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("error does not wrap ErrInvalidKey: %v", err)
		}
		if ours, ref := err == nil, xwingReferenceVerdict(pub); ours != ref {
			t.Fatalf("canopy accepts=%v (%v), crypto/hpke accepts=%v", ours, err, ref)
		}
		_, _, encErr := csXWing.EncryptWithLabel(pub, "L", nil, []byte("x"), cryptoTestRand(1))
		if (err == nil) != (encErr == nil) {
			t.Fatalf("ValidateHPKEPublicKey: %v, but EncryptWithLabel: %v", err, encErr)
		}
	})
}

// FuzzXWingPrivateKey decodes X-Wing private keys (the 32-byte seed): any
// other length is ErrInvalidKey, and every 32-byte string is a seed whose
// public key equals crypto/hpke's.
func FuzzXWingPrivateKey(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 31))
	f.Add(make([]byte, 32))
	f.Add(bytes.Repeat([]byte{0xff}, 33))
	f.Fuzz(func(t *testing.T, priv []byte) {
		pub, err := csXWing.HPKEPublicKey(priv)
		if len(priv) != xwingSeedSize {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("%d-byte private key: %v", len(priv), err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		gsk, err := hpke.MLKEM768X25519().NewPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		mustEqualBytes(t, "public key", pub, gsk.PublicKey().Bytes())
	})
}
