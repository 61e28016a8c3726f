package mls

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// privateLayout returns the offsets of the encrypted_sender_data and
// ciphertext bodies inside an encoded MLSMessage(PrivateMessage).
func protectPrivateLayout(t *testing.T, wire []byte) (sdStart, sdEnd, ctStart, ctEnd int) {
	t.Helper()
	var m MLSMessage
	if err := m.Unmarshal(wire); err != nil {
		t.Fatal(err)
	}
	pm := m.PrivateMessage
	ctStart = len(wire) - len(pm.Ciphertext)
	sdEnd = ctStart - varintSize(len(pm.Ciphertext))
	sdStart = sdEnd - len(pm.EncryptedSenderData)
	if !bytes.Equal(wire[ctStart:], pm.Ciphertext) || !bytes.Equal(wire[sdStart:sdEnd], pm.EncryptedSenderData) {
		t.Fatal("layout computation is wrong")
	}
	return sdStart, sdEnd, ctStart, len(wire)
}

// TestProtectTamperPrivate flips every bit of a PrivateMessage: each copy
// fails with a clear error, and none of the failures consumes the key (the
// original still opens afterwards with the same receiver).
func TestProtectTamperPrivate(t *testing.T) {
	for _, cs := range []CipherSuite{1, 3, 7} {
		t.Run(fmt.Sprintf("suite=%d", cs), func(t *testing.T) {
			p := newProtectFixture(t, cs, 2, 5)
			send, recv := p.framing(t, PaddingPolicy{}), p.framing(t, PaddingPolicy{})
			for _, ct := range []ContentType{ContentTypeApplication, ContentTypeProposal, ContentTypeCommit} {
				wire := p.private(t, send, p.content(1, ct))
				sdStart, sdEnd, ctStart, ctEnd := protectPrivateLayout(t, wire)
				for i := range wire {
					for bit := range 8 {
						bad := bytes.Clone(wire)
						bad[i] ^= 1 << bit
						_, err := p.receive(recv, bad)
						if err == nil {
							t.Fatalf("%v: flipping bit %d of byte %d was accepted", ct, bit, i)
						}
						if !strings.HasPrefix(err.Error(), "mls: ") {
							t.Fatalf("error without mls: prefix: %v", err)
						}
						inBody := (i >= sdStart && i < sdEnd) || (i >= ctStart && i < ctEnd)
						if inBody && !errors.Is(err, ErrDecryption) {
							t.Fatalf("%v: flipping byte %d (sender data or ciphertext): %v, want ErrDecryption", ct, i, err)
						}
						if !errors.Is(err, ErrDecryption) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrEpochMismatch) {
							t.Fatalf("%v: flipping byte %d: unexpected error %v", ct, i, err)
						}
					}
				}
				if _, err := p.receive(recv, wire); err != nil {
					t.Fatalf("%v: original after tampered copies: %v", ct, err)
				}
			}
		})
	}
}

