package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// Every check of §12.4.2 (and the framing checks before it) rejects a
// forged Commit with an error callers can branch on, and leaves the
// receiver's state exactly as it was: after each rejection the receiver
// still processes the genuine Commit.

// forgeCommit re-signs (as signer, with the committer's framing) and
// re-tags the Commit of base after edit changed its content or auth.
func forgeCommit(t *testing.T, committer *testClient, base []byte, signer []byte, edit func(fc *FramedContent, auth *FramedContentAuthData) *GroupContext) []byte {
	t.Helper()
	var m MLSMessage
	if err := m.Unmarshal(bytes.Clone(base)); err != nil {
		t.Fatal(err)
	}
	pm := m.PublicMessage
	fc, auth := pm.Content, pm.Auth
	ctx := edit(&fc, &auth)
	if ctx == nil {
		ctx = &committer.g.ctx
	}
	f, err := newEpochFraming(ctx, committer.g.secrets.MembershipKey, nil, nil, PaddingPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if signer != nil {
		ac, err := f.sign(WireFormatPublicMessage, &fc, signer)
		if err != nil {
			t.Fatal(err)
		}
		auth.Signature = ac.Auth.Signature
	}
	out, err := f.encodePublic(&AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: fc, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	return mustMarshal(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: out})
}

func TestGroupRejectsInvalidCommits(t *testing.T) {
	for _, cs := range []CipherSuite{MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, MLS_256_DHKEMP384_AES256GCM_SHA384_P384} {
		t.Run(fmt.Sprintf("suite-%d", cs), func(t *testing.T) { testRejectsInvalidCommits(t, cs) })
	}
}

func testRejectsInvalidCommits(t *testing.T, cs CipherSuite) {
	m := newTestGroup(t, cs, false, "alice", "bob", "carol", "dave")
	alice, bob, carol, dave := m[0], m[1], m[2], m[3]
	// dave leaves, so that his leaf is blank but his key is known.
	rem, err := alice.g.ProposeRemove(dave.g.LeafIndex(), nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, rem, bob, carol)
	commitAndDeliver(t, alice, CommitOptions{}, bob, carol)
	daveLeaf := dave.g.LeafIndex()

	// The genuine Commit of the tests: alice removes carol and adds erin,
	// with a path.
	erin := newTestClient(t, cs, "erin", 11)
	erinKP := erin.keyPackage(t, cs)
	pc, err := alice.g.Commit(CommitOptions{Proposals: []*Proposal{
		{Type: ProposalTypeRemove, Remove: &Remove{Removed: uint32(carol.g.LeafIndex())}},
		{Type: ProposalTypeAdd, Add: &Add{KeyPackage: erinKP.KeyPackage}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	good := pc.Message
	freshKey := func() []byte {
		_, pub, err := cs.GenerateHPKEKeyPair(alice.rand)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	byValue := func(p *Proposal) ProposalOrRef { return ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p} }
	aliceLeaf := alice.g.LeafIndex()
	bobLeaf := bob.g.LeafIndex()

	cases := []struct {
		name   string
		signer []byte // nil: keep the signature
		edit   func(fc *FramedContent, auth *FramedContentAuthData) *GroupContext
		want   error
	}{
		{"two Removes of one leaf", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Commit.Proposals = append(fc.Commit.Proposals, fc.Commit.Proposals[0])
			return nil
		}, ErrInvalidProposal},
		{"Remove of the committer", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Commit.Proposals[0].Proposal.Remove.Removed = uint32(aliceLeaf)
			return nil
		}, ErrInvalidProposal},
		{"Remove of a blank leaf", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Commit.Proposals[0].Proposal.Remove.Removed = uint32(daveLeaf)
			return nil
		}, ErrInvalidProposal},
		{"Update by the committer", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			ln := *alice.g.tree.leaf(aliceLeaf)
			ln.Source = LeafNodeSourceUpdate
			ln.EncryptionKey = freshKey()
			if err := ln.Sign(cs, alice.sigPriv, alice.g.ctx.GroupID, uint32(aliceLeaf), alice.rand); err != nil {
				t.Fatal(err)
			}
			fc.Commit.Proposals = append(fc.Commit.Proposals, byValue(&Proposal{Type: ProposalTypeUpdate, Update: &Update{LeafNode: ln}}))
			return nil
		}, ErrInvalidProposal},
		{"Add of a member already in the group", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			kp := bob.keyPackage(t, cs)
			fc.Commit.Proposals = append(fc.Commit.Proposals, byValue(&Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}))
			return nil
		}, ErrInvalidProposal},
		{"two Adds of one client", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			kp := erin.keyPackage(t, cs)
			fc.Commit.Proposals = append(fc.Commit.Proposals, byValue(&Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}))
			return nil
		}, ErrInvalidProposal},
		{"Add with a bad key package signature", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			kp := fc.Commit.Proposals[1].Proposal.Add.KeyPackage
			kp.Signature = bytes.Clone(kp.Signature)
			kp.Signature[0] ^= 1
			fc.Commit.Proposals[1].Proposal = &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp}}
			return nil
		}, ErrInvalidSignature},
		{"two GroupContextExtensions", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			p := &Proposal{Type: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensions{Extensions: []Extension{}}}
			fc.Commit.Proposals = append(fc.Commit.Proposals, byValue(p), byValue(p))
			return nil
		}, ErrInvalidProposal},
		{"ReInit with other proposals", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Commit.Proposals = append(fc.Commit.Proposals, byValue(&Proposal{Type: ProposalTypeReInit,
				ReInit: &ReInit{GroupID: []byte("x"), Version: ProtocolMLS10, CipherSuite: cs, Extensions: []Extension{}}}))
			return nil
		}, ErrInvalidProposal},
		{"ExternalInit in a member's commit", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Commit.Proposals = append(fc.Commit.Proposals, byValue(&Proposal{Type: ProposalTypeExternalInit, ExternalInit: &ExternalInit{KEMOutput: []byte{1}}}))
			return nil
		}, ErrInvalidProposal},
		{"resumption PSK of usage branch", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			id := PreSharedKeyID{Type: PSKTypeResumption, Usage: ResumptionBranch, PSKGroupID: alice.g.ctx.GroupID, PSKEpoch: 1, Nonce: make([]byte, cs.Nh())}
			fc.Commit.Proposals = append(fc.Commit.Proposals, byValue(&Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: id}}))
			return nil
		}, ErrInvalidProposal},
		{"unavailable PSK", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			id := PreSharedKeyID{Type: PSKTypeExternal, PSKID: []byte("nobody has this"), Nonce: make([]byte, cs.Nh())}
			fc.Commit.Proposals = append(fc.Commit.Proposals, byValue(&Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: id}}))
			return nil
		}, ErrMissingPSK},
		{"unknown proposal reference", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Commit.Proposals = append(fc.Commit.Proposals, ProposalOrRef{Type: ProposalOrRefReference, Reference: make([]byte, cs.Nh())})
			return nil
		}, ErrUnknownProposal},
		{"Remove without a path", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Commit.Path = nil
			return nil
		}, ErrInvalidCommit},
		{"wrong confirmation tag", nil, func(_ *FramedContent, auth *FramedContentAuthData) *GroupContext {
			auth.ConfirmationTag = bytes.Clone(auth.ConfirmationTag)
			auth.ConfirmationTag[0] ^= 1
			return nil
		}, ErrInvalidConfirmationTag},
		{"bad signature", nil, func(_ *FramedContent, auth *FramedContentAuthData) *GroupContext {
			auth.Signature = bytes.Clone(auth.Signature)
			auth.Signature[len(auth.Signature)/2] ^= 1
			return nil
		}, ErrInvalidSignature},
		{"signed by another member", bob.sigPriv, func(*FramedContent, *FramedContentAuthData) *GroupContext { return nil }, ErrInvalidSignature},
		{"next epoch", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			ctx := cloneGroupContext(&alice.g.ctx)
			ctx.Epoch++
			fc.Epoch = ctx.Epoch
			return &ctx
		}, ErrWrongEpoch},
		{"previous epoch", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			ctx := cloneGroupContext(&alice.g.ctx)
			ctx.Epoch--
			fc.Epoch = ctx.Epoch
			return &ctx
		}, ErrWrongEpoch},
		{"another group", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			ctx := cloneGroupContext(&alice.g.ctx)
			ctx.GroupID = []byte("another group")
			fc.GroupID = ctx.GroupID
			return &ctx
		}, ErrWrongGroup},
		{"commit from a removed member", dave.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Sender.LeafIndex = uint32(daveLeaf)
			return nil
		}, ErrUnknownSender},
		{"commit from outside the tree", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Sender.LeafIndex = 1000
			return nil
		}, ErrUnknownSender},
		{"update path key replaced", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Commit.Path.Nodes[len(fc.Commit.Path.Nodes)-1].EncryptionKey = freshKey()
			return nil
		}, ErrInvalidParentHash},
		{"update path with a missing ciphertext", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			for i := range fc.Commit.Path.Nodes {
				if n := &fc.Commit.Path.Nodes[i]; len(n.EncryptedPathSecret) > 0 {
					n.EncryptedPathSecret = n.EncryptedPathSecret[1:]
					return nil
				}
			}
			t.Fatal("no ciphertext in the path")
			return nil
		}, ErrInvalidUpdatePath},
		{"update path with too few nodes", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Commit.Path.Nodes = fc.Commit.Path.Nodes[1:]
			return nil
		}, ErrInvalidUpdatePath},
		{"update path leaf with a bad signature", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			fc.Commit.Path.LeafNode.Signature = bytes.Clone(fc.Commit.Path.LeafNode.Signature)
			fc.Commit.Path.LeafNode.Signature[0] ^= 1
			return nil
		}, ErrInvalidSignature},
		{"update path leaf reusing the old encryption key", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			ln := &fc.Commit.Path.LeafNode
			ln.EncryptionKey = alice.g.tree.leaf(aliceLeaf).EncryptionKey
			if err := ln.Sign(cs, alice.sigPriv, alice.g.ctx.GroupID, uint32(aliceLeaf), alice.rand); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ErrDuplicateKey},
		{"update path leaf of source key_package", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			ln := &fc.Commit.Path.LeafNode
			ln.Source = LeafNodeSourceKeyPackage
			ln.Lifetime = Lifetime{NotAfter: 1 << 62}
			if err := ln.Sign(cs, alice.sigPriv, nil, 0, alice.rand); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ErrInvalidLeafNode},
		{"encrypted path secret for bob corrupted", alice.sigPriv, func(fc *FramedContent, _ *FramedContentAuthData) *GroupContext {
			for i := range fc.Commit.Path.Nodes {
				for j := range fc.Commit.Path.Nodes[i].EncryptedPathSecret {
					ct := &fc.Commit.Path.Nodes[i].EncryptedPathSecret[j]
					ct.Ciphertext = bytes.Clone(ct.Ciphertext)
					ct.Ciphertext[0] ^= 1
				}
			}
			return nil
		}, ErrDecryption},
	}
	for _, receiver := range []*testClient{bob, carol} {
		before, err := receiver.g.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			if receiver == carol && (c.name == "encrypted path secret for bob corrupted" || c.name == "wrong confirmation tag") {
				// carol is removed by the Commit: she can neither decrypt
				// the path nor derive the new epoch's confirmation key.
				continue
			}
			forged := forgeCommit(t, alice, good, c.signer, c.edit)
			_, err := receiver.g.Process(forged)
			if !errors.Is(err, c.want) {
				t.Errorf("%s: %s: got %v, want %v", receiver.name, c.name, err, c.want)
			}
			if err != nil && !bytes.HasPrefix([]byte(err.Error()), []byte("mls: ")) {
				t.Errorf("%s: error %q does not start with \"mls: \"", c.name, err)
			}
			after, err := receiver.g.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatalf("%s: %s: the rejected commit changed the state", receiver.name, c.name)
			}
		}
	}
	// The state is intact: the genuine Commit still applies.
	if _, err := alice.g.MergePendingCommit(pc); err != nil {
		t.Fatal(err)
	}
	rs := deliver(t, good, bob, carol)
	if !rs[1].Commit.RemovedSelf {
		t.Fatal("carol was not removed")
	}
	if rs[0].Commit.Committer != aliceLeaf || len(rs[0].Commit.Added) != 1 {
		t.Fatalf("update %+v", rs[0].Commit)
	}
	if bob.g.LeafIndex() != bobLeaf {
		t.Fatal("bob moved")
	}
	e, err := JoinFromWelcome(pc.Welcome, erinKP, nil, erin.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	erin.g = e
	sameEpoch(t, alice, bob, erin)
	// A replay of the applied Commit is for a past epoch.
	if _, err := bob.g.Process(good); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("replayed commit: %v", err)
	}
}

