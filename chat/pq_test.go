package chat

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/mls"
)

// groupView returns p's view of g.
func (p *testPeer) groupView(g GroupID) GroupView {
	for _, v := range p.e.Groups() {
		if v.ID == g {
			return v
		}
	}
	p.t.Fatalf("%s has no group %s", p.e.nick(), g)
	return GroupView{}
}

// An older client: it offers suite 1 only.
func suite1Only(c *Config) { c.offered = []mls.CipherSuite{suite} }

// A --pq group of three on real engines: created with two members in one
// Commit (each handing out a KeyPackage of suite 0x004D), everyone sees
// the suite in the group view, and messages flow among all three.
func TestPQGroupThreeMembersChat(t *testing.T) {
	alice, bob, carol := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "carol")
	connect(t, alice, bob)
	connect(t, alice, carol)
	connect(t, bob, carol)

	res := alice.run("", "/create vault "+bob.card()+" --pq "+carol.card())
	g := res.Group
	if !strings.Contains(res.Text, "post-quantum") || !strings.Contains(res.Text, "bob") || !strings.Contains(res.Text, "carol") {
		t.Fatalf("create: %+v", res)
	}
	if gb := bob.acceptInvitation(); gb != g {
		t.Fatalf("bob joined %s, want %s", gb, g)
	}
	if gc := carol.acceptInvitation(); gc != g {
		t.Fatalf("carol joined %s, want %s", gc, g)
	}
	for _, p := range []*testPeer{alice, bob, carol} {
		waitFor(t, p.e.nick()+" sees three members", func() bool { return len(p.e.Members(g)) == 3 })
		v := p.groupView(g)
		if mls.CipherSuite(v.CipherSuite) != mls.MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519 || !v.PostQuantum() {
			t.Fatalf("%s's view of the group: %+v", p.e.nick(), v)
		}
	}
	// The members' leaves are X-Wing: the group's state says so, not only
	// the view.
	g0 := alice.e.group(g)
	var cs mls.CipherSuite
	if err := g0.do(context.Background(), func() { cs = g0.st.CipherSuite() }); err != nil || cs != pqSuite {
		t.Fatalf("alice's state: suite %v, %v", cs, err)
	}

	alice.run(g, "from alice")
	bob.run(g, "from bob")
	carol.run(g, "from carol")
	for _, p := range []*testPeer{alice, bob, carol} {
		for _, body := range []string{"from alice", "from bob", "from carol"} {
			p.rec.wait(t, p.e.nick()+" gets "+body, isMessage(g, body))
		}
	}

	// A suite-1 group made next to it stays on suite 1.
	plain := alice.run("", "/create plain").Group
	if v := alice.groupView(plain); v.PostQuantum() || mls.CipherSuite(v.CipherSuite) != suite {
		t.Fatalf("plain group view %+v", v)
	}
}