// TestProtectTamperPublic flips every bit of PublicMessages from a member,
// an external sender and a new member.
func TestProtectTamperPublic(t *testing.T) {
	// Ed448 verification is slow: one flipped bit per byte for suite 4.
	for _, tc := range []struct {
		cs   CipherSuite
		bits int
	}{{1, 8}, {2, 8}, {4, 1}} {
		cs := tc.cs
		t.Run(fmt.Sprintf("suite=%d", cs), func(t *testing.T) {
			p := newProtectFixture(t, cs, 2, 6)
			f := p.framing(t, PaddingPolicy{})
			ext := p.content(0, ContentTypeProposal)
			ext.Sender = Sender{Type: SenderExternal, SenderIndex: 0}
			join := p.content(0, ContentTypeCommit)
			join.Sender = Sender{Type: SenderNewMemberCommit}
			msgs := [][]byte{
				p.public(t, f, p.content(1, ContentTypeProposal), p.sigPriv[1]),
				p.public(t, f, p.content(0, ContentTypeCommit), p.sigPriv[0]),
				p.public(t, f, ext, p.extPriv),
				p.public(t, f, join, p.joinPriv),
			}
			for mi, wire := range msgs {
				if _, err := p.receive(f, wire); err != nil {
					t.Fatalf("message %d: %v", mi, err)
				}
				var m MLSMessage
				if err := m.Unmarshal(wire); err != nil {
					t.Fatal(err)
				}
				tagStart := len(wire) - len(m.PublicMessage.MembershipTag)
				sig := m.PublicMessage.Auth.Signature
				sigStart := bytes.Index(wire, sig)
				if sigStart < 0 || bytes.Index(wire[sigStart+1:], sig) >= 0 {
					t.Fatal("cannot locate the signature")
				}
				for i := range wire {
					for bit := range tc.bits {
						bad := bytes.Clone(wire)
						bad[i] ^= 1 << bit
						_, err := p.receive(f, bad)
						if err == nil {
							t.Fatalf("message %d: flipping bit %d of byte %d was accepted", mi, bit, i)
						}
						if !strings.HasPrefix(err.Error(), "mls: ") {
							t.Fatalf("error without mls: prefix: %v", err)
						}
						hasTag := m.PublicMessage.MembershipTag != nil
						if hasTag && (i >= tagStart || i >= sigStart && i < sigStart+len(sig)) && !errors.Is(err, ErrInvalidMembershipTag) {
							t.Fatalf("message %d: flipping membership tag or signature byte %d: %v, want ErrInvalidMembershipTag", mi, i, err)
						}
						if !hasTag && i >= sigStart && i < sigStart+len(sig) && !errors.Is(err, ErrInvalidSignature) {
							t.Fatalf("message %d: flipping signature byte %d: %v, want ErrInvalidSignature", mi, i, err)
						}
					}
				}
			}
		})
	}
}

// TestProtectBadSignature: a member who knows the keys (every member can
// derive every leaf's ratchet) produces a well-encrypted message with a bad
// signature at some generation. It fails with ErrInvalidSignature and does
// not consume the key the real message at that generation needs. The same
// holds for a PublicMessage with a valid membership tag.
func TestProtectBadSignature(t *testing.T) {
	p := newProtectFixture(t, 1, 2, 7)
	send, recv := p.framing(t, PaddingPolicy{}), p.framing(t, PaddingPolicy{})
	forger := &epochFraming{}
	*forger = *send
	forger.secrets = send.secrets.clone()

	fc := p.content(1, ContentTypeApplication)
	ac, err := forger.sign(WireFormatPrivateMessage, fc, p.sigPriv[1])
	if err != nil {
		t.Fatal(err)
	}
	ac.Auth.Signature[5] ^= 1
	forged, err := forger.encryptPrivate(ac, p.rng)
	if err != nil {
		t.Fatal(err)
	}
	forgedWire := mustMarshalMLS(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: forged})
	if _, err := p.receive(recv, forgedWire); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("forged signature: %v, want ErrInvalidSignature", err)
	}
	// Signed by the wrong member.
	ac, err = forger.sign(WireFormatPrivateMessage, fc, p.sigPriv[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.receive(recv, mustMarshalMLS(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: protectMust(forger.encryptPrivate(ac, p.rng))})); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("wrong signer: %v, want ErrInvalidSignature", err)
	}
	// The real message of generation 0 still opens.
	genuine := p.private(t, send, fc)
	if got, err := p.receive(recv, genuine); err != nil {
		t.Fatalf("real message after forgeries: %v", err)
	} else {
		protectSameContent(t, got, fc)
	}

	// PublicMessage: bad signature under a valid membership tag.
	pc := p.content(1, ContentTypeProposal)
	ac, err = send.sign(WireFormatPublicMessage, pc, p.sigPriv[1])
	if err != nil {
		t.Fatal(err)
	}
	ac.Auth.Signature[0] ^= 0x80
	pm, err := send.encodePublic(ac)
	if err != nil {
		t.Fatal(err)
	}
	pubWire := mustMarshalMLS(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm})
	if _, err := p.receive(recv, pubWire); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("public bad signature: %v, want ErrInvalidSignature", err)
	}
	// Wrong membership key.
	other := *recv
	other.membershipKey = bytes.Repeat([]byte{1}, p.cs.Nh())
	if _, err := p.receive(&other, p.public(t, send, pc, p.sigPriv[1])); !errors.Is(err, ErrInvalidMembershipTag) {
		t.Fatalf("wrong membership key: %v, want ErrInvalidMembershipTag", err)
	}
}

