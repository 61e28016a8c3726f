package mls

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Vector file "messages" (FORMAT.md "Messages"): every field decodes with its
// structure and re-encodes to the identical bytes. The MLSMessage-wrapped
// fields must also carry the expected wire format (and content type for the
// public_message_* fields), every embedded body must re-encode on its own,
// and every KeyPackage found (mls_key_package, add_proposal and Adds by
// value in commits and proposal messages) must carry valid KeyPackage and
// LeafNode signatures.

func init() { registerVector("messages", checkMessages) }

type messagesCase struct {
	MLSWelcome                     hexBytes `json:"mls_welcome"`
	MLSGroupInfo                   hexBytes `json:"mls_group_info"`
	MLSKeyPackage                  hexBytes `json:"mls_key_package"`
	RatchetTree                    hexBytes `json:"ratchet_tree"`
	GroupSecrets                   hexBytes `json:"group_secrets"`
	AddProposal                    hexBytes `json:"add_proposal"`
	UpdateProposal                 hexBytes `json:"update_proposal"`
	RemoveProposal                 hexBytes `json:"remove_proposal"`
	PreSharedKeyProposal           hexBytes `json:"pre_shared_key_proposal"`
	ReInitProposal                 hexBytes `json:"re_init_proposal"`
	ExternalInitProposal           hexBytes `json:"external_init_proposal"`
	GroupContextExtensionsProposal hexBytes `json:"group_context_extensions_proposal"`
	Commit                         hexBytes `json:"commit"`
	PublicMessageApplication       hexBytes `json:"public_message_application"`
	PublicMessageProposal          hexBytes `json:"public_message_proposal"`
	PublicMessageCommit            hexBytes `json:"public_message_commit"`
	PrivateMessage                 hexBytes `json:"private_message"`
}

// wireCodec is implemented by every exported wire type (as a pointer).
type wireCodec[T any] interface {
	*T
	Marshal() ([]byte, error)
	Unmarshal(data []byte) error
}

// roundTrip decodes data as a T, re-encodes it and requires identical bytes.
func roundTrip[T any, PT wireCodec[T]](t *testing.T, what string, data []byte) PT {
	t.Helper()
	if len(data) == 0 {
		t.Fatalf("%s: vector field is empty", what)
	}
	v := PT(new(T))
	if err := v.Unmarshal(data); err != nil {
		t.Fatalf("%s: decode: %v", what, err)
	}
	out, err := v.Marshal()
	if err != nil {
		t.Fatalf("%s: re-encode: %v", what, err)
	}
	mustEqualBytes(t, what+" re-encoding", out, data)
	return v
}

// reencode requires v to encode to want (used for bodies embedded in an
// MLSMessage, whose own encoding is the input minus the 4-byte header).
func reencode(t *testing.T, what string, v interface{ Marshal() ([]byte, error) }, want []byte) {
	t.Helper()
	out, err := v.Marshal()
	if err != nil {
		t.Fatalf("%s: encode: %v", what, err)
	}
	mustEqualBytes(t, what, out, want)
}

// messagesSuite is the cipher suite of a messages case: the vector has no
// cipher_suite field, so it is read from the KeyPackage (version, wire format,
// KeyPackage.version, then KeyPackage.cipher_suite).
func messagesSuite(tc messagesCase) uint16 {
	if len(tc.MLSKeyPackage) < 8 {
		return 0
	}
	return binary.BigEndian.Uint16(tc.MLSKeyPackage[6:8])
}

func checkMessages(t *testing.T, data []byte) {
	cases := decodeVectors[messagesCase](t, data)
	runPerSuite(t, cases, messagesSuite, checkMessagesCase)
}

