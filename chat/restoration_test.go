package chat

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/mls"
)

// The removed member of issue 12, item 3, in the case the bar cannot stop
// (ordering README, "Limits of the bar", replay-any): mallory replays
// before her removal reached everyone. Carol has processed neither alice's
// update nor mallory's removal when mallory's Commit removing bob (built on
// the state before the update) reaches her: by key it is the best Commit of
// that epoch, she takes it, and when alice's next message opens on the
// branch she judged lost she announces her claim, which is trusted (she
// was a member at the fork and nobody removed her). It lifts the bar on
// alice, who held the removal: the replay becomes canonical there, and
// alice's fork choice asks for bob's re-add (restore/<epoch>/<bob>), an
// intent the engine never made. Alice's engine fetches a fresh KeyPackage
// of bob, commits the add under the intent's ID and sends the Welcome; her
// removal of mallory, lost with her branch, is committed again. Bob, still on his branch (carol's
// claims go to her roster, which no longer lists him), holds the Welcome
// and asks for claims; alice's answer lifts his bar, he switches to the
// replay's branch (out: "no longer a member"), and the held Welcome then
// proves to continue his own group. Carol's lag is made deterministic by
// holding her group loop (nothing else): the frames sent meanwhile wait in
// her queue or are caught up later, as for a slow peer.
func TestReplayCarriedByLaggingMemberRestoresVictim(t *testing.T) {
	alice, bob, carol, mallory := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "carol"), newPeer(t, "mallory")
	ps := []*testPeer{alice, bob, carol, mallory}
	for i := range ps {
		for _, q := range ps[i+1:] {
			connect(t, ps[i], q)
		}
	}
	gid := alice.run("", "/create quad "+bob.card()+" "+carol.card()+" "+mallory.card()).Group
	bob.acceptInvitation()
	carol.acceptInvitation()
	mallory.acceptInvitation()
	waitFor(t, "four members", func() bool { return convergedWith(t, gid, 4, alice, bob, carol, mallory) })

	ctx, cancel := context.WithTimeout(context.Background(), 4*waitLong)
	defer cancel()
	mg, cg := mallory.e.group(gid), carol.e.group(gid)
	var kept *mls.Group
	if err := mg.do(ctx, func() { kept = mg.st.Clone() }); err != nil {
		t.Fatal(err)
	}

	// Carol's loop waits for mallory's replay: she lags from here on.
	entered, replay, resumed := make(chan struct{}), make(chan []byte, 1), make(chan error, 1)
	go func() {
		resumed <- cg.do(ctx, func() {
			close(entered)
			var msg []byte
			select {
			case msg = <-replay:
			case <-ctx.Done():
				return
			}
			cg.handleFrame(inFrame{data: msg, from: mallory.e.id.id})
			cg.publish(msg, kept.Epoch(), nil)
		})
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("carol's loop never ran the hold")
	}

	alice.run(gid, "/update")
	waitFor(t, "the update at alice, bob and mallory", func() bool { return convergedWith(t, gid, 4, alice, bob, mallory) })
	alice.run(gid, "/kick mallory")
	waitFor(t, "alice and bob without mallory", func() bool { return convergedWith(t, gid, 3, alice, bob) })
	mallory.rec.wait(t, "mallory removed", isSystem(gid, "removed you"))

	// Mallory's replay: a removal of bob from the state before the update.
	pc := replayRemoval(t, kept, bob)
	replay <- pc.Message
	if err := <-resumed; err != nil {
		t.Fatal(err)
	}

	// Both sides speak on their branch. Carol holds alice's branch too
	// (the update lost to the replay by key, the kick sits on it), so
	// alice's message opens there, off carol's canonical branch: evidence
	// for a claim (ordering: a message read on a branch that is not ours).
	// Carol's claim goes, signed, over the inbox, to her roster (alice and
	// mallory); it is trusted at alice and lifts her bar.
	alice.run(gid, "alice on her branch")
	carol.run(gid, "carol on her branch")
	// The replay became canonical (bob was out) and the restore re-added
	// him into the same group.
	bob.rec.wait(t, "bob removed by the replay", isNotice("no longer a member of quad"))
	bob.rec.wait(t, "bob re-added", isNotice("you are a member of quad again"))
	if bob.rec.has(isNotice("different group")) || len(bob.e.Invitations()) != 0 {
		t.Fatalf("bob took the re-add for another group's invitation: %+v", bob.e.Invitations())
	}
	waitFor(t, "alice, bob and carol without mallory", func() bool { return convergedWith(t, gid, 3, alice, bob, carol) })
	for _, p := range []*testPeer{alice, bob, carol} {
		ms := p.e.Members(gid)
		if !hasMember(ms, "alice") || !hasMember(ms, "bob") || !hasMember(ms, "carol") || hasMember(ms, "mallory") {
			t.Fatalf("%s sees %v", p.e.nick(), memberNames(ms))
		}
	}
	// Nobody ran an add: only the fork choice's restore intent, carried
	// out by an engine, brought bob back.
	chatStillWorks(t, gid, alice, bob, "restored")
	chatStillWorks(t, gid, bob, carol, "restored")
	carol.run(gid, "after the replay")
	alice.rec.wait(t, "carol's message at alice", isMessage(gid, "after the replay"))
	bob.rec.wait(t, "carol's message at bob", isMessage(gid, "after the replay"))
	if mallory.rec.has(isMessage(gid, "after the replay")) || mallory.rec.has(isMessage(gid, "restored from bob")) {
		t.Fatal("mallory read messages written after her removal landed again")
	}
}

// The engine keeps a record of an intent only while the fork choice tracks
// it: a restore the machine settled (or dropped as moot, e.g. the group
// removed the target again) is forgotten at the next tick, so no late
// KeyPackage can re-add the target. A record whose fetch is in flight, or
// whose caller still waits, stays until that ends.
func TestIntentRecordsFollowTheForkChoice(t *testing.T) {
	now := time.Now()
	s := newIntentState()
	s.byID["restore/3/x"] = &intentRec{at: now}
	s.byID["restore/4/y"] = &intentRec{at: now}
	s.byID["fetching"] = &intentRec{at: now, refreshing: true}
	s.byID["waiting"] = &intentRec{at: now, done: make(chan error, 1)}
	s.byID["old"] = &intentRec{at: now.Add(-2 * intentTTL)}
	tracked := map[string]bool{"restore/4/y": true, "old": true}
	s.prune(now, func(id string) bool { return tracked[id] })
	var kept []string
	for id := range s.byID {
		kept = append(kept, id)
	}
	slices.Sort(kept)
	if want := []string{"fetching", "restore/4/y", "waiting"}; !slices.Equal(kept, want) {
		t.Fatalf("kept %v, want %v", kept, want)
	}
}
