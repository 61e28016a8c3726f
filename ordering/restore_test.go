package ordering

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

// restoreChain is one canonical state of a member as its store keeps it:
// the state, the key and info of the Commit that created it.
type restoreChain struct {
	st    *mstate
	epoch uint64
	key   *Key
	info  CommitInfo
}

// chainOf returns the canonical live states of m, oldest first.
func chainOf(m *Machine[*mstate]) []restoreChain {
	var out []restoreChain
	for n := m.tip; n != nil; n = n.parent {
		if !n.live {
			break
		}
		c := restoreChain{st: n.state, epoch: n.epoch, info: n.info}
		if n.hasKey {
			k := n.key
			c.key = &k
		}
		out = append(out, c)
		if n == m.root {
			break
		}
	}
	slices.Reverse(out)
	return out
}

// restored rebuilds a machine of self from a chain (New + Restore), as the
// engine does after a restart, and adopts the stored history.
func restored(t *testing.T, h *harness, self string, chain []restoreChain, hist []Entry) *Machine[*mstate] {
	t.Helper()
	c0 := chain[0]
	m := New(Config{GroupID: []byte("g"), Self: self, WindowEpochs: 8}, c0.st, c0.epoch, c0.key, c0.st.members, h.at)
	m.AdoptHistory(hist)
	for _, c := range chain[1:] {
		if err := m.Restore(c.st, *c.key, c.info, h.at); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func sameMachine(t *testing.T, what string, a, b *Machine[*mstate]) {
	t.Helper()
	_, ea, ha := a.Current()
	_, eb, hb := b.Current()
	if ea != eb || ha != hb {
		t.Fatalf("%s: tip %d %s, want %d %s", what, eb, hb, ea, ha)
	}
	if !slices.Equal(a.History(), b.History()) {
		t.Fatalf("%s: history\n%v\nwant\n%v", what, b.History(), a.History())
	}
	if !slices.Equal(a.Roster(), b.Roster()) || !reflect.DeepEqual(a.rootRoster, b.rootRoster) {
		t.Fatalf("%s: roster %v, want %v", what, b.Roster(), a.Roster())
	}
	if !slices.Equal(a.LiveStates(), b.LiveStates()) {
		t.Fatalf("%s: live states %v, want %v", what, b.LiveStates(), a.LiveStates())
	}
	if a.root.epoch != b.root.epoch {
		t.Fatalf("%s: root epoch %d, want %d", what, b.root.epoch, a.root.epoch)
	}
}

// TestRestoreWindow: a member restarted from the canonical states its
// store kept (New with the oldest, Restore for the others) has the window
// of a member that processed the chain live: same tip, history, roster and
// retained states; a replayed chain Commit is a Duplicate; and a better
// sibling of a Commit inside the window makes both switch alike.
func TestRestoreWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		full bool // restore from the group's creation (past the window)
		fork uint64
	}{{"window", false, 7}, {"window-oldest", false, 4}, {"from-creation", true, 9}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "A", "B", "C", "D")
			var creation []restoreChain
			if tc.full {
				creation = chainOf(h.ms["C"])
			}
			var msgs [][]byte
			for i := 0; i < 12; i++ {
				var adds, removes []string
				switch i {
				case 2:
					adds = []string{"E"}
				case 3:
					removes = []string{"E"}
				case 8:
					adds = []string{"F"}
				}
				msg := h.commit("A", adds, removes)
				msgs = append(msgs, msg)
				for _, id := range []string{"B", "C", "D"} {
					h.deliver(id, msg)
				}
				if tc.full {
					creation = append(creation, chainOf(h.ms["C"])[len(chainOf(h.ms["C"]))-1])
				}
			}
			live := h.ms["C"]
			chain := chainOf(live)
			if len(chain) != 9 || chain[0].epoch != 4 {
				t.Fatalf("live chain of %d states from epoch %d", len(chain), chain[0].epoch)
			}
			if tc.full {
				chain = creation
			}
			hist := live.History()
			r := restored(t, h, "C", chain, hist)
			sameMachine(t, "restored", live, r)
			if tc.full && !reflect.DeepEqual(live.eventLog, r.eventLog) {
				t.Fatalf("membership events\n%+v\nwant\n%+v", r.eventLog, live.eventLog)
			}

			// Replays of chain Commits, inside and before the window.
			for _, msg := range [][]byte{msgs[11], msgs[6], msgs[3], msgs[0]} {
				ds := h.deliver("C", msg)
				dr := r.Receive(h.be, msg, mustEpoch(h, msg), Commit, h.at)
				if !reflect.DeepEqual(ds, dr) {
					t.Fatalf("replay: %+v, want %+v", dr, ds)
				}
				for _, d := range dr {
					if _, ok := d.(Discarded); !ok {
						t.Fatalf("replay produced %T %+v", d, d)
					}
				}
			}
			if d := r.Receive(h.be, msgs[9], 9, Commit, h.at); len(d) != 1 || d[0].(Discarded).Reason != Duplicate {
				t.Fatalf("replay of a restored Commit: %+v", d)
			}

			// A better sibling (a removal: class 0) of the Commit of epoch
			// fork+1, sent in the state of epoch fork.
			var base *mstate
			for _, c := range chain {
				if c.epoch == tc.fork {
					base = c.st
				}
			}
			better, _, _, _, err := h.be.commit("B", base, nil, []string{"D"}, false)
			if err != nil {
				t.Fatal(err)
			}
			ds := h.deliver("C", better)
			dr := r.Receive(h.be, better, tc.fork, Commit, h.at)
			if !reflect.DeepEqual(ds, dr) {
				t.Fatalf("better sibling: restored %+v\nlive %+v", dr, ds)
			}
			var sw *Switched
			for _, d := range dr {
				if s, ok := d.(Switched); ok {
					sw = &s
				}
			}
			if sw == nil || sw.ForkEpoch != tc.fork || sw.RolledBack != int(12-tc.fork) || sw.Epoch != tc.fork+1 {
				t.Fatalf("no rollback to epoch %d: %+v", tc.fork, dr)
			}
			sameMachine(t, "after the switch", live, r)
			if slices.Contains(r.Roster(), "D") {
				t.Fatalf("roster after the switch: %v", r.Roster())
			}
		})
	}
}

