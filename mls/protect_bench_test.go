package mls

import (
	"crypto/ed25519"
	"fmt"
	"testing"
)

// Benchmarks of message protection for a 100-byte application message.
//
// BenchmarkProtect: one iteration = sign, pad, encrypt (next generation of
// the sender's application ratchet, so every iteration derives a fresh key
// and nonce and no key is ever reused) and encode the MLSMessage.
//
// BenchmarkUnprotect: one iteration = decode the MLSMessage, open the
// sender data, derive the content key, open the content, decode it and
// verify the signature (the group's check), then consume the key. Keys
// cannot be reused (a replay fails with ErrKeyConsumed), so the b.N
// messages are produced before the timer starts by a sender with its own
// secret tree; the receiver, with a fresh tree, then opens them in order,
// each iteration deriving exactly one ratchet step as in-order delivery
// does in production.
func BenchmarkProtect(b *testing.B) {
	for _, cs := range CipherSuites {
		b.Run(fmt.Sprintf("suite=%d", cs), func(b *testing.B) {
			p := newProtectFixture(b, cs, 2, 77)
			send := p.framing(b, PaddingPolicy{})
			fc := p.content(1, ContentTypeApplication)
			fc.ApplicationData = make([]byte, 100)
			priv := p.sigPriv[1]
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				pm, err := send.protectPrivate(fc, priv, nil, p.rng)
				if err != nil {
					b.Fatal(err)
				}
				m := MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}
				if _, err := m.Marshal(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnprotect(b *testing.B) {
	for _, cs := range CipherSuites {
		b.Run(fmt.Sprintf("suite=%d", cs), func(b *testing.B) {
			p := newProtectFixture(b, cs, 2, 78)
			send := p.framing(b, PaddingPolicy{})
			fc := p.content(1, ContentTypeApplication)
			fc.ApplicationData = make([]byte, 100)
			wires := make([][]byte, b.N)
			for i := range wires {
				wires[i] = p.private(b, send, fc)
			}
			recv := p.framing(b, PaddingPolicy{})
			check := p.check(recv)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				var m MLSMessage
				if err := m.Unmarshal(wires[i]); err != nil {
					b.Fatal(err)
				}
				if _, _, err := recv.unprotectMessage(&m, check); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProtectFloor measures the bare Ed25519 operations of suite 1 on
// the same kind of input (a ~300-byte FramedContentTBS), the floor under
// BenchmarkProtect and BenchmarkUnprotect.
func BenchmarkProtectFloor(b *testing.B) {
	p := newProtectFixture(b, 1, 2, 79)
	f := p.framing(b, PaddingPolicy{})
	fc := p.content(1, ContentTypeApplication)
	fc.ApplicationData = make([]byte, 100)
	tbs, err := f.contentTBS(WireFormatPrivateMessage, fc)
	if err != nil {
		b.Fatal(err)
	}
	msg, err := mlsLabeledPair("FramedContentTBS", tbs)
	if err != nil {
		b.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(p.sigPriv[1])
	sig := ed25519.Sign(key, msg)
	b.Run("sign", func(b *testing.B) {
		for range b.N {
			ed25519.Sign(key, msg)
		}
	})
	b.Run("verify", func(b *testing.B) {
		for range b.N {
			if !ed25519.Verify(p.sigPub[1], msg, sig) {
				b.Fatal("verify")
			}
		}
	})
}
