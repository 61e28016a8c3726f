package ordering

import (
	"errors"
	"testing"
)

// TestCheckWelcome plays the adders of issue 12: a stranger with its own
// group of the same id and a made-up history, a stranger that copied the
// real history (Commit hashes are visible to anyone on the topic) and
// extends it, a removed member adding a victim into the branch of its
// replay; and the honest re-add, which passes.
func TestCheckWelcome(t *testing.T) {
	honest := []string{"A", "B", "C", "D"}
	h := newHarness(t, append([]string{"X"}, honest...)...)
	replay, e := removedReplay(t, h, honest)
	for _, id := range honest {
		h.deliver(id, replay)
	}
	b := h.ms["B"]
	real := h.ms["A"].History()
	tip := b.Epoch()

	madeUp := []Entry{}
	for ep := uint64(0); ep < tip+3; ep++ {
		madeUp = append(madeUp, Entry{Epoch: ep, Class: ClassRemove, Ticket: 0, Hash: Hash{byte(ep + 1)}})
	}
	copied := append(append([]Entry{}, real...), Entry{Epoch: tip, Class: ClassRemove, Ticket: 0, Hash: Hash{0xee}})
	forged := []Entry{}
	for _, en := range real {
		if en.Epoch < tip-1 {
			forged = append(forged, en)
		}
	}
	forged = append(forged, Entry{Epoch: tip - 1, Class: ClassRemove, Ticket: 0, Hash: Hash{0xef}})
	var rk Key
	for _, n := range h.ms["A"].nodes {
		if n.id == HashOf(replay) {
			rk = n.key
		}
	}
	viaReplay := []Entry{}
	for _, en := range real {
		if en.Epoch < e {
			viaReplay = append(viaReplay, en)
		}
	}
	viaReplay = append(viaReplay, rk)
	elsewhere := []Entry{{Epoch: 1000, Class: ClassOther, Hash: Hash{1}}}

	for _, tc := range []struct {
		name    string
		adder   string
		epoch   uint64
		history []Entry
		want    error
	}{
		{"stranger, made-up history", "S", tip + 3, madeUp, ErrAdderNotMember},
		{"stranger, history of another group", "S", 1001, elsewhere, ErrNoSharedHistory},
		{"no history", "A", tip + 1, nil, ErrNoSharedHistory},
		{"stranger, copied history", "S", tip + 1, copied, ErrAdderNotMember},
		{"member, made-up fork Commit", "A", tip + 1, forged, ErrUnknownCommitter},
		{"removed member, branch of its replay", "X", e + 2, viaReplay, ErrAdderRemoved},
		{"member, branch of the removed member's replay", "C", e + 2, viaReplay, ErrAdderRemoved},
		{"member, B's own branch (nothing new)", "A", tip, real, ErrNotForward},
	} {
		err := b.CheckWelcome(tc.adder, tc.epoch, tc.history)
		var we *WelcomeError
		if !errors.Is(err, tc.want) || !errors.As(err, &we) || we.Adder != tc.adder {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// The honest re-add: A removes B, then adds it back; B takes A's
	// Welcome with A's history.
	rm := h.commit("A", nil, []string{"B"})
	for _, id := range []string{"B", "C", "D"} {
		h.deliver(id, rm)
	}
	if b.IsMember() {
		t.Fatal("B should be out")
	}
	add := h.commit("A", []string{"B"}, nil)
	for _, id := range []string{"C", "D"} {
		h.deliver(id, add)
	}
	if err := b.CheckWelcome("A", h.ms["A"].Epoch(), h.ms["A"].History()); err != nil {
		t.Fatalf("honest re-add refused: %v", err)
	}
	// The same Welcome signed by someone who is not in B's group is not.
	if err := b.CheckWelcome("S", h.ms["A"].Epoch(), h.ms["A"].History()); !errors.Is(err, ErrAdderNotMember) {
		t.Fatalf("stranger re-add: %v", err)
	}
}
