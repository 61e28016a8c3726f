package ordering

import (
	"slices"
)

// Settlement: re-sends, re-proposals, Welcomes (README.md "No lost
// changes", "No lost messages", "Re-sending safely").

func (m *Machine[S]) evaluate() {
	m.settleSent()
	m.settleSince()
	m.settleIntents()
	m.settleWelcomes()
	m.settleLost()
}

// settleSent re-sends own messages whose epoch lost (gated: README.md
// "Re-sending safely"), written far behind the group, or asked for by a
// claim (Claim.Stale), and forgets those that are final.
func (m *Machine[S]) settleSent() {
	member := m.tipRoster[m.cfg.Self]
	// Own messages whose epoch lost.
	var resend []MessageID
	resendAt := map[*node[S]][]MessageID{}
	var ats []*node[S]
	kept := m.sent[:0]
	for _, s := range m.sent {
		n := s.n.(*node[S])
		switch {
		case n.canon && !n.gone && n.epoch >= m.root.epoch:
			kept = append(kept, s) // canonical, not final yet
			if !s.late && !s.resending && m.tip.epoch >= n.epoch+m.lateEpochs() && !n.left.IsZero() && m.now.Sub(n.left) <= m.cfg.OrphanTime {
				// Written while this member lagged far behind the group
				// (its tip went from that epoch to many epochs later in a
				// short time: it caught up, e.g. after a partition
				// healed): the others may have released that epoch's
				// state before the message reached them. Send it again at
				// the tip; receivers de-duplicate by id.
				s.late, s.resending, s.askedAt = true, true, m.now
				resend = append(resend, s.id)
			}
		case n.canon:
			// final
		case !member:
			// lost, and this member is not in the canonical group: the
			// message cannot be re-sent (the engine reports it failed).
		default:
			kept = append(kept, s)
			fork := n
			for fork != nil && !fork.canon {
				fork = fork.parent
			}
			ready, at := m.gate(m.excluded(n), fork)
			if !ready {
				continue
			}
			if !s.resending || m.now.Sub(s.askedAt) > m.cfg.RetryTime {
				s.resending, s.askedAt, s.at = true, m.now, at
				if at == nil {
					resend = append(resend, s.id)
				} else {
					if resendAt[at] == nil {
						ats = append(ats, at)
					}
					resendAt[at] = append(resendAt[at], s.id)
				}
			}
		}
	}
	m.sent = kept
	if len(m.owed) > 0 && member && m.standing != standingDetached {
		// Asked for by a claim (Claim.Stale): at the tip, once this member
		// is in the group (it may have been out when the claim came, or
		// may leave before the engine carries it out: asked again until
		// Sent reports it).
		keptO := m.owed[:0]
		for _, o := range m.owed {
			if o.tries > 0 && m.now.Sub(o.askedAt) <= m.cfg.RetryTime {
				keptO = append(keptO, o)
				continue
			}
			if o.tries >= maxOwedTries {
				continue
			}
			o.tries, o.askedAt = o.tries+1, m.now
			if !slices.Contains(resend, o.id) {
				resend = append(resend, o.id)
			}
			keptO = append(keptO, o)
		}
		m.owed = keptO
	}
	if len(resend) > 0 {
		m.emit(Resend{IDs: resend})
	}
	for _, at := range ats {
		m.emit(Resend{IDs: resendAt[at], At: at.id, Epoch: at.epoch})
	}
}

// settleSince emits the re-send of what this member wrote on a lost branch
// (ResendSince) once the members that branch had removed are out again.
func (m *Machine[S]) settleSince() {
	self, member := m.cfg.Self, m.tipRoster[m.cfg.Self]
	if m.since != nil && member {
		// Gated like Resend. After two retry periods a removal that did
		// not come is not coming (the canonical branch removed and
		// re-added the member before this one rejoined: its author's
		// intent is settled).
		expired := m.now.Sub(m.since.Until) > 2*m.cfg.RetryTime
		for id := range m.deepExclude {
			if !m.tipRoster[id] || expired {
				// Its removal landed: its presence from now on is a new
				// decision of the group (a re-add).
				delete(m.deepExclude, id)
			}
		}
		if ready, at := m.gate(m.deepExclude, nil); ready {
			d := *m.since
			if at != nil {
				d.At, d.AtEpoch = at.id, at.epoch
			}
			m.emit(d)
			m.since, m.deepExclude = nil, nil
		} else if debugf != nil {
			debugf("%s: since %+v blocked by %v", self, *m.since, m.deepExclude)
		}
	}

}

