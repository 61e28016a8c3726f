package ordering

import (
	"errors"
	"fmt"
)

// Reasons CheckWelcome refuses a Welcome into a group this member already
// has. Each is wrapped in a *WelcomeError.
var (
	// ErrNoSharedHistory: the history sent with the Welcome shares no
	// Commit with this member's chain (or none is sent): nothing proves
	// that the adder's group continues this member's group, whatever its
	// group id. A stranger can create an MLS group with any group id.
	ErrNoSharedHistory = errors.New("ordering: the Welcome's history shares no Commit with this member's group")
	// ErrAdderNotMember: the adder was not a member of this member's
	// canonical chain where the Welcome's branch leaves it (the fork, or
	// this member's tip).
	ErrAdderNotMember = errors.New("ordering: the adder was not a member of this group where its branch leaves ours")
	// ErrAdderRemoved: this member's canonical chain removed the adder (or
	// the sender of the first Commit of the adder's branch) after the fork:
	// a removed member can build any branch from a state it kept.
	ErrAdderRemoved = errors.New("ordering: this group removed the adder after its branch left ours")
	// ErrUnknownCommitter: the key of the first Commit of the adder's
	// branch carries a lottery ticket of nobody who was a member there: a
	// made-up history.
	ErrUnknownCommitter = errors.New("ordering: the adder's branch starts with a Commit of no member")
	// ErrNotForward: the Welcome is a real continuation but does not lead
	// forward on the canonical chain (its branch lost, or it is older than
	// what this member holds, or this member does not need it):
	// WelcomeAcceptable is false. The engine may keep it and ask again.
	ErrNotForward = errors.New("ordering: the Welcome does not lead forward on this group's canonical chain")
)

// WelcomeError says why CheckWelcome refused a Welcome.
type WelcomeError struct {
	Adder string
	// Epoch is where the adder's branch leaves this member's chain (the
	// fork, or this member's tip when the branch continues it).
	Epoch uint64
	Err   error
}

func (e *WelcomeError) Error() string {
	return fmt.Sprintf("welcome from %q at epoch %d: %v", e.Adder, e.Epoch, e.Err)
}

func (e *WelcomeError) Unwrap() error { return e.Err }

// CheckWelcome judges a Welcome into a group this member already has, as
// a fork heal or a re-add: adder is the verified identity of the member
// that signed the Welcome's GroupInfo, epoch the epoch it joins, history
// the compact history the adder sent along. The adder's history is
// evidence checked against this member's own chain, never a verdict:
//
//   - it must share a Commit with this member's chain (ErrNoSharedHistory);
//   - the adder must have been a member of this member's canonical chain
//     where its branch leaves it: at the fork, or at this member's tip when
//     the branch continues it (ErrAdderNotMember);
//   - neither the adder nor the sender of the first Commit of its branch may
//     have been removed by this member's chain after the fork
//     (ErrAdderRemoved), and that sender must have been a member there
//     (ErrUnknownCommitter);
//   - and the Welcome must lead forward (WelcomeAcceptable, ErrNotForward).
//
// nil means: take it (and report it with Rejoined). Anything else is not a
// continuation of this member's group: at most a new, separate invitation
// that the user must accept as such. The errors are *WelcomeError.
func (m *Machine[S]) CheckWelcome(adder string, epoch uint64, history []Entry) error {
	fail := func(at uint64, err error) error { return &WelcomeError{Adder: adder, Epoch: at, Err: err} }
	ours := m.History()
	v := CompareHistories(ours, history)
	// A fork at the first epoch both list needs no common entry (two
	// Commits on the group's creation): the adder's membership decides.
	if !(v.Kind == Fork || (v.Kind == Agree && v.HasCommon)) {
		return fail(m.tip.epoch, ErrNoSharedHistory)
	}
	at := m.tip.epoch
	if v.Kind == Fork {
		at = v.Epoch
	} else if last := history[len(history)-1].Epoch; last < at {
		// A history that stops before our tip: it leaves our chain at its
		// last entry, where the adder must have been a member.
		at = last + 1
	}
	if !m.WasMember(adder, at) && !(at < m.knownFrom && m.WasMember(adder, m.knownFrom)) {
		return fail(at, ErrAdderNotMember)
	}
	removed := m.RemovedSince(adder, at+1)
	if v.Kind == Fork {
		// Removed by our Commit of the fork's own epoch: a race decided
		// by the key, whatever our branch did to it after.
		removed = m.removedPastFork(adder, at)
	}
	if !m.tipRoster[adder] && removed {
		return fail(at, ErrAdderRemoved)
	}
	if v.Kind == Fork {
		sender, ok := "", false
		for id := range m.rosterAtEpoch(v.Epoch) {
			if Ticket(m.cfg.GroupID, v.Epoch, id) == v.Theirs.Ticket {
				sender, ok = id, true
			}
		}
		if !ok {
			return fail(at, ErrUnknownCommitter)
		}
		if !m.tipRoster[sender] && m.removedPastFork(sender, v.Epoch) {
			return fail(at, ErrAdderRemoved)
		}
	}
	if !m.WelcomeAcceptable(epoch, history) {
		return fail(at, ErrNotForward)
	}
	return nil
}
