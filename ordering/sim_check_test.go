package ordering

import (
	"bytes"
	"slices"
	"strings"
)

// The simulator's invariants (README.md "Tests"), checked after the
// operations stop and partitions heal.

func (s *sim[S]) check() {
	if len(s.violations) > 0 {
		s.t.Errorf("seed %d: %s", s.p.seed, strings.Join(s.violations, "\n"))
		return
	}
	members, roster, final, ok := s.checkConverged()
	if !ok {
		return
	}
	// The canonical chain: epoch -> commit hash.
	canon := map[Hash]uint64{}
	for _, p := range members {
		for _, e := range p.m.History() {
			canon[e.Hash] = e.Epoch + 1
		}
	}
	s.checkReplays(canon, roster)
	s.checkMessages(canon, roster, final)
	s.checkIntents(canon, roster)
}

// checkConverged checks that every member of the group is at the same
// epoch and state, with the same roster, and that the roster's members
// are exactly the peers that consider themselves members. It returns the
// members, the roster and the final epoch.
func (s *sim[S]) checkConverged() (members []*peer[S], roster []string, final uint64, ok bool) {
	// 1. Every member of the group is at the same epoch and state.
	var ref *peer[S]
	for _, p := range s.sorted() {
		if p.m.IsMember() {
			members = append(members, p)
			if ref == nil || len(p.m.History()) > len(ref.m.History()) {
				ref = p
			}
		}
	}
	if ref == nil {
		s.t.Fatalf("seed %d: no member left", s.p.seed)
	}
	refSt, refEpoch, _ := ref.m.Current()
	roster = ref.m.Roster()
	for _, p := range members {
		st, epoch, _ := p.m.Current()
		if epoch != refEpoch || !bytes.Equal(s.be.auth(st), s.be.auth(refSt)) {
			s.t.Errorf("seed %d: %s at epoch %d, %s at epoch %d with a different authenticator (rejoins %d, switches %d)",
				s.p.seed, ref.id, refEpoch, p.id, epoch, s.rejoins, s.switches)
			s.dump()
			return nil, nil, 0, false
		}
		if !slices.Equal(p.m.Roster(), roster) {
			s.t.Errorf("seed %d: rosters differ", s.p.seed)
		}
	}
	if got := len(members); got != len(roster) {
		s.t.Errorf("seed %d: roster %v but %d peers consider themselves members", s.p.seed, roster, got)
		for _, id := range roster {
			if p := s.peers[id]; p == nil || !p.m.IsMember() {
				s.t.Errorf("  %s is in the roster but has no state", id)
			}
		}
		return nil, nil, 0, false
	}
	if st := s.be.roster(refSt); !slices.Equal(st, roster) {
		s.t.Errorf("seed %d: machine roster %v, state roster %v", s.p.seed, roster, st)
	}

	return members, roster, refEpoch, true
}

// checkReplays checks that no Commit a removed member made from a state
// it kept left anyone out.
func (s *sim[S]) checkReplays(canon map[Hash]uint64, roster []string) {
	// A Commit a removed member made from a state it kept leaves nobody
	// out: it is not canonical, or every member it removed was added
	// back by a canonical Commit after it (README.md "Removed members").
	for _, h := range s.replays {
		e, ok := canon[h]
		if !ok {
			continue
		}
		rc := s.cmts[h]
		for _, v := range rc.info.Removed {
			if v == rc.info.Sender || slices.Contains(rc.info.Added, v) || slices.Contains(roster, v) {
				continue
			}
			restored := false
			for h2, e2 := range canon {
				if c, ok := s.cmts[h2]; ok && e2 > e && slices.Contains(c.info.Added, v) {
					restored = true
				}
			}
			if !restored {
				s.t.Errorf("seed %d: a removed member's replay %s is canonical at epoch %d and %s, whom it removed, was never restored", s.p.seed, h, e-1, v)
			}
		}
	}
}

