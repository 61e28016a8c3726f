package mls

import (
	"bytes"
	"errors"
	"testing"
)

// Group-level test vectors: "welcome" (decrypting and verifying a
// Welcome) and the passive-client scenarios (joining from a Welcome, then
// following every epoch's proposals and Commit), including the
// interop-passive transcripts recorded from other MLS stacks.

func init() {
	registerVector("welcome", checkWelcomeVectors)
	for _, name := range []string{
		"passive-client-welcome",
		"passive-client-handling-commit",
		"passive-client-random",
		"interop-passive-application",
		"interop-passive-branch",
		"interop-passive-commit",
		"interop-passive-external_join",
		"interop-passive-external_proposals",
		"interop-passive-reinit",
		"interop-passive-welcome_join",
	} {
		registerVector(name, checkPassiveClientVectors)
	}
}

type welcomeVector struct {
	CipherSuite uint16   `json:"cipher_suite"`
	InitPriv    hexBytes `json:"init_priv"`
	SignerPub   hexBytes `json:"signer_pub"`
	KeyPackage  hexBytes `json:"key_package"`
	Welcome     hexBytes `json:"welcome"`
}

func checkWelcomeVectors(t *testing.T, data []byte) {
	cases := decodeVectors[welcomeVector](t, data)
	runPerSuite(t, cases, func(tc welcomeVector) uint16 { return tc.CipherSuite }, func(t *testing.T, cs CipherSuite, tc welcomeVector) {
		var m MLSMessage
		if err := m.Unmarshal(tc.KeyPackage); err != nil || m.WireFormat != WireFormatKeyPackage {
			t.Fatalf("key_package: %v", err)
		}
		bundle := &KeyPackageBundle{KeyPackage: *m.KeyPackage, InitPriv: tc.InitPriv}
		s, err := OpenWelcome(tc.Welcome, []*KeyPackageBundle{bundle})
		if err != nil {
			t.Fatalf("OpenWelcome: %v", err)
		}
		if s.CipherSuite() != cs {
			t.Fatalf("cipher suite %v", s.CipherSuite())
		}
		if err := s.gi.VerifySignature(tc.SignerPub); err != nil {
			t.Fatalf("GroupInfo signature: %v", err)
		}
		secrets, err := epochSecretsFromJoiner(cs, s.gs.JoinerSecret, s.pskSecret, &s.gi.GroupContext)
		if err != nil {
			t.Fatal(err)
		}
		if !secrets.verifyConfirmationTag(s.gi.GroupContext.ConfirmedTranscriptHash, s.gi.ConfirmationTag) {
			t.Fatal("confirmation tag does not verify")
		}
		// A Welcome for another KeyPackage is refused.
		other := *bundle
		other.KeyPackage.InitKey = append([]byte(nil), bundle.KeyPackage.InitKey...)
		other.KeyPackage.InitKey[len(other.KeyPackage.InitKey)-1] ^= 1
		if _, err := OpenWelcome(tc.Welcome, []*KeyPackageBundle{&other}); !errors.Is(err, ErrNoMatchingKeyPackage) {
			t.Fatalf("Welcome for another key package: %v", err)
		}
	})
}

type passiveClientVector struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage     hexBytes `json:"key_package"`
	SignaturePriv  hexBytes `json:"signature_priv"`
	EncryptionPriv hexBytes `json:"encryption_priv"`
	InitPriv       hexBytes `json:"init_priv"`
	Welcome        hexBytes `json:"welcome"`
	RatchetTree    hexBytes `json:"ratchet_tree"`
	InitialEA      hexBytes `json:"initial_epoch_authenticator"`
	Epochs         []struct {
		Proposals          []hexBytes `json:"proposals"`
		Commit             hexBytes   `json:"commit"`
		EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

func checkPassiveClientVectors(t *testing.T, data []byte) {
	cases := decodeVectors[passiveClientVector](t, data)
	runPerSuite(t, cases, func(tc passiveClientVector) uint16 { return tc.CipherSuite }, checkPassiveClient)
}

func checkPassiveClient(t *testing.T, cs CipherSuite, tc passiveClientVector) {
	var m MLSMessage
	if err := m.Unmarshal(tc.KeyPackage); err != nil || m.WireFormat != WireFormatKeyPackage {
		t.Fatalf("key_package: %v", err)
	}
	kp := m.KeyPackage
	bundle := &KeyPackageBundle{KeyPackage: *kp, InitPriv: tc.InitPriv, EncryptionPriv: tc.EncryptionPriv, SignaturePriv: tc.SignaturePriv}
	for _, k := range []struct {
		what      string
		pub, priv []byte
		derive    func([]byte) ([]byte, error)
	}{
		{"signature", kp.LeafNode.SignatureKey, tc.SignaturePriv, cs.SignaturePublicKey},
		{"encryption", kp.LeafNode.EncryptionKey, tc.EncryptionPriv, cs.HPKEPublicKey},
		{"init", kp.InitKey, tc.InitPriv, cs.HPKEPublicKey},
	} {
		pub, err := k.derive(k.priv)
		if err != nil {
			t.Fatalf("%s key: %v", k.what, err)
		}
		mustEqualBytes(t, k.what+" public key", pub, k.pub)
	}
	opts := []Option{WithRandom(testRand(1))}
	for _, psk := range tc.ExternalPSKs {
		opts = append(opts, WithExternalPSK(psk.PSKID, psk.PSK))
	}
	g, err := JoinFromWelcome(tc.Welcome, bundle, tc.RatchetTree, opts...)
	if err != nil {
		t.Fatalf("joining: %v", err)
	}
	mustEqualBytes(t, "initial epoch authenticator", g.EpochAuthenticator(), tc.InitialEA)
	for i, e := range tc.Epochs {
		for j, p := range e.Proposals {
			r, err := g.Process(p)
			if err != nil {
				t.Fatalf("epoch %d: proposal %d: %v", i, j, err)
			}
			if r.ContentType != ContentTypeProposal {
				t.Fatalf("epoch %d: proposal %d is a %v", i, j, r.ContentType)
			}
		}
		before := g.Epoch()
		r, err := g.Process(e.Commit)
		if err != nil {
			t.Fatalf("epoch %d (group epoch %d): commit: %v", i, before, err)
		}
		if r.Commit == nil || g.Epoch() != before+1 {
			t.Fatalf("epoch %d: commit not applied (epoch %d -> %d)", i, before, g.Epoch())
		}
		if !bytes.Equal(g.EpochAuthenticator(), e.EpochAuthenticator) {
			t.Fatalf("epoch %d: epoch authenticator mismatch:\n got  %x\n want %x", i, g.EpochAuthenticator(), e.EpochAuthenticator)
		}
	}
}