// settleIntents re-proposes this member's changes that no canonical Commit
// applied or made moot, and drops those settled for good.
func (m *Machine[S]) settleIntents() {
	self, member := m.cfg.Self, m.tipRoster[m.cfg.Self]
	// Own changes. An intent is settled (applied, or made moot) by a
	// canonical Commit; it is dropped only once that is final: until then a
	// switch, or a concurrent Commit landing later, may undo it, and it
	// must be re-proposed.
	var again []Intent
	keptI := m.intents[:0]
	for _, is := range m.intents {
		if !member {
			if !m.rootRoster[self] {
				continue // moot: this member's removal is final
			}
			keptI = append(keptI, is) // out for now; a switch may undo it
			continue
		}
		done, at := m.intentStatus(is)
		if done {
			is.isSat, is.satisfied = true, at
			// Final once the deciding Commit is in the compact history and
			// a whole window has passed since the intent: Commits made
			// concurrently with it (on branches that had not seen it) are
			// decided by then, and one of them may still undo the change
			// (then it is re-proposed).
			if at <= m.root.epoch && m.tip.epoch >= is.base+uint64(m.cfg.WindowEpochs) {
				if debugf != nil {
					debugf("%s: intent %v settled for good at %d", self, is.Intent, at)
				}
				m.settled = append(m.settled, is)
				if len(m.settled) > maxSettled {
					m.settled = m.settled[len(m.settled)-maxSettled:]
				}
				continue // final
			}
			keptI = append(keptI, is)
			continue
		}
		is.isSat = false
		if !is.carrier.IsZero() {
			if c, ok := m.nodes[is.carrier]; ok && c.canon {
				keptI = append(keptI, is)
				continue
			}
			is.carrier, is.asked, is.landed = Hash{}, false, false // its Commit lost
		}
		if !is.asked || m.now.Sub(is.askedAt) > m.cfg.RetryTime {
			again = append(again, is.Intent)
			is.asked, is.askedAt = true, m.now
		}
		keptI = append(keptI, is)
	}
	m.intents = keptI
	if len(again) > 0 {
		m.emit(Repropose{Intents: again})
	}

}

// settleWelcomes sends the Welcomes of own Commits that settled and drops
// those of Commits that lost.
func (m *Machine[S]) settleWelcomes() {
	// Welcomes of own Commits.
	keptW := m.welcomes[:0]
	for _, n := range m.welcomes {
		switch {
		case n.welcome != welcomeHeld:
		case !n.canon && !n.gone && m.underConceded(n):
			// Our conceded Commit's branch: if a trusted claim lifts the
			// bar (the group went there after all), the members it adds
			// still need their Welcomes.
			keptW = append(keptW, n)
		case !n.canon:
			n.welcome = welcomeDropped
			m.emit(DropWelcome{Commit: n.id})
		case m.lost != nil && n.key.Epoch >= m.lost.epoch:
			// Our branch lost a fork before this Commit (a claim showed
			// it): the member rejoins, and the Commit with it.
			keptW = append(keptW, n)
		case m.tip.epoch >= n.epoch+uint64(m.cfg.SettleEpochs) || m.now.Sub(n.canonSince) >= m.cfg.SettleTime:
			n.welcome = welcomeSent
			m.emit(SendWelcome{Commit: n.id})
		default:
			keptW = append(keptW, n)
		}
	}
	m.welcomes = keptW

}

