package mls

import (
	"errors"
	"testing"
)

// Fuzz targets for the crypto entry points that take peer-controlled bytes:
// public keys, signatures, kem_output and ciphertexts. None may panic; every
// failure must wrap the documented sentinel.

func cryptoFuzzSuite(sel uint8) CipherSuite { return CipherSuites[int(sel)%len(CipherSuites)] }

func FuzzVerifyWithLabel(f *testing.F) {
	for i, cs := range CipherSuites {
		priv, pub, _ := cs.GenerateSignatureKeyPair(cryptoTestRand(byte(i)))
		sig, _ := cs.SignWithLabel(priv, "L", []byte("c"), nil)
		f.Add(uint8(i), pub, []byte("c"), sig)
	}
	f.Add(uint8(0), []byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, sel uint8, pub, content, sig []byte) {
		cs := cryptoFuzzSuite(sel)
		if err := cs.VerifyWithLabel(pub, "L", content, sig); err != nil && !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("VerifyWithLabel error does not wrap ErrInvalidSignature: %v", err)
		}
		if err := cs.ValidateSignaturePublicKey(pub); err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("ValidateSignaturePublicKey: %v", err)
		}
		if _, err := cs.SignWithLabel(pub, "L", content, nil); err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("SignWithLabel with arbitrary priv: %v", err)
		}
	})
}

func FuzzDecryptWithLabel(f *testing.F) {
	for i, cs := range CipherSuites {
		priv, pub, _ := cs.GenerateHPKEKeyPair(cryptoTestRand(byte(i)))
		kemOut, ct, _ := cs.EncryptWithLabel(pub, "L", nil, []byte("pt"), cryptoTestRand(1))
		f.Add(uint8(i), priv, kemOut, ct)
	}
	f.Add(uint8(0), []byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, sel uint8, priv, kemOut, ct []byte) {
		cs := cryptoFuzzSuite(sel)
		if _, err := cs.DecryptWithLabel(priv, "L", nil, kemOut, ct); err != nil && !errors.Is(err, ErrDecryption) {
			t.Fatalf("DecryptWithLabel error does not wrap ErrDecryption: %v", err)
		}
		// kemOut doubles as an arbitrary public key.
		verr := cs.ValidateHPKEPublicKey(kemOut)
		if verr != nil && !errors.Is(verr, ErrInvalidKey) {
			t.Fatalf("ValidateHPKEPublicKey: %v", verr)
		}
		_, _, eerr := cs.EncryptWithLabel(kemOut, "L", nil, ct, cryptoTestRand(1))
		if eerr != nil && !errors.Is(eerr, ErrInvalidKey) {
			t.Fatalf("EncryptWithLabel: %v", eerr)
		}
		// A key that validates can be encrypted to.
		if verr == nil && eerr != nil {
			t.Fatalf("validated key %x fails EncryptWithLabel: %v", kemOut, eerr)
		}
		if _, err := cs.HPKEPublicKey(priv); err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("HPKEPublicKey: %v", err)
		}
		if _, _, err := cs.DeriveKeyPair(priv); err != nil {
			t.Fatalf("DeriveKeyPair: %v", err)
		}
	})
}