// A profile keeps a KeyPackage pool of each suite it offers and hands out
// the suite asked for; an older client (suite 1 only) keeps none of 0x004D.
func TestKeyPackagePoolPerSuite(t *testing.T) {
	alice, old := newPeer(t, "alice"), newPeer(t, "old", suite1Only)
	ctx := context.Background()
	count := func(p *testPeer) map[uint16][2]int {
		all, err := p.e.db.ListKeyPackages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[uint16][2]int{}
		for _, kp := range all {
			c := out[kp.CipherSuite]
			if kp.LastResort {
				c[1]++
			} else {
				c[0]++
			}
			out[kp.CipherSuite] = c
		}
		return out
	}
	want := [2]int{keyPackagePool, 1}
	if c := count(alice); c[uint16(suite)] != want || c[uint16(pqSuite)] != want || len(c) != 2 {
		t.Fatalf("alice's pool %v", c)
	}
	if c := count(old); c[uint16(suite)] != want || len(c) != 1 {
		t.Fatalf("old client's pool %v", c)
	}
	for _, cs := range []mls.CipherSuite{suite, pqSuite} {
		kp, err := alice.e.handOutKeyPackage(ctx, "", uint16(cs))
		if err != nil {
			t.Fatal(err)
		}
		pkg, err := mls.ParseKeyPackage(kp.Data)
		if err != nil || pkg.CipherSuite != cs || kp.CipherSuite != uint16(cs) {
			t.Fatalf("asked for %v: got %v (%v)", cs, pkg, err)
		}
		if !pkg.LeafNode.Capabilities.SupportsCipherSuite(suite) || !pkg.LeafNode.Capabilities.SupportsCipherSuite(pqSuite) {
			t.Fatalf("capabilities %+v", pkg.LeafNode.Capabilities)
		}
	}
	// Relay uploads carry both suites, each with its last-resort package.
	up, err := alice.e.relayKeyPackages(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	per := map[uint16][2]int{}
	for _, kp := range up {
		pkg, err := mls.ParseKeyPackage(kp.Data)
		if err != nil || uint16(pkg.CipherSuite) != kp.CipherSuite {
			t.Fatalf("uploaded package labelled %d: %v", kp.CipherSuite, err)
		}
		c := per[kp.CipherSuite]
		if kp.LastResort {
			c[1]++
		} else {
			c[0]++
		}
		per[kp.CipherSuite] = c
	}
	if per[uint16(suite)] != [2]int{2, 1} || per[uint16(pqSuite)] != [2]int{2, 1} {
		t.Fatalf("relay upload %v", per)
	}
	if _, err := old.e.handOutKeyPackage(ctx, "", uint16(pqSuite)); err == nil {
		t.Fatal("old client handed out an X-Wing KeyPackage")
	}
}

// Inviting a contact whose client lacks the suite into a --pq group fails
// at invite time with a plain-words error naming them and the suite, and
// changes nothing; the same contact can join a suite-1 group.
func TestPQInviteClientWithoutSuite(t *testing.T) {
	alice, bob, old := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "dave", suite1Only)
	connect(t, alice, bob)
	connect(t, alice, old)

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	_, err := alice.e.Run(ctx, "", "/create vault --pq "+bob.card()+" "+old.card())
	var se *SuiteUnsupportedError
	if !errors.As(err, &se) || !errors.Is(err, ErrSuiteUnsupported) || se.Suite != pqSuite ||
		!strings.Contains(err.Error(), "dave's client does not offer post-quantum groups (suite 0x004d)") {
		t.Fatalf("create with an old client: %v", err)
	}
	if gs := alice.e.Groups(); len(gs) != 0 {
		t.Fatalf("groups after a refused create: %+v", gs)
	}

	g := alice.run("", "/create vault --pq "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(g)) == 2 })
	epoch := alice.groupView(g).Epoch
	_, err = alice.e.Run(ctx, g, "/invite "+old.card())
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "dave's client does not offer post-quantum groups") {
		t.Fatalf("invite of an old client: %v", err)
	}
	if v := alice.groupView(g); v.Epoch != epoch || v.Members != 2 {
		t.Fatalf("group changed by a refused invite: %+v", v)
	}

	// The old client still joins suite-1 groups.
	plain := alice.run("", "/create plain "+old.card()).Group
	old.acceptInvitation()
	waitFor(t, "old client in the plain group", func() bool { return len(old.e.Members(plain)) == 2 })
}

// findPQGroup returns the id of p's post-quantum group named name, if any.
func (p *testPeer) findPQGroup(name string) (GroupID, bool) {
	for _, v := range p.e.Groups() {
		if v.Name == name && v.PostQuantum() && !v.Left {
			return v.ID, true
		}
	}
	return "", false
}

