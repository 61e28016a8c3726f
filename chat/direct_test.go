package chat

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/mls"
)

func directViewOf(p *testPeer, g GroupID) (GroupView, bool) {
	for _, v := range p.e.Groups() {
		if v.ID == g {
			return v, true
		}
	}
	return GroupView{}, false
}

// dmPair: alice /dm bob (by card), bob accepts the direct request.
func dmPair(t *testing.T) (alice, bob *testPeer, g GroupID) {
	t.Helper()
	alice, bob = newPeer(t, "alice"), newPeer(t, "bob")
	connect(t, alice, bob)
	g = alice.run("", "/dm "+bob.card()).Group
	if g == "" {
		t.Fatal("/dm named no group")
	}
	inv := bob.rec.wait(t, "direct request", isInvitation).(InvitationEvent).Invitation
	if !inv.Direct || inv.GroupName != "alice" || inv.From != "alice" {
		t.Fatalf("bob's invitation %+v, want a direct request from alice", inv)
	}
	if got := bob.run("", "/accept").Group; got != g {
		t.Fatalf("bob joined %s, want %s", got, g)
	}
	waitFor(t, "two members on both sides", func() bool { return len(alice.e.Members(g)) == 2 && len(bob.e.Members(g)) == 2 })
	return alice, bob, g
}

