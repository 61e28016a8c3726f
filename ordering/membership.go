package ordering

import (
	"slices"
)

// Who was a member when, as this member's chain says: trust in claims,
// admission of external commits, removals since a fork, Welcomes.

// WasMember reports whether id was a member at epoch on the canonical
// chain as this member knows it (finalized history or window).
func (m *Machine[S]) WasMember(id string, epoch uint64) bool {
	if epoch >= m.root.epoch {
		for n := m.tip; n != nil; n = n.parent {
			if n.epoch <= epoch {
				return m.memberAt(n, id)
			}
			if n == m.root {
				break
			}
		}
		return m.rootRoster[id]
	}
	return m.wasMemberFinal(id, epoch)
}

func (m *Machine[S]) wasMemberFinal(id string, epoch uint64) bool {
	evs := m.events[id]
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].epoch <= epoch {
			return evs[i].add
		}
	}
	return false
}

// memberAt reports whether id is a member in the state of n.
func (m *Machine[S]) memberAt(n *node[S], id string) bool {
	for x := n; x != nil && x != m.root; x = x.parent {
		if slices.Contains(x.info.Added, id) {
			return true
		}
		if slices.Contains(x.info.Removed, id) {
			return false
		}
	}
	return m.rootRoster[id]
}

// Admission is the verdict on an external commit's credential.
type Admission uint8

const (
	// Admitted: the credential is a member of the state the external
	// commit was sent in: a resync (it rejoins after losing a fork, or
	// after losing its state).
	Admitted Admission = iota + 1
	// RefusedRemoved: the credential was a member but the canonical
	// branch removed it: its removal stands.
	RefusedRemoved
	// RefusedStranger: the credential never was a member.
	RefusedStranger
)

// AdmitExternal is the pure admission rule for external commits (DESIGN.md
// §3, README.md "Rejoining"): only credentials that are members of the
// state the commit was sent in, that is members who were in the group at
// the fork and were not removed by the canonical branch since, may join
// by external commit; others must be added by a member (Welcome).
func AdmitExternal(memberAtBase func(id string) bool, wasEverMember func(id string) bool, id string) Admission {
	switch {
	case memberAtBase(id):
		return Admitted
	case wasEverMember(id):
		return RefusedRemoved
	}
	return RefusedStranger
}

func (m *Machine[S]) admit(base *node[S], id string) Admission {
	return AdmitExternal(func(id string) bool { return m.memberAt(base, id) },
		func(id string) bool { return len(m.events[id]) > 0 || m.everInWindow(id) }, id)
}

func (m *Machine[S]) everInWindow(id string) bool {
	for _, n := range m.nodes {
		if slices.Contains(n.info.Added, id) {
			return true
		}
	}
	return false
}

// TrustClaim reports whether a claim signed by signer about a fork at
// epoch may be acted on: the signer must have been a member at the fork
// (README.md "Deep forks").
//
// A member that joined (or rejoined) at epoch j knows nothing of the group
// before j but what its adder told it: a fork before j is judged by the
// members it joined with, so a signer that was a member at j is trusted
// about it (as much as the adder whose history it adopted).
//
// A signer that this member's canonical chain removed after the fork is
// not trusted about it either: it may hold a state from before its removal
// and forge a branch from there (README.md "Removed members"); a branch
// that honest members really went on is claimed by them too.
func (m *Machine[S]) TrustClaim(signer string, forkEpoch uint64) bool {
	if false && m.RemovedSince(signer, forkEpoch) {
		return false
	}
	if forkEpoch < m.knownFrom {
		return m.WasMember(signer, m.knownFrom)
	}
	return m.WasMember(signer, forkEpoch)
}

// RemovedSince reports that this member's canonical chain removed id by a
// Commit of epoch or later (finalized history or window), whatever
// happened to id afterwards: a member re-added since is still not trusted
// with what it claims about the branch before its removal.
func (m *Machine[S]) RemovedSince(id string, epoch uint64) bool {
	for _, e := range m.events[id] {
		// e.epoch is the epoch of the state the removal created.
		if !e.add && e.author != "" && e.epoch > epoch {
			return true
		}
	}
	for x := m.tip; x != nil && x != m.root; x = x.parent {
		if x.key.Epoch >= epoch && removes(x, id) {
			return true
		}
	}
	return false
}

// removedPastFork reports that this member's chain removed id after the
// fork at epoch (by a Commit of epoch+1 or later, RemovedSince) and its
// own Commit of the fork's epoch did not: id was then a member of this
// branch past the fork, so what it claims about the fork, or a Commit it
// made there, may come from a state it kept past its removal. When the
// fork's own Commit removed id, id's sibling Commit raced that removal
// (decided by the key, README.md "Removed members"), and what the chain
// did to id after it (a re-add, a removal again) was decided on a branch
// id may never have taken: it is no evidence about the race (mls-busy
// seed 67).
func (m *Machine[S]) removedPastFork(id string, epoch uint64) bool {
	return m.RemovedSince(id, epoch+1) && !m.removedAt(id, epoch)
}

// removedAt reports that the canonical Commit of epoch on this member's
// chain (finalized history or window) removed id.
func (m *Machine[S]) removedAt(id string, epoch uint64) bool {
	for _, e := range m.events[id] {
		if !e.add && e.author != "" && e.epoch == epoch+1 {
			return true
		}
	}
	for x := m.tip; x != nil && x != m.root; x = x.parent {
		if x.hasKey && x.key.Epoch == epoch {
			return removes(x, id)
		}
	}
	return false
}

// WelcomeAcceptable reports whether a Welcome into this group for epoch
// should replace the current state. history is the compact history the
// adder sent with the Welcome (nil if none). A Welcome is accepted only if
// it leads forward on the canonical chain as this member can judge it:
//
//   - with a history that forks from ours, only if its branch wins the
//     fork (a Welcome into a losing branch is never taken, however stale
//     our own state is);
//   - otherwise only if this member needs it (its branch lost, it is not a
//     member at its tip, or Commits that no state accepts show it is
//     stranded) and the Welcome is newer than what it holds: past the fork
//     it lost, past its tip when it was removed.
//
// A stale Welcome (an old re-add, kept in the inbox) would otherwise take a
// member back to a dead state of an old epoch.
func (m *Machine[S]) WelcomeAcceptable(epoch uint64, history []Entry) bool {
	if dead, ok := m.deadCommit.get(); ok {
		// A branch through a Commit known to have a better sibling is
		// dead, whoever adds us to it: its members have not heard yet,
		// or cannot rejoin (they joined through the dead Commit).
		for _, e := range history {
			if e.Epoch == dead.Epoch && e.Hash == dead.Hash {
				return false
			}
		}
	}
	if len(history) > 0 {
		ours := m.History()
		if m.root.hasKey || len(ours) > 0 {
			switch v := CompareHistories(ours, history); v.Kind {
			case Fork:
				return v.Theirs.Less(v.Ours) && epoch > v.Epoch
			case Agree:
				// Same branch as far as both know: only forward.
				if epoch <= m.tip.epoch {
					return false
				}
			}
		}
	}
	switch {
	case m.lost != nil:
		return epoch > m.lost.epoch
	case m.standing.mayWelcome() || !m.IsMember():
		return epoch > m.tip.epoch || (len(history) > 0 && epoch > m.root.epoch)
	case m.orphaned():
		return true
	}
	return false
}

func (m *Machine[S]) orphaned() bool {
	for _, pm := range m.pending {
		if pm.epoch <= m.tip.epoch && pm.ct == Commit && m.now.Sub(pm.at) >= m.cfg.OrphanTime {
			return true
		}
	}
	return false
}