// checkMessages checks that every message landed, and that every member
// at its landing epoch that held that epoch's state read it.
func (s *sim[S]) checkMessages(canon map[Hash]uint64, roster []string, final uint64) {
	canonNode := func(h Hash, epoch uint64) bool {
		if h.IsZero() {
			return true // the group's initial state
		}
		e, ok := canon[h]
		return ok && e == epoch
	}

	// The ground truth of membership: the initial roster and the changes
	// of the canonical Commits (as their senders recorded them), epoch by
	// epoch.
	canonAt := map[uint64]Hash{}
	for h, e := range canon {
		canonAt[e-1] = h
	}
	memberAt := func(id string, epoch uint64) bool {
		in := slices.Contains(s.initRoster, id)
		for e := s.initEpoch; e < epoch; e++ {
			h, ok := canonAt[e]
			if !ok {
				s.t.Errorf("seed %d: no canonical Commit known at epoch %d", s.p.seed, e)
				return false
			}
			c := s.cmts[h]
			if slices.Contains(c.info.Removed, id) {
				in = false
			}
			if slices.Contains(c.info.Added, id) {
				in = true
			}
		}
		return in
	}

	// leftAt returns the round id left the group for good: the creation
	// round of the canonical Commit that removed it, or the round since
	// which it held no member state of its own if earlier (a member out
	// on a branch that lost, refused a rejoin, until its removal came);
	// -1: a member at the end.
	leftAt := func(id string) int {
		if slices.Contains(roster, id) {
			return -1
		}
		at := -1
		for e := s.initEpoch; e < final; e++ {
			if c, ok := s.cmts[canonAt[e]]; ok && slices.Contains(c.info.Removed, id) && !slices.Contains(c.info.Added, id) {
				at = c.round
			}
		}
		if p := s.peers[id]; p != nil && p.outSince >= 0 && (at < 0 || p.outSince < at) {
			at = p.outSince
		}
		return at
	}
	// excused: the copy reached q only after q had released the state it
	// was written in, and the reader or the sender left the group before a
	// re-send could help (README.md "Tests").
	excused := func(q *peer[S], sender string, c *copyRec) bool {
		if s.inTime[q.id][c.hash] {
			return false
		}
		arr, ok := s.arrived[q.id][c.hash]
		if !ok {
			return false
		}
		for _, id := range []string{q.id, sender} {
			if l := leftAt(id); l >= 0 && l <= arr+lateGrace {
				return true
			}
		}
		return false
	}

	// 2. Every message landed, and every member at its landing epoch that
	// held that epoch's state read it.
	for _, id := range s.msgIDs {
		r := s.msgs[id]
		var landed *copyRec
		for i := range r.copies {
			if canonNode(r.copies[i].node, r.copies[i].epoch) {
				landed = &r.copies[i]
			}
		}
		if landed == nil {
			if slices.Contains(roster, r.sender) && s.stayed(r.sender) {
				s.t.Errorf("seed %d: message %s of %s (copies %v) never landed on the canonical branch", s.p.seed, id, r.sender, r.copies)
			}
			continue
		}
		for _, q := range s.sorted() {
			if q.id == r.sender || q.start > landed.epoch || !memberAt(q.id, landed.epoch) || !s.heldAt(q, landed.epoch, canonAt) {
				continue
			}
			if !q.delivered[id] && !excused(q, r.sender, landed) {
				s.t.Errorf("seed %d: %s, member at epoch %d, never read message %s (reader member at end %v, in time %v, arrived %v; sender member %v stayed %v left %d; copies %d)",
					s.p.seed, q.id, landed.epoch, id, q.m.IsMember(), s.inTime[q.id][landed.hash], s.arrived[q.id][landed.hash],
					s.peers[r.sender].m.IsMember(), s.stayed(r.sender), leftAt(r.sender), len(r.copies))
			}
		}
	}

}

// checkIntents checks that every intended change by a member is applied
// or moot.
func (s *sim[S]) checkIntents(canon map[Hash]uint64, roster []string) {
	// 3. Every intended change by a member is applied or moot.
	inRoster := func(id string) bool { return slices.Contains(roster, id) }
	canonAfter := func(round int, f func(commitRec) bool) bool {
		for h := range canon {
			if c, ok := s.cmts[h]; ok && c.round >= round && f(c) {
				return true
			}
		}
		return false
	}
	for _, si := range s.intent {
		if !inRoster(si.by) || !s.stayed(si.by) {
			continue
		}
		in := si.intent
		ok := false
		switch in.Kind {
		case Add:
			ok = inRoster(in.Target) || canonAfter(si.round, func(c commitRec) bool { return slices.Contains(c.info.Removed, in.Target) })
		case Remove:
			ok = !inRoster(in.Target) || canonAfter(si.round, func(c commitRec) bool {
				return slices.Contains(c.info.Added, in.Target) && !(c.info.External && c.info.Sender == in.Target)
			})
		case Update:
			// A re-add (Welcome, or resync) gives the member a fresh leaf:
			// it refreshes it as an Update would.
			ok = canonAfter(si.round, func(c commitRec) bool {
				return c.info.refreshes(si.by) || slices.Contains(c.info.Added, si.by)
			}) || s.peers[si.by].rejoins > 0
		}
		if !ok {
			s.t.Errorf("seed %d: %s's intent %v (round %d) neither applied nor moot; roster %v", s.p.seed, si.by, in, si.round, roster)
		}
	}
}

// lateGrace is how many rounds a message that reached a member too late to
// be read may take to be recovered: the member's next claim lists it in
// Claim.Stale (AnnounceInterval, 10 rounds, plus delivery), the sender
// re-sends it at its tip, and a sender that rejoined after a lost fork may
// hold its re-sends up to two RetryTimes (80 rounds) while the removals of
// its lost branch are re-proposed (README.md "Re-sending safely"). A
// member, reader or sender, that leaves the group for good within that
// time is excused (check).
const lateGrace = 100

// stayed reports whether id kept its membership through the run without
// being removed and re-added (a member removed before it could re-send
// loses its unsent messages with its membership).
func (s *sim[S]) stayed(id string) bool {
	p := s.peers[id]
	return p != nil && !p.removedOnce
}

// heldAt reports whether q held the canonical state of epoch: it did not
// rejoin past it, and its last rejoin's resync commit is canonical (a resync
// that lost left it without any canonical state from then on; it was
// removed, or rejoined again later, which resets start).
// rejoin past it by external commit).
func (s *sim[S]) heldAt(q *peer[S], epoch uint64, canonAt map[uint64]Hash) bool {
	if !q.startCommit.IsZero() && q.start > 0 && canonAt[q.start-1] != q.startCommit {
		return false
	}
	return q.start <= epoch
}

func (s *sim[S]) dump() {
	for _, p := range s.sorted() {
		_, e, h := p.m.Current()
		st := p.m.Stats()
		s.t.Logf("  %s member=%v epoch=%d tip=%s states=%d buffered=%d rejoins=%d lost=%v hist=%d",
			p.id, p.m.IsMember(), e, h, st.States, st.Buffered, p.rejoins, p.m.lost != nil, st.HistoryEntries)
	}
}