// /dm opens a two-member group that both sides see as a direct
// conversation named after the other; messages flow; a second /dm (by
// nick, from either side) reopens it; nobody can be invited or kicked.
func TestDirectConversation(t *testing.T) {
	alice, bob, g := dmPair(t)
	carol := newPeer(t, "carol")
	connect(t, alice, carol)

	for _, c := range []struct {
		p    *testPeer
		peer string
	}{{alice, "bob"}, {bob, "alice"}} {
		waitFor(t, c.peer+"'s name on the direct group", func() bool {
			v, ok := directViewOf(c.p, g)
			return ok && v.Direct && v.Name == c.peer && v.Peer == c.peer && !v.PeerKeyChanged && v.Members == 2
		})
	}
	if v, _ := directViewOf(alice, g); v.Left {
		t.Fatalf("alice's view %+v", v)
	}

	alice.run(g, "hi bob")
	bob.rec.wait(t, "alice's message", isMessage(g, "hi bob"))
	bob.run(g, "hi alice")
	alice.rec.wait(t, "bob's message", isMessage(g, "hi alice"))

	// The name follows the peer's nick as the roster learns it (bob gave
	// alice no petname).
	alice.run("", "/nick alicia")
	bob.rec.wait(t, "the direct group renamed", func(ev Event) bool {
		ge, ok := ev.(GroupEvent)
		return ok && ge.Group.ID == g && ge.Group.Name == "alicia" && ge.Group.Peer == "alicia"
	})

	// Reuse: by nick, by card, and from the other side; no new group.
	before := len(alice.e.Groups())
	for _, arg := range []string{"bob", bob.card()} {
		if got := alice.run("", "/dm "+arg).Group; got != g {
			t.Fatalf("/dm %.20s opened %s, want the existing %s", arg, got, g)
		}
	}
	if got := bob.run("", "/dm alicia").Group; got != g {
		t.Fatalf("bob's /dm alicia opened %s, want %s", got, g)
	}
	if n := len(alice.e.Groups()); n != before {
		t.Fatalf("alice has %d groups after reusing, had %d", n, before)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := alice.e.Run(ctx, g, "/invite "+carol.card()); !errors.Is(err, ErrDirectInvite) {
		t.Fatalf("/invite into a direct conversation: %v", err)
	}
	if !strings.Contains(ErrDirectInvite.Error(), "/create a group to add people") {
		t.Fatalf("message %q", ErrDirectInvite)
	}
	if _, err := alice.e.Run(ctx, g, "/kick bob"); !errors.Is(err, ErrDirectKick) {
		t.Fatalf("/kick in a direct conversation: %v", err)
	}
	if _, err := alice.e.Run(ctx, "", "/dm alice"); err == nil {
		t.Fatal("/dm to oneself worked")
	}
	if carol.rec.has(isInvitation) {
		t.Fatal("carol got an invitation")
	}

	// The view says it is direct and with whom (the headless stream
	// encodes these fields: TestHeadlessJSONDirectGroup in package main).
	if v, _ := directViewOf(alice, g); !v.Direct || v.Peer != "bob" {
		t.Fatalf("direct view %+v", v)
	}

	// A group made with /create is not direct, and a /dm to a member of
	// one opens a new direct conversation beside it.
	og := alice.run("", "/create pals "+carol.card()).Group
	if v, _ := directViewOf(alice, og); v.Direct || v.Name != "pals" {
		t.Fatalf("/create made %+v", v)
	}
	carol.acceptInvitation()
	waitFor(t, "carol in pals", func() bool { return len(alice.e.Members(og)) == 2 })
	dg := alice.run("", "/dm carol").Group
	if dg == og || dg == g {
		t.Fatalf("/dm carol reused %s", dg)
	}

	// /leave ends it for the leaver; the other side keeps it, named after
	// the peer.
	bob.run(g, "/leave")
	waitFor(t, "bob out of the direct group", func() bool {
		v, ok := directViewOf(bob, g)
		return ok && v.Left
	})
	waitFor(t, "alice alone", func() bool { return len(alice.e.Members(g)) == 1 })
	if v, _ := directViewOf(alice, g); !v.Direct || v.Name != "bob" {
		t.Fatalf("alice's view after bob left: %+v", v)
	}
	// With the peer gone, a new /dm starts a new conversation.
	if got := alice.run("", "/dm bob").Group; got == g {
		t.Fatal("/dm reused a conversation the peer left")
	}
}

// stateOf returns a copy of a group's current MLS state.
func stateOf(t *testing.T, p *testPeer, gid GroupID) (*group, *mls.Group) {
	t.Helper()
	g := p.e.group(gid)
	var st *mls.Group
	if err := g.do(context.Background(), func() { st = g.st.Clone() }); err != nil {
		t.Fatal(err)
	}
	return g, st
}

// The direct flag lives in the GroupContext (authenticated by MLS): every
// member checks each Commit, so a member's modified client can neither add
// a third person nor clear or set the flag, and a Welcome into a "direct"
// group of three is refused. A relay or stranger cannot even produce a
// Commit or Welcome the members accept (attacks_test.go).
func TestDirectRulesEnforcedOnCommits(t *testing.T) {
	alice, bob, g := dmPair(t)
	carol := newPeer(t, "carol")
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	kb, err := carol.e.newKeyPackage(false)
	if err != nil {
		t.Fatalf("carol's KeyPackage: %v", err)
	}
	_, ast := stateOf(t, alice, g)
	bg, bst := stateOf(t, bob, g)

	process := func(msg []byte) error {
		var perr error
		if err := bg.do(ctx, func() { _, _, perr = bg.proc.ProcessCommit(bst, msg) }); err != nil {
			t.Fatal(err)
		}
		return perr
	}
	commit := func(props ...*mls.Proposal) *mls.PendingCommit {
		pc, err := ast.Clone().Commit(mls.CommitOptions{Proposals: props})
		if err != nil {
			t.Fatal(err)
		}
		return pc
	}
	gce := func(s groupSettings) *mls.Proposal {
		exts, err := groupExtensions(ast.Extensions(), s)
		if err != nil {
			t.Fatal(err)
		}
		return &mls.Proposal{Type: mls.ProposalTypeGroupContextExtensions, GroupContextExtensions: &mls.GroupContextExtensions{Extensions: exts}}
	}

	add := commit(&mls.Proposal{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: kb.KeyPackage}})
	if err := process(add.Message); !errors.Is(err, errDirectRule) {
		t.Fatalf("a Commit adding a third member: %v", err)
	}
	if err := process(commit(gce(groupSettings{Name: "ours"})).Message); !errors.Is(err, errDirectRule) {
		t.Fatalf("a Commit clearing the direct flag: %v", err)
	}
	// A settings change that keeps the flag (disappearing messages) is fine.
	if err := process(commit(gce(groupSettings{Direct: true, Retention: time.Hour})).Message); err != nil {
		t.Fatalf("a retention Commit in a direct group: %v", err)
	}

	// A Welcome into a "direct" group of three (from a modified client)
	// is refused.
	three := ast.Clone()
	pc, err := three.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: kb.KeyPackage}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := three.MergePendingCommit(pc); err != nil {
		t.Fatal(err)
	}
	if err := checkDirectWelcome(three); !errors.Is(err, errDirectRule) {
		t.Fatalf("a direct group of three: %v", err)
	}

	// Nor can a member turn an ordinary group into a "direct" one.
	alice2, bob2 := newPeer(t, "alice2"), newPeer(t, "bob2")
	connect(t, alice2, bob2)
	og := alice2.run("", "/create plain "+bob2.card()).Group
	bob2.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice2.e.Members(og)) == 2 && len(bob2.e.Members(og)) == 2 })
	_, a2 := stateOf(t, alice2, og)
	b2g, b2 := stateOf(t, bob2, og)
	exts, err := groupExtensions(a2.Extensions(), groupSettings{Name: "plain", Direct: true})
	if err != nil {
		t.Fatal(err)
	}
	pc2, err := a2.Clone().Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeGroupContextExtensions, GroupContextExtensions: &mls.GroupContextExtensions{Extensions: exts}}}})
	if err != nil {
		t.Fatal(err)
	}
	var perr error
	if err := b2g.do(ctx, func() { _, _, perr = b2g.proc.ProcessCommit(b2, pc2.Message) }); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(perr, errDirectRule) {
		t.Fatalf("a Commit setting the direct flag: %v", perr)
	}
}