func checkMessagesCase(t *testing.T, cs CipherSuite, tc messagesCase) {
	var keyPackages []*KeyPackage

	mlsMessage := func(name string, data []byte, wf WireFormat) *MLSMessage {
		t.Helper()
		m := roundTrip[MLSMessage](t, name, data)
		if m.Version != ProtocolMLS10 || m.WireFormat != wf {
			t.Fatalf("%s: version %d wire format %v, want mls10 %v", name, m.Version, m.WireFormat, wf)
		}
		return m
	}
	publicMessage := func(name string, data []byte, ct ContentType) *PublicMessage {
		t.Helper()
		m := mlsMessage(name, data, WireFormatPublicMessage)
		pm := m.PublicMessage
		if pm.Content.ContentType != ct {
			t.Fatalf("%s: content type %v, want %v", name, pm.Content.ContentType, ct)
		}
		reencode(t, name+" body", pm, data[4:])
		ac := pm.AuthenticatedContent()
		acBytes, err := ac.Marshal()
		if err != nil {
			t.Fatalf("%s: AuthenticatedContent: %v", name, err)
		}
		roundTrip[AuthenticatedContent](t, name+" as AuthenticatedContent", acBytes)
		return pm
	}
	collectAdds := func(c *Commit) {
		for _, p := range c.Proposals {
			if p.Type == ProposalOrRefProposal && p.Proposal.Type == ProposalTypeAdd {
				keyPackages = append(keyPackages, &p.Proposal.Add.KeyPackage)
			}
		}
	}

	// MLSMessage(Welcome)
	w := mlsMessage("mls_welcome", tc.MLSWelcome, WireFormatWelcome)
	reencode(t, "mls_welcome body", w.Welcome, tc.MLSWelcome[4:])
	if w.Welcome.CipherSuite != cs {
		t.Errorf("mls_welcome: cipher suite %v, want %v", w.Welcome.CipherSuite, cs)
	}

	// MLSMessage(GroupInfo)
	gi := mlsMessage("mls_group_info", tc.MLSGroupInfo, WireFormatGroupInfo)
	reencode(t, "mls_group_info body", gi.GroupInfo, tc.MLSGroupInfo[4:])
	if gi.GroupInfo.GroupContext.CipherSuite != cs {
		t.Errorf("mls_group_info: cipher suite %v, want %v", gi.GroupInfo.GroupContext.CipherSuite, cs)
	}
	if _, _, err := gi.GroupInfo.RatchetTree(); err != nil {
		t.Errorf("mls_group_info: ratchet_tree extension: %v", err)
	}
	if _, _, err := gi.GroupInfo.ExternalPub(); err != nil {
		t.Errorf("mls_group_info: external_pub extension: %v", err)
	}

	// MLSMessage(KeyPackage)
	kpm := mlsMessage("mls_key_package", tc.MLSKeyPackage, WireFormatKeyPackage)
	kp := kpm.KeyPackage
	reencode(t, "mls_key_package body", kp, tc.MLSKeyPackage[4:])
	if kp.Version != kpm.Version || kp.CipherSuite != cs {
		t.Errorf("mls_key_package: version %d suite %v", kp.Version, kp.CipherSuite)
	}
	roundTrip[LeafNode](t, "mls_key_package leaf node", mustMarshal(t, &kp.LeafNode))
	if _, err := kp.Ref(); err != nil {
		t.Errorf("mls_key_package: Ref: %v", err)
	}
	keyPackages = append(keyPackages, kp)

	// optional<Node> ratchet_tree<V>
	tree := roundTrip[RatchetTree](t, "ratchet_tree", tc.RatchetTree)
	for _, n := range *tree {
		if n != nil {
			roundTrip[Node](t, "ratchet_tree node", mustMarshal(t, n))
		}
	}

	roundTrip[GroupSecrets](t, "group_secrets", tc.GroupSecrets)

	add := roundTrip[Add](t, "add_proposal", tc.AddProposal)
	keyPackages = append(keyPackages, &add.KeyPackage)
	upd := roundTrip[Update](t, "update_proposal", tc.UpdateProposal)
	roundTrip[LeafNode](t, "update_proposal leaf node", tc.UpdateProposal)
	if upd.LeafNode.Source != LeafNodeSourceUpdate {
		t.Errorf("update_proposal: leaf_node_source %v", upd.LeafNode.Source)
	}
	roundTrip[Remove](t, "remove_proposal", tc.RemoveProposal)
	roundTrip[PreSharedKey](t, "pre_shared_key_proposal", tc.PreSharedKeyProposal)
	roundTrip[ReInit](t, "re_init_proposal", tc.ReInitProposal)
	roundTrip[ExternalInit](t, "external_init_proposal", tc.ExternalInitProposal)
	roundTrip[GroupContextExtensions](t, "group_context_extensions_proposal", tc.GroupContextExtensionsProposal)

	c := roundTrip[Commit](t, "commit", tc.Commit)
	collectAdds(c)

	publicMessage("public_message_application", tc.PublicMessageApplication, ContentTypeApplication)
	pmp := publicMessage("public_message_proposal", tc.PublicMessageProposal, ContentTypeProposal)
	roundTrip[Proposal](t, "public_message_proposal proposal", mustMarshal(t, pmp.Content.Proposal))
	if _, err := pmp.AuthenticatedContent().ProposalRef(cs); err != nil {
		t.Errorf("public_message_proposal: ProposalRef: %v", err)
	}
	if pmp.Content.Proposal.Type == ProposalTypeAdd {
		keyPackages = append(keyPackages, &pmp.Content.Proposal.Add.KeyPackage)
	}
	pmc := publicMessage("public_message_commit", tc.PublicMessageCommit, ContentTypeCommit)
	collectAdds(pmc.Content.Commit)

	priv := mlsMessage("private_message", tc.PrivateMessage, WireFormatPrivateMessage)
	reencode(t, "private_message body", priv.PrivateMessage, tc.PrivateMessage[4:])

	// Signatures of every KeyPackage found (§10.1): the KeyPackage signature
	// and its key_package LeafNode's.
	for i, kp := range keyPackages {
		if kp.CipherSuite != cs {
			t.Errorf("key package %d: cipher suite %v, want %v", i, kp.CipherSuite, cs)
			continue
		}
		if err := kp.VerifySignature(); err != nil {
			t.Errorf("key package %d: %v", i, err)
		}
		if err := kp.LeafNode.VerifySignature(cs, nil, 0); err != nil {
			t.Errorf("key package %d: %v", i, err)
		}
	}
}

