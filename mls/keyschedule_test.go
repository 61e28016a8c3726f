package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
)

func init() { registerVector("key-schedule", checkKeySchedule) }

type keyScheduleVector struct {
	CipherSuite       uint16   `json:"cipher_suite"`
	GroupID           hexBytes `json:"group_id"`
	InitialInitSecret hexBytes `json:"initial_init_secret"`
	Epochs            []struct {
		TreeHash                hexBytes `json:"tree_hash"`
		CommitSecret            hexBytes `json:"commit_secret"`
		PSKSecret               hexBytes `json:"psk_secret"`
		ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`

		GroupContext hexBytes `json:"group_context"`

		JoinerSecret  hexBytes `json:"joiner_secret"`
		WelcomeSecret hexBytes `json:"welcome_secret"`
		InitSecret    hexBytes `json:"init_secret"`

		SenderDataSecret   hexBytes `json:"sender_data_secret"`
		EncryptionSecret   hexBytes `json:"encryption_secret"`
		ExporterSecret     hexBytes `json:"exporter_secret"`
		EpochAuthenticator hexBytes `json:"epoch_authenticator"`
		ExternalSecret     hexBytes `json:"external_secret"`
		ConfirmationKey    hexBytes `json:"confirmation_key"`
		MembershipKey      hexBytes `json:"membership_key"`
		ResumptionPSK      hexBytes `json:"resumption_psk"`

		ExternalPub hexBytes `json:"external_pub"`
		Exporter    struct {
			// A plain string (which happens to look like hex), used
			// verbatim as the exporter label.
			Label   string   `json:"label"`
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Secret  hexBytes `json:"secret"`
		} `json:"exporter"`
	} `json:"epochs"`
}

func checkKeySchedule(t *testing.T, data []byte) {
	cases := decodeVectors[keyScheduleVector](t, data)
	runPerSuite(t, cases, func(tc keyScheduleVector) uint16 { return tc.CipherSuite }, func(t *testing.T, cs CipherSuite, tc keyScheduleVector) {
		initSecret := []byte(tc.InitialInitSecret)
		for i, ep := range tc.Epochs {
			t.Run(fmt.Sprintf("epoch-%d", i), func(t *testing.T) {
				gc := &GroupContext{
					Version:                 ProtocolMLS10,
					CipherSuite:             cs,
					GroupID:                 tc.GroupID,
					Epoch:                   uint64(i),
					TreeHash:                ep.TreeHash,
					ConfirmedTranscriptHash: ep.ConfirmedTranscriptHash,
					Extensions:              []Extension{},
				}
				gcBytes, err := gc.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				mustEqualBytes(t, "group_context", gcBytes, ep.GroupContext)

				e, err := newEpochSecrets(cs, initSecret, ep.CommitSecret, ep.PSKSecret, gc)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range []struct {
					name      string
					got, want []byte
				}{
					{"joiner_secret", e.JoinerSecret, ep.JoinerSecret},
					{"welcome_secret", e.WelcomeSecret, ep.WelcomeSecret},
					{"init_secret", e.InitSecret, ep.InitSecret},
					{"sender_data_secret", e.SenderDataSecret, ep.SenderDataSecret},
					{"encryption_secret", e.EncryptionSecret, ep.EncryptionSecret},
					{"exporter_secret", e.ExporterSecret, ep.ExporterSecret},
					{"epoch_authenticator", e.EpochAuthenticator, ep.EpochAuthenticator},
					{"external_secret", e.ExternalSecret, ep.ExternalSecret},
					{"confirmation_key", e.ConfirmationKey, ep.ConfirmationKey},
					{"membership_key", e.MembershipKey, ep.MembershipKey},
					{"resumption_psk", e.ResumptionPSK, ep.ResumptionPSK},
				} {
					mustEqualBytes(t, f.name, f.got, f.want)
				}

				// A joiner gets the same schedule from joiner_secret.
				w, err := deriveWelcomeSecret(cs, ep.JoinerSecret, ep.PSKSecret)
				if err != nil {
					t.Fatal(err)
				}
				mustEqualBytes(t, "welcome_secret from joiner_secret", w, ep.WelcomeSecret)
				j, err := epochSecretsFromJoiner(cs, ep.JoinerSecret, ep.PSKSecret, gc)
				if err != nil {
					t.Fatal(err)
				}
				mustEqualBytes(t, "init_secret via joiner", j.InitSecret, ep.InitSecret)

				// The snapshot encoding round-trips.
				enc, err := e.marshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				back, err := unmarshalEpochSecrets(enc)
				if err != nil {
					t.Fatal(err)
				}
				mustEqualBytes(t, "restored membership_key", back.MembershipKey, ep.MembershipKey)

				out, err := e.exporter(ep.Exporter.Label, ep.Exporter.Context, ep.Exporter.Length)
				if err != nil {
					t.Fatal(err)
				}
				mustEqualBytes(t, "exporter secret", out, ep.Exporter.Secret)

				// Last, as it depends on the KEM's DeriveKeyPair.
				_, pub, err := e.externalKeyPair()
				if err != nil {
					t.Errorf("external key pair: %v", err)
				} else if !bytes.Equal(pub, ep.ExternalPub) {
					t.Errorf("external_pub mismatch:\n got  %x\n want %x", pub, ep.ExternalPub)
				}
			})
			initSecret = ep.InitSecret
		}
	})
}

func TestKeyScheduleInputs(t *testing.T) {
	cs := testSuite
	gc := &GroupContext{Version: ProtocolMLS10, CipherSuite: cs, GroupID: []byte("g"), Extensions: []Extension{}}
	init := bytes.Repeat([]byte{1}, 32)
	// nil commit_secret and psk_secret are the zero vectors.
	a, err := newEpochSecrets(cs, init, nil, nil, gc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newEpochSecrets(cs, init, make([]byte, 32), make([]byte, 32), gc)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "zero commit/psk secret", a.EpochAuthenticator, b.EpochAuthenticator)

	for name, f := range map[string]func() error{
		"short init_secret": func() error { _, err := newEpochSecrets(cs, init[:31], nil, nil, gc); return err },
		"short commit_secret": func() error {
			_, err := newEpochSecrets(cs, init, make([]byte, 16), nil, gc)
			return err
		},
		"long psk_secret":  func() error { _, err := newEpochSecrets(cs, init, nil, make([]byte, 33), gc); return err },
		"nil GroupContext": func() error { _, err := newEpochSecrets(cs, init, nil, nil, nil); return err },
		"suite mismatch": func() error {
			_, err := newEpochSecrets(MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448, make([]byte, 64), nil, nil, gc)
			return err
		},
		"unknown suite": func() error { _, err := newEpochSecrets(CipherSuite(9), init, nil, nil, gc); return err },
		"nil rand":      func() error { _, err := initialEpochSecrets(cs, nil); return err },
		"huge export":   func() error { _, err := a.exporter("x", nil, 255*32+1); return err },
	} {
		if err := f(); err == nil {
			t.Errorf("%s accepted", name)
		} else if err.Error()[:5] != "mls: " {
			t.Errorf("%s: error %q", name, err)
		}
	}

	// The secret tree consumes encryption_secret.
	tree, err := a.newSecretTree(4, SecretTreeOptions{})
	if err != nil || a.EncryptionSecret != nil {
		t.Fatalf("newSecretTree: %v, encryption_secret %x", err, a.EncryptionSecret)
	}
	if _, err := a.newSecretTree(4, SecretTreeOptions{}); err == nil {
		t.Fatal("secret tree built twice from one encryption_secret")
	}
	_, k1, _, _ := tree.nextSendKey(1, ApplicationRatchet)
	t2, _ := b.newSecretTree(4, SecretTreeOptions{})
	k2, _, _ := t2.receiveKey(1, ApplicationRatchet, 0)
	mustEqualBytes(t, "secret tree from the key schedule", k2, k1)

	// joiner/welcome secrets can be dropped; clone is independent.
	c := a.clone()
	a.dropJoinerSecrets()
	if a.JoinerSecret != nil || a.WelcomeSecret != nil || len(c.JoinerSecret) != 32 {
		t.Fatal("dropJoinerSecrets")
	}
	a.wipe()
	if a.InitSecret != nil || len(c.InitSecret) != 32 || bytes.Equal(c.InitSecret, make([]byte, 32)) {
		t.Fatal("wipe affected the clone")
	}

	// Group creation: a random epoch_secret.
	g0, err := initialEpochSecrets(cs, rand.Reader)
	if err != nil || len(g0.InitSecret) != 32 || g0.JoinerSecret != nil {
		t.Fatalf("initial epoch: %v", err)
	}

	// Confirmation tag.
	cth := []byte("transcript")
	tag := g0.confirmationTag(cth)
	if !g0.verifyConfirmationTag(cth, tag) || g0.verifyConfirmationTag([]byte("other"), tag) {
		t.Fatal("confirmation tag")
	}

	// Snapshot validation.
	enc, _ := g0.marshalBinary()
	if _, err := unmarshalEpochSecrets(enc[:len(enc)-1]); err == nil {
		t.Error("truncated epoch secrets accepted")
	}
	if _, err := unmarshalEpochSecrets(append([]byte{1, 0, 1, 1, 0}, enc[5:]...)); err == nil {
		t.Error("secret of wrong length accepted")
	}
}

func TestWelcomeKeyNonce(t *testing.T) {
	for _, cs := range CipherSuites {
		w := bytes.Repeat([]byte{7}, cs.Nh())
		key, nonce, err := welcomeKeyNonce(cs, w)
		if err != nil {
			t.Fatal(err)
		}
		wantKey, _ := cs.ExpandWithLabel(w, "key", []byte{}, cs.Nk())
		wantNonce, _ := cs.ExpandWithLabel(w, "nonce", []byte{}, cs.Nn())
		mustEqualBytes(t, "welcome_key", key, wantKey)
		mustEqualBytes(t, "welcome_nonce", nonce, wantNonce)
		if _, err := cs.AEAD(key); err != nil {
			t.Fatalf("%v: welcome key does not fit the AEAD: %v", cs, err)
		}
	}
}

func TestExternalInit(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(cs.String(), func(t *testing.T) {
			scheme := cs.mustParams().kemScheme
			pk, sk, err := scheme.GenerateKeyPair()
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := pk.MarshalBinary()
			priv, _ := sk.MarshalBinary()
			kemOutput, initSend, err := externalInitSecretSend(cs, pub, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if len(initSend) != cs.Nh() {
				t.Fatalf("init_secret of %d bytes", len(initSend))
			}
			initRecv, err := externalInitSecretReceive(cs, priv, kemOutput)
			if err != nil {
				t.Fatal(err)
			}
			mustEqualBytes(t, "init_secret", initRecv, initSend)

			// The KEM output depends only on the randomness read.
			seed := bytes.Repeat([]byte{3}, scheme.EncapsulationSeedSize())
			k1, s1, err := externalInitSecretSend(cs, pub, bytes.NewReader(seed))
			if err != nil {
				t.Fatal(err)
			}
			k2, s2, _ := externalInitSecretSend(cs, pub, bytes.NewReader(seed))
			mustEqualBytes(t, "deterministic kem_output", k2, k1)
			mustEqualBytes(t, "deterministic init_secret", s2, s1)

			if _, _, err := externalInitSecretSend(cs, pub[:len(pub)-1], rand.Reader); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("short external_pub: %v", err)
			}
			if _, _, err := externalInitSecretSend(cs, pub, nil); err == nil {
				t.Error("nil rand accepted")
			}
			if _, _, err := externalInitSecretSend(cs, pub, bytes.NewReader(nil)); err == nil {
				t.Error("empty rand accepted")
			}
			if _, err := externalInitSecretReceive(cs, priv, kemOutput[:len(kemOutput)-1]); !errors.Is(err, ErrDecryption) {
				t.Errorf("short kem_output: %v", err)
			}
			if _, err := externalInitSecretReceive(cs, priv[:len(priv)-1], kemOutput); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("short external_priv: %v", err)
			}
		})
	}
}

// TestExternalInitWithDerivedKey runs §8.3 end to end from a key schedule:
// the group's external_pub (DeriveKeyPair of external_secret) to the joiner,
// and both sides reaching the same next epoch.
func TestExternalInitWithDerivedKey(t *testing.T) {
	cs := testSuite
	e, err := initialEpochSecrets(cs, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := e.externalKeyPair()
	if err != nil {
		t.Fatalf("external key pair: %v", err)
	}
	kemOutput, joinerInit, err := externalInitSecretSend(cs, pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	memberInit, err := externalInitSecretReceive(cs, priv, kemOutput)
	if err != nil {
		t.Fatal(err)
	}
	gc := &GroupContext{Version: ProtocolMLS10, CipherSuite: cs, GroupID: []byte("g"), Epoch: 1, Extensions: []Extension{}}
	a, _ := newEpochSecrets(cs, joinerInit, nil, nil, gc)
	b, _ := newEpochSecrets(cs, memberInit, nil, nil, gc)
	mustEqualBytes(t, "epoch_authenticator after external init", a.EpochAuthenticator, b.EpochAuthenticator)
}
