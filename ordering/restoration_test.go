package ordering

import (
	"testing"
	"time"
)

// Restoration of the members a removed member's Commit removed, and the
// joiner at the fork (README.md "Removed members").

// TestLaggingMemberReplayRestoresVictim plays what the bar alone cannot
// stop (README.md "Removed members", Restoration): X replays a removal of
// B from a state it kept while L has not processed X's removal yet. L, a
// member still and trusted, takes the replay by key and its claim lifts
// the bar on A, which switches to the replay's branch (B out). A knew X
// had been removed after the replay's parent, so it re-adds B at once
// (Repropose of an add), and the intent is done as soon as a canonical
// Commit after the replay adds B back; a later removal of B by the group
// is not undone.
func TestLaggingMemberReplayRestoresVictim(t *testing.T) {
	h, replay := laggingReplay(t)
	// L's claim is trusted (a member at the fork, never removed): A loses
	// the fork to it, the bar is lifted, and A restores B.
	var restore *Intent
	switched := false
	for _, d := range h.ms["A"].ClaimReceived(h.be, h.ms["L"].MakeClaim(nil), h.at) {
		switch d := d.(type) {
		case Switched:
			switched = switched || d.To == HashOf(replay)
		case Repropose:
			for _, in := range d.Intents {
				if in.Kind == Add && in.Target == "B" {
					restore = &in
				}
			}
		}
	}
	a := h.ms["A"]
	if !switched || a.tipRoster["B"] {
		t.Fatalf("A after L's claim: switched %v, B member %v", switched, a.tipRoster["B"])
	}
	if restore == nil {
		t.Fatal("A did not re-add B, removed by a removed member's Commit")
	}
	// A carries out the intent; once canonical, it is done for good.
	st, _, _ := a.Current()
	msg, next, ci, _, err := h.be.commit("A", st, []string{"B"}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	a.OwnCommit(h.be, msg, next, ci, []string{restore.ID}, true, h.at)
	if !a.tipRoster["B"] {
		t.Fatal("B should be back")
	}
	st, _, _ = a.Current()
	msg, next, ci, _, err = h.be.commit("A", st, nil, []string{"B"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range a.OwnCommit(h.be, msg, next, ci, nil, false, h.at.Add(time.Minute)) {
		if r, ok := d.(Repropose); ok {
			t.Fatalf("A re-proposed %+v after the group removed B again", r.Intents)
		}
	}
	for _, d := range a.Tick(h.be, h.at.Add(time.Hour)) {
		if r, ok := d.(Repropose); ok {
			t.Fatalf("A re-proposed %+v after the group removed B again", r.Intents)
		}
	}
}

// laggingReplay: X keeps its state of epoch e; the group commits at e (L
// too), then removes X and goes on without L; X replays a removal of B at
// e, which A bars and L takes.
func laggingReplay(t *testing.T) (*harness, []byte) {
	t.Helper()
	h := newHarness(t, "X", "A", "B", "C", "L")
	stXe, _, _ := h.ms["X"].Current()
	deliver := func(from string, msg []byte, to ...string) {
		for _, id := range to {
			if id != from {
				h.deliver(id, msg)
			}
		}
	}
	deliver("A", h.commit("A", nil, nil), "X", "A", "B", "C", "L") // class 1 at e
	// X's removal and what follows reach everyone but L.
	deliver("A", h.commit("A", nil, []string{"X"}), "X", "B", "C")
	deliver("C", h.commit("C", nil, nil), "A", "B")
	replay, _, info, _, err := h.be.commit("X", stXe, nil, []string{"B"}, false)
	if err != nil || info.Class() != ClassRemove {
		t.Fatalf("replay: %v, class %d", err, info.Class())
	}
	for _, d := range h.deliver("A", replay) {
		if _, ok := d.(Switched); ok {
			t.Fatal("A took the replay on arrival: the bar should hold")
		}
	}
	took := false
	for _, d := range h.deliver("L", replay) {
		if s, ok := d.(Switched); ok && s.To == HashOf(replay) {
			took = true
		}
	}
	if !took {
		t.Fatal("L, which has not processed X's removal, should take the replay by key")
	}
	return h, replay
}

// TestReinstatedMemberRemovalRestored: once its replay is canonical, X is
// a member again on that branch until the group removes it again; a
// removal it commits there (of C) is restored too, by A, which knew.
func TestReinstatedMemberRemovalRestored(t *testing.T) {
	h, replay := laggingReplay(t)
	a := h.ms["A"]
	a.ClaimReceived(h.be, h.ms["L"].MakeClaim(nil), h.at)
	if _, _, tip := a.Current(); tip != HashOf(replay) {
		t.Fatal("A should be on the replay's branch")
	}
	st, _, _ := a.Current()
	msg, _, info, _, err := h.be.commit("X", st, nil, []string{"C"}, false)
	if err != nil || !a.tipRoster["X"] {
		t.Fatalf("X commits on its branch: %v, member %v", err, a.tipRoster["X"])
	}
	restored := false
	for _, d := range a.Receive(h.be, msg, a.Epoch(), Commit, h.at) {
		if r, ok := d.(Repropose); ok {
			for _, in := range r.Intents {
				restored = restored || (in.Kind == Add && in.Target == "C")
			}
		}
	}
	if !restored || a.tipRoster["C"] || info.Class() != ClassRemove {
		t.Fatalf("A after X's removal of C on its branch: restored %v, C member %v", restored, a.tipRoster["C"])
	}
}

// TestHonestLiftRestoresNothing: a lifted bar on a Commit whose sender this
// member's chain did not remove (Y's own removal lost an honest race, as
// in TestRemovedMemberBarLiftedByTrustedClaim) restores nobody: D, removed
// by the race's winner, stays out.
func TestHonestLiftRestoresNothing(t *testing.T) {
	h := newHarness(t, "A", "B", "C", "D", "Y")
	_, e, _ := h.ms["A"].Current()
	remover, racer := "", ""
	for _, r := range []string{"A", "B", "C"} {
		for _, c := range []string{"A", "B", "C"} {
			if r != c && remover == "" && Ticket([]byte("g"), e, c) < Ticket([]byte("g"), e, r) {
				remover, racer = r, c
			}
		}
	}
	rm := h.commit(remover, nil, []string{"Y"})
	win := h.commit(racer, nil, []string{"D"})
	h.deliver("Y", rm)
	h.deliver("Y", win)
	h.deliver(racer, rm)
	switched := false
	for _, d := range h.ms["Y"].ClaimReceived(h.be, h.ms[racer].MakeClaim(nil), h.at) {
		switch d := d.(type) {
		case Switched:
			switched = switched || d.To == HashOf(win)
		case Repropose:
			t.Fatalf("Y re-proposed %+v after an honest race", d.Intents)
		}
	}
	if !switched {
		t.Fatal("Y should take the race's winner")
	}
	if len(h.ms["Y"].intents) > 0 {
		t.Fatalf("Y intends %+v", h.ms["Y"].intents[0].Intent)
	}
}

// TestJoinerIgnoresRemovedMembersClaimAtItsJoin: J joined by the Commit of
// epoch e (A's add), so it holds no state of e and cannot bar a sibling of
// that Commit on arrival. X, removed after J joined, replays a removal of
// B at e from a state it kept and claims that branch: J's chain removed X
// since the fork, so X's claim is no verdict for J either (no loss, no
// rejoin into X's branch), as for the members that hold the fork.
func TestJoinerIgnoresRemovedMembersClaimAtItsJoin(t *testing.T) {
	h, j, rm, forged := joinerAtFork(t, "X", false)
	h.deliver("J", rm)
	if j.tipRoster["X"] || !j.tipRoster["B"] {
		t.Fatalf("J's roster %v", j.Roster())
	}
	for _, at := range []time.Time{h.at, h.at.Add(2 * time.Hour)} {
		var ds []Decision
		if at == h.at {
			ds = j.ClaimReceived(h.be, forged, at)
		} else {
			ds = j.Tick(h.be, at)
		}
		for _, d := range ds {
			switch d.(type) {
			case Switched, Rejoin:
				t.Fatalf("J acted on the removed member's claim: %T %+v", d, d)
			}
		}
	}
	if j.lost != nil || j.standing != standingIn || !j.IsMember() {
		t.Fatalf("J after X's claim: lost %v, standing %v, member %v", j.lost != nil, j.standing, j.IsMember())
	}
}

// TestMessageOffOurBranchIsEvidence: L took X's replay by key and holds
// A's branch too (A's Commit at the fork lost to the replay there). A
// message of A's branch opens in a state L holds but not on L's canonical
// branch: nothing else tells L that A (which barred the replay) never
// moved, so it is evidence for a claim, and L's next Tick announces it.
// Without this, neither side announced and they stayed apart (with real
// engines: chat.TestReplayCarriedByLaggingMemberRestoresVictim).
func TestMessageOffOurBranchIsEvidence(t *testing.T) {
	h, _ := laggingReplay(t)
	l := h.ms["L"]
	at := h.at.Add(time.Minute)
	for _, d := range l.Tick(h.be, at) {
		if _, ok := d.(Announce); ok {
			t.Fatal("L announced with nothing to tell")
		}
	}
	var off *node[*mstate]
	for _, n := range l.nodes {
		if !n.canon && n.live && n.epoch > l.root.epoch {
			off = n
		}
	}
	if off == nil {
		t.Fatal("L holds no state off its canonical branch")
	}
	msg, err := h.be.protect("A", off.state, "a-msg", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	delivered := false
	for _, d := range l.Receive(h.be, msg, off.epoch, Application, at) {
		if dv, ok := d.(Deliver); ok && !dv.Canonical {
			delivered = true
		}
	}
	if !delivered {
		t.Fatal("A's message should be delivered off L's canonical branch")
	}
	announced := false
	for _, d := range l.Tick(h.be, at.Add(time.Hour)) {
		if _, ok := d.(Announce); ok {
			announced = true
		}
	}
	if !announced {
		t.Fatal("L did not announce its claim after reading a message off its branch")
	}
}

// joinerAtFork sets up a group where J joined by A's add at epoch e,
// without delivering A's later removal of X to J: it returns J, that
// removal, and signer's claim for X's replayed removal of B at J's join
// epoch (which beats A's add of J by key). reAdded makes J's join a
// re-add by Welcome (reported with Rejoined), like m001 in mls-replay-any
// seed 38: its next rejoin waits RejoinRetry.
func joinerAtFork(t *testing.T, signer string, reAdded bool) (*harness, *Machine[*mstate], []byte, Claim) {
	h := newHarness(t, "X", "A", "B", "C")
	stX, e, _ := h.ms["X"].Current()
	a := h.ms["A"]
	st, _, _ := a.Current()
	add, next, info, welcome, err := h.be.commit("A", st, []string{"J"}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	a.OwnCommit(h.be, add, next, info, nil, true, h.at)
	for _, id := range []string{"X", "B", "C"} {
		h.deliver(id, add)
	}
	jst, key, err := h.be.joinWelcome("J", welcome)
	if err != nil {
		t.Fatal(err)
	}
	j := New(Config{GroupID: []byte("g"), Self: "J", WindowEpochs: 8}, jst, h.be.epochOf(jst), key, h.be.roster(jst), h.at)
	j.AdoptHistory(a.History())
	if reAdded {
		j.lastRejoin = h.at
	}
	h.ms["J"] = j
	rm := h.commit("A", nil, []string{"X"})
	for _, id := range []string{"X", "B", "C"} {
		h.deliver(id, rm)
	}
	replay, _, rinfo, _, err := h.be.commit("X", stX, nil, []string{"B"}, false)
	if err != nil {
		t.Fatal(err)
	}
	rk := Key{Epoch: e, Class: rinfo.Class(), Ticket: Ticket([]byte("g"), e, "X"), Hash: HashOf(replay)}
	c := Claim{Signer: signer, Tip: j.Epoch() + 5, Entries: []Entry{rk}, GroupInfo: []byte("group info of the replay's branch")}
	if v := CompareHistories(j.History(), c.Entries); v.Kind != Fork || !v.Theirs.Less(v.Ours) {
		t.Fatalf("the replay should beat A's add by key: %+v", v)
	}
	return h, j, rm, c
}

// TestJoinerAtForkClaimBeforeSignersRemoval (mls-replay-any seed 38): J
// was added back by the Commit of epoch e; X's claim for its removal of B
// at e reaches J before A's removal of X does. Then the claim is trusted
// (X is a member on J's chain) and J loses; once the removal lands, the
// claim is one J would have ignored
// (TestJoinerIgnoresRemovedMembersClaimAtItsJoin), so the loss is
// withdrawn: no rejoin into X's branch (refused, it left J detached while
// the group's roster listed it), J stays a member of its branch, and its
// join Commit is not marked dead.
func TestJoinerAtForkClaimBeforeSignersRemoval(t *testing.T) {
	h, j, rm, c := joinerAtFork(t, "X", true)
	noRejoin := func(ds []Decision) {
		t.Helper()
		for _, d := range ds {
			switch d.(type) {
			case Switched, Rejoin:
				t.Fatalf("J acted on the removed member's claim: %T %+v", d, d)
			}
		}
	}
	noRejoin(j.ClaimReceived(h.be, c, h.at))
	if j.lost == nil || j.standing != standingLost {
		t.Fatalf("J should lose to a member's claim: lost %v, standing %v", j.lost != nil, j.standing)
	}
	noRejoin(receiveAt(h, j, rm, h.at.Add(time.Second)))
	noRejoin(j.Tick(h.be, h.at.Add(2*time.Second)))
	noRejoin(j.Tick(h.be, h.at.Add(2*time.Hour)))
	if j.lost != nil || j.standing != standingIn || !j.IsMember() || j.tipRoster["X"] {
		t.Fatalf("J after X's removal: lost %v, standing %v, member %v, roster %v", j.lost != nil, j.standing, j.IsMember(), j.Roster())
	}
	if _, dead := j.deadCommit.get(); dead {
		t.Fatal("J's join Commit still marked dead")
	}
	if _, ok := j.lostAt.get(); ok {
		t.Fatal("J still reports a lost fork")
	}
}

// TestJoinerAtForkLosesToMember: the same claim signed by B, a member
// nobody removed, stands: J rejoins when RejoinRetry allows, A's removal
// of X meanwhile notwithstanding.
func TestJoinerAtForkLosesToMember(t *testing.T) {
	h, j, rm, c := joinerAtFork(t, "B", true)
	rejoined := func(ds []Decision) bool {
		for _, d := range ds {
			if _, ok := d.(Rejoin); ok {
				return true
			}
		}
		return false
	}
	if rejoined(j.ClaimReceived(h.be, c, h.at)) {
		t.Fatal("J rejoined before RejoinRetry")
	}
	if rejoined(receiveAt(h, j, rm, h.at.Add(time.Second))) {
		t.Fatal("J rejoined before RejoinRetry")
	}
	if !rejoined(j.Tick(h.be, h.at.Add(DefaultRejoinRetry+time.Second))) {
		t.Fatalf("J should rejoin B's branch: lost %v, standing %v", j.lost != nil, j.standing)
	}
}

func receiveAt(h *harness, m *Machine[*mstate], msg []byte, at time.Time) []Decision {
	e, ct := h.be.header(msg)
	return m.Receive(h.be, msg, e, ct, at)
}