func TestGroupSettingsDirectEncoding(t *testing.T) {
	plain := groupSettings{Name: "pals", Retention: time.Hour}
	b, err := plain.marshal()
	if err != nil || b[0] != 1 {
		t.Fatalf("an ordinary group's settings: %x, %v (want version 1, as older versions wrote)", b, err)
	}
	d := groupSettings{Retention: time.Hour, Direct: true}
	db, err := d.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseSettings(db)
	if err != nil || got != d {
		t.Fatalf("round trip %+v, %v", got, err)
	}
	for _, bad := range [][]byte{
		append(bytes.Clone(db[:len(db)-1]), 3), // unknown flag
		append(bytes.Clone(db[:len(db)-1]), 0), // version 2 without a flag
		db[:len(db)-1],                         // flags missing
		append(bytes.Clone(db), 0),             // trailing byte
		append([]byte{1}, db[1:]...),           // version 1 with flags
	} {
		if _, err := parseSettings(bad); !errors.Is(err, errBadSettings) {
			t.Fatalf("parseSettings(%x) = %v", bad, err)
		}
	}
}

func FuzzGroupSettings(f *testing.F) {
	for _, s := range []groupSettings{{}, {Name: "pals", Retention: time.Hour}, {Direct: true}} {
		b, _ := s.marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseSettings(data)
		if err != nil {
			return
		}
		b, err := s.marshal()
		if err != nil {
			t.Fatalf("parsed settings do not marshal: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("round trip changed %x to %x", data, b)
		}
	})
}

// A member's Add proposal (from a modified client) cannot ride along in
// the other member's next Commit: the Commit is refused before it is sent.
func TestDirectOwnCommitKeepsRules(t *testing.T) {
	alice, bob, g := dmPair(t)
	carol := newPeer(t, "carol")
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	kb, err := carol.e.newKeyPackage(false)
	if err != nil {
		t.Fatalf("carol's KeyPackage: %v", err)
	}
	_, bst := stateOf(t, bob, g)
	prop, err := bst.ProposeAdd(&kb.KeyPackage, nil)
	if err != nil {
		t.Fatal(err)
	}
	ag := alice.e.group(g)
	var perr error
	if err := ag.do(ctx, func() { _, perr = ag.st.Process(prop) }); err != nil || perr != nil {
		t.Fatalf("caching bob's proposal: %v, %v", err, perr)
	}
	if _, err := alice.e.Run(ctx, g, "/update"); !errors.Is(err, errDirectRule) {
		t.Fatalf("alice's Commit with bob's Add: %v", err)
	}
	if n := len(alice.e.Members(g)); n != 2 {
		t.Fatalf("alice sees %d members", n)
	}
}

// A direct conversation stays one across a restart: flagged, named after
// the peer, reopened by /dm.
func TestDirectConversationSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	opts := func(c *Config) { c.Store, c.ProfileDir = nil, dir }
	alice, bob := newPeer(t, "alice", opts), newPeer(t, "bob")
	connect(t, alice, bob)
	g := alice.run("", "/dm "+bob.card()).Group
	bob.acceptInvitation()
	bob.rec.wait(t, "bob's join line", isSystem(g, "you accepted the direct conversation with alice"))
	waitFor(t, "two members", func() bool { return len(alice.e.Members(g)) == 2 })
	if err := alice.e.Close(); err != nil {
		t.Fatal(err)
	}
	alice = newPeer(t, "alice", opts)
	waitFor(t, "the direct group after the restart", func() bool {
		v, ok := directViewOf(alice, g)
		return ok && v.Direct && v.Name == "bob" && v.Members == 2
	})
	if got := alice.run("", "/dm bob").Group; got != g {
		t.Fatalf("/dm bob after a restart opened %s, want %s", got, g)
	}
	if out := alice.run("", "/groups").Text; !strings.Contains(out, "bob  2 members") || !strings.Contains(out, "(direct)") {
		t.Fatalf("/groups: %q", out)
	}
}
