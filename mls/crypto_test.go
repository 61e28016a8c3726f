package mls

import (
	"bytes"
	"errors"
	"io"
	mrand "math/rand/v2"
	"testing"
)

func init() { registerVector("crypto-basics", checkCryptoBasics) }

// cryptoBasicsCase is one entry of crypto-basics.json (FORMAT.md "Crypto
// Basics").
type cryptoBasicsCase struct {
	CipherSuite uint16 `json:"cipher_suite"`
	RefHash     struct {
		Label string   `json:"label"`
		Value hexBytes `json:"value"`
		Out   hexBytes `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hexBytes `json:"secret"`
		Label   string   `json:"label"`
		Context hexBytes `json:"context"`
		Length  int      `json:"length"`
		Out     hexBytes `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hexBytes `json:"secret"`
		Label  string   `json:"label"`
		Out    hexBytes `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hexBytes `json:"secret"`
		Label      string   `json:"label"`
		Generation uint32   `json:"generation"`
		Length     int      `json:"length"`
		Out        hexBytes `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hexBytes `json:"priv"`
		Pub       hexBytes `json:"pub"`
		Content   hexBytes `json:"content"`
		Label     string   `json:"label"`
		Signature hexBytes `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hexBytes `json:"priv"`
		Pub        hexBytes `json:"pub"`
		Label      string   `json:"label"`
		Context    hexBytes `json:"context"`
		Plaintext  hexBytes `json:"plaintext"`
		KEMOutput  hexBytes `json:"kem_output"`
		Ciphertext hexBytes `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

func checkCryptoBasics(t *testing.T, data []byte) {
	cases := decodeVectors[cryptoBasicsCase](t, data)
	runPerSuite(t, cases, func(c cryptoBasicsCase) uint16 { return c.CipherSuite }, func(t *testing.T, cs CipherSuite, tc cryptoBasicsCase) {
		t.Run("ref_hash", func(t *testing.T) {
			v := tc.RefHash
			mustEqualBytes(t, "RefHash", cs.RefHash(v.Label, v.Value), v.Out)
		})
		t.Run("expand_with_label", func(t *testing.T) {
			v := tc.ExpandWithLabel
			out, err := cs.ExpandWithLabel(v.Secret, v.Label, v.Context, v.Length)
			if err != nil {
				t.Fatal(err)
			}
			mustEqualBytes(t, "ExpandWithLabel", out, v.Out)
		})
		t.Run("derive_secret", func(t *testing.T) {
			v := tc.DeriveSecret
			out, err := cs.DeriveSecret(v.Secret, v.Label)
			if err != nil {
				t.Fatal(err)
			}
			mustEqualBytes(t, "DeriveSecret", out, v.Out)
		})
		t.Run("derive_tree_secret", func(t *testing.T) {
			v := tc.DeriveTreeSecret
			out, err := cs.DeriveTreeSecret(v.Secret, v.Label, v.Generation, v.Length)
			if err != nil {
				t.Fatal(err)
			}
			mustEqualBytes(t, "DeriveTreeSecret", out, v.Out)
		})
		t.Run("sign_with_label", func(t *testing.T) { checkSignWithLabelVector(t, cs, tc) })
		t.Run("encrypt_with_label", func(t *testing.T) { checkEncryptWithLabelVector(t, cs, tc) })
	})
}

func checkSignWithLabelVector(t *testing.T, cs CipherSuite, tc cryptoBasicsCase) {
	v := tc.SignWithLabel
	// The given signature verifies.
	if err := cs.VerifyWithLabel(v.Pub, v.Label, v.Content, v.Signature); err != nil {
		t.Fatalf("vector signature: %v", err)
	}
	// The key pair is consistent and the public key is valid.
	pub, err := cs.SignaturePublicKey(v.Priv)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "SignaturePublicKey", pub, v.Pub)
	if err := cs.ValidateSignaturePublicKey(v.Pub); err != nil {
		t.Fatalf("ValidateSignaturePublicKey: %v", err)
	}
	// Sign fresh, verify; signing is deterministic.
	sig, err := cs.SignWithLabel(v.Priv, v.Label, v.Content, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.VerifyWithLabel(v.Pub, v.Label, v.Content, sig); err != nil {
		t.Fatalf("fresh signature: %v", err)
	}
	sig2, err := cs.SignWithLabel(v.Priv, v.Label, v.Content, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "second signature", sig2, sig)
	if cs.SignatureScheme() == sigEd25519 || cs.SignatureScheme() == sigEd448 {
		// EdDSA is deterministic by definition: our signature is the vector's.
		mustEqualBytes(t, "EdDSA signature", sig, v.Signature)
	}
	// Every single-bit flip of the signature fails with ErrInvalidSignature
	// (for long signatures, a spread of bit positions).
	for _, s := range [][]byte{v.Signature, sig} {
		step := 1
		if len(s)*8 > 256 {
			step = 7
		}
		for bit := 0; bit < len(s)*8; bit += step {
			bad := bytes.Clone(s)
			bad[bit/8] ^= 1 << (bit % 8)
			if err := cs.VerifyWithLabel(v.Pub, v.Label, v.Content, bad); !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("signature with bit %d flipped: got %v, want ErrInvalidSignature", bit, err)
			}
		}
	}
	// Wrong label, content or key.
	if err := cs.VerifyWithLabel(v.Pub, v.Label+"x", v.Content, v.Signature); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("other label: %v", err)
	}
	badContent := append(bytes.Clone(v.Content), 0)
	if err := cs.VerifyWithLabel(v.Pub, v.Label, badContent, v.Signature); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("other content: %v", err)
	}
	_, otherPub, err := cs.GenerateSignatureKeyPair(cryptoTestRand(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.VerifyWithLabel(otherPub, v.Label, v.Content, v.Signature); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("other key: %v", err)
	}
	// The label is "MLS 1.0 " + label inside SignContent, not the bare label:
	// a signature over the raw content does not verify.
	if sig, err := cs.SignWithLabel(v.Priv, "", v.Content, nil); err == nil {
		if err := cs.VerifyWithLabel(v.Pub, v.Label, v.Content, sig); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("empty-label signature accepted for label %q", v.Label)
		}
	}
}

