package mls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// Behavioural tests of the Group API: a whole group lifecycle in every
// suite and both handshake wire formats, rejection of invalid Commits
// (§12.4.2) with the state left untouched, state round trips and clones.

// testClient is one client of a test: its signature key and credential.
type testClient struct {
	name    string
	sigPriv []byte
	cred    Credential
	g       *Group
	rand    io.Reader
}

func newTestClient(t testing.TB, cs CipherSuite, name string, seed uint64) *testClient {
	t.Helper()
	r := groupTestRand(seed)
	priv, _, err := cs.GenerateSignatureKeyPair(r)
	if err != nil {
		t.Fatal(err)
	}
	return &testClient{name: name, sigPriv: priv, cred: NewBasicCredential([]byte(name)), rand: r}
}

// groupTestRand is a deterministic random source for a test client, with
// the whole seed in its key (testRand uses only the low byte).
func groupTestRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	copy(s[8:], "canopy group test")
	return rand.NewChaCha8(s)
}

func (c *testClient) opts(extra ...Option) []Option {
	return append([]Option{WithRandom(c.rand), WithClock(func() time.Time { return testNow })}, extra...)
}

func (c *testClient) keyPackage(t testing.TB, cs CipherSuite) *KeyPackageBundle {
	t.Helper()
	b, err := NewKeyPackage(cs, c.sigPriv, c.cred, c.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deliver has every member in to (except from) process msg and returns
// their results.
func deliver(t testing.TB, msg []byte, to ...*testClient) []*Received {
	t.Helper()
	out := make([]*Received, len(to))
	for i, c := range to {
		r, err := c.g.Process(msg)
		if err != nil {
			t.Fatalf("%s processing: %v", c.name, err)
		}
		out[i] = r
	}
	return out
}

// sameEpoch checks that every member is in the same epoch with the same
// epoch authenticator, exporter output and tree.
func sameEpoch(t testing.TB, members ...*testClient) {
	t.Helper()
	a := members[0]
	aTree, err := a.g.RatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	aExp, _ := a.g.Export("test", []byte("ctx"), 32)
	for _, m := range members[1:] {
		if m.g.Epoch() != a.g.Epoch() {
			t.Fatalf("%s in epoch %d, %s in epoch %d", a.name, a.g.Epoch(), m.name, m.g.Epoch())
		}
		if !bytes.Equal(m.g.EpochAuthenticator(), a.g.EpochAuthenticator()) {
			t.Fatalf("epoch %d: %s and %s disagree on the epoch authenticator", a.g.Epoch(), a.name, m.name)
		}
		exp, _ := m.g.Export("test", []byte("ctx"), 32)
		if !bytes.Equal(exp, aExp) {
			t.Fatalf("%s and %s disagree on the exporter", a.name, m.name)
		}
		tree, _ := m.g.RatchetTree()
		if !bytes.Equal(tree, aTree) {
			t.Fatalf("%s and %s disagree on the tree", a.name, m.name)
		}
	}
}

// commitAndDeliver has c commit, merges it, and delivers it to the others.
func commitAndDeliver(t testing.TB, c *testClient, opts CommitOptions, others ...*testClient) (*PendingCommit, []*Received) {
	t.Helper()
	pc, err := c.g.Commit(opts)
	if err != nil {
		t.Fatalf("%s committing: %v", c.name, err)
	}
	if _, err := c.g.MergePendingCommit(pc); err != nil {
		t.Fatalf("%s merging: %v", c.name, err)
	}
	return pc, deliver(t, pc.Message, others...)
}

// newTestGroup creates a group of the named clients: the first creates it
// and adds the others with one Commit and one Welcome.
func newTestGroup(t testing.TB, cs CipherSuite, encrypt bool, names ...string) []*testClient {
	t.Helper()
	clients := make([]*testClient, len(names))
	for i, n := range names {
		clients[i] = newTestClient(t, cs, n, uint64(i+1)*7919+uint64(cs))
	}
	creator := clients[0]
	g, err := CreateGroup(cs, []byte("group-"+names[0]), creator.sigPriv, creator.cred, creator.opts(WithEncryptedHandshake(encrypt))...)
	if err != nil {
		t.Fatal(err)
	}
	creator.g = g
	if len(clients) == 1 {
		return clients
	}
	var adds []*Proposal
	bundles := make([]*KeyPackageBundle, len(clients))
	for i, c := range clients[1:] {
		bundles[i+1] = c.keyPackage(t, cs)
		adds = append(adds, &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: bundles[i+1].KeyPackage}})
	}
	pc, err := g.Commit(CommitOptions{Proposals: adds})
	if err != nil {
		t.Fatal(err)
	}
	if len(pc.Update.Added) != len(clients)-1 {
		t.Fatalf("added %v", pc.Update.Added)
	}
	if _, err := g.MergePendingCommit(pc); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients[1:] {
		if c.g, err = JoinFromWelcome(pc.Welcome, bundles[i+1], nil, c.opts(WithEncryptedHandshake(encrypt))...); err != nil {
			t.Fatalf("%s joining: %v", c.name, err)
		}
	}
	sameEpoch(t, clients...)
	return clients
}

