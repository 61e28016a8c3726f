package ordering

import (
	"slices"
)

// Restarts: a member rebuilds its machine from its stored states (the
// restart scenarios; README.md "Retention", Restarts).

// reloader is implemented by backends whose states are mutable: a
// restart reads each state back from its serialized form.
type reloader[S any] interface {
	reload(self string, st S) S
}

// restart rebuilds p's machine as the chat engine does after a restart:
// New with the oldest retained canonical state, the stored history, then
// Restore for each later canonical state (the backend's states are the
// stored ones). The engine keeps in its store what the machine forgets:
// own messages not yet final go out again from its outbox (same id), and
// it catches up from the oldest restored epoch. Only a member with no
// obligation the engine would have to rebuild restarts (no intents, held
// Welcomes, owed or gated re-sends, lost fork, buffered messages): the
// chat engine loses those today too. The rebuilt machine must have the
// window, history and roster of the live one.
func (s *sim[S]) restart(p *peer[S]) {
	old := p.m
	if !old.IsMember() || old.lost != nil || old.standing.mayWelcome() || old.since != nil ||
		len(old.intents) > 0 || len(old.owed) > 0 || len(old.pending) > 0 {
		return
	}
	for _, n := range old.welcomes {
		if n.welcome == welcomeHeld {
			return
		}
	}
	for _, sm := range old.sent {
		if sm.resending || !sm.n.(*node[S]).canon {
			return
		}
	}
	var chain []*node[S]
	for n := old.tip; n != nil && n.live; n = n.parent {
		chain = append(chain, n)
		if n == old.root {
			break
		}
	}
	slices.Reverse(chain)
	c0 := chain[0]
	var key *Key
	if c0.hasKey {
		k := c0.key
		key = &k
	}
	if r, ok := s.be.(reloader[S]); ok {
		// Through the store's bytes, as the engine reads them.
		for _, n := range chain {
			n.state = r.reload(p.id, n.state)
		}
	}
	at := now(s.round)
	m := New(s.cfg(p.id), c0.state, c0.epoch, key, s.be.roster(c0.state), at)
	m.AdoptHistory(old.History())
	var epochs []uint64
	epochs = append(epochs, c0.epoch)
	for _, n := range chain[1:] {
		if err := m.Restore(n.state, n.key, n.info, at); err != nil {
			s.t.Fatalf("seed %d round %d: %s restore: %v", s.p.seed, s.round, p.id, err)
		}
		epochs = append(epochs, n.epoch)
	}
	_, e1, h1 := old.Current()
	_, e2, h2 := m.Current()
	switch {
	case e1 != e2 || h1 != h2:
		s.violate("%s restarted at %d %s, was at %d %s", p.id, e2, h2, e1, h1)
	case !slices.Equal(m.History(), old.History()):
		s.violate("%s restarted with history %v, had %v", p.id, m.History(), old.History())
	case !slices.Equal(m.Roster(), old.Roster()) || m.IsMember() != old.IsMember():
		s.violate("%s restarted with roster %v, had %v", p.id, m.Roster(), old.Roster())
	case !slices.Equal(m.LiveStates(), epochs):
		s.violate("%s restarted with states %v, had the canonical %v", p.id, m.LiveStates(), epochs)
	}
	if s.trace {
		s.t.Logf("r%d %s restarts with states %v", s.round, p.id, epochs)
	}
	s.restarts++
	p.m, p.restartTip = m, e2
	for _, sm := range old.sent {
		for _, o := range p.own {
			if o.id == sm.id {
				s.exec(p, s.sendMsg(p, o))
			}
		}
	}
	s.sync(p.id, c0.epoch)
}
