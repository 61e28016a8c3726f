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

// Tests of protect.go: the "message-protection" vectors (FORMAT.md
// "Message Protection"), round trips in every suite, tampering, replay,
// key-consumption order, padding, framing rules, and the FuzzUnprotect
// target whose seed corpus lives in testdata/fuzz/FuzzUnprotect.

func init() { registerVector("message-protection", checkMessageProtection) }

type messageProtectionCase struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	TreeHash                hexBytes `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes `json:"signature_priv"`
	SignaturePub            hexBytes `json:"signature_pub"`
	EncryptionSecret        hexBytes `json:"encryption_secret"`
	SenderDataSecret        hexBytes `json:"sender_data_secret"`
	MembershipKey           hexBytes `json:"membership_key"`
	Proposal                hexBytes `json:"proposal"`
	ProposalPub             hexBytes `json:"proposal_pub"`
	ProposalPriv            hexBytes `json:"proposal_priv"`
	Commit                  hexBytes `json:"commit"`
	CommitPub               hexBytes `json:"commit_pub"`
	CommitPriv              hexBytes `json:"commit_priv"`
	Application             hexBytes `json:"application"`
	ApplicationPriv         hexBytes `json:"application_priv"`
}

func checkMessageProtection(t *testing.T, data []byte) {
	cases := decodeVectors[messageProtectionCase](t, data)
	runPerSuite(t, cases, func(tc messageProtectionCase) uint16 { return tc.CipherSuite }, checkMessageProtectionCase)
}

func checkMessageProtectionCase(t *testing.T, cs CipherSuite, tc messageProtectionCase) {
	ctx := &GroupContext{
		Version:                 ProtocolMLS10,
		CipherSuite:             cs,
		GroupID:                 tc.GroupID,
		Epoch:                   tc.Epoch,
		TreeHash:                tc.TreeHash,
		ConfirmedTranscriptHash: tc.ConfirmedTranscriptHash,
	}
	// A fresh 2-member secret tree per use; leaf 1 is the sender.
	framing := func(t *testing.T) *epochFraming {
		t.Helper()
		st, err := newSecretTree(cs, tc.EncryptionSecret, 2, SecretTreeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f, err := newEpochFraming(ctx, tc.MembershipKey, tc.SenderDataSecret, st, PaddingPolicy{})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	verify := func(f *epochFraming) func(*AuthenticatedContent) error {
		return func(ac *AuthenticatedContent) error {
			if ac.Content.Sender != (Sender{Type: SenderMember, LeafIndex: 1}) {
				return fmt.Errorf("sender %+v, want member 1", ac.Content.Sender)
			}
			return f.verifySignature(ac, tc.SignaturePub)
		}
	}
	// open unprotects an encoded MLSMessage of the given wire format with a
	// fresh secret tree and returns the content, signature verified.
	open := func(t *testing.T, what string, wire []byte, wf WireFormat) *AuthenticatedContent {
		t.Helper()
		var m MLSMessage
		if err := m.Unmarshal(wire); err != nil {
			t.Fatalf("%s: decode: %v", what, err)
		}
		if m.WireFormat != wf {
			t.Fatalf("%s: wire format %v, want %v", what, m.WireFormat, wf)
		}
		f := framing(t)
		ac, _, err := f.unprotectMessage(&m, verify(f))
		if err != nil {
			t.Fatalf("%s: unprotect: %v", what, err)
		}
		if !bytes.Equal(ac.Content.GroupID, tc.GroupID) || ac.Content.Epoch != tc.Epoch {
			t.Fatalf("%s: group/epoch mismatch", what)
		}
		return ac
	}
	body := func(t *testing.T, ac *AuthenticatedContent) []byte {
		t.Helper()
		switch ac.Content.ContentType {
		case ContentTypeApplication:
			return ac.Content.ApplicationData
		case ContentTypeProposal:
			enc, err := ac.Content.Proposal.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return enc
		default:
			enc, err := ac.Content.Commit.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return enc
		}
	}
	rng := rand.NewChaCha8([32]byte{byte(cs)})

	kinds := []struct {
		name      string
		ct        ContentType
		raw, pub  []byte
		priv      []byte
		hasPublic bool
	}{
		{"proposal", ContentTypeProposal, tc.Proposal, tc.ProposalPub, tc.ProposalPriv, true},
		{"commit", ContentTypeCommit, tc.Commit, tc.CommitPub, tc.CommitPriv, true},
		{"application", ContentTypeApplication, tc.Application, nil, tc.ApplicationPriv, false},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			content := &FramedContent{
				GroupID:           tc.GroupID,
				Epoch:             tc.Epoch,
				Sender:            Sender{Type: SenderMember, LeafIndex: 1},
				AuthenticatedData: []byte("canopy"),
				ContentType:       k.ct,
			}
			switch k.ct {
			case ContentTypeApplication:
				content.ApplicationData = k.raw
			case ContentTypeProposal:
				content.Proposal = new(Proposal)
				if err := content.Proposal.Unmarshal(k.raw); err != nil {
					t.Fatal(err)
				}
			case ContentTypeCommit:
				content.Commit = new(Commit)
				if err := content.Commit.Unmarshal(k.raw); err != nil {
					t.Fatal(err)
				}
			}
			var confirmationTag []byte

			// The given PrivateMessage.
			ac := open(t, k.name+"_priv", k.priv, WireFormatPrivateMessage)
			mustEqualBytes(t, k.name+"_priv content", body(t, ac), k.raw)
			if k.ct == ContentTypeCommit {
				confirmationTag = ac.Auth.ConfirmationTag
			}

			if k.hasPublic {
				// The given PublicMessage.
				ac := open(t, k.name+"_pub", k.pub, WireFormatPublicMessage)
				mustEqualBytes(t, k.name+"_pub content", body(t, ac), k.raw)
				// Protect afresh as PublicMessage and unprotect.
				pm, err := framing(t).protectPublic(content, tc.SignaturePriv, confirmationTag)
				if err != nil {
					t.Fatalf("protectPublic: %v", err)
				}
				wire, err := (&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}).Marshal()
				if err != nil {
					t.Fatal(err)
				}
				ac = open(t, "fresh PublicMessage", wire, WireFormatPublicMessage)
				mustEqualBytes(t, "fresh PublicMessage content", body(t, ac), k.raw)
				mustEqualBytes(t, "fresh PublicMessage authenticated_data", ac.Content.AuthenticatedData, content.AuthenticatedData)
			} else {
				// Application data must not be sent as PublicMessage.
				_, err := framing(t).protectPublic(content, tc.SignaturePriv, nil)
				if !errors.Is(err, ErrInvalidFraming) {
					t.Fatalf("protectPublic(application) = %v, want ErrInvalidFraming", err)
				}
			}

			// Protect afresh as PrivateMessage (sender's own tree) and
			// unprotect (receiver's fresh tree).
			pm, err := framing(t).protectPrivate(content, tc.SignaturePriv, confirmationTag, rng)
			if err != nil {
				t.Fatalf("protectPrivate: %v", err)
			}
			wire, err := (&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			ac = open(t, "fresh PrivateMessage", wire, WireFormatPrivateMessage)
			mustEqualBytes(t, "fresh PrivateMessage content", body(t, ac), k.raw)
			mustEqualBytes(t, "fresh PrivateMessage authenticated_data", ac.Content.AuthenticatedData, content.AuthenticatedData)
			if k.ct == ContentTypeCommit {
				mustEqualBytes(t, "confirmation tag", ac.Auth.ConfirmationTag, confirmationTag)
			}
		})
	}
}

// protectFixture is a group of n members (plus one external sender and one
// joiner) in one epoch, all derived deterministically from a seed.
type protectFixture struct {
	cs                                    CipherSuite
	n                                     uint32
	ctx                                   *GroupContext
	encryptionSecret, senderData, memberK []byte
	sigPriv, sigPub                       [][]byte // per leaf
	extPriv, extPub                       []byte   // external_senders[0]
	joinPriv, joinPub                     []byte   // new member (external commit)
	confirmationTag                       []byte
	rng                                   *rand.ChaCha8
}

func newProtectFixture(t testing.TB, cs CipherSuite, n uint32, seed byte) *protectFixture {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{seed, byte(cs)})
	rb := func(l int) []byte {
		b := make([]byte, l)
		rng.Read(b)
		return b
	}
	keyPair := func() ([]byte, []byte) {
		priv, pub, err := cs.GenerateSignatureKeyPair(rng)
		if err != nil {
			t.Fatal(err)
		}
		return priv, pub
	}
	p := &protectFixture{
		cs: cs, n: n,
		ctx: &GroupContext{
			Version:                 ProtocolMLS10,
			CipherSuite:             cs,
			GroupID:                 []byte("canopy test group"),
			Epoch:                   7,
			TreeHash:                rb(cs.Nh()),
			ConfirmedTranscriptHash: rb(cs.Nh()),
		},
		encryptionSecret: rb(cs.Nh()),
		senderData:       rb(cs.Nh()),
		memberK:          rb(cs.Nh()),
		confirmationTag:  rb(cs.Nh()),
		rng:              rng,
	}
	for range n {
		priv, pub := keyPair()
		p.sigPriv = append(p.sigPriv, priv)
		p.sigPub = append(p.sigPub, pub)
	}
	p.extPriv, p.extPub = keyPair()
	p.joinPriv, p.joinPub = keyPair()
	return p
}

// framing returns the epoch's framing with a fresh secret tree of n leaves.
func (p *protectFixture) framing(t testing.TB, padding PaddingPolicy) *epochFraming {
	t.Helper()
	return p.framingN(t, p.n, padding)
}

func (p *protectFixture) framingN(t testing.TB, n uint32, padding PaddingPolicy) *epochFraming {
	t.Helper()
	st, err := newSecretTree(p.cs, p.encryptionSecret, n, SecretTreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := newEpochFraming(p.ctx, p.memberK, p.senderData, st, padding)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// check is the group's check: the sender's key by sender type, then the
// signature; for commits also the confirmation tag (standing in for the
// group's confirmation-tag check).
func (p *protectFixture) check(f *epochFraming) func(*AuthenticatedContent) error {
	return func(ac *AuthenticatedContent) error {
		var pub []byte
		s := ac.Content.Sender
		switch {
		case s.Type == SenderMember && s.LeafIndex < p.n:
			pub = p.sigPub[s.LeafIndex]
		case s.Type == SenderExternal && s.SenderIndex == 0:
			pub = p.extPub
		case s.Type == SenderNewMemberCommit:
			pub = p.joinPub
		default:
			return fmt.Errorf("mls: test: no key for sender %+v", s)
		}
		if err := f.verifySignature(ac, pub); err != nil {
			return err
		}
		if ac.Content.ContentType == ContentTypeCommit && !bytes.Equal(ac.Auth.ConfirmationTag, p.confirmationTag) {
			return errors.New("mls: test: confirmation tag mismatch")
		}
		return nil
	}
}

func (p *protectFixture) content(leaf uint32, ct ContentType) *FramedContent {
	fc := &FramedContent{
		GroupID:           p.ctx.GroupID,
		Epoch:             p.ctx.Epoch,
		Sender:            Sender{Type: SenderMember, LeafIndex: leaf},
		AuthenticatedData: []byte("ad"),
		ContentType:       ct,
	}
	switch ct {
	case ContentTypeApplication:
		fc.ApplicationData = []byte(fmt.Sprintf("hello from %d", leaf))
	case ContentTypeProposal:
		fc.Proposal = &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 0}}
	case ContentTypeCommit:
		fc.Commit = &Commit{Proposals: []ProposalOrRef{{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 0}}}}}
	}
	return fc
}

func (p *protectFixture) private(t testing.TB, f *epochFraming, fc *FramedContent) []byte {
	t.Helper()
	pm, err := f.protectPrivate(fc, p.sigPriv[fc.Sender.LeafIndex], p.confirmationTag, p.rng)
	if err != nil {
		t.Fatalf("protectPrivate: %v", err)
	}
	return mustMarshalMLS(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm})
}

func (p *protectFixture) public(t testing.TB, f *epochFraming, fc *FramedContent, priv []byte) []byte {
	t.Helper()
	pm, err := f.protectPublic(fc, priv, p.confirmationTag)
	if err != nil {
		t.Fatalf("protectPublic: %v", err)
	}
	return mustMarshalMLS(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm})
}

func mustMarshalMLS(t testing.TB, m *MLSMessage) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// receive decodes wire and unprotects it with f and the fixture's check.
func (p *protectFixture) receive(f *epochFraming, wire []byte) (*AuthenticatedContent, error) {
	var m MLSMessage
	if err := m.Unmarshal(wire); err != nil {
		return nil, err
	}
	ac, _, err := f.unprotectMessage(&m, p.check(f))
	return ac, err
}

func protectSameContent(t *testing.T, got *AuthenticatedContent, want *FramedContent) {
	t.Helper()
	g, err := got.Content.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	w, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "FramedContent", g, w)
}

func TestProtectRoundTrip(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(fmt.Sprintf("suite=%d", cs), func(t *testing.T) {
			p := newProtectFixture(t, cs, 5, 1)
			send := make([]*epochFraming, p.n)
			for i := range send {
				send[i] = p.framing(t, PaddingPolicy{})
			}
			recv := p.framing(t, PaddingPolicy{})
			for round := range 3 {
				for leaf := uint32(0); leaf < p.n; leaf++ {
					for _, ct := range []ContentType{ContentTypeApplication, ContentTypeProposal, ContentTypeCommit} {
						fc := p.content(leaf, ct)
						ac, err := p.receive(recv, p.private(t, send[leaf], fc))
						if err != nil {
							t.Fatalf("round %d leaf %d %v private: %v", round, leaf, ct, err)
						}
						protectSameContent(t, ac, fc)
						if ac.WireFormat != WireFormatPrivateMessage {
							t.Fatalf("wire format %v", ac.WireFormat)
						}
						if ct == ContentTypeApplication {
							continue
						}
						ac, err = p.receive(recv, p.public(t, send[leaf], fc, p.sigPriv[leaf]))
						if err != nil {
							t.Fatalf("round %d leaf %d %v public: %v", round, leaf, ct, err)
						}
						protectSameContent(t, ac, fc)
					}
				}
			}
		})
	}
}

// TestProtectSenderData checks the decrypted SenderData and the reuse guard.
func TestProtectSenderData(t *testing.T) {
	p := newProtectFixture(t, 1, 4, 2)
	send, recv := p.framing(t, PaddingPolicy{}), p.framing(t, PaddingPolicy{})
	guards := map[[4]byte]bool{}
	for g := range uint32(20) {
		var m MLSMessage
		if err := m.Unmarshal(p.private(t, send, p.content(3, ContentTypeApplication))); err != nil {
			t.Fatal(err)
		}
		_, sd, err := recv.unprotectPrivate(m.PrivateMessage, p.check(recv))
		if err != nil {
			t.Fatal(err)
		}
		if sd.LeafIndex != 3 || sd.Generation != g {
			t.Fatalf("sender data %+v, want leaf 3 generation %d", sd, g)
		}
		guards[sd.ReuseGuard] = true
	}
	if len(guards) < 19 {
		t.Fatalf("reuse guards repeat: %d distinct of 20", len(guards))
	}
	// Handshake and application ratchets are independent.
	var m MLSMessage
	if err := m.Unmarshal(p.private(t, send, p.content(3, ContentTypeProposal))); err != nil {
		t.Fatal(err)
	}
	if _, sd, err := recv.unprotectPrivate(m.PrivateMessage, p.check(recv)); err != nil || sd.Generation != 0 {
		t.Fatalf("first handshake message: generation %d, %v", sd.Generation, err)
	}
}

func TestProtectReplay(t *testing.T) {
	for _, cs := range []CipherSuite{1, 2} {
		p := newProtectFixture(t, cs, 2, 3)
		send, recv := p.framing(t, PaddingPolicy{}), p.framing(t, PaddingPolicy{})
		for _, ct := range []ContentType{ContentTypeApplication, ContentTypeCommit} {
			wire := p.private(t, send, p.content(1, ct))
			if _, err := p.receive(recv, wire); err != nil {
				t.Fatal(err)
			}
			_, err := p.receive(recv, wire)
			if !errors.Is(err, ErrKeyConsumed) {
				t.Fatalf("replayed %v: %v, want ErrKeyConsumed", ct, err)
			}
		}
	}
}

// TestProtectOutOfOrder delivers a burst out of order, then replays it.
func TestProtectOutOfOrder(t *testing.T) {
	p := newProtectFixture(t, 3, 2, 4)
	send, recv := p.framing(t, PaddingPolicy{}), p.framing(t, PaddingPolicy{})
	var wires [][]byte
	for range 8 {
		wires = append(wires, p.private(t, send, p.content(0, ContentTypeApplication)))
	}
	for _, i := range []int{5, 2, 0, 7, 1, 3, 6, 4} {
		if _, err := p.receive(recv, wires[i]); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i, w := range wires {
		if _, err := p.receive(recv, w); !errors.Is(err, ErrKeyConsumed) {
			t.Fatalf("replay %d: %v, want ErrKeyConsumed", i, err)
		}
	}
}

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

func protectMust[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
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

// TestProtectPaddingPolicy checks the padded sizes of each policy and that
// any amount of zero padding is accepted.
func TestProtectPaddingPolicy(t *testing.T) {
	p := newProtectFixture(t, 1, 2, 9)
	const overhead = 16
	for _, tc := range []struct {
		policy PaddingPolicy
		ok     func(ptLen, unpadded int) bool
	}{
		{PaddingPolicy{}, func(l, u int) bool { return l%DefaultPaddingBlockSize == 0 && l-u < DefaultPaddingBlockSize }},
		{PaddingPolicy{Mode: PadToBlock, BlockSize: 32}, func(l, u int) bool { return l%32 == 0 && l-u < 32 }},
		{PaddingPolicy{Mode: PadToBlock, BlockSize: 1}, func(l, u int) bool { return l == u }},
		{PaddingPolicy{Mode: PadNone}, func(l, u int) bool { return l == u }},
		{PaddingPolicy{Mode: PadPadme, BlockSize: 1}, func(l, u int) bool { return l == padme(u) }},
		{PaddingPolicy{Mode: PadPadme}, func(l, u int) bool { return l%DefaultPaddingBlockSize == 0 && l >= padme(u) }},
	} {
		send, recv := p.framing(t, tc.policy), p.framing(t, PaddingPolicy{Mode: PadNone})
		for _, size := range []int{0, 1, 100, 185, 186, 300, 5000, 70000} {
			fc := p.content(0, ContentTypeApplication)
			fc.ApplicationData = bytes.Repeat([]byte{'x'}, size)
			ac, err := send.sign(WireFormatPrivateMessage, fc, p.sigPriv[0])
			if err != nil {
				t.Fatal(err)
			}
			unpadded := len(protectMust((&PrivateMessageContent{ContentType: fc.ContentType, ApplicationData: fc.ApplicationData, Auth: ac.Auth}).Marshal()))
			pm, err := send.encryptPrivate(ac, p.rng)
			if err != nil {
				t.Fatal(err)
			}
			if l := len(pm.Ciphertext) - overhead; !tc.ok(l, unpadded) {
				t.Errorf("policy %+v: %d-byte content padded to %d", tc.policy, unpadded, l)
			}
			ac2, _, err := recv.unprotectPrivate(pm, p.check(recv))
			if err != nil {
				t.Fatalf("policy %+v size %d: %v", tc.policy, size, err)
			}
			protectSameContent(t, ac2, fc)
		}
	}
	// With the default policy a short text, a receipt and a reaction all
	// have the same length on the wire.
	send := p.framing(t, PaddingPolicy{})
	lengths := map[int]bool{}
	for _, size := range []int{2, 40, 120, 180} {
		fc := p.content(0, ContentTypeApplication)
		fc.ApplicationData = make([]byte, size)
		pm, err := send.protectPrivate(fc, p.sigPriv[0], nil, p.rng)
		if err != nil {
			t.Fatal(err)
		}
		lengths[len(pm.Ciphertext)] = true
	}
	if len(lengths) != 1 {
		t.Errorf("default padding leaks short message lengths: %v", lengths)
	}
	for _, bad := range []PaddingPolicy{{Mode: 9}, {BlockSize: -1}, {BlockSize: maxPaddingBlockSize + 1}} {
		if _, err := newEpochFraming(p.ctx, nil, nil, nil, bad); err == nil {
			t.Errorf("policy %+v accepted", bad)
		}
	}
}

func TestProtectPadme(t *testing.T) {
	for _, tc := range [][2]int{{0, 0}, {1, 1}, {2, 2}, {3, 3}, {9, 10}, {100, 104}, {1000, 1024}, {1025, 1088}, {10000, 10240}, {100000, 100352}} {
		if got := padme(tc[0]); got != tc[1] {
			t.Errorf("padme(%d) = %d, want %d", tc[0], got, tc[1])
		}
	}
	for l := 1; l < 1<<16; l++ {
		if got := padme(l); got < l || float64(got-l) > 0.12*float64(l)+1 {
			t.Fatalf("padme(%d) = %d", l, got)
		}
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