// TestProtectPaddingRejected: non-zero padding inside a correctly encrypted
// PrivateMessageContent is rejected as malformed (§6.3.1) without consuming
// the key.
func TestProtectPaddingRejected(t *testing.T) {
	p := newProtectFixture(t, 1, 2, 8)
	send, recv := p.framing(t, PaddingPolicy{}), p.framing(t, PaddingPolicy{})
	forger := &epochFraming{}
	*forger = *send
	forger.secrets = send.secrets.clone()

	fc := p.content(0, ContentTypeApplication)
	ac, err := forger.sign(WireFormatPrivateMessage, fc, p.sigPriv[0])
	if err != nil {
		t.Fatal(err)
	}
	c := PrivateMessageContent{ContentType: fc.ContentType, ApplicationData: fc.ApplicationData, Auth: ac.Auth, PaddingLen: 40}
	pt, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pt[len(pt)-7] = 0x01
	pm, err := forger.sealPrivate(fc, pt, p.rng)
	if err != nil {
		t.Fatal(err)
	}
	wire := mustMarshalMLS(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm})
	if _, err := p.receive(recv, wire); !errors.Is(err, ErrMalformed) {
		t.Fatalf("non-zero padding: %v, want ErrMalformed", err)
	}
	// Truncated content (auth missing) is malformed too.
	forger2 := &epochFraming{}
	*forger2 = *send
	forger2.secrets = send.secrets.clone()
	pm, err = forger2.sealPrivate(fc, []byte{3, 'a', 'b', 'c'}, p.rng)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.receive(recv, mustMarshalMLS(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm})); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated content: %v, want ErrMalformed", err)
	}
	if _, err := p.receive(recv, p.private(t, send, fc)); err != nil {
		t.Fatalf("real message after malformed ones: %v", err)
	}
}

// TestProtectSenderLeafRange: sender data naming a leaf outside the tree is
// rejected after it opens, before any key derivation.
func TestProtectSenderLeafRange(t *testing.T) {
	p := newProtectFixture(t, 1, 4, 10)
	send := p.framingN(t, 4, PaddingPolicy{})
	recv := p.framingN(t, 2, PaddingPolicy{})
	var m MLSMessage
	if err := m.Unmarshal(p.private(t, send, p.content(3, ContentTypeApplication))); err != nil {
		t.Fatal(err)
	}
	_, _, err := recv.unprotectPrivate(m.PrivateMessage, nil)
	if !errors.Is(err, ErrUnknownLeaf) {
		t.Fatalf("leaf 3 of 2: %v, want ErrUnknownLeaf", err)
	}
}