func mustMarshal(t testing.TB, v interface{ Marshal() ([]byte, error) }) []byte {
	t.Helper()
	out, err := v.Marshal()
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return out
}

// Signing and verification of the TBS encodings (KeyPackageTBS, LeafNodeTBS,
// GroupInfoTBS, FramedContentTBS) and the membership tag, in every suite,
// plus the §10.1 / §7.3 validation rules that need a signed object.

func testRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}

type testMember struct {
	sigPriv, sigPub   []byte
	initPriv, initPub []byte
	encPriv, encPub   []byte
}

func newTestMember(t *testing.T, cs CipherSuite, r *rand.ChaCha8) testMember {
	t.Helper()
	var m testMember
	var err error
	if m.sigPriv, m.sigPub, err = cs.GenerateSignatureKeyPair(r); err != nil {
		t.Fatal(err)
	}
	if m.initPriv, m.initPub, err = cs.GenerateHPKEKeyPair(r); err != nil {
		t.Fatal(err)
	}
	if m.encPriv, m.encPub, err = cs.GenerateHPKEKeyPair(r); err != nil {
		t.Fatal(err)
	}
	return m
}

var testNow = time.Unix(1_700_000_000, 0)

// signedKeyPackage returns a valid KeyPackage for m, after applying edit to
// it before signing.
func signedKeyPackage(t *testing.T, cs CipherSuite, m testMember, r *rand.ChaCha8, edit func(*KeyPackage)) *KeyPackage {
	t.Helper()
	kp := &KeyPackage{
		Version:     ProtocolMLS10,
		CipherSuite: cs,
		InitKey:     m.initPub,
		LeafNode: LeafNode{
			EncryptionKey: m.encPub,
			SignatureKey:  m.sigPub,
			Credential:    NewBasicCredential([]byte("alice")),
			Capabilities: Capabilities{
				Versions:     []ProtocolVersion{ProtocolMLS10},
				CipherSuites: []CipherSuite{cs},
				Extensions:   []ExtensionType{ExtensionLastResort, 0x0a0a},
				Proposals:    []ProposalType{},
				Credentials:  []CredentialType{CredentialBasic},
			},
			Source:     LeafNodeSourceKeyPackage,
			Lifetime:   Lifetime{NotBefore: uint64(testNow.Unix()) - 3600, NotAfter: uint64(testNow.Unix()) + 3600},
			Extensions: []Extension{{Type: ExtensionApplicationID, Data: []byte{2, 'i', 'd'}}, {Type: 0x0a0a, Data: []byte{}}},
		},
		Extensions: []Extension{{Type: ExtensionLastResort, Data: []byte{}}, {Type: 0x1a1a, Data: []byte{1}}},
	}
	if edit != nil {
		edit(kp)
	}
	if err := kp.LeafNode.Sign(cs, m.sigPriv, nil, 0, r); err != nil {
		t.Fatal(err)
	}
	if err := kp.Sign(m.sigPriv, r); err != nil {
		t.Fatal(err)
	}
	return kp
}

