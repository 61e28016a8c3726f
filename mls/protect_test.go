package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
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

func protectMust[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
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