func TestProtectEpochMismatch(t *testing.T) {
	p := newProtectFixture(t, 1, 2, 11)
	f := p.framing(t, PaddingPolicy{})
	for _, mutate := range []func(*FramedContent){
		func(fc *FramedContent) { fc.Epoch++ },
		func(fc *FramedContent) { fc.GroupID = []byte("other group") },
	} {
		fc := p.content(0, ContentTypeApplication)
		mutate(fc)
		if _, err := f.protectPrivate(fc, p.sigPriv[0], nil, p.rng); !errors.Is(err, ErrEpochMismatch) {
			t.Fatalf("protectPrivate: %v, want ErrEpochMismatch", err)
		}
		fc.ContentType, fc.Proposal = ContentTypeProposal, &Proposal{Type: ProposalTypeRemove, Remove: &Remove{}}
		if _, err := f.protectPublic(fc, p.sigPriv[0], nil); !errors.Is(err, ErrEpochMismatch) {
			t.Fatalf("protectPublic: %v, want ErrEpochMismatch", err)
		}
	}
	// A message of this epoch opened in the next one.
	wire := p.private(t, f, p.content(0, ContentTypeApplication))
	next := *p.ctx
	next.Epoch++
	g, err := newEpochFraming(&next, p.memberK, p.senderData, protectMust(newSecretTree(p.cs, p.encryptionSecret, 2, SecretTreeOptions{})), PaddingPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.receive(g, wire); !errors.Is(err, ErrEpochMismatch) {
		t.Fatalf("other epoch: %v, want ErrEpochMismatch", err)
	}
}

// TestProtectFramingRules covers the sender / content type / wire format
// rules of §6, §6.1 and §6.3.2.
func TestProtectFramingRules(t *testing.T) {
	p := newProtectFixture(t, 1, 2, 12)
	f := p.framing(t, PaddingPolicy{})
	withSender := func(ct ContentType, s Sender) *FramedContent {
		fc := p.content(0, ct)
		fc.Sender = s
		return fc
	}
	ext := Sender{Type: SenderExternal}
	for _, tc := range []struct {
		name string
		wf   WireFormat
		fc   *FramedContent
	}{
		{"application as PublicMessage", WireFormatPublicMessage, p.content(0, ContentTypeApplication)},
		{"external commit", WireFormatPublicMessage, withSender(ContentTypeCommit, ext)},
		{"external update proposal", WireFormatPublicMessage, func() *FramedContent {
			fc := withSender(ContentTypeProposal, ext)
			fc.Proposal = &Proposal{Type: ProposalTypeUpdate, Update: &Update{}}
			return fc
		}()},
		{"new_member_proposal remove", WireFormatPublicMessage, withSender(ContentTypeProposal, Sender{Type: SenderNewMemberProposal})},
		{"new_member_commit proposal", WireFormatPublicMessage, withSender(ContentTypeProposal, Sender{Type: SenderNewMemberCommit})},
		{"external PrivateMessage", WireFormatPrivateMessage, withSender(ContentTypeProposal, ext)},
		{"new member PrivateMessage", WireFormatPrivateMessage, withSender(ContentTypeCommit, Sender{Type: SenderNewMemberCommit})},
		{"welcome wire format", WireFormatWelcome, p.content(0, ContentTypeProposal)},
	} {
		if _, err := f.sign(tc.wf, tc.fc, p.sigPriv[0]); !errors.Is(err, ErrInvalidFraming) {
			t.Errorf("%s: sign: %v, want ErrInvalidFraming", tc.name, err)
		}
	}
	// Commit without confirmation tag.
	if _, err := f.protectPrivate(p.content(0, ContentTypeCommit), p.sigPriv[0], nil, p.rng); !errors.Is(err, ErrInvalidFraming) {
		t.Errorf("commit without confirmation tag: %v", err)
	}
	if _, err := f.protectPublic(p.content(0, ContentTypeCommit), p.sigPriv[0], nil); !errors.Is(err, ErrInvalidFraming) {
		t.Errorf("public commit without confirmation tag: %v", err)
	}
	// A received PublicMessage carrying application data is refused even
	// with a valid membership tag.
	pm := &PublicMessage{Content: *p.content(0, ContentTypeApplication), Auth: FramedContentAuthData{Signature: []byte{1}}}
	pm.MembershipTag = protectMust(f.membershipTag(pm))
	if _, err := f.unprotectPublic(pm); !errors.Is(err, ErrInvalidFraming) {
		t.Errorf("received public application: %v, want ErrInvalidFraming", err)
	}
	// A PrivateMessage with a wrong-length sender data.
	wire := p.private(t, f, p.content(0, ContentTypeApplication))
	var m MLSMessage
	if err := m.Unmarshal(wire); err != nil {
		t.Fatal(err)
	}
	m.PrivateMessage.EncryptedSenderData = m.PrivateMessage.EncryptedSenderData[:20]
	if _, _, err := f.unprotectPrivate(m.PrivateMessage, nil); !errors.Is(err, ErrDecryption) {
		t.Errorf("short sender data: %v, want ErrDecryption", err)
	}
	// Private operations without a secret tree, public ones without a
	// membership key.
	bare, err := newEpochFraming(p.ctx, nil, nil, nil, PaddingPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bare.protectPrivate(p.content(0, ContentTypeApplication), p.sigPriv[0], nil, p.rng); err == nil {
		t.Error("protectPrivate without secret tree succeeded")
	}
	if _, err := bare.protectPublic(p.content(0, ContentTypeProposal), p.sigPriv[0], nil); err == nil {
		t.Error("member protectPublic without membership key succeeded")
	}
	// External senders need no membership key.
	if _, err := bare.protectPublic(withSender(ContentTypeProposal, ext), p.extPriv, nil); err != nil {
		t.Errorf("external proposal: %v", err)
	}
	// Bad constructor inputs.
	if _, err := newEpochFraming(p.ctx, []byte{1}, nil, nil, PaddingPolicy{}); err == nil {
		t.Error("short membership key accepted")
	}
	other := protectMust(newSecretTree(2, make([]byte, 32), 2, SecretTreeOptions{}))
	if _, err := newEpochFraming(p.ctx, nil, nil, other, PaddingPolicy{}); err == nil {
		t.Error("secret tree of another suite accepted")
	}
}

// TestProtectNoKeyOnSendFailure: a send that fails validation does not
// consume a generation.
func TestProtectNoKeyOnSendFailure(t *testing.T) {
	p := newProtectFixture(t, 1, 2, 13)
	send, recv := p.framing(t, PaddingPolicy{}), p.framing(t, PaddingPolicy{})
	if _, err := send.protectPrivate(p.content(0, ContentTypeCommit), p.sigPriv[0], nil, p.rng); err == nil {
		t.Fatal("commit without tag succeeded")
	}
	if _, err := send.protectPrivate(p.content(0, ContentTypeProposal), p.sigPriv[0], nil, bytes.NewReader(nil)); err == nil {
		t.Fatal("protect with an empty rand succeeded")
	}
	var m MLSMessage
	if err := m.Unmarshal(p.private(t, send, p.content(0, ContentTypeProposal))); err != nil {
		t.Fatal(err)
	}
	if _, sd, err := recv.unprotectPrivate(m.PrivateMessage, p.check(recv)); err != nil || sd.Generation != 0 {
		t.Fatalf("generation %d, %v; want 0", sd.Generation, err)
	}
}

// FuzzUnprotect feeds arbitrary bytes (seeded with valid messages of every
// kind) to MLSMessage decoding and unprotect with signature checks. It must
// never panic, every error must start with "mls: ", and nothing but the
// untouched valid messages may ever be accepted: every byte of a
// PrivateMessage is under an AEAD, every byte of a PublicMessage under the
// membership tag or the signature (Ed25519 is not malleable), and the
// confirmation tag of the external commit is checked by the check function
// as the group would.
func FuzzUnprotect(f *testing.F) {
	p := newProtectFixture(f, 1, 3, 42)
	valid := protectFuzzSeeds(f, p)
	accept := map[string]bool{}
	for _, v := range valid {
		accept[string(v)] = true
		f.Add(v)
	}
	base := p.framing(f, PaddingPolicy{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m MLSMessage
		if err := m.Unmarshal(data); err != nil {
			return
		}
		fr := *base
		fr.secrets = base.secrets.clone()
		ac, _, err := fr.unprotectMessage(&m, p.check(&fr))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "mls: ") {
				t.Fatalf("error without mls: prefix: %v", err)
			}
			return
		}
		if !accept[string(data)] {
			t.Fatalf("accepted a message that was never sent: %x (content %+v)", data, ac.Content)
		}
	})
}