func TestCodecSignaturesKeyPackage(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(fmt.Sprintf("suite-%d", cs), func(t *testing.T) {
			r := testRand(uint64(cs))
			m := newTestMember(t, cs, r)
			kp := signedKeyPackage(t, cs, m, r, nil)
			if err := kp.Validate(testNow); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !kp.IsLastResort() {
				t.Error("IsLastResort = false")
			}

			// Through the wire and back, inside an MLSMessage.
			enc := mustMarshal(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatKeyPackage, KeyPackage: kp})
			var msg MLSMessage
			mustAccept(t, "MLSMessage(KeyPackage)", &msg, enc)
			if err := msg.KeyPackage.Validate(testNow); err != nil {
				t.Fatalf("Validate after decoding: %v", err)
			}
			ref1, err1 := kp.Ref()
			ref2, err2 := msg.KeyPackage.Ref()
			if err1 != nil || err2 != nil || len(ref1) != cs.Nh() {
				t.Fatalf("Ref: %x %v %v", ref1, err1, err2)
			}
			mustEqualBytes(t, "KeyPackageRef", ref2, ref1)

			// Any change to a signed field breaks the KeyPackage signature.
			tampered := *msg.KeyPackage
			tampered.Extensions = nil
			if err := tampered.VerifySignature(); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("tampered extensions: %v", err)
			}
			if err := tampered.Validate(testNow); !errors.Is(err, ErrInvalidKeyPackage) || !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("Validate of tampered key package: %v", err)
			}
			// ... and a change in the leaf breaks the leaf signature.
			tampered = *msg.KeyPackage
			tampered.LeafNode.Lifetime.NotAfter++
			if err := tampered.LeafNode.VerifySignature(cs, nil, 0); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("tampered leaf lifetime: %v", err)
			}

			for name, tc := range map[string]struct {
				edit func(*KeyPackage)
				now  time.Time
				want error
			}{
				"expired":              {nil, testNow.Add(2 * time.Hour), ErrInvalidLeafNode},
				"not yet valid":        {nil, testNow.Add(-2 * time.Hour), ErrInvalidLeafNode},
				"version":              {func(kp *KeyPackage) { kp.Version = 2 }, testNow, ErrInvalidKeyPackage},
				"init key reused":      {func(kp *KeyPackage) { kp.InitKey = kp.LeafNode.EncryptionKey }, testNow, ErrInvalidKeyPackage},
				"bad init key":         {func(kp *KeyPackage) { kp.InitKey = []byte{1, 2, 3} }, testNow, ErrInvalidKey},
				"bad encryption key":   {func(kp *KeyPackage) { kp.LeafNode.EncryptionKey = []byte{1} }, testNow, ErrInvalidLeafNode},
				"leaf source":          {func(kp *KeyPackage) { kp.LeafNode.Source = LeafNodeSourceUpdate }, testNow, ErrInvalidLeafNode},
				"unlisted credential":  {func(kp *KeyPackage) { kp.LeafNode.Credential = Credential{Type: CredentialX509} }, testNow, ErrInvalidLeafNode},
				"unlisted extension":   {func(kp *KeyPackage) { kp.LeafNode.Extensions = append(kp.LeafNode.Extensions, Extension{Type: 0x2a2a}) }, testNow, ErrInvalidLeafNode},
				"duplicate leaf ext":   {func(kp *KeyPackage) { kp.LeafNode.Extensions = append(kp.LeafNode.Extensions, Extension{Type: 0x0a0a}) }, testNow, ErrInvalidLeafNode},
				"duplicate kp ext":     {func(kp *KeyPackage) { kp.Extensions = append(kp.Extensions, Extension{Type: 0x1a1a}) }, testNow, ErrInvalidKeyPackage},
				"wrong signature key":  {func(kp *KeyPackage) { kp.LeafNode.SignatureKey = m.encPub }, testNow, ErrInvalidLeafNode},
				"foreign cipher suite": {func(kp *KeyPackage) { kp.CipherSuite = 0x0a0a }, testNow, ErrInvalidKeyPackage},
			} {
				t.Run(name, func(t *testing.T) {
					if name == "foreign cipher suite" {
						bad := *kp
						bad.CipherSuite = 0x0a0a
						if err := bad.Validate(tc.now); !errors.Is(err, tc.want) {
							t.Fatalf("Validate: %v, want %v", err, tc.want)
						}
						if _, err := bad.Ref(); err == nil {
							t.Fatal("Ref of an unknown suite succeeded")
						}
						return
					}
					bad := signedKeyPackage(t, cs, m, r, tc.edit)
					err := bad.Validate(tc.now)
					if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidKeyPackage) {
						t.Fatalf("Validate: %v, want %v", err, tc.want)
					}
				})
			}
		})
	}
}

