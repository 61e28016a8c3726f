package mls

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkKeySchedule measures one epoch of the key schedule: joiner,
// welcome and epoch secrets and the nine epoch-derived secrets (§8).
func BenchmarkKeySchedule(b *testing.B) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	b.Run("suite=1", func(b *testing.B) {
		gc := &GroupContext{
			Version: ProtocolMLS10, CipherSuite: cs, GroupID: bytes.Repeat([]byte{1}, 32), Epoch: 7,
			TreeHash: bytes.Repeat([]byte{2}, 32), ConfirmedTranscriptHash: bytes.Repeat([]byte{3}, 32),
			Extensions: []Extension{},
		}
		initSecret := bytes.Repeat([]byte{4}, 32)
		commitSecret := bytes.Repeat([]byte{5}, 32)
		b.ReportAllocs()
		for b.Loop() {
			e, err := newEpochSecrets(cs, initSecret, commitSecret, nil, gc)
			if err != nil {
				b.Fatal(err)
			}
			e.wipe()
		}
	})
}

// BenchmarkSecretTreeNextKey measures the first key of the last leaf of a
// fresh epoch's secret tree, the worst case of the lazy derivation: it
// splits one node per level, so the cost grows with log n (n=10 has 4
// levels, n=10000 has 14), not with n.
func BenchmarkSecretTreeNextKey(b *testing.B) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	b.Run("suite=1", func(b *testing.B) {
		secret := bytes.Repeat([]byte{0x42}, cs.Nh())
		for _, n := range []uint32{10, 10000} {
			b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					t, err := newSecretTree(cs, secret, n, SecretTreeOptions{})
					if err != nil {
						b.Fatal(err)
					}
					if _, _, _, err := t.nextSendKey(LeafIndex(n-1), ApplicationRatchet); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// BenchmarkSecretTreeRatchet measures the steady state: the next key of a
// ratchet already derived (one hash-ratchet step, independent of n).
func BenchmarkSecretTreeRatchet(b *testing.B) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	b.Run("suite=1", func(b *testing.B) {
		t, err := newSecretTree(cs, bytes.Repeat([]byte{0x42}, cs.Nh()), 10000, SecretTreeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, err := t.nextSendKey(1234, ApplicationRatchet); err != nil {
				b.Fatal(err)
			}
		}
	})
}