func checkEncryptWithLabelVector(t *testing.T, cs CipherSuite, tc cryptoBasicsCase) {
	v := tc.EncryptWithLabel
	pt, err := cs.DecryptWithLabel(v.Priv, v.Label, v.Context, v.KEMOutput, v.Ciphertext)
	if err != nil {
		t.Fatalf("decrypting the vector: %v", err)
	}
	mustEqualBytes(t, "plaintext", pt, v.Plaintext)

	pub, err := cs.HPKEPublicKey(v.Priv)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "HPKEPublicKey", pub, v.Pub)
	if err := cs.ValidateHPKEPublicKey(v.Pub); err != nil {
		t.Fatalf("ValidateHPKEPublicKey: %v", err)
	}

	// Round trip, deterministic in the random source.
	kemOut, ct, err := cs.EncryptWithLabel(v.Pub, v.Label, v.Context, v.Plaintext, cryptoTestRand(7))
	if err != nil {
		t.Fatal(err)
	}
	pt, err = cs.DecryptWithLabel(v.Priv, v.Label, v.Context, kemOut, ct)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	mustEqualBytes(t, "round-trip plaintext", pt, v.Plaintext)
	kemOut2, ct2, err := cs.EncryptWithLabel(v.Pub, v.Label, v.Context, v.Plaintext, cryptoTestRand(7))
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "kem_output with the same randomness", kemOut2, kemOut)
	mustEqualBytes(t, "ciphertext with the same randomness", ct2, ct)
	kemOut3, _, err := cs.EncryptWithLabel(v.Pub, v.Label, v.Context, v.Plaintext, cryptoTestRand(8))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(kemOut3, kemOut) {
		t.Fatal("different randomness gave the same kem_output")
	}

	// Tampering: every ciphertext byte, kem_output, label, context.
	for _, c := range [][2][]byte{{v.KEMOutput, v.Ciphertext}, {kemOut, ct}} {
		for i := range c[1] {
			bad := bytes.Clone(c[1])
			bad[i] ^= 0x80
			if _, err := cs.DecryptWithLabel(v.Priv, v.Label, v.Context, c[0], bad); !errors.Is(err, ErrDecryption) {
				t.Fatalf("ciphertext byte %d tampered: got %v, want ErrDecryption", i, err)
			}
		}
		if _, err := cs.DecryptWithLabel(v.Priv, v.Label, v.Context, c[0], c[1][:len(c[1])-1]); !errors.Is(err, ErrDecryption) {
			t.Fatalf("truncated ciphertext: %v", err)
		}
		badKEM := bytes.Clone(c[0])
		badKEM[len(badKEM)-1] ^= 0x01
		if _, err := cs.DecryptWithLabel(v.Priv, v.Label, v.Context, badKEM, c[1]); !errors.Is(err, ErrDecryption) {
			t.Fatalf("tampered kem_output: %v", err)
		}
	}
	if _, err := cs.DecryptWithLabel(v.Priv, v.Label+"x", v.Context, v.KEMOutput, v.Ciphertext); !errors.Is(err, ErrDecryption) {
		t.Fatalf("other label: %v", err)
	}
	if _, err := cs.DecryptWithLabel(v.Priv, v.Label, append(bytes.Clone(v.Context), 1), v.KEMOutput, v.Ciphertext); !errors.Is(err, ErrDecryption) {
		t.Fatalf("other context: %v", err)
	}
	otherPriv, _, err := cs.GenerateHPKEKeyPair(cryptoTestRand(3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.DecryptWithLabel(otherPriv, v.Label, v.Context, v.KEMOutput, v.Ciphertext); !errors.Is(err, ErrDecryption) {
		t.Fatalf("other key: %v", err)
	}
}

// cryptoTestRand is a deterministic random source.
func cryptoTestRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

// TestDeriveKeyPairCircl checks DeriveKeyPair against circl's for seeds of
// SeedSize bytes (where circl does not panic), for every KEM.
func TestDeriveKeyPairCircl(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(cs.String(), func(t *testing.T) {
			p := cs.mustParams()
			scheme := p.kemScheme
			r := cryptoTestRand(byte(cs))
			for i := 0; i < 64; i++ {
				seed := make([]byte, scheme.SeedSize())
				io.ReadFull(r, seed)
				if i == 0 {
					clear(seed)
				}
				priv, pub, err := cs.DeriveKeyPair(seed)
				if err != nil {
					t.Fatal(err)
				}
				cpk, csk := scheme.DeriveKeyPair(seed)
				wantPriv, _ := csk.MarshalBinary()
				wantPub, _ := cpk.MarshalBinary()
				mustEqualBytes(t, "private key", priv, wantPriv)
				mustEqualBytes(t, "public key", pub, wantPub)
			}
		})
	}
}