func TestGroupLifecycle(t *testing.T) {
	for _, cs := range CipherSuites {
		for _, encrypt := range []bool{true, false} {
			t.Run(fmt.Sprintf("suite-%d/encrypted-%v", cs, encrypt), func(t *testing.T) {
				t.Parallel()
				testGroupLifecycle(t, cs, encrypt)
			})
		}
	}
}

func testGroupLifecycle(t *testing.T, cs CipherSuite, encrypt bool) {
	m := newTestGroup(t, cs, encrypt, "alice", "bob", "carol", "dave")
	alice, bob, carol, dave := m[0], m[1], m[2], m[3]
	if alice.g.MemberCount() != 4 {
		t.Fatalf("%d members", alice.g.MemberCount())
	}

	// Application messages, including one that arrives after the Commit
	// that ends its epoch (past-epoch window).
	msg, err := alice.g.Protect([]byte("hello"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range deliver(t, msg, bob, carol, dave) {
		if string(r.ApplicationData) != "hello" || string(r.AuthenticatedData) != "ad" || r.Sender.LeafIndex != uint32(alice.g.LeafIndex()) {
			t.Fatalf("received %+v", r)
		}
	}
	if _, err := bob.g.Process(msg); !errors.Is(err, ErrKeyConsumed) {
		t.Fatalf("replayed message: %v", err)
	}
	if _, err := alice.g.Process(msg); !errors.Is(err, ErrOwnMessage) {
		t.Fatalf("own message echoed: %v", err)
	}
	late, err := carol.g.Protect([]byte("late"), nil)
	if err != nil {
		t.Fatal(err)
	}

	// Update, Remove (from different members) and a commit by reference;
	// the removed member learns it was removed.
	upd, err := bob.g.ProposeUpdate(nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, upd, alice, carol, dave)
	rem, err := carol.g.ProposeRemove(dave.g.LeafIndex(), nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, rem, alice, bob, dave)
	if _, err := alice.g.Protect([]byte("x"), nil); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("sending with uncommitted proposals: %v", err)
	}
	pc, rs := commitAndDeliver(t, alice, CommitOptions{}, bob, carol, dave)
	if u := pc.Update; len(u.Updated) != 1 || u.Updated[0] != bob.g.LeafIndex() || len(u.Removed) != 1 || u.Removed[0].Index != 3 {
		t.Fatalf("state update %+v", u)
	}
	if !rs[2].Commit.RemovedSelf || !dave.g.Closed() {
		t.Fatal("dave does not know he was removed")
	}
	sameEpoch(t, alice, bob, carol)
	for _, r := range deliver(t, late, alice, bob) {
		if string(r.ApplicationData) != "late" || r.Epoch != alice.g.Epoch()-1 {
			t.Fatalf("late message %+v", r)
		}
	}

	// External and resumption PSKs, committed by bob without a path.
	for _, c := range []*testClient{alice, bob, carol} {
		c.g.StoreExternalPSK([]byte("psk-1"), []byte("an external secret"))
	}
	p1, err := carol.g.ProposeExternalPSK([]byte("psk-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, p1, alice, bob)
	p2, err := alice.g.ProposeResumptionPSK(alice.g.Epoch()-1, nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, p2, bob, carol)
	pc, _ = commitAndDeliver(t, bob, CommitOptions{}, alice, carol)
	if len(pc.Update.PSKs) != 2 || pc.Update.PSKs[0].Type != PSKTypeExternal || pc.Update.PSKs[1].Type != PSKTypeResumption {
		t.Fatalf("PSKs %+v", pc.Update.PSKs)
	}
	sameEpoch(t, alice, bob, carol)

	// An empty Commit (path only), by the member who updated.
	commitAndDeliver(t, bob, CommitOptions{}, alice, carol)
	sameEpoch(t, alice, bob, carol)

	// GroupContextExtensions: an external sender.
	ds := newTestClient(t, cs, "ds", 99)
	dsPub, err := cs.SignaturePublicKey(ds.sigPriv)
	if err != nil {
		t.Fatal(err)
	}
	senders := ExternalSenders{{SignatureKey: dsPub, Credential: ds.cred}}
	sendersData := mustMarshal(t, &senders)
	gce, err := alice.g.ProposeGroupContextExtensions([]Extension{{Type: ExtensionExternalSenders, Data: sendersData}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, gce, bob, carol)
	pc, _ = commitAndDeliver(t, carol, CommitOptions{GroupInfo: true}, alice, bob)
	if !pc.Update.Extensions || pc.GroupInfo == nil {
		t.Fatal("GroupContextExtensions not reported")
	}
	sameEpoch(t, alice, bob, carol)

	// An external sender adds a member; a new member asks to be added.
	erin := newTestClient(t, cs, "erin", 5)
	erinKP := erin.keyPackage(t, cs)
	gi, err := alice.g.GroupInfo(GroupInfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ext, err := ExternalProposal(gi, 0, ds.sigPriv, &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: erinKP.KeyPackage}}, nil, ds.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, ext, alice, bob, carol)
	frank := newTestClient(t, cs, "frank", 6)
	frankKP := frank.keyPackage(t, cs)
	nm, err := NewMemberAddProposal(gi, frankKP, nil, frank.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, nm, alice, bob, carol)
	pc, _ = commitAndDeliver(t, bob, CommitOptions{ExternalTree: true}, alice, carol)
	if len(pc.Update.Added) != 2 || pc.RatchetTree == nil {
		t.Fatalf("external adds: %+v", pc.Update)
	}
	// The Welcome leaves the tree out: join with the tree fetched out of
	// band, checked against the GroupInfo's tree hash.
	sw, err := OpenWelcome(pc.Welcome, []*KeyPackageBundle{erinKP}, erin.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	if !sw.NeedsRatchetTree() {
		t.Fatal("the Welcome carries the tree")
	}
	badTree, _ := dave.g.RatchetTree()
	if _, err := sw.Join(badTree); !errors.Is(err, ErrTreeHashMismatch) {
		t.Fatalf("joining with the wrong tree: %v", err)
	}
	if erin.g, err = sw.Join(pc.RatchetTree); err != nil {
		t.Fatal(err)
	}
	if frank.g, err = JoinFromWelcome(pc.Welcome, frankKP, pc.RatchetTree, frank.opts()...); err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, alice, bob, carol, erin, frank)

	// An external remove by the external sender.
	gi, _ = alice.g.GroupInfo(GroupInfoOptions{})
	ext, err = ExternalProposal(gi, 0, ds.sigPriv, &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: uint32(frank.g.LeafIndex())}}, nil, ds.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, ext, alice, bob, carol, erin, frank)
	commitAndDeliver(t, erin, CommitOptions{}, alice, bob, carol, frank)
	if !frank.g.Closed() {
		t.Fatal("frank not removed")
	}
	sameEpoch(t, alice, bob, carol, erin)

	// External join, then a resync by the same client.
	gi, err = carol.g.GroupInfo(GroupInfoOptions{ExternalPub: true, RatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	gary := newTestClient(t, cs, "gary", 7)
	var commit []byte
	gary.g, commit, err = JoinExternal(gi, gary.sigPriv, gary.cred, ExternalJoinOptions{}, gary.opts(WithEncryptedHandshake(encrypt))...)
	if err != nil {
		t.Fatal(err)
	}
	rs = deliver(t, commit, alice, bob, carol, erin)
	if u := rs[0].Commit; !u.External || len(u.Added) != 1 || u.Added[0] != gary.g.LeafIndex() {
		t.Fatalf("external join update %+v", u)
	}
	sameEpoch(t, alice, bob, carol, erin, gary)
	msg, err = gary.g.Protect([]byte("hi from gary"), nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, msg, alice, bob, carol, erin)

	tree, _ := alice.g.RatchetTree()
	gi, _ = alice.g.GroupInfo(GroupInfoOptions{ExternalPub: true})
	oldLeaf := gary.g.LeafIndex()
	gary2 := &testClient{name: "gary2", sigPriv: gary.sigPriv, cred: gary.cred, rand: gary.rand}
	gary2.g, commit, err = JoinExternal(gi, gary.sigPriv, gary.cred, ExternalJoinOptions{RatchetTree: tree, RemovePrior: true}, gary.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	rs = deliver(t, commit, alice, bob, carol, erin, gary)
	if u := rs[0].Commit; len(u.Removed) != 1 || u.Removed[0].Index != oldLeaf {
		t.Fatalf("resync update %+v", u)
	}
	if !rs[4].Commit.RemovedSelf {
		t.Fatal("the old appearance was not removed")
	}
	sameEpoch(t, alice, bob, carol, erin, gary2)
	members := []*testClient{alice, bob, carol, erin, gary2}

	// Branch: bob and carol in a subgroup.
	carolKP := carol.keyPackage(t, cs)
	sub, subPC, err := bob.g.Branch([]byte("subgroup"), []*KeyPackage{&carolKP.KeyPackage}, CommitOptions{}, bob.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := JoinFromWelcome(subPC.Welcome, carolKP, nil, carol.opts()...); !errors.Is(err, ErrMissingPSK) {
		t.Fatalf("joining a branch without the parent group: %v", err)
	}
	carolSub, err := JoinFromWelcome(subPC.Welcome, carolKP, nil, carol.opts(WithResumptionGroups(carol.g))...)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Epoch() != 1 || !bytes.Equal(sub.EpochAuthenticator(), carolSub.EpochAuthenticator()) {
		t.Fatal("branch: members disagree")
	}

	// ReInit: proposed by alice, committed by bob, new group by carol.
	ri, err := alice.g.ProposeReInit([]byte("reinit-group"), cs, []Extension{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, ri, bob, carol, erin, gary2)
	pc, rs = commitAndDeliver(t, bob, CommitOptions{}, alice, carol, erin, gary2)
	if pc.Update.ReInit == nil || rs[0].Commit.ReInit == nil {
		t.Fatal("ReInit not reported")
	}
	sameEpoch(t, members...)
	for _, c := range members {
		if !c.g.Closed() {
			t.Fatalf("%s can still send after the ReInit", c.name)
		}
	}
	if _, err := alice.g.Protect([]byte("x"), nil); !errors.Is(err, ErrGroupClosed) {
		t.Fatalf("sending after ReInit: %v", err)
	}
	var kps []*KeyPackage
	bundles := map[string]*KeyPackageBundle{}
	for _, c := range members {
		if c == carol {
			continue
		}
		bundles[c.name] = c.keyPackage(t, cs)
		kps = append(kps, &bundles[c.name].KeyPackage)
	}
	reg, rpc, err := carol.g.ReInitGroup(kps, nil, CommitOptions{}, carol.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Epoch() != 1 || !bytes.Equal(reg.GroupID(), []byte("reinit-group")) {
		t.Fatalf("reinit group at epoch %d", reg.Epoch())
	}
	for _, c := range members {
		if c == carol {
			continue
		}
		ng, err := JoinFromWelcome(rpc.Welcome, bundles[c.name], nil, c.opts(WithResumptionGroups(c.g))...)
		if err != nil {
			t.Fatalf("%s joining the reinitialized group: %v", c.name, err)
		}
		if !bytes.Equal(ng.EpochAuthenticator(), reg.EpochAuthenticator()) {
			t.Fatalf("%s disagrees on the reinitialized group", c.name)
		}
	}
}

// An external join that injects an external PSK; own proposals echoed
// back; a member alone in its group commits (empty filtered direct path).
func TestGroupExternalJoinPSKAndEchoes(t *testing.T) {
	cs := MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519
	m := newTestGroup(t, cs, false, "alice")
	alice := m[0]
	// Alone: an empty Commit still moves the epoch.
	pc, _ := commitAndDeliver(t, alice, CommitOptions{})
	if pc.Update.Epoch != 1 || alice.g.Epoch() != 1 {
		t.Fatalf("epoch %d", alice.g.Epoch())
	}
	alice.g.StoreExternalPSK([]byte("psk"), []byte("secret"))
	gi, err := alice.g.GroupInfo(GroupInfoOptions{ExternalPub: true, RatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	bob := newTestClient(t, cs, "bob", 2)
	if _, _, err := JoinExternal(gi, bob.sigPriv, bob.cred, ExternalJoinOptions{PSKs: [][]byte{[]byte("psk")}}, bob.opts()...); !errors.Is(err, ErrMissingPSK) {
		t.Fatalf("external join with an unknown PSK: %v", err)
	}
	var commit []byte
	bob.g, commit, err = JoinExternal(gi, bob.sigPriv, bob.cred, ExternalJoinOptions{PSKs: [][]byte{[]byte("psk")}},
		bob.opts(WithExternalPSK([]byte("psk"), []byte("secret")), WithEncryptedHandshake(false))...)
	if err != nil {
		t.Fatal(err)
	}
	rs := deliver(t, commit, alice)
	if len(rs[0].Commit.PSKs) != 1 || !rs[0].Commit.External {
		t.Fatalf("update %+v", rs[0].Commit)
	}
	sameEpoch(t, alice, bob)

	// Echoes of one's own proposals are recognised, in both wire formats.
	for _, encrypt := range []bool{false, true} {
		bob.g.SetOptions(WithEncryptedHandshake(encrypt))
		p, err := bob.g.ProposeUpdate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.g.Process(p); !errors.Is(err, ErrOwnMessage) {
			t.Fatalf("own proposal echoed (encrypted %v): %v", encrypt, err)
		}
		deliver(t, p, alice)
	}
	// Two Updates from bob: alice commits the later one.
	pc, _ = commitAndDeliver(t, alice, CommitOptions{}, bob)
	if len(pc.Update.Updated) != 1 || pc.Update.Updated[0] != bob.g.LeafIndex() {
		t.Fatalf("update %+v", pc.Update)
	}
	sameEpoch(t, alice, bob)
}