// settleLost forgets a lost fork that healed through the window.
func (m *Machine[S]) settleLost() {
	if m.lost != nil {
		if e, ok := m.entryAt(m.lost.epoch); ok && e.Compare(m.lost.theirs) <= 0 {
			m.lost = nil
		}
	}
}

// underConceded reports that n's branch leaves the canonical chain at an
// own Commit this member conceded (concede, fork.go).
func (m *Machine[S]) underConceded(n *node[S]) bool {
	for x := n; x != nil && !x.canon; x = x.parent {
		if x.conceded && x.barred {
			return true
		}
	}
	return false
}

// maxSettled bounds the settled intents kept for a deep rejoin.
const maxSettled = 256

// lateEpochs is how far behind the tip an own message's epoch may fall
// right after it was sent before it is sent again (half the window).
func (m *Machine[S]) lateEpochs() uint64 { return uint64(max(1, m.cfg.WindowEpochs/2)) }

// safeState returns the newest retained canonical state in which none of
// the excluded identities is a member, not older than half the window (so
// that the other members still hold it when the re-send arrives), or nil.
func (m *Machine[S]) safeState(excl map[string]string) *node[S] {
	for x := m.tip.parent; x != nil; x = x.parent {
		if x.epoch+uint64(m.cfg.WindowEpochs)/2 < m.tip.epoch || !x.live {
			return nil
		}
		ok := true
		for id := range excl {
			if m.memberAt(x, id) {
				ok = false
				break
			}
		}
		if ok {
			return x
		}
		if x == m.root {
			break
		}
	}
	return nil
}

// StateAt returns the retained state of node h (a Commit's hash; the zero
// hash for a root without one), for a Resend that names it.
func (m *Machine[S]) StateAt(h Hash) (S, uint64, bool) {
	if n, ok := m.nodes[h]; ok && n.live {
		return n.state, n.epoch, true
	}
	var zero S
	return zero, 0, false
}

// gate decides whether own messages written on a losing branch that had
// removed the members excl (identity -> author of the removal) may be
// re-sent now (README.md "Re-sending safely"). A removed identity that is
// a member at the canonical tip blocks the re-send until the re-proposed
// removal lands, unless nobody will re-propose it: its author is not a
// member any more (the group removed the author, its removals go with it),
// or the canonical chain changed its membership after fork (its removal
// landed and it was re-added, or it was added: a later decision of the
// group, which makes the removal moot as in intentStatus). When the re-send
// may go, at is the newest retained canonical state where none of excl is
// a member, if that is not the tip (nil: the tip).
func (m *Machine[S]) gate(excl map[string]string, fork *node[S]) (ready bool, at *node[S]) {
	in := false
	for id, author := range excl {
		if !m.tipRoster[id] {
			continue
		}
		in = true
		if author != "" && author != m.cfg.Self && !m.tipRoster[author] {
			continue
		}
		if fork != nil && m.changedSince(fork, id) {
			continue
		}
		if debugf != nil {
			debugf("%s: re-send blocked by %s (removed by %s)", m.cfg.Self, id, author)
		}
		return false, nil
	}
	if in {
		at = m.safeState(excl)
	}
	return true, at
}

// changedSince reports whether a canonical Commit after fork removed or
// added id (a resync by id itself excepted): its membership at the tip is
// a decision the group took after the fork, which the lost branch's
// removal does not override (the removal's intent is settled or moot, the
// same rule as intentStatus).
func (m *Machine[S]) changedSince(fork *node[S], id string) bool {
	for x := m.tip; x != nil && x != fork; x = x.parent {
		if slices.Contains(x.info.Removed, id) && !slices.Contains(x.info.Added, id) {
			return true
		}
		if slices.Contains(x.info.Added, id) && !(x.info.External && x.info.Sender == id) {
			return true
		}
		if x == m.root {
			break
		}
	}
	return false
}