// TestDeriveKeyPairLengths: any ikm length works, is deterministic, gives a
// consistent and usable key pair.
func TestDeriveKeyPairLengths(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(cs.String(), func(t *testing.T) {
			p := cs.mustParams()
			lengths := []int{0, 1, 16, 31, 32, 33, 48, 56, 57, 64, 65, 66, 67, 100, 1000, cs.Nh(), p.kemScheme.SeedSize()}
			seen := map[string]bool{}
			for _, n := range lengths {
				ikm := bytes.Repeat([]byte{byte(n)}, n)
				priv, pub, err := cs.DeriveKeyPair(ikm)
				if err != nil {
					t.Fatalf("len %d: %v", n, err)
				}
				priv2, pub2, err := cs.DeriveKeyPair(ikm)
				if err != nil || !bytes.Equal(priv, priv2) || !bytes.Equal(pub, pub2) {
					t.Fatalf("len %d: not deterministic", n)
				}
				if len(priv) != p.kemInfo.nsk || len(pub) != p.kemInfo.npk {
					t.Fatalf("len %d: key sizes %d/%d", n, len(priv), len(pub))
				}
				got, err := cs.HPKEPublicKey(priv)
				if err != nil {
					t.Fatal(err)
				}
				mustEqualBytes(t, "HPKEPublicKey", got, pub)
				if err := cs.ValidateHPKEPublicKey(pub); err != nil {
					t.Fatal(err)
				}
				if !seen[string(ikm)] {
					if seen[string(priv)] {
						t.Fatalf("len %d: repeated key", n)
					}
					seen[string(ikm)], seen[string(priv)] = true, true
				}
				kemOut, ct, err := cs.EncryptWithLabel(pub, "test", nil, []byte("hi"), cryptoTestRand(1))
				if err != nil {
					t.Fatal(err)
				}
				if pt, err := cs.DecryptWithLabel(priv, "test", nil, kemOut, ct); err != nil || string(pt) != "hi" {
					t.Fatalf("len %d: round trip: %v", n, err)
				}
			}
		})
	}
}

