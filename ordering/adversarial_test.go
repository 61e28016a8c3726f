package ordering

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// A tiny harness around the model: each member has a machine; deliver
// applies a message to one member.
type harness struct {
	t  *testing.T
	be *modelBackend
	ms map[string]*Machine[*mstate]
	at time.Time
}

func newHarness(t *testing.T, members ...string) *harness {
	h := &harness{t: t, be: &modelBackend{groupID: []byte("g")}, ms: map[string]*Machine[*mstate]{}, at: simStart}
	for i, st := range h.be.create(members) {
		h.ms[members[i]] = New(Config{GroupID: []byte("g"), Self: members[i], WindowEpochs: 8}, st, 0, nil, members, h.at)
	}
	return h
}

func (h *harness) commit(who string, adds, removes []string) []byte {
	m := h.ms[who]
	st, _, _ := m.Current()
	msg, next, info, _, err := h.be.commit(who, st, adds, removes, false)
	if err != nil {
		h.t.Fatal(err)
	}
	m.OwnCommit(h.be, msg, next, info, nil, false, h.at)
	return msg
}

func (h *harness) deliver(to string, msg []byte) []Decision {
	e, ct := h.be.header(msg)
	return h.ms[to].Receive(h.be, msg, e, ct, h.at)
}

// TestGrindingCannotStarveRemoval: X, about to be removed by A, answers
// every removal attempt with a Commit of its own (a removal of B, so that
// it is of the same class) ground over many tries for the smallest hash.
// The lottery ticket, not the hash, decides the race, so X is removed at
// the first epoch where A's ticket beats its own — exactly as if it had
// not ground at all.
func TestGrindingCannotStarveRemoval(t *testing.T) {
	for _, grind := range []int{1, 2000} {
		h := newHarness(t, "A", "B", "X", "C", "D", "E", "F", "G")
		removedAt := -1
		for round := 0; round < 40 && removedAt < 0; round++ {
			epoch := h.ms["C"].Epoch()
			a := h.commit("A", nil, []string{"X"})
			stX, _, _ := h.ms["X"].Current()
			victim := []string{"B", "D", "E", "F", "G"}[round%5]
			var best []byte
			for i := 0; i < grind; i++ {
				msg, _, _, _, err := h.be.commit("X", stX, nil, []string{victim}, false)
				if err != nil {
					t.Fatal(err)
				}
				if hb, hm := HashOf(best), HashOf(msg); best == nil || bytes.Compare(hm[:], hb[:]) < 0 {
					best = msg
				}
			}
			// Everyone sees both, X's first.
			for id := range h.ms {
				if id != "A" {
					h.deliver(id, best)
				}
				if id != "X" {
					h.deliver(id, a)
				}
			}
			if !h.ms["C"].tipRoster["X"] {
				removedAt = round
				want := Ticket([]byte("g"), epoch, "A") < Ticket([]byte("g"), epoch, "X")
				if !want {
					t.Fatalf("grind %d: X removed at epoch %d although its ticket was better", grind, epoch)
				}
			} else if Ticket([]byte("g"), epoch, "A") < Ticket([]byte("g"), epoch, "X") {
				t.Fatalf("grind %d: A's ticket won epoch %d but X is still a member", grind, epoch)
			}
			// The losers re-add whoever X removed, to keep the group (not needed for the test).
		}
		if removedAt < 0 {
			t.Fatalf("grind %d: X never removed", grind)
		}
		t.Logf("grind %d: X removed after %d attempts", grind, removedAt+1)
	}
}

