package mls

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// TestXWingGroup runs a group on suite 0x004D through the paths that carry
// X-Wing keys and ciphertexts: the Welcome (KeyPackage init keys, the tree
// of 1216-byte keys), UpdatePaths (TreeKEM path secrets to X-Wing node
// keys), and an external join (external_pub is an X-Wing key, the
// ExternalInit kem_output an X-Wing ciphertext). A KeyPackage of another
// suite is refused.
func TestXWingGroup(t *testing.T) {
	m := newTestGroup(t, csXWing, true, "alice", "bob", "carol")
	alice, bob, carol := m[0], m[1], m[2]
	if alice.g.CipherSuite() != csXWing {
		t.Fatalf("group suite %v", alice.g.CipherSuite())
	}
	for _, mem := range alice.g.Members() {
		if len(mem.LeafNode.EncryptionKey) != xwingPublicKeySize {
			t.Fatalf("leaf %d encryption key is %d bytes", mem.Index, len(mem.LeafNode.EncryptionKey))
		}
	}
	msg, err := bob.g.Protect([]byte("post-quantum hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range deliver(t, msg, alice, carol) {
		if string(r.ApplicationData) != "post-quantum hello" {
			t.Fatalf("received %q", r.ApplicationData)
		}
	}

	// Full-path commits from each member.
	for _, c := range m {
		others := slices.DeleteFunc(slices.Clone(m), func(o *testClient) bool { return o == c })
		commitAndDeliver(t, c, CommitOptions{ForcePath: true}, others...)
		sameEpoch(t, m...)
	}

	// External join with the X-Wing external_pub.
	dave := newTestClient(t, csXWing, "dave", 4)
	gi, err := carol.g.GroupInfo(GroupInfoOptions{ExternalPub: true, RatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	var commit []byte
	dave.g, commit, err = JoinExternal(gi, dave.sigPriv, dave.cred, ExternalJoinOptions{}, dave.opts(WithEncryptedHandshake(true))...)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, commit, alice, bob, carol)
	m = append(m, dave)
	sameEpoch(t, m...)

	// A suite-1 KeyPackage cannot join an X-Wing group.
	erin := newTestClient(t, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, "erin", 5)
	if _, err := alice.g.ProposeAdd(&erin.keyPackage(t, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519).KeyPackage, nil); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("suite-1 KeyPackage in an X-Wing group: %v", err)
	}
}

// TestXWingReInitFromSuite1 moves a suite-1 group to 0x004D with a ReInit
// (§11.2): the same Ed25519 identities, new X-Wing KeyPackages, a
// resumption PSK linking the groups, and messages in the new group.
// Proposing the ReInit is refused while a member's leaf does not list the
// suite.
func TestXWingReInitFromSuite1(t *testing.T) {
	cs1 := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	m := newTestGroup(t, cs1, false, "alice", "bob", "carol")
	alice, bob, carol := m[0], m[1], m[2]

	// dave's client predates X-Wing.
	dave := newTestClient(t, cs1, "dave", 4)
	oldCaps := DefaultCapabilities()
	oldCaps.CipherSuites = slices.DeleteFunc(oldCaps.CipherSuites, func(cs CipherSuite) bool { return cs == csXWing })
	daveKP, err := NewKeyPackage(cs1, dave.sigPriv, dave.cred, dave.opts(WithCapabilities(oldCaps))...)
	if err != nil {
		t.Fatal(err)
	}
	add, err := alice.g.ProposeAdd(&daveKP.KeyPackage, nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, add, bob, carol)
	pc, _ := commitAndDeliver(t, alice, CommitOptions{}, bob, carol)
	if dave.g, err = JoinFromWelcome(pc.Welcome, daveKP, nil, dave.opts()...); err != nil {
		t.Fatal(err)
	}
	_, err = alice.g.ProposeReInit([]byte("pq-group"), csXWing, []Extension{}, nil)
	var lack *MembersLackCipherSuiteError
	if !errors.Is(err, ErrInvalidProposal) || !errors.As(err, &lack) || lack.Suite != csXWing || !slices.Equal(lack.Leaves, []LeafIndex{dave.g.LeafIndex()}) {
		t.Fatalf("ReInit with a member lacking the suite: %v", err)
	}
	rem, err := alice.g.ProposeRemove(dave.g.LeafIndex(), nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, rem, bob, carol, dave)
	commitAndDeliver(t, bob, CommitOptions{}, alice, carol, dave)

	ri, err := alice.g.ProposeReInit([]byte("pq-group"), csXWing, []Extension{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, ri, bob, carol)
	pc, rs := commitAndDeliver(t, bob, CommitOptions{}, alice, carol)
	if pc.Update.ReInit == nil || rs[0].Commit.ReInit == nil || rs[0].Commit.ReInit.CipherSuite != csXWing {
		t.Fatal("ReInit to X-Wing not reported")
	}
	bundles := map[string]*KeyPackageBundle{}
	var kps []*KeyPackage
	for _, c := range []*testClient{bob, carol} {
		bundles[c.name] = c.keyPackage(t, csXWing)
		kps = append(kps, &bundles[c.name].KeyPackage)
	}
	ng, rpc, err := alice.g.ReInitGroup(kps, nil, CommitOptions{}, alice.opts(WithEncryptedHandshake(true))...)
	if err != nil {
		t.Fatal(err)
	}
	if ng.CipherSuite() != csXWing || !bytes.Equal(ng.GroupID(), []byte("pq-group")) || ng.Epoch() != 1 {
		t.Fatalf("new group: suite %v id %q epoch %d", ng.CipherSuite(), ng.GroupID(), ng.Epoch())
	}
	old := map[string]*Group{}
	for _, c := range m {
		old[c.name] = c.g
	}
	alice.g = ng
	for _, c := range []*testClient{bob, carol} {
		if c.g, err = JoinFromWelcome(rpc.Welcome, bundles[c.name], nil, c.opts(WithResumptionGroups(old[c.name]), WithEncryptedHandshake(true))...); err != nil {
			t.Fatalf("%s joining the X-Wing group: %v", c.name, err)
		}
	}
	sameEpoch(t, alice, bob, carol)
	msg, err := carol.g.Protect([]byte("now post-quantum"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range deliver(t, msg, alice, bob) {
		if string(r.ApplicationData) != "now post-quantum" {
			t.Fatalf("received %q", r.ApplicationData)
		}
	}
	commitAndDeliver(t, carol, CommitOptions{ForcePath: true}, alice, bob)
	sameEpoch(t, alice, bob, carol)
}