// protectFuzzSeeds returns valid encoded MLSMessages of every framing kind
// for the fixture (deterministic for a given fixture seed).
func protectFuzzSeeds(t testing.TB, p *protectFixture) [][]byte {
	send := p.framing(t, PaddingPolicy{})
	var out [][]byte
	for _, ct := range []ContentType{ContentTypeApplication, ContentTypeProposal, ContentTypeCommit} {
		out = append(out, p.private(t, send, p.content(1, ct)))
	}
	out = append(out, p.public(t, send, p.content(2, ContentTypeProposal), p.sigPriv[2]))
	out = append(out, p.public(t, send, p.content(0, ContentTypeCommit), p.sigPriv[0]))
	ext := p.content(0, ContentTypeProposal)
	ext.Sender = Sender{Type: SenderExternal}
	out = append(out, p.public(t, send, ext, p.extPriv))
	join := p.content(0, ContentTypeCommit)
	join.Sender = Sender{Type: SenderNewMemberCommit}
	out = append(out, p.public(t, send, join, p.joinPriv))
	return out
}

var updateProtectCorpus = flag.Bool("update-protect-corpus", false, "rewrite testdata/fuzz/FuzzUnprotect")

// TestProtectFuzzCorpus checks that the committed seed corpus of
// FuzzUnprotect contains the current valid seeds (so that the corpus still
// starts the fuzzer at accepted messages) and rewrites it with
// -update-protect-corpus. The corpus also holds truncated, bit-flipped and
// re-framed variants and random bytes.
func TestProtectFuzzCorpus(t *testing.T) {
	p := newProtectFixture(t, 1, 3, 42)
	valid := protectFuzzSeeds(t, p)
	dir := filepath.Join("testdata", "fuzz", "FuzzUnprotect")
	name := func(kind string, data []byte) string {
		h := sha256.Sum256(data)
		return fmt.Sprintf("%s-%x", kind, h[:6])
	}
	encode := func(data []byte) []byte {
		return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
	}
	if *updateProtectCorpus {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		rng := rand.NewChaCha8([32]byte{'f', 'u', 'z', 'z'})
		files := map[string][]byte{}
		for _, v := range valid {
			files[name("valid", v)] = v
			files[name("truncated", v[:len(v)-1])] = v[:len(v)-1]
			for range 3 {
				bad := bytes.Clone(v)
				bad[int(rng.Uint64()%uint64(len(bad)))] ^= byte(1 << (rng.Uint64() % 8))
				files[name("flipped", bad)] = bad
			}
			longer := append(bytes.Clone(v), 0)
			files[name("trailing", longer)] = longer
		}
		// A PrivateMessage header with a PublicMessage wire format and vice
		// versa, and pure noise.
		swapped := bytes.Clone(valid[0])
		swapped[3] = byte(WireFormatPublicMessage)
		files[name("swapped", swapped)] = swapped
		noise := make([]byte, 96)
		rng.Read(noise)
		files[name("noise", noise)] = noise
		for n, data := range files {
			if err := os.WriteFile(filepath.Join(dir, n), encode(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, v := range valid {
		path := filepath.Join(dir, name("valid", v))
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("seed corpus is stale (run go test ./mls -run TestProtectFuzzCorpus -update-protect-corpus): %v", err)
		}
		if !bytes.Equal(got, encode(v)) {
			t.Fatalf("%s does not hold its seed", path)
		}
	}
}