// TestReplayChangesNothing replays old Commits: the canonical one, a losing
// one, and one older than the window. Nothing but Discarded comes out and
// the state stays.
func TestReplayChangesNothing(t *testing.T) {
	h := newHarness(t, "A", "B", "C")
	var first, loser []byte
	for i := 0; i < 20; i++ {
		win := h.commit("A", nil, nil)
		if i == 0 {
			first = win
			// A competing Commit by B for epoch 0 that loses (or wins:
			// then swap roles so that "loser" is the one that lost).
			stB, _, _ := h.ms["B"].Current()
			lb, _, _, _, _ := h.be.commit("B", stB, nil, nil, false)
			h.deliver("C", lb)
			h.deliver("C", win)
			loser = lb
			if e, _ := h.ms["C"].entryAt(0); e.Hash == HashOf(lb) {
				first, loser = lb, win
			}
			continue
		}
		h.deliver("C", win)
	}
	c := h.ms["C"]
	_, epoch, tip := c.Current()
	hist := len(c.History())
	for _, msg := range [][]byte{first, loser} {
		for _, d := range h.deliver("C", msg) {
			if _, ok := d.(Discarded); !ok {
				t.Fatalf("replay produced %T %+v", d, d)
			}
		}
	}
	if _, e, tp := c.Current(); e != epoch || tp != tip || len(c.History()) != hist {
		t.Fatalf("replay changed the state: epoch %d->%d", epoch, e)
	}
}

// TestLateBetterCommitSwitches: a Commit for an epoch already passed wins
// if its key is smaller, and the member rolls back to it.
func TestLateBetterCommitSwitches(t *testing.T) {
	h := newHarness(t, "A", "B", "C")
	stA, _, _ := h.ms["A"].Current()
	stB, _, _ := h.ms["B"].Current()
	a, _, _, _, _ := h.be.commit("A", stA, nil, nil, false)
	b, _, _, _, _ := h.be.commit("B", stB, nil, nil, false)
	ka := Key{Epoch: 0, Class: ClassOther, Ticket: Ticket([]byte("g"), 0, "A"), Hash: HashOf(a)}
	kb := Key{Epoch: 0, Class: ClassOther, Ticket: Ticket([]byte("g"), 0, "B"), Hash: HashOf(b)}
	first, second, win := a, b, kb
	if kb.Less(ka) {
		first, second, win = a, b, kb
	} else {
		first, second, win = b, a, ka
	}
	h.deliver("C", first)
	ds := h.deliver("C", second)
	sw := false
	for _, d := range ds {
		if s, ok := d.(Switched); ok && s.ForkEpoch == 0 {
			sw = true
		}
	}
	if e, _ := h.ms["C"].entryAt(0); e != win || !sw {
		t.Fatalf("canonical %v, want %v (switched %v)", e, win, sw)
	}
}

func TestKeyOrder(t *testing.T) {
	a := Key{Epoch: 1, Class: ClassRemove, Ticket: 9, Hash: Hash{9}}
	b := Key{Epoch: 1, Class: ClassOther, Ticket: 0, Hash: Hash{0}}
	if !a.Less(b) || b.Less(a) {
		t.Fatal("a removal must sort before any other Commit of the epoch")
	}
	c := Key{Epoch: 1, Class: ClassRemove, Ticket: 9, Hash: Hash{1}}
	if !c.Less(a) {
		t.Fatal("hash breaks ticket ties")
	}
	if Ticket([]byte("g"), 1, "a") != Ticket([]byte("g"), 1, "a") || Ticket([]byte("g"), 1, "a") == Ticket([]byte("g"), 2, "a") {
		t.Fatal("ticket must be deterministic and change with the epoch")
	}
}