// TestDeriveKeyPairKeySchedule: external_pub of the key-schedule vectors is
// DeriveKeyPair(external_secret).public_key (§8), an Nh-byte ikm: this covers
// X448 and P-521, where Nh differs from circl's SeedSize.
func TestDeriveKeyPairKeySchedule(t *testing.T) {
	type epoch struct {
		ExternalSecret hexBytes `json:"external_secret"`
		ExternalPub    hexBytes `json:"external_pub"`
	}
	type ksCase struct {
		CipherSuite uint16  `json:"cipher_suite"`
		Epochs      []epoch `json:"epochs"`
	}
	cases := decodeVectors[ksCase](t, loadVectorFile(t, "key-schedule"))
	runPerSuite(t, cases, func(c ksCase) uint16 { return c.CipherSuite }, func(t *testing.T, cs CipherSuite, tc ksCase) {
		for i, e := range tc.Epochs {
			if len(e.ExternalSecret) != cs.Nh() {
				t.Fatalf("epoch %d: external_secret is %d bytes", i, len(e.ExternalSecret))
			}
			_, pub, err := cs.DeriveKeyPair(e.ExternalSecret)
			if err != nil {
				t.Fatal(err)
			}
			mustEqualBytes(t, "external_pub", pub, e.ExternalPub)
		}
	})
}

// TestDeriveKeyPairRejectionSampling drives the P-curve loop past counter 0.
// With the P-521 bit mask widened to 0xff, a candidate is in range only if
// its first byte is 0 or 1, so the first few counters are rejected; the
// result must be the first in-range candidate. With an impossible key
// length every candidate is rejected and DeriveKeyPairError comes back.
func TestDeriveKeyPairRejectionSampling(t *testing.T) {
	p := *MLS_256_DHKEMP521_AES256GCM_SHA512_P521.mustParams()
	k := *p.kemInfo
	k.bitmask = 0xff
	p.kemInfo = &k
	ikm := []byte("rejection sampling")
	prk := k.labeledExtract(nil, "dkp_prk", ikm)
	first := -1
	var want []byte
	for c := 0; c <= 255 && first < 0; c++ {
		cand, err := k.labeledExpand(prk, "candidate", []byte{byte(c)}, k.nsk)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.curve.NewPrivateKey(cand); err == nil {
			first, want = c, cand
		}
	}
	if first <= 0 {
		t.Fatalf("first valid counter %d; pick another ikm", first)
	}
	got, _, err := p.deriveKeyPair(ikm)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "private key after rejections", got, want)

	k.nsk = 67 // never a valid P-521 scalar encoding
	if _, _, err := p.deriveKeyPair(ikm); !errors.Is(err, errDeriveKeyPair) {
		t.Fatalf("got %v, want errDeriveKeyPair", err)
	}
}

