package mls

import (
	"fmt"
	"testing"
)

// Benchmarks of the cipher-suite primitives. Run with
//
//	go test ./mls -run '^$' -bench 'WithLabel|DeriveKeyPair|AEAD' -benchtime=1s -count=3
//
// Sizes follow MLS usage: a 256-byte SignContent body (a typical LeafNodeTBS
// or FramedContentTBS), a 64-byte HPKE plaintext (a path secret or a small
// GroupSecrets), an Nh-byte DeriveKeyPair ikm (a node secret), and a 100-byte
// AEAD payload (a short chat message).

var cryptoBenchSuites = []CipherSuite{1, 2, 3, 4, 5, 7}

func cryptoBenchEach(b *testing.B, suites []CipherSuite, f func(b *testing.B, cs CipherSuite)) {
	for _, cs := range suites {
		b.Run(fmt.Sprintf("suite=%d", uint16(cs)), func(b *testing.B) { f(b, cs) })
	}
}

// The signature benchmarks skip suite 3, which has suite 1's Ed25519.
var cryptoBenchSigSuites = []CipherSuite{1, 2, 4, 5, 7}

func BenchmarkSignWithLabel(b *testing.B) {
	cryptoBenchEach(b, cryptoBenchSigSuites, func(b *testing.B, cs CipherSuite) {
		priv, _, err := cs.GenerateSignatureKeyPair(cryptoTestRand(1))
		if err != nil {
			b.Fatal(err)
		}
		content := make([]byte, 256)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cs.SignWithLabel(priv, "LeafNodeTBS", content, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerifyWithLabel(b *testing.B) {
	cryptoBenchEach(b, cryptoBenchSigSuites, func(b *testing.B, cs CipherSuite) {
		priv, pub, err := cs.GenerateSignatureKeyPair(cryptoTestRand(1))
		if err != nil {
			b.Fatal(err)
		}
		content := make([]byte, 256)
		sig, err := cs.SignWithLabel(priv, "LeafNodeTBS", content, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := cs.VerifyWithLabel(pub, "LeafNodeTBS", content, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkValidateSignaturePublicKey is the per-leaf cost of key validation.
func BenchmarkValidateSignaturePublicKey(b *testing.B) {
	cryptoBenchEach(b, cryptoBenchSigSuites, func(b *testing.B, cs CipherSuite) {
		_, pub, err := cs.GenerateSignatureKeyPair(cryptoTestRand(1))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := cs.ValidateSignaturePublicKey(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The HPKE benchmarks skip suite 3 (suite 1's KEM with ChaCha20-Poly1305).
var cryptoBenchKEMSuites = []CipherSuite{1, 2, 4, 5, 7}

func BenchmarkEncryptWithLabel(b *testing.B) {
	cryptoBenchEach(b, cryptoBenchKEMSuites, func(b *testing.B, cs CipherSuite) {
		_, pub, err := cs.GenerateHPKEKeyPair(cryptoTestRand(1))
		if err != nil {
			b.Fatal(err)
		}
		pt := make([]byte, 64)
		r := cryptoTestRand(2)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := cs.EncryptWithLabel(pub, "UpdatePathNode", nil, pt, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecryptWithLabel(b *testing.B) {
	cryptoBenchEach(b, cryptoBenchKEMSuites, func(b *testing.B, cs CipherSuite) {
		priv, pub, err := cs.GenerateHPKEKeyPair(cryptoTestRand(1))
		if err != nil {
			b.Fatal(err)
		}
		kemOut, ct, err := cs.EncryptWithLabel(pub, "UpdatePathNode", nil, make([]byte, 64), cryptoTestRand(2))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cs.DecryptWithLabel(priv, "UpdatePathNode", nil, kemOut, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkValidateHPKEPublicKey(b *testing.B) {
	cryptoBenchEach(b, cryptoBenchKEMSuites, func(b *testing.B, cs CipherSuite) {
		_, pub, err := cs.GenerateHPKEKeyPair(cryptoTestRand(1))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := cs.ValidateHPKEPublicKey(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDeriveKeyPair(b *testing.B) {
	cryptoBenchEach(b, cryptoBenchKEMSuites, func(b *testing.B, cs CipherSuite) {
		ikm := make([]byte, cs.Nh())
		b.ReportAllocs()
		for b.Loop() {
			ikm[0]++
			if _, _, err := cs.DeriveKeyPair(ikm); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkExpandWithLabel(b *testing.B) {
	cryptoBenchEach(b, []CipherSuite{1, 4, 7}, func(b *testing.B, cs CipherSuite) {
		secret := make([]byte, cs.Nh())
		ctx := []byte{0, 0, 0, 1}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cs.ExpandWithLabel(secret, "key", ctx, cs.Nk()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRefHash(b *testing.B) {
	cryptoBenchEach(b, []CipherSuite{1}, func(b *testing.B, cs CipherSuite) {
		value := make([]byte, 512)
		b.ReportAllocs()
		for b.Loop() {
			cs.RefHash("MLS 1.0 Proposal Reference", value)
		}
	})
}

func BenchmarkAEADSeal100B(b *testing.B) {
	cryptoBenchEach(b, []CipherSuite{1, 3, 4}, func(b *testing.B, cs CipherSuite) {
		aead, err := cs.AEAD(make([]byte, cs.Nk()))
		if err != nil {
			b.Fatal(err)
		}
		nonce := make([]byte, cs.Nn())
		pt := make([]byte, 100)
		dst := make([]byte, 0, 100+aead.Overhead())
		b.SetBytes(100)
		b.ReportAllocs()
		for b.Loop() {
			aead.Seal(dst[:0], nonce, pt, nil)
		}
	})
}

func BenchmarkAEADOpen100B(b *testing.B) {
	cryptoBenchEach(b, []CipherSuite{1, 3, 4}, func(b *testing.B, cs CipherSuite) {
		aead, err := cs.AEAD(make([]byte, cs.Nk()))
		if err != nil {
			b.Fatal(err)
		}
		nonce := make([]byte, cs.Nn())
		ct := aead.Seal(nil, nonce, make([]byte, 100), nil)
		dst := make([]byte, 0, 100)
		b.SetBytes(100)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := aead.Open(dst[:0], nonce, ct, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
