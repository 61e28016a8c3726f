package chat

import (
	"context"
	"testing"

	"github.com/canopy-chat/canopy/mls"
)

// The removed member of issue 12, item 3, with real engines: mallory keeps
// her state of an epoch whose canonical Commit is alice's ordinary update,
// alice then removes her, and mallory publishes, from the kept state, a
// Commit removing bob (a removal: by key the best Commit of that epoch).
// Every member already has mallory's removal: none switches to it (the
// fork choice's bar), bob stays a member, the epoch does not move back,
// and alice and bob go on chatting.
func TestRemovedMemberReplayCannotRemoveMember(t *testing.T) {
	alice, bob, mallory := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "mallory")
	connect(t, alice, bob)
	connect(t, alice, mallory)
	connect(t, bob, mallory)
	gid := alice.run("", "/create trio "+bob.card()+" "+mallory.card()).Group
	bob.acceptInvitation()
	mallory.acceptInvitation()
	waitFor(t, "three members", func() bool { return convergedWith(t, gid, 3, alice, bob, mallory) })

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	mg := mallory.e.group(gid)
	var kept *mls.Group
	if err := mg.do(ctx, func() { kept = mg.st.Clone() }); err != nil {
		t.Fatal(err)
	}
	alice.run(gid, "/update")
	waitFor(t, "the update everywhere", func() bool { return convergedWith(t, gid, 3, alice, bob, mallory) })
	alice.run(gid, "/kick mallory")
	waitFor(t, "alice and bob without mallory", func() bool { return convergedWith(t, gid, 2, alice, bob) })
	mallory.rec.wait(t, "mallory removed", isSystem(gid, "removed you"))

	// Mallory's replay: a removal of bob from the kept state.
	pc := replayRemoval(t, kept, bob)
	ag, bg := alice.e.group(gid), bob.e.group(gid)
	epoch := alice.e.group(gid).view.snapshot().Epoch
	// Alice gets it as a frame from mallory; bob through the topic.
	if err := ag.do(ctx, func() {
		ag.handleFrame(inFrame{data: pc.Message, from: mallory.e.id.id})
		ag.publish(pc.Message, kept.Epoch(), nil)
	}); err != nil {
		t.Fatal(err)
	}
	barred := func(g *group) func() bool {
		return func() bool {
			n := 0
			if err := g.do(ctx, func() { n = g.m.Stats().Barred }); err != nil {
				t.Fatal(err)
			}
			return n > 0
		}
	}
	waitFor(t, "alice refused the replay", barred(ag))
	waitFor(t, "bob refused the replay", barred(bg))

	for _, p := range []*testPeer{alice, bob} {
		if !hasMember(p.e.Members(gid), "bob") || hasMember(p.e.Members(gid), "mallory") {
			t.Fatalf("%s sees %v", p.e.nick(), memberNames(p.e.Members(gid)))
		}
		if e := p.e.group(gid).view.snapshot().Epoch; e != epoch {
			t.Fatalf("%s moved from epoch %d to %d", p.e.nick(), epoch, e)
		}
	}
	alice.run(gid, "still the two of us")
	bob.rec.wait(t, "alice's message", isMessage(gid, "still the two of us"))
	bob.run(gid, "yes")
	alice.rec.wait(t, "bob's message", isMessage(gid, "yes"))
}

// replayRemoval is a removed member's replay: a Commit, made from the
// state it kept from before its removal, that removes victim.
func replayRemoval(t *testing.T, kept *mls.Group, victim *testPeer) *mls.PendingCommit {
	t.Helper()
	var leaf mls.LeafIndex
	found := false
	for _, m := range kept.Members() {
		if p, _ := peerOfCredential(&m.Credential); p == victim.e.id.id {
			leaf, found = m.Index, true
		}
	}
	if !found {
		t.Fatalf("%s is not in the kept state", victim.e.nick())
	}
	pc, err := kept.Clone().Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: uint32(leaf)}}}})
	if err != nil {
		t.Fatal(err)
	}
	return pc
}