// /reinit --pq moves a suite-1 group of three to the X-Wing suite (RFC 9420
// §11.2): a ReInit Commit closes the old group on every member, the mover
// creates the successor with the same members, and the others join it from
// its Welcome without /accept; the three chat there, and the old group
// takes no more messages.
func TestPQReInitSuite1Group(t *testing.T) {
	alice, bob, carol := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "carol")
	connect(t, alice, bob)
	connect(t, alice, carol)
	connect(t, bob, carol)

	old := alice.run("", "/create team "+bob.card()+" "+carol.card()).Group
	bob.acceptInvitation()
	carol.acceptInvitation()
	for _, p := range []*testPeer{alice, bob, carol} {
		waitFor(t, p.e.nick()+" sees three members", func() bool { return len(p.e.Members(old)) == 3 })
	}
	if alice.groupView(old).PostQuantum() {
		t.Fatal("a plain /create made a PQ group")
	}
	bob.run(old, "before the move")
	alice.rec.wait(t, "bob's message", isMessage(old, "before the move"))
	carol.rec.wait(t, "bob's message", isMessage(old, "before the move"))

	res := alice.run(old, "/reinit --pq")
	ng := res.Group
	if ng == "" || ng == old || !strings.Contains(res.Text, "post-quantum") {
		t.Fatalf("reinit: %+v", res)
	}
	if v := alice.groupView(ng); !v.PostQuantum() || v.Name != "team" || v.Members != 3 || v.Epoch != 1 {
		t.Fatalf("alice's new group %+v", v)
	}
	for _, p := range []*testPeer{bob, carol} {
		waitFor(t, p.e.nick()+" in the PQ successor", func() bool {
			id, ok := p.findPQGroup("team")
			return ok && id == ng && len(p.e.Members(ng)) == 3
		})
		if len(p.e.Invitations()) != 0 {
			t.Fatalf("%s was asked to accept a continuation: %+v", p.e.nick(), p.e.Invitations())
		}
	}
	for _, p := range []*testPeer{alice, bob, carol} {
		waitFor(t, p.e.nick()+"'s old group closed", func() bool { return p.groupView(old).Left })
		p.rec.wait(t, p.e.nick()+" told of the move", isSystem(ng, "continues here on post-quantum"))
	}

	alice.run(ng, "pq from alice")
	bob.run(ng, "pq from bob")
	carol.run(ng, "pq from carol")
	for _, p := range []*testPeer{alice, bob, carol} {
		for _, body := range []string{"pq from alice", "pq from bob", "pq from carol"} {
			p.rec.wait(t, p.e.nick()+" gets "+body, isMessage(ng, body))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := bob.e.Run(ctx, old, "into the closed group"); err == nil {
		t.Fatal("a message was sent into the closed group")
	}
	// The successor is a working group: its members change as usual.
	alice.run(ng, "/kick carol")
	waitFor(t, "carol removed", func() bool { return len(bob.e.Members(ng)) == 2 })
}

// A ReInit to a suite some member's client lacks is refused before
// anything is committed, naming the member.
func TestPQReInitRefusedForOldClient(t *testing.T) {
	alice, bob, old := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "dave", suite1Only)
	connect(t, alice, bob)
	connect(t, alice, old)
	g := alice.run("", "/create team "+bob.card()+" "+old.card()).Group
	bob.acceptInvitation()
	old.acceptInvitation()
	waitFor(t, "three members", func() bool { return len(alice.e.Members(g)) == 3 })
	epoch := alice.groupView(g).Epoch
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	_, err := alice.e.Run(ctx, g, "/reinit --pq")
	if !errors.Is(err, ErrSuiteUnsupported) || !strings.Contains(err.Error(), "dave's client does not offer post-quantum groups") {
		t.Fatalf("reinit with an old client: %v", err)
	}
	if v := alice.groupView(g); v.Epoch != epoch || v.Left || v.PostQuantum() {
		t.Fatalf("group after a refused reinit: %+v", v)
	}
	alice.run(g, "still here")
	old.rec.wait(t, "message after the refused move", isMessage(g, "still here"))
}