func TestCodecSignaturesLeafNodeContext(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(fmt.Sprintf("suite-%d", cs), func(t *testing.T) {
			r := testRand(100 + uint64(cs))
			m := newTestMember(t, cs, r)
			for _, src := range []LeafNodeSource{LeafNodeSourceUpdate, LeafNodeSourceCommit} {
				ln := LeafNode{
					EncryptionKey: m.encPub,
					SignatureKey:  m.sigPub,
					Credential:    NewBasicCredential([]byte("bob")),
					Capabilities:  Capabilities{Credentials: []CredentialType{CredentialBasic}},
					Source:        src,
					ParentHash:    []byte{1, 2, 3},
				}
				groupID := []byte("group")
				if err := ln.Sign(cs, m.sigPriv, groupID, 3, r); err != nil {
					t.Fatal(err)
				}
				var got LeafNode
				mustAccept(t, "LeafNode", &got, mustMarshal(t, &ln))
				if err := got.Validate(cs, src, groupID, 3); err != nil {
					t.Fatalf("%v: %v", src, err)
				}
				// The group_id and leaf_index are signed for these sources.
				if err := got.VerifySignature(cs, groupID, 4); !errors.Is(err, ErrInvalidSignature) {
					t.Errorf("%v with another leaf index: %v", src, err)
				}
				if err := got.VerifySignature(cs, []byte("other"), 3); !errors.Is(err, ErrInvalidSignature) {
					t.Errorf("%v with another group: %v", src, err)
				}
				if err := got.Validate(cs, LeafNodeSourceKeyPackage, groupID, 3); !errors.Is(err, ErrInvalidLeafNode) {
					t.Errorf("%v validated as key_package: %v", src, err)
				}
			}
		})
	}
}