func TestGenerateKeyPairsDeterministic(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(cs.String(), func(t *testing.T) {
			sk1, pk1, err := cs.GenerateSignatureKeyPair(cryptoTestRand(5))
			if err != nil {
				t.Fatal(err)
			}
			sk2, pk2, err := cs.GenerateSignatureKeyPair(cryptoTestRand(5))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sk1, sk2) || !bytes.Equal(pk1, pk2) {
				t.Fatal("GenerateSignatureKeyPair is not deterministic in rand")
			}
			if err := cs.ValidateSignaturePublicKey(pk1); err != nil {
				t.Fatal(err)
			}
			sig, err := cs.SignWithLabel(sk1, "L", []byte("c"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := cs.VerifyWithLabel(pk1, "L", []byte("c"), sig); err != nil {
				t.Fatal(err)
			}

			hk1, hp1, err := cs.GenerateHPKEKeyPair(cryptoTestRand(5))
			if err != nil {
				t.Fatal(err)
			}
			hk2, hp2, err := cs.GenerateHPKEKeyPair(cryptoTestRand(5))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(hk1, hk2) || !bytes.Equal(hp1, hp2) {
				t.Fatal("GenerateHPKEKeyPair is not deterministic in rand")
			}
			hk3, _, _ := cs.GenerateHPKEKeyPair(cryptoTestRand(6))
			if bytes.Equal(hk1, hk3) {
				t.Fatal("different randomness gave the same HPKE key")
			}

			// No randomness, short randomness.
			if _, _, err := cs.GenerateSignatureKeyPair(nil); err == nil {
				t.Fatal("nil rand accepted")
			}
			if _, _, err := cs.GenerateHPKEKeyPair(nil); err == nil {
				t.Fatal("nil rand accepted")
			}
			if _, _, err := cs.EncryptWithLabel(hp1, "L", nil, nil, nil); err == nil {
				t.Fatal("nil rand accepted")
			}
			short := bytes.NewReader(make([]byte, 3))
			if _, _, err := cs.EncryptWithLabel(hp1, "L", nil, nil, short); !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrInvalidKey) {
				t.Fatalf("short rand: %v", err)
			}
			if _, _, err := cs.GenerateSignatureKeyPair(bytes.NewReader(nil)); err == nil {
				t.Fatal("empty rand accepted")
			}
		})
	}
}

// TestECDSAKeyGenRejectsOutOfRange: an all-0xff scalar is >= n for every
// NIST curve (P-521 after masking: 2^521-1 > n); key generation must skip it.
func TestECDSAKeyGenRejectsOutOfRange(t *testing.T) {
	for _, cs := range []CipherSuite{2, 5, 7} {
		n := cs.mustParams().sigInfo.scalarSize
		stream := append(bytes.Repeat([]byte{0xff}, n), bytes.Repeat([]byte{0}, n)...)
		good := bytes.Repeat([]byte{0x01}, n)
		stream = append(stream, good...)
		priv, _, err := cs.GenerateSignatureKeyPair(bytes.NewReader(stream))
		if err != nil {
			t.Fatalf("%v: %v", cs, err)
		}
		want := bytes.Clone(good)
		if cs == 5 {
			want[0] &= 1
		}
		mustEqualBytes(t, cs.String()+" scalar", priv, want)
		// A source that only ever yields out-of-range scalars fails, it does
		// not loop forever.
		if _, _, err := cs.GenerateSignatureKeyPair(cryptoConstReader(0xff)); err == nil {
			t.Fatalf("%v: all-0xff source accepted", cs)
		}
	}
}

type cryptoConstReader byte