// removedReplay builds the issue-12 attack on the harness: at epoch e the
// canonical Commit is an ordinary one (class 1) by A; later A removes X;
// then X, from the state of epoch e it kept, publishes a removal of B
// (class 0, which would win epoch e by key) and delivers it to everyone.
// It returns X's Commit and the epoch e.
func removedReplay(t *testing.T, h *harness, honest []string) ([]byte, uint64) {
	t.Helper()
	stXe, e, _ := h.ms["X"].Current()
	everyone := append([]string{"X"}, honest...)
	deliverAll := func(from string, msg []byte) {
		for _, id := range everyone {
			if id != from {
				h.deliver(id, msg)
			}
		}
	}
	deliverAll("A", h.commit("A", nil, nil)) // class 1 at e
	deliverAll("A", h.commit("A", nil, nil))
	deliverAll("A", h.commit("A", nil, []string{"X"})) // X removed
	deliverAll("C", h.commit("C", nil, nil))
	replay, _, info, _, err := h.be.commit("X", stXe, nil, []string{"B"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if info.Class() != ClassRemove {
		t.Fatal("the replay must be a removal")
	}
	return replay, e
}

// TestRemovedMemberReplayCannotRemove plays the removed member of issue 12
// item 3: X keeps a state from before its removal and publishes, for an
// epoch inside everyone's window whose canonical Commit was ordinary, a
// Commit removing B. Its key is the best of that epoch, yet no member
// switches to it (the bar: its sender was removed by the canonical chain
// since), B stays in, X stays out, and the group goes on committing.
func TestRemovedMemberReplayCannotRemove(t *testing.T) {
	honest := []string{"A", "B", "C", "D"}
	h := newHarness(t, append([]string{"X"}, honest...)...)
	replay, e := removedReplay(t, h, honest)
	for _, id := range honest {
		_, tipBefore, _ := h.ms[id].Current()
		for _, d := range h.deliver(id, replay) {
			if s, ok := d.(Switched); ok {
				t.Fatalf("%s switched to the removed member's replay: %+v", id, s)
			}
		}
		m := h.ms[id]
		if _, ep, _ := m.Current(); ep != tipBefore {
			t.Fatalf("%s moved from epoch %d to %d", id, tipBefore, ep)
		}
		if !m.tipRoster["B"] || m.tipRoster["X"] {
			t.Fatalf("%s: roster %v: B must stay, X must stay out", id, m.Roster())
		}
		if k, _ := m.entryAt(e); k.Hash == HashOf(replay) {
			t.Fatalf("%s: the replay is canonical at %d", id, e)
		}
	}
	// The honest group keeps working: a Commit by B lands everywhere.
	msg := h.commit("B", nil, nil)
	for _, id := range []string{"A", "C", "D"} {
		h.deliver(id, msg)
		if h.ms[id].Epoch() != h.ms["B"].Epoch() {
			t.Fatalf("%s at epoch %d, B at %d", id, h.ms[id].Epoch(), h.ms["B"].Epoch())
		}
	}
}

// TestRemovedMemberClaimCannotLiftBar: the same removed member then sends a
// claim (signed by itself, a member at the fork) for the branch of its
// replay. The claim is not a verdict: nobody loses to it, rolls back or
// rejoins, and B stays in. A claim by a member that the chain did not
// remove, for a branch it really went on, still heals a race (the other
// scenarios and TestLateBetterCommitSwitches).
func TestRemovedMemberClaimCannotLiftBar(t *testing.T) {
	honest := []string{"A", "B", "C", "D"}
	h := newHarness(t, append([]string{"X"}, honest...)...)
	replay, _ := removedReplay(t, h, honest)
	for _, id := range honest {
		h.deliver(id, replay)
	}
	// X claims the branch of its replay: the honest history up to the
	// epoch of the replay, then the replay's key (as every member computes
	// it; it is in their trees, barred).
	var rk Key
	for _, n := range h.ms["A"].nodes {
		if n.id == HashOf(replay) {
			if !n.barred {
				t.Fatal("the replay should be barred")
			}
			rk = n.key
		}
	}
	if rk.Hash.IsZero() {
		t.Fatal("the replay should be in the tree")
	}
	forged := Claim{Signer: "X", Tip: h.ms["A"].Epoch() + 5, GroupInfo: []byte("group info of the forged branch")}
	for _, en := range h.ms["A"].History() {
		if en.Epoch < rk.Epoch {
			forged.Entries = append(forged.Entries, en)
		}
	}
	forged.Entries = append(forged.Entries, rk)
	for _, id := range honest {
		m := h.ms[id]
		_, ep, tip := m.Current()
		for _, d := range m.ClaimReceived(h.be, forged, h.at.Add(time.Hour)) {
			switch d.(type) {
			case Switched, Rejoin:
				t.Fatalf("%s acted on the removed member's claim: %T %+v", id, d, d)
			}
		}
		// Even after the rejoin grace, nothing happens.
		for _, d := range m.Tick(h.be, h.at.Add(2*time.Hour)) {
			switch d.(type) {
			case Switched, Rejoin:
				t.Fatalf("%s acted on the removed member's claim later: %T %+v", id, d, d)
			}
		}
		if _, ep2, tip2 := m.Current(); ep2 != ep || tip2 != tip || !m.tipRoster["B"] {
			t.Fatalf("%s moved: epoch %d->%d, B member %v", id, ep, ep2, m.tipRoster["B"])
		}
		// Nor is its own branch marked dead: that would make it refuse
		// every Welcome into its own group later (WelcomeAcceptable).
		if dead, ok := m.deadCommit.get(); ok || m.standing.mayWelcome() {
			t.Fatalf("%s marked its canonical Commit %v dead on the removed member's claim (standing %v)", id, dead, m.standing)
		}
	}
}

// TestRemovedMemberDoesNotTakeAnotherReplay: Y is removed, then X. Y stops
// at its removal and never sees X's, so X's replay (a removal of B, at an
// epoch before Y's removal or at the epoch of Y's removal itself) is not
// barred by X's removal on Y's chain; by key it beats that epoch's
// Commit and would make Y a member again on the replay's branch, from
// where Y's claims would vouch for it. Y bars it too: a removed member
// takes nothing below its removal on arrival, only when a trusted claim
// shows the group went there (TestRemovedMemberBarLiftedByTrustedClaim).
func TestRemovedMemberDoesNotTakeAnotherReplay(t *testing.T) {
	for _, atRemoval := range []bool{false, true} {
		honest := []string{"A", "B", "C", "D"}
		everyone := append([]string{"X", "Y"}, honest...)
		h := newHarness(t, everyone...)
		deliverTo := func(ids []string, from string, msg []byte) {
			for _, id := range ids {
				if id != from {
					h.deliver(id, msg)
				}
			}
		}
		var stXe *mstate
		var e uint64
		if !atRemoval {
			stXe, e, _ = h.ms["X"].Current()
			deliverTo(everyone, "A", h.commit("A", nil, nil)) // class 1 at e
			deliverTo(everyone, "A", h.commit("A", nil, nil))
		}
		// Y's removal: at e itself when atRemoval, by whichever honest
		// member's ticket loses to X's there (X's replay must beat it).
		if atRemoval {
			remover := ""
			for range 32 {
				stXe, e, _ = h.ms["X"].Current()
				for _, id := range honest {
					if remover == "" && Ticket([]byte("g"), e, "X") < Ticket([]byte("g"), e, id) {
						remover = id
					}
				}
				if remover != "" {
					break
				}
				deliverTo(everyone, "A", h.commit("A", nil, nil)) // try the next epoch's draw
			}
			if remover == "" {
				t.Fatal("no epoch where an honest member loses the ticket draw to X")
			}
			deliverTo(everyone, remover, h.commit(remover, nil, []string{"Y"}))
		} else {
			deliverTo(everyone, "A", h.commit("A", nil, []string{"Y"}))
		}
		rest := append([]string{"X"}, honest...)
		deliverTo(rest, "A", h.commit("A", nil, []string{"X"})) // X removed, Y out already
		deliverTo(honest, "C", h.commit("C", nil, nil))
		replay, _, info, _, err := h.be.commit("X", stXe, nil, []string{"B"}, false)
		if err != nil || info.Class() != ClassRemove {
			t.Fatalf("replay: %v, class %d", err, info.Class())
		}

		y := h.ms["Y"]
		_, tipBefore, _ := y.Current()
		for _, d := range h.deliver("Y", replay) {
			if s, ok := d.(Switched); ok {
				t.Fatalf("at removal %v: Y switched to X's replay: %+v", atRemoval, s)
			}
		}
		if _, tip, _ := y.Current(); tip != tipBefore || y.IsMember() {
			t.Fatalf("at removal %v: Y moved from %d to %d, member %v", atRemoval, tipBefore, tip, y.IsMember())
		}
		if k, _ := y.entryAt(e); k.Hash == HashOf(replay) {
			t.Fatalf("at removal %v: Y: the replay is canonical at %d", atRemoval, e)
		}

		// Y's claims say nothing new, and the honest members still bar it.
		for _, id := range honest {
			h.deliver(id, replay)
			for _, d := range h.ms[id].ClaimReceived(h.be, y.MakeClaim(nil), h.at) {
				switch d.(type) {
				case Switched, Rejoin:
					t.Fatalf("at removal %v: %s acted on Y's claim: %T %+v", atRemoval, id, d, d)
				}
			}
			if k, _ := h.ms[id].entryAt(e); k.Hash == HashOf(replay) || !h.ms[id].tipRoster["B"] {
				t.Fatalf("at removal %v: %s took the replay (B member %v)", atRemoval, id, h.ms[id].tipRoster["B"])
			}
		}
	}
}

// TestRemovedMemberBarLiftedByTrustedClaim: an honest race. A removes Y
// while C, at the same epoch, commits a removal of D with the better key.
// Y hears A's removal first and is out; C's Commit then reaches it and is
// barred there (Y cannot judge what the group did after its removal). A
// claim by C, a member at the fork whom Y's chain never removed, shows
// the group went on C's branch: Y switches to it and is a member again.
func TestRemovedMemberBarLiftedByTrustedClaim(t *testing.T) {
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
	if remover == "" {
		t.Fatal("three different tickets must order two of them")
	}
	rm := h.commit(remover, nil, []string{"Y"})
	win := h.commit(racer, nil, []string{"D"})
	h.deliver("Y", rm)
	if h.ms["Y"].IsMember() {
		t.Fatal("Y should be out after its removal")
	}
	for _, d := range h.deliver("Y", win) {
		if _, ok := d.(Switched); ok {
			t.Fatalf("Y took %s's Commit on arrival: %+v", racer, d)
		}
	}
	// The rest of the group settles the race by key.
	for _, id := range []string{"A", "B", "C", "D"} {
		if id != remover {
			h.deliver(id, rm)
		}
		if id != racer {
			h.deliver(id, win)
		}
	}
	switched := false
	for _, d := range h.ms["Y"].ClaimReceived(h.be, h.ms[racer].MakeClaim(nil), h.at) {
		if s, ok := d.(Switched); ok && s.To == HashOf(win) {
			switched = true
		}
	}
	if !switched || !h.ms["Y"].IsMember() {
		t.Fatalf("Y after %s's claim: switched %v, member %v", racer, switched, h.ms["Y"].IsMember())
	}
}

// TestCapKeepsBarredWinnerLongest: an honest race between R's removal of
// X and X's own Commit (better by key) reaches O removal first, so O bars
// X's Commit; with room for one losing state, the cap on losing states
// releases an ordinary loser of the same epoch rather than the barred
// winner, and a trusted claim for X's Commit then switches O to it (a
// released branch could not be switched to, and the messages written on
// it could not be read).
func TestCapKeepsBarredWinnerLongest(t *testing.T) {
	// The racer's ticket must beat the remover's at epoch 0: pick the
	// names (tickets are a function of group, epoch and name).
	racer, remover := "", ""
	for _, x := range []string{"X", "Y", "Z", "W", "V"} {
		for _, r := range []string{"A", "B", "C"} {
			if racer == "" && Ticket([]byte("g"), 0, x) < Ticket([]byte("g"), 0, r) {
				racer, remover = x, r
			}
		}
	}
	if racer == "" {
		t.Fatal("no racer name beats a remover's ticket")
	}
	members := []string{"A", "B", "C", "D", racer}
	h := &harness{t: t, be: &modelBackend{groupID: []byte("g")}, ms: map[string]*Machine[*mstate]{}, at: simStart}
	for i, st := range h.be.create(members) {
		h.ms[members[i]] = New(Config{GroupID: []byte("g"), Self: members[i], WindowEpochs: 8, MaxLosingStates: 1},
			st, 0, nil, members, h.at)
	}
	if _, e, _ := h.ms["A"].Current(); e != 0 {
		t.Fatalf("group starts at epoch %d", e)
	}
	var observer, other string
	for _, id := range []string{"A", "B", "C"} {
		switch {
		case id == remover:
		case observer == "":
			observer = id
		default:
			other = id
		}
	}
	rm := h.commit(remover, nil, []string{racer})
	win := h.commit(racer, nil, []string{"D"})
	loser := h.commit(other, nil, nil) // an ordinary Commit: loses to both removals
	h.deliver(observer, rm)
	h.deliver(observer, win)
	h.deliver(observer, loser)
	if _, _, ok := h.ms[observer].StateAt(HashOf(win)); !ok {
		t.Fatalf("%s released the barred Commit that wins by key before the ordinary loser", observer)
	}
	if _, _, ok := h.ms[observer].StateAt(HashOf(loser)); ok {
		t.Fatalf("%s kept two losing states with room for one", observer)
	}
	// A member that took the racer's Commit before the removal claims it.
	h.deliver(other, win)
	h.deliver(other, rm)
	switched := false
	for _, d := range h.ms[observer].ClaimReceived(h.be, h.ms[other].MakeClaim(nil), h.at) {
		if s, ok := d.(Switched); ok && s.To == HashOf(win) {
			switched = true
		}
	}
	if !switched {
		t.Fatalf("%s did not switch to %s's Commit on %s's claim", observer, racer, other)
	}
}

// TestLaggingCommitterConcedesItsBarredCommit: L lags at epoch e and
// commits there a removal of B, better by key than the group's ordinary
// Commit of e; but the group went on and removed L at e+1, so every member
// bars L's Commit (it looks exactly like a replay) and ignores L's claims.
// L judges its own Commit: a trusted claim for the group's branch, which
// removes L after the fork, shows L its Commit is barred there. L bars it
// too and is out on the group's branch, as its removal says. When L does
// not hold that branch yet, the claim makes it fetch the messages since
// the fork, and the next claim settles it.
func TestLaggingCommitterConcedesItsBarredCommit(t *testing.T) {
	for _, held := range []bool{true, false} {
		members := []string{"A", "B", "C", "D", "L"}
		h := newHarness(t, members...)
		_, e, _ := h.ms["A"].Current()
		ordinary := h.commit("A", nil, nil) // class 1 at e
		for _, id := range []string{"B", "C", "D"} {
			h.deliver(id, ordinary)
		}
		rmL := h.commit("C", nil, []string{"L"}) // at e+1
		for _, id := range []string{"A", "B", "D"} {
			h.deliver(id, rmL)
		}
		lagging := h.commit("L", nil, []string{"B"}) // L still at e
		l := h.ms["L"]
		for _, id := range []string{"A", "B", "C", "D"} {
			h.deliver(id, lagging)
			if k, _ := h.ms[id].entryAt(e); k.Hash != HashOf(ordinary) || !h.ms[id].tipRoster["B"] || h.ms[id].tipRoster["L"] {
				t.Fatalf("held %v: %s took L's Commit", held, id)
			}
		}
		if k, _ := l.entryAt(e); k.Hash != HashOf(lagging) || !l.IsMember() {
			t.Fatalf("held %v: L should be a member on its own Commit first", held)
		}
		claim := h.ms["A"].MakeClaim(nil)
		if !held {
			var from []uint64
			ds := l.ClaimReceived(h.be, claim, h.at)
			for _, d := range append(ds, l.Tick(h.be, h.at)...) { // fetched on the next tick, like any catch-up
				if c, ok := d.(CatchUp); ok {
					from = append(from, c.From)
				}
			}
			if !slices.Contains(from, e) {
				t.Fatalf("L did not fetch the group's branch from the fork %d: CatchUp %v", e, from)
			}
			if !l.IsMember() {
				t.Fatal("L conceded without seeing the group's branch")
			}
		}
		h.deliver("L", ordinary)
		h.deliver("L", rmL)
		if !l.IsMember() {
			t.Fatalf("held %v: L left on arrival (its Commit wins by key there)", held)
		}
		switched := false
		for _, d := range l.ClaimReceived(h.be, claim, h.at) {
			if s, ok := d.(Switched); ok && s.To == HashOf(rmL) {
				switched = true
			}
		}
		if !switched || l.IsMember() {
			t.Fatalf("held %v: L after A's claim: switched %v, member %v", held, switched, l.IsMember())
		}
		if k, _ := l.entryAt(e); k.Hash != HashOf(ordinary) {
			t.Fatalf("held %v: L's canonical Commit at %d is %s", held, e, k.Hash)
		}
		// The group's claims now agree with L's history.
		if v := CompareHistories(l.History(), h.ms["B"].MakeClaim(nil).Entries); v.Kind == Fork {
			t.Fatalf("held %v: L still forks from the group: %+v", held, v)
		}
	}
}

// TestRemovalRaceWonAfterReAddAndRemoval (mls-busy seed 67): X's removal
// of B and A's removal of X race at epoch 1; X's ticket is the lower, so
// X's Commit wins by key. A, C and D took A's removal first and bar X's
// Commit on arrival; then the group re-adds X (epoch 2) and removes it
// again (epoch 3) on its branch, which X never took. X's claim is still a
// verdict: the fork's own Commit removed X, that race is decided by the
// key, and what the losing branch did to X afterwards is no evidence about
// it. Before, the members ignored X's claims (removed since the fork)
// while X held its winning Commit: the group stayed split.
func TestRemovalRaceWonAfterReAddAndRemoval(t *testing.T) {
	h := newHarness(t, "A", "B", "C", "D", "X")
	if Ticket([]byte("g"), 1, "X") >= Ticket([]byte("g"), 1, "A") {
		t.Fatal("the test needs X's ticket at epoch 1 below A's")
	}
	others := []string{"A", "B", "C", "D"}
	send := func(msg []byte, from string, to ...string) {
		for _, id := range to {
			if id != from {
				h.deliver(id, msg)
			}
		}
	}
	send(h.commit("A", nil, nil), "A", "B", "C", "D", "X") // epoch 0
	rmX := h.commit("A", nil, []string{"X"})               // epoch 1
	send(rmX, "A", others...)
	xc := h.commit("X", nil, []string{"B"})                 // epoch 1, racing rmX
	send(h.commit("C", []string{"X"}, nil), "C", others...) // epoch 2: X re-added
	send(h.commit("D", nil, []string{"X"}), "D", others...) // epoch 3: removed again
	send(xc, "X", others...)
	for _, id := range others {
		if k, _ := h.ms[id].entryAt(1); k.Hash != HashOf(rmX) {
			t.Fatalf("%s: X's Commit should be barred on arrival", id)
		}
	}
	groupClaim := h.ms["A"].MakeClaim(nil)
	xClaim := h.ms["X"].MakeClaim(nil)
	for _, id := range others {
		h.ms[id].ClaimReceived(h.be, xClaim, h.at)
		h.ms[id].Tick(h.be, h.at.Add(time.Minute))
		if k, _ := h.ms[id].entryAt(1); k.Hash != HashOf(xc) {
			t.Fatalf("%s ignored X's claim: canonical at 1 is %s, not X's Commit", id, k.Hash)
		}
	}
	// X, which holds the group's removal of it, keeps its Commit.
	x := h.ms["X"]
	h.deliver("X", rmX)
	for _, d := range append(x.ClaimReceived(h.be, groupClaim, h.at), x.Tick(h.be, h.at)...) {
		if _, ok := d.(Switched); ok {
			t.Fatalf("X conceded its winning Commit: %+v", d)
		}
	}
	if k, _ := x.entryAt(1); k.Hash != HashOf(xc) || !x.IsMember() {
		t.Fatalf("X left its winning Commit (member %v)", x.IsMember())
	}
	for _, id := range others {
		if v := CompareHistories(x.History(), h.ms[id].MakeClaim(nil).Entries); v.Kind == Fork {
			t.Fatalf("X and %s still fork: %+v", id, v)
		}
	}
}