// A successor's Welcome that arrives before the ReInit Commit (say from a
// relay mailbox while the member catches up) names a PSK the member does
// not have yet: it is kept, and opened when the old group closes. Here
// alice makes the ReInit Commit and the successor by hand without
// publishing; bob gets the Welcome first, then the Commit.
func TestPQReInitWelcomeBeforeCommit(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	connect(t, alice, bob)
	old := alice.run("", "/create team "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(old)) == 2 && len(bob.e.Members(old)) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()

	kp, _, err := alice.e.fetchKeyPackageFor(ctx, bob.e.id.id, nil, pqSuite)
	if err != nil {
		t.Fatal(err)
	}
	ag := alice.e.group(old)
	var commit, env []byte
	var newGID []byte
	var derr error
	if err := ag.do(ctx, func() {
		work := ag.st.Clone()
		r := &mls.ReInit{GroupID: []byte("successor-of-team"), Version: mls.ProtocolMLS10, CipherSuite: pqSuite, Extensions: work.Extensions()}
		pc, err := work.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeReInit, ReInit: r}}})
		if err != nil {
			derr = err
			return
		}
		if _, err := work.MergePendingCommit(pc); err != nil {
			derr = err
			return
		}
		st, rpc, err := work.ReInitGroup([]*mls.KeyPackage{kp}, nil, mls.CommitOptions{}, alice.e.mlsOptions()...)
		if err != nil {
			derr = err
			return
		}
		commit, newGID = pc.Message, st.GroupID()
		env, derr = alice.e.sealWelcome(rpc.Welcome, nil, st, nil, bob.e.id.id)
	}); err != nil || derr != nil {
		t.Fatal(err, derr)
	}

	err = bob.e.onWelcome(ctx, viaMailbox, alice.e.id.id, "", env)
	if err == nil || !strings.Contains(err.Error(), "pre-shared key not available") {
		t.Fatalf("a Welcome before its ReInit: %v", err)
	}
	if len(bob.e.Invitations()) != 0 || bob.e.group(GroupID(hex.EncodeToString(newGID))) != nil {
		t.Fatal("the Welcome was used before its ReInit Commit")
	}
	bg := bob.e.group(old)
	bg.post(func() { bg.handleFrame(inFrame{data: commit, from: alice.e.id.id}) })
	waitFor(t, "bob in the successor", func() bool {
		id, ok := bob.findPQGroup("team")
		return ok && id == GroupID(hex.EncodeToString(newGID))
	})
	if !bob.groupView(old).Left {
		t.Fatal("bob's old group is not closed")
	}
}

// A direct conversation moves too: its successor is again a direct
// conversation of the same two, now post-quantum, and /dm finds it.
func TestPQReInitDirect(t *testing.T) {
	alice, bob, old := dmPair(t)
	ng := alice.run(old, "/reinit --pq").Group
	waitFor(t, "bob in the successor", func() bool {
		for _, v := range bob.e.Groups() {
			if v.ID == ng && v.PostQuantum() && v.Direct && v.Name == "alice" {
				return true
			}
		}
		return false
	})
	if v := alice.groupView(ng); !v.Direct || v.Name != "bob" || !v.PostQuantum() {
		t.Fatalf("alice's successor %+v", v)
	}
	if got := alice.run("", "/dm "+bob.card()).Group; got != ng {
		t.Fatalf("/dm after the move opened %s, want the successor %s", got, ng)
	}
	bob.run(ng, "direct and post-quantum")
	alice.rec.wait(t, "bob's message", isMessage(ng, "direct and post-quantum"))
}

// The mover stops after committing the ReInit and before making the
// successor (here: its Commit never settles in the first run): on its next
// start it makes the successor from the stored closed state, and the other
// member follows.
func TestPQReInitMoverRestarts(t *testing.T) {
	dir := t.TempDir()
	aliceOpts := func(c *Config) { c.Store, c.ProfileDir = nil, dir }
	neverSettles := func(c *Config) { c.SettleTime = time.Hour; c.Ordering.SettleEpochs = 1 << 30 }
	alice0, bob := newPeer(t, "alice", aliceOpts), newPeer(t, "bob")
	connect(t, alice0, bob)
	old := alice0.run("", "/create team "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice0.e.Members(old)) == 2 && len(bob.e.Members(old)) == 2 })
	if err := alice0.e.Close(); err != nil {
		t.Fatal(err)
	}
	alice := newPeer(t, "alice", aliceOpts, neverSettles)
	connect(t, alice, bob)
	waitFor(t, "alice's group running again", func() bool { return len(alice.e.Members(old)) == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := alice.e.Run(ctx, old, "/reinit --pq")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("reinit that cannot settle: %v", err)
	}
	waitFor(t, "bob's old group closed", func() bool { return bob.groupView(old).Left })
	if _, ok := bob.findPQGroup("team"); ok {
		t.Fatal("a successor before the ReInit settled")
	}
	if err := alice.e.Close(); err != nil {
		t.Fatal(err)
	}

	alice2 := newPeer(t, "alice", aliceOpts)
	connect(t, alice2, bob)
	var ng GroupID
	waitFor(t, "alice's successor", func() bool {
		var ok bool
		ng, ok = alice2.findPQGroup("team")
		return ok
	})
	waitFor(t, "bob in the successor", func() bool {
		id, ok := bob.findPQGroup("team")
		return ok && id == ng
	})
	bob.run(ng, "after the mover's restart")
	alice2.rec.wait(t, "bob's message", isMessage(ng, "after the mover's restart"))
}