func mustEpoch(h *harness, msg []byte) uint64 {
	e, _ := h.be.header(msg)
	return e
}

// TestRestoreRefusesGaps: a state that does not continue the tip, or whose
// key does not match its info, is refused and changes nothing.
func TestRestoreRefusesGaps(t *testing.T) {
	h := newHarness(t, "A", "B", "C")
	var states []restoreChain
	for i := 0; i < 3; i++ {
		msg := h.commit("A", nil, nil)
		h.deliver("C", msg)
		c := chainOf(h.ms["C"])
		states = append(states, c[len(c)-1])
	}
	st0 := h.be.create([]string{"A", "B", "C"})[2]
	m := New(Config{GroupID: []byte("g"), Self: "C", WindowEpochs: 8}, st0, 0, nil, st0.members, h.at)
	if err := m.Restore(states[1].st, *states[1].key, states[1].info, h.at); !errors.Is(err, ErrRestore) {
		t.Fatalf("gap: %v", err)
	}
	bad := *states[0].key
	bad.Class = ClassRemove
	if err := m.Restore(states[0].st, bad, states[0].info, h.at); !errors.Is(err, ErrRestore) {
		t.Fatalf("wrong class: %v", err)
	}
	if m.Epoch() != 0 || len(m.LiveStates()) != 1 {
		t.Fatalf("refused restore changed the machine: epoch %d, states %v", m.Epoch(), m.LiveStates())
	}
	if err := m.Restore(states[0].st, *states[0].key, states[0].info, h.at); err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(states[0].st, *states[0].key, states[0].info, h.at); !errors.Is(err, ErrRestore) {
		t.Fatalf("twice: %v", err)
	}
}