func TestCodecSignaturesGroupInfoAndContent(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(fmt.Sprintf("suite-%d", cs), func(t *testing.T) {
			r := testRand(200 + uint64(cs))
			m := newTestMember(t, cs, r)
			ctx := GroupContext{
				Version: ProtocolMLS10, CipherSuite: cs, GroupID: []byte("group"), Epoch: 7,
				TreeHash: make([]byte, cs.Nh()), ConfirmedTranscriptHash: make([]byte, cs.Nh()), Extensions: []Extension{},
			}

			// GroupInfo.
			gi := &GroupInfo{
				GroupContext:    ctx,
				Extensions:      []Extension{{Type: ExtensionExternalPub, Data: mustMarshal(t, &ExternalPub{ExternalPub: m.initPub})}},
				ConfirmationTag: make([]byte, cs.Nh()),
				Signer:          2,
			}
			if err := gi.Sign(m.sigPriv, r); err != nil {
				t.Fatal(err)
			}
			var got GroupInfo
			mustAccept(t, "GroupInfo", &got, mustMarshal(t, gi))
			if err := got.VerifySignature(m.sigPub); err != nil {
				t.Fatalf("GroupInfo: %v", err)
			}
			if ep, ok, err := got.ExternalPub(); err != nil || !ok || string(ep.ExternalPub) != string(m.initPub) {
				t.Fatalf("ExternalPub: %v %v", ok, err)
			}
			if _, ok, err := got.RatchetTree(); ok || err != nil {
				t.Fatalf("RatchetTree of a GroupInfo without one: %v %v", ok, err)
			}
			got.Signer = 3
			if err := got.VerifySignature(m.sigPub); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("GroupInfo with another signer: %v", err)
			}

			// FramedContentTBS and the membership tag, as the group computes
			// them (epochFraming, protect.go).
			key := make([]byte, cs.Nh())
			f, err := newEpochFraming(&ctx, key, nil, nil, PaddingPolicy{})
			if err != nil {
				t.Fatal(err)
			}
			content := FramedContent{
				GroupID: ctx.GroupID, Epoch: ctx.Epoch, Sender: Sender{Type: SenderMember, LeafIndex: 2},
				AuthenticatedData: []byte{}, ContentType: ContentTypeProposal,
				Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 1}},
			}
			ac, err := f.sign(WireFormatPublicMessage, &content, m.sigPriv)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.verifySignature(ac, m.sigPub); err != nil {
				t.Fatalf("FramedContent: %v", err)
			}
			if _, err := newEpochFraming(nil, key, nil, nil, PaddingPolicy{}); err == nil {
				t.Error("member content framed without a GroupContext")
			}
			other := ctx
			other.Epoch++
			fOther, err := newEpochFraming(&other, key, nil, nil, PaddingPolicy{})
			if err != nil {
				t.Fatal(err)
			}
			if err := fOther.verifySignature(ac, m.sigPub); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("FramedContent under another GroupContext: %v", err)
			}
			pm, err := f.encodePublic(ac)
			if err != nil {
				t.Fatal(err)
			}
			var gotPM PublicMessage
			mustAccept(t, "PublicMessage", &gotPM, mustMarshal(t, pm))
			if _, err := f.unprotectPublic(&gotPM); err != nil {
				t.Fatalf("membership tag: %v", err)
			}
			if err := f.verifySignature(gotPM.AuthenticatedContent(), m.sigPub); err != nil {
				t.Fatalf("decoded PublicMessage signature: %v", err)
			}
			otherKey := slices.Clone(key)
			otherKey[0] ^= 1
			fKey, err := newEpochFraming(&ctx, otherKey, nil, nil, PaddingPolicy{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fKey.unprotectPublic(&gotPM); !errors.Is(err, ErrInvalidMembershipTag) {
				t.Errorf("membership tag under another key: %v", err)
			}
			ref, err := gotPM.AuthenticatedContent().ProposalRef(cs)
			if err != nil || len(ref) != cs.Nh() {
				t.Fatalf("ProposalRef: %x %v", ref, err)
			}
		})
	}
}
