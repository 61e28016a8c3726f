package ordering

import (
	"slices"
)

// Removed members replaying old states (the replay scenarios; README.md
// "Removed members").

// replayStep keeps each member's recent states and, during the
// operations, has removed peers replay from them: a Commit removing
// another member of the kept state, for an epoch still inside the
// group's window, published to everyone.
func (s *sim[S]) replayStep(ops bool) {
	var tip uint64
	for _, p := range s.sorted() {
		if p.m.IsMember() {
			tip = max(tip, p.m.Epoch())
		}
	}
	for _, p := range s.sorted() {
		if p.kept == nil {
			p.kept = map[uint64]S{}
		}
		if st, e, _ := p.m.Current(); p.m.IsMember() && s.be.usable(st) {
			p.kept[e] = st
		}
		for e := range p.kept {
			if e+uint64(s.p.window)/2 < tip {
				delete(p.kept, e)
			}
		}
		if !ops || p.m.IsMember() || len(p.kept) == 0 || s.rng.Float64() >= s.p.pReplay {
			continue
		}
		if !s.p.replayAny && slices.ContainsFunc(s.sorted(), func(q *peer[S]) bool { return q.m.IsMember() && q.m.tipRoster[p.id] }) {
			continue
		}
		var es []uint64
		for e := range p.kept {
			es = append(es, e)
		}
		slices.Sort(es)
		e := es[s.rng.IntN(len(es))]
		st := p.kept[e]
		var victims []string
		for _, id := range s.be.roster(st) {
			if id != p.id {
				victims = append(victims, id)
			}
		}
		if len(victims) < 2 {
			continue
		}
		victim := victims[s.rng.IntN(len(victims))]
		msg, _, info, _, err := s.be.commit(p.id, st, nil, []string{victim}, false)
		if err != nil {
			continue
		}
		if s.trace {
			s.t.Logf("r%d %s (removed) replays a removal of %s at epoch %d (tip %d)", s.round, p.id, victim, e, tip)
		}
		s.recordCommit(msg, info, e)
		s.replays = append(s.replays, HashOf(msg))
		s.publish(p.id, msg)
	}
}