func (c cryptoConstReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(c)
	}
	return len(b), nil
}

// TestUnsupportedSuite: every method that can fail reports an unknown suite
// as *UnsupportedCipherSuiteError rather than panicking.
func TestUnsupportedSuite(t *testing.T) {
	for _, cs := range []CipherSuite{0, 8, 0xffff} {
		var u *UnsupportedCipherSuiteError
		errs := []error{}
		_, _, err := cs.GenerateSignatureKeyPair(cryptoTestRand(1))
		errs = append(errs, err)
		_, err = cs.SignaturePublicKey(make([]byte, 32))
		errs = append(errs, err)
		_, err = cs.SignWithLabel(make([]byte, 32), "L", nil, nil)
		errs = append(errs, err)
		errs = append(errs, cs.VerifyWithLabel(make([]byte, 32), "L", nil, nil))
		errs = append(errs, cs.ValidateSignaturePublicKey(make([]byte, 32)))
		errs = append(errs, cs.ValidateHPKEPublicKey(make([]byte, 32)))
		_, _, err = cs.DeriveKeyPair(nil)
		errs = append(errs, err)
		_, _, err = cs.GenerateHPKEKeyPair(cryptoTestRand(1))
		errs = append(errs, err)
		_, _, err = cs.EncryptWithLabel(make([]byte, 32), "L", nil, nil, cryptoTestRand(1))
		errs = append(errs, err)
		_, err = cs.DecryptWithLabel(make([]byte, 32), "L", nil, nil, nil)
		errs = append(errs, err)
		_, err = cs.HPKEPublicKey(make([]byte, 32))
		errs = append(errs, err)
		_, err = cs.ExpandWithLabel(make([]byte, 32), "L", nil, 16)
		errs = append(errs, err)
		_, err = cs.DeriveSecret(make([]byte, 32), "L")
		errs = append(errs, err)
		_, err = cs.DeriveTreeSecret(make([]byte, 32), "L", 0, 16)
		errs = append(errs, err)
		_, err = cs.AEAD(make([]byte, 16))
		errs = append(errs, err)
		for i, err := range errs {
			if !errors.As(err, &u) {
				t.Errorf("suite 0x%04x, call %d: got %v, want UnsupportedCipherSuiteError", uint16(cs), i, err)
			}
		}
	}
}

// TestLabeledEncodings pins the SignContent / EncryptContext and KDFLabel
// encodings, including the 2-byte and 4-byte varint length forms.
func TestLabeledEncodings(t *testing.T) {
	got, err := mlsLabeledPair("X", []byte{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "short", got, append(append([]byte{9}, "MLS 1.0 X"...), 2, 1, 2))
	for _, n := range []int{63, 64, 16383, 16384, 70000} {
		v := make([]byte, n)
		got, err := mlsLabeledPair("", v)
		if err != nil {
			t.Fatal(err)
		}
		want := append([]byte{8}, "MLS 1.0 "...)
		switch {
		case n < 64:
			want = append(want, byte(n))
		case n < 16384:
			want = append(want, byte(n>>8)|0x40, byte(n))
		default:
			want = append(want, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
		}
		mustEqualBytes(t, "long", got, append(want, v...))
		// RefHash streams the same encoding.
		cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
		enc := append(appendVarintPrefix([]byte{3}, 0)[:0], 3)
		enc = append(enc, "abc"...)
		enc = appendVarintPrefix(enc, n)
		enc = append(enc, v...)
		mustEqualBytes(t, "RefHash", cs.RefHash("abc", v), cs.Hash(enc))
	}
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	if _, err := cs.ExpandWithLabel(make([]byte, 32), "L", nil, 1<<16); err == nil {
		t.Fatal("length 65536 accepted")
	}
	if _, err := cs.ExpandWithLabel(make([]byte, 32), "L", nil, 255*32+1); err == nil {
		t.Fatal("HKDF output longer than 255*Nh accepted")
	}
}
