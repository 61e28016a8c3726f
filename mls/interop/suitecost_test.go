//go:build unix

package main

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/canopy-chat/canopy/internal/cputime"
	"github.com/canopy-chat/canopy/mls"
)

// BenchmarkSuiteCrypto measures the public-key operations an MLS client
// repeats (signature verification, signing, key generation, HPKE) through
// package mls and, for comparison, straight from the standard library, for
// suite 1 (X25519, Ed25519), suite 5 (P-521, ECDSA P-521 with SHA-512) and
// suite 7 (P-384, ECDSA P-384 with SHA-384).
// Besides ns/op (wall clock, which a loaded machine inflates), each
// reports cpu-ns/op, the process's CPU time per operation.
// It is how README.md tells what a slow suite costs because of its curve
// and what because of canopy:
//
//	go test ./mls/interop -run '^$' -bench SuiteCrypto -benchtime 200x
func BenchmarkSuiteCrypto(b *testing.B) {
	msg := make([]byte, 300) // about a LeafNodeTBS
	for _, cs := range []mls.CipherSuite{1, 5, 7} {
		priv, pub, err := cs.GenerateSignatureKeyPair(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		sig, err := cs.SignWithLabel(priv, "LeafNodeTBS", msg, nil)
		if err != nil {
			b.Fatal(err)
		}
		hpkePriv, hpkePub, err := cs.GenerateHPKEKeyPair(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		kem, ct, err := cs.EncryptWithLabel(hpkePub, "UpdatePathNode", nil, msg[:32], rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		name := func(op string) string { return fmt.Sprintf("suite%d/mls/%s", cs, op) }
		b.Run(name("VerifyWithLabel"), func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if err := cs.VerifyWithLabel(pub, "LeafNodeTBS", msg, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name("SignWithLabel"), func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := cs.SignWithLabel(priv, "LeafNodeTBS", msg, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name("GenerateSignatureKeyPair"), func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, _, err := cs.GenerateSignatureKeyPair(rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name("GenerateHPKEKeyPair"), func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, _, err := cs.GenerateHPKEKeyPair(rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name("EncryptWithLabel"), func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, _, err := cs.EncryptWithLabel(hpkePub, "UpdatePathNode", nil, msg[:32], rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name("DecryptWithLabel"), func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := cs.DecryptWithLabel(hpkePriv, "UpdatePathNode", nil, kem, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name("DeriveKeyPair"), func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, _, err := cs.DeriveKeyPair(msg[:cs.Nh()]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}

	// The same operations on the bare curves.
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edSig := ed25519.Sign(edPriv, msg)
	b.Run("suite1/stdlib/ed25519.Verify", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			if !ed25519.Verify(edPub, msg, edSig) {
				b.Fatal("no")
			}
		}
	})
	b.Run("suite1/stdlib/ed25519.Sign", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			ed25519.Sign(edPriv, msg)
		}
	})
	b.Run("suite1/stdlib/X25519.GenerateKey+ECDH", func(b *testing.B) {
		peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
		defer cpuPerOp(b)()
		for b.Loop() {
			k, _ := ecdh.X25519().GenerateKey(rand.Reader)
			if _, err := k.ECDH(peer.PublicKey()); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		suite int
		curve elliptic.Curve
		dh    ecdh.Curve
		hash  crypto.Hash
	}{
		{5, elliptic.P521(), ecdh.P521(), crypto.SHA512},
		{7, elliptic.P384(), ecdh.P384(), crypto.SHA384},
		{2, elliptic.P256(), ecdh.P256(), crypto.SHA256}, // for scale: P-256 has assembly
	} {
		name := func(op string) string { return fmt.Sprintf("suite%d/stdlib/%s-%s", c.suite, op, c.curve.Params().Name) }
		key, _ := ecdsa.GenerateKey(c.curve, rand.Reader)
		digest := func() []byte { h := c.hash.New(); h.Write(msg); return h.Sum(nil) }
		sig, _ := ecdsa.SignASN1(rand.Reader, key, digest())
		b.Run(name("ecdsa.VerifyASN1"), func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if !ecdsa.VerifyASN1(&key.PublicKey, digest(), sig) {
					b.Fatal("no")
				}
			}
		})
		b.Run(name("ecdsa.SignASN1"), func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := ecdsa.SignASN1(rand.Reader, key, digest()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name("ecdsa.GenerateKey"), func(b *testing.B) {
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := ecdsa.GenerateKey(c.curve, rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name("ecdh.GenerateKey+ECDH"), func(b *testing.B) {
			peer, _ := c.dh.GenerateKey(rand.Reader)
			defer cpuPerOp(b)()
			for b.Loop() {
				k, _ := c.dh.GenerateKey(rand.Reader)
				if _, err := k.ECDH(peer.PublicKey()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// cpuPerOp starts measuring the process's CPU time (user + system); the
// returned function reports it per operation as cpu-ns/op.
func cpuPerOp(b *testing.B) func() {
	start := cputime.Process(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cputime.Process(b)-start)/float64(b.N), "cpu-ns/op")
		}
	}
}