// A merged or discarded pending commit cannot be merged again, and a clone
// does not share its creator's pending commits.
func TestGroupPendingCommits(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	m := newTestGroup(t, cs, true, "alice", "bob")
	alice, bob := m[0], m[1]
	pc1, err := alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pc2, err := alice.g.Commit(CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if alice.g.Epoch() != 1 {
		t.Fatal("creating a commit changed the epoch")
	}
	clone := alice.g.Clone()
	before, _ := alice.g.MarshalState()
	if _, err := clone.MergePendingCommit(pc1); !errors.Is(err, ErrNotPending) {
		t.Fatalf("merging into a clone: %v", err)
	}
	alice.g.DiscardPendingCommit(pc2)
	if _, err := alice.g.MergePendingCommit(pc2); !errors.Is(err, ErrNotPending) {
		t.Fatalf("merging a discarded commit: %v", err)
	}
	// The echo of pc1 merges it.
	r, err := alice.g.Process(pc1.Message)
	if err != nil || r.Commit == nil || !r.Commit.Own {
		t.Fatalf("echoed commit: %+v, %v", r, err)
	}
	if _, err := alice.g.MergePendingCommit(pc1); !errors.Is(err, ErrNotPending) {
		t.Fatalf("merging twice: %v", err)
	}
	deliver(t, pc1.Message, bob)
	sameEpoch(t, alice, bob)
	// The clone is still in the old epoch, with the state alice had.
	after, _ := clone.MarshalState()
	if clone.Epoch() != 1 || !bytes.Equal(after, before) {
		t.Fatal("the clone changed with the original")
	}
}

// MarshalState/UnmarshalState round-trip byte for byte, and the restored
// group behaves like the original; clones are independent.
func TestGroupStateRoundTrip(t *testing.T) {
	for _, cs := range []CipherSuite{MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519, MLS_256_DHKEMP521_AES256GCM_SHA512_P521} {
		t.Run(fmt.Sprintf("suite-%d", cs), func(t *testing.T) {
			m := newTestGroup(t, cs, true, "alice", "bob", "carol")
			alice, bob, carol := m[0], m[1], m[2]
			for _, c := range m {
				c.g.StoreExternalPSK([]byte("k"), []byte("v"))
			}
			for i := 0; i < 3; i++ {
				commitAndDeliver(t, m[i], CommitOptions{}, append(append([]*testClient{}, m[:i]...), m[i+1:]...)...)
			}
			// Pending state: bob's own Update and a cached PSK proposal, and
			// a message of the previous epoch not yet received.
			late, err := alice.g.Protect([]byte("late"), nil)
			if err != nil {
				t.Fatal(err)
			}
			commitAndDeliver(t, carol, CommitOptions{}, alice, bob)
			upd, err := bob.g.ProposeUpdate([]byte("u"))
			if err != nil {
				t.Fatal(err)
			}
			deliver(t, upd, alice, carol)
			psk, err := carol.g.ProposeExternalPSK([]byte("k"), nil)
			if err != nil {
				t.Fatal(err)
			}
			deliver(t, psk, alice, bob)

			state, err := bob.g.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			restored, err := UnmarshalState(state, bob.opts()...)
			if err != nil {
				t.Fatal(err)
			}
			again, err := restored.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(state, again) {
				t.Fatal("state does not round-trip")
			}
			clone := bob.g.Clone()
			cloneState, _ := clone.MarshalState()
			if !bytes.Equal(state, cloneState) {
				t.Fatal("clone state differs")
			}
			for _, g := range []*Group{bob.g, restored, clone} {
				r, err := g.Process(late)
				if err != nil || string(r.ApplicationData) != "late" {
					t.Fatalf("late message: %v", err)
				}
			}
			pc, err := alice.g.Commit(CommitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(pc.Update.Updated) != 1 || len(pc.Update.PSKs) != 1 {
				t.Fatalf("commit %+v", pc.Update)
			}
			if _, err := alice.g.MergePendingCommit(pc); err != nil {
				t.Fatal(err)
			}
			for _, g := range []*Group{bob.g, restored, clone} {
				if _, err := g.Process(pc.Message); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(g.EpochAuthenticator(), alice.g.EpochAuthenticator()) {
					t.Fatal("restored or cloned state diverged")
				}
			}
			s1, _ := bob.g.MarshalState()
			s2, _ := restored.MarshalState()
			s3, _ := clone.MarshalState()
			if !bytes.Equal(s1, s2) || !bytes.Equal(s1, s3) {
				t.Fatal("states diverged after the same commit")
			}
			// Corrupt states are refused.
			for _, cut := range []int{0, 1, len(state) / 2, len(state) - 1} {
				if _, err := UnmarshalState(state[:cut]); !errors.Is(err, ErrInvalidState) {
					t.Fatalf("truncated state (%d bytes): %v", cut, err)
				}
			}
			bad := bytes.Clone(state)
			bad[len(bad)-1] = 7
			if _, err := UnmarshalState(bad); !errors.Is(err, ErrInvalidState) {
				t.Fatalf("corrupted state: %v", err)
			}
		})
	}
}