// excluded returns the identities that the (losing) branch of n had
// removed between its fork from the canonical chain and n, with the
// author of each removal: a message sent at n is hidden from them (gate).
func (m *Machine[S]) excluded(n *node[S]) map[string]string {
	decided := map[string]bool{}
	out := map[string]string{}
	for x := n; x != nil && !x.canon; x = x.parent {
		for _, id := range x.info.Added {
			if _, ok := decided[id]; !ok {
				decided[id] = true
			}
		}
		for _, id := range x.info.Removed {
			if _, ok := decided[id]; !ok {
				decided[id] = false
				out[id] = x.info.Sender
			}
		}
	}
	return out
}

// intentStatus says whether the canonical branch applied an intent, or
// made it moot with a later conflicting change, and the epoch of the state
// created by the Commit that did (the root's epoch or less: final).
func (m *Machine[S]) intentStatus(is *intentState) (done bool, at uint64) {
	added := func(n *node[S]) bool {
		return slices.Contains(n.info.Added, is.Target) && !(n.info.External && n.info.Sender == is.Target)
	}
	removed := func(n *node[S]) bool {
		return slices.Contains(n.info.Removed, is.Target) && !slices.Contains(n.info.Added, is.Target)
	}
	switch is.Kind {
	case Add:
		if m.tipRoster[is.Target] {
			return true, m.lastCanon(added)
		}
		if is.restore {
			// Restored once, it is the group's to decide again: a later
			// removal is not undone.
			if ok, at := m.canonSince(is.base, added); ok {
				return true, at
			}
			for _, e := range m.events[is.Target] {
				if e.add && e.epoch > is.base {
					return true, e.epoch // final already
				}
			}
			return false, 0
		}
		// Moot: this member's own add landed and someone removed the
		// target after it (a later decision, made on top of it).
		return m.mootAfterCarrier(is, removed)
	case Remove:
		if !m.tipRoster[is.Target] {
			return true, m.lastCanon(removed)
		}
		// Moot: this member's own removal landed and someone re-added
		// the target after it. A concurrent change (made before it saw
		// the intent's Commit, e.g. a removal or add by someone else)
		// does not make it moot: the intent is re-proposed.
		return m.mootAfterCarrier(is, added)
	case Update:
		return m.canonSince(is.base, func(n *node[S]) bool { return n.info.refreshes(m.cfg.Self) })
	}
	return true, 0
}

// mootAfterCarrier reports whether a canonical Commit built on top of the
// intent's own carrier Commit (canonical) satisfies f, and the epoch of the
// state of the oldest such.
func (m *Machine[S]) mootAfterCarrier(is *intentState, f func(*node[S]) bool) (bool, uint64) {
	if c, ok := m.nodes[is.carrier]; ok && !is.carrier.IsZero() {
		is.landed, is.landedAt = c.canon, c.epoch
	} else if is.landed && is.landedAt > m.root.epoch {
		is.landed = false // gone without being final: it lost
	}
	if !is.landed {
		return false, 0
	}
	ok, at := false, uint64(0)
	for n := m.tip; n != nil && n.epoch > is.landedAt; n = n.parent {
		if f(n) {
			ok, at = true, n.epoch
		}
		if n == m.root {
			break
		}
	}
	return ok, at
}

// lastCanon returns the epoch of the newest canonical state in the window
// whose Commit satisfies f, or the root's epoch (final) if none does.
func (m *Machine[S]) lastCanon(f func(*node[S]) bool) uint64 {
	for n := m.tip; n != nil && n != m.root; n = n.parent {
		if f(n) {
			return n.epoch
		}
	}
	return m.root.epoch
}

// canonSince reports whether a canonical Commit sent at or after epoch
// base satisfies f, and the epoch of the oldest such state.
func (m *Machine[S]) canonSince(base uint64, f func(*node[S]) bool) (bool, uint64) {
	ok, at := false, uint64(0)
	for n := m.tip; n != nil && n.hasKey && n.key.Epoch >= base; n = n.parent {
		if f(n) {
			ok, at = true, n.epoch
		}
		if n == m.root {
			break
		}
	}
	return ok, at
}
