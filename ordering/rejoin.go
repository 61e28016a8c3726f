package ordering

import (
	"slices"
	"time"
)

// Rejoining: after a lost fork (Rejoin, RejoinRefused) or a re-add by a
// Welcome (README.md "Deep forks").

// LostFork returns the epoch of the fork this member's branch lost, if it
// knows of one; its current epoch if it was removed (a re-add loses
// nothing); else the epoch of the Commit that created its oldest retained
// state. Own messages sent after it are re-sent when it rejoins.
func (m *Machine[S]) LostFork() uint64 {
	if m.lost != nil {
		return m.lost.epoch
	}
	if e, ok := m.lostAt.get(); ok && m.standing == standingDetached {
		// The fork lost, the rejoin refused: what was sent since is lost
		// with the branch.
		return e
	}
	if !m.IsMember() {
		// Removed on the canonical branch: nothing of ours was lost.
		return m.tip.epoch
	}
	if m.root.epoch > 0 {
		return m.root.epoch - 1
	}
	return 0
}

// RejoinResult is what the engine reports after it rejoined the group: by
// external commit after a Rejoin decision, or from a Welcome that
// WelcomeAcceptable accepted.
type RejoinResult[S any] struct {
	State S
	Epoch uint64
	// Commit is the external commit (nil for a Welcome) and Info what
	// processing it said.
	Commit []byte
	Info   CommitInfo
	// Key is the key of the Commit that created State when known (a
	// Welcome's Commit); ignored when Commit is set.
	Key *Key
	// Roster is the membership of State.
	Roster []string
	// ForkEpoch is the epoch of the first Commit of the lost branch
	// (Rejoin.ForkEpoch, or LostFork()).
	ForkEpoch uint64
	// History is the compact history of the branch joined, from the claim
	// whose GroupInfo was used or sent with the Welcome by the adder
	// (signed by that member). Nil takes the claim the machine decided to
	// rejoin on. It keeps this member's history comparable with the other
	// members' (README.md "Deep forks").
	History []Entry
}

// Rejoined replaces the tree with the rejoined state. Own changes made on
// the lost branch since the fork are re-proposed, own messages sent since
// are re-sent (ResendSince) once every member the lost branch had removed
// is out again.
func (m *Machine[S]) Rejoined(p Processor[S], r RejoinResult[S], now time.Time) []Decision {
	m.begin(p, now)
	// After a lost fork (not a plain re-add of a removed member) the branch
	// joined replaces this member's history: what it decided is judged
	// again there.
	afterLoss := r.Commit != nil || m.lost != nil || m.standing.mayWelcome()
	f := m.rejoinFork(r)
	oldTip := m.tip
	carrierAt := m.carrierEpochs()
	m.finalizeCommon(f)

	joined := map[string]bool{}
	for _, id := range r.Roster {
		joined[id] = true
	}
	changes, removedBy := m.lostBranch(f, joined)
	// The members the lost branch removed after the fork and had not
	// re-added at its tip, with the author of the removal: own messages
	// written on the lost branch were hidden from them (gate).
	excl := map[string]string{}
	if m.deepExclude != nil {
		excl = m.deepExclude
	}
	for id, author := range removedBy {
		if !m.tipRoster[id] && id != m.cfg.Self {
			excl[id] = author
		}
	}

	m.dropTree(f)
	m.resetToJoined(r)
	m.reopenSettled(f)
	if !afterLoss {
		m.settleOnBranchJoined(carrierAt)
	}
	m.requeueIntents(afterLoss, r.Epoch, changes)
	if m.since != nil {
		// An earlier rejoin's re-send is still waiting: keep its range.
		m.since = &ResendSince{Epoch: min(m.since.Epoch, f), Until: now}
	} else {
		m.since = &ResendSince{Epoch: f, Until: now}
	}
	m.deepExclude = excl
	m.lost, m.lostAt = nil, opt[uint64]{}
	m.standing = m.standing.next(rejoin)
	m.lastRejoin = now
	rolled := 0
	if oldTip.epoch > f {
		rolled = int(oldTip.epoch - f)
	}
	m.emit(Switched{From: oldTip.id, To: m.tip.id, ForkEpoch: f, Epoch: m.tip.epoch, RolledBack: rolled, Member: m.IsMember()})
	return m.finish()
}

// rejoinFork returns the epoch of the fork the rejoin leaves: what the
// engine said, or earlier when the history joined forks from ours before
// it (a removed member's LostFork is its tip): what this member did since
// the real fork is lost with its branch.
func (m *Machine[S]) rejoinFork(r RejoinResult[S]) uint64 {
	f := r.ForkEpoch
	if len(r.History) > 0 {
		if v := CompareHistories(m.History(), r.History); v.Kind == Fork && v.Epoch < f {
			f = v.Epoch
		}
	}
	return f
}

// carrierEpochs returns the epoch of each intent's carrier Commit, taken
// while the old tree is still here (a re-add checks it against the
// history joined: settleOnBranchJoined).
func (m *Machine[S]) carrierEpochs() map[*intentState]uint64 {
	carrierAt := map[*intentState]uint64{}
	for _, is := range m.intents {
		if is.carrier.IsZero() {
			continue
		}
		if c, ok := m.nodes[is.carrier]; ok && c.hasKey {
			carrierAt[is] = c.key.Epoch
		} else if is.landed && is.landedAt > 0 {
			carrierAt[is] = is.landedAt - 1
		}
	}
	return carrierAt
}

// finalizeCommon makes the canonical chain up to the fork final history:
// it is common with the branch joined.
func (m *Machine[S]) finalizeCommon(f uint64) {
	for c := m.tip; c != nil && c != m.root; c = c.parent {
		if c.epoch <= f {
			m.finalize(c)
			break
		}
	}
}

// lostChange is a membership change the lost branch made after the fork.
type lostChange struct {
	kind   ChangeKind
	target string
}

// lostBranch walks once what this member's branch did after the fork at f
// (the finalized membership changes, then the canonical Commits in the
// window) and returns the changes to re-propose (this member's own, and
// removals whose author is not in the branch joined: nobody else will) and
// the members it removed and had not re-added, each with the author of
// its removal.
func (m *Machine[S]) lostBranch(f uint64, joined map[string]bool) (changes []lostChange, removedBy map[string]string) {
	removedBy = map[string]string{}
	note := func(author string, add bool, target string) {
		if author == m.cfg.Self || (!add && author != "" && !joined[author]) {
			k := Remove
			if add {
				k = Add
			}
			changes = append(changes, lostChange{k, target})
		}
	}
	for _, e := range m.eventLog {
		if e.epoch <= f {
			continue
		}
		note(e.author, e.add, e.target)
		if e.add {
			delete(removedBy, e.target)
		} else {
			removedBy[e.target] = e.author
		}
	}
	var path []*node[S]
	for n := m.tip; n != nil && n != m.root; n = n.parent {
		path = append(path, n)
	}
	slices.Reverse(path)
	for _, n := range path {
		if n.key.Epoch < f {
			continue
		}
		for _, id := range n.info.Removed {
			if !slices.Contains(n.info.Added, id) {
				note(n.info.Sender, false, id)
				removedBy[id] = n.info.Sender
			}
		}
		for _, id := range n.info.Added {
			if !(n.info.External && n.info.Sender == id) {
				note(n.info.Sender, true, id)
			}
			delete(removedBy, id)
		}
	}
	return changes, removedBy
}

// dropTree releases every state of the old tree, drops the Welcomes held
// for its Commits and forgets its history from the fork on.
func (m *Machine[S]) dropTree(f uint64) {
	for _, n := range m.sortedNodes() {
		m.releaseNode(n)
	}
	for _, n := range m.welcomes {
		if n.welcome == welcomeHeld {
			m.emit(DropWelcome{Commit: n.id})
		}
	}
	m.welcomes, m.sent = nil, nil
	m.truncateAfter(f)
}

// resetToJoined makes the joined state the root and tip, with the key of
// the Commit that created it and the history of the branch joined.
func (m *Machine[S]) resetToJoined(r RejoinResult[S]) {
	var key *Key
	if r.Commit != nil {
		k := Key{Epoch: r.Epoch - 1, Class: r.Info.Class(), Ticket: Ticket(m.cfg.GroupID, r.Epoch-1, r.Info.Sender), Hash: HashOf(r.Commit)}
		key = &k
		m.seen[k.Hash] = k.Epoch
	} else if r.Key != nil {
		key = r.Key
	}
	adopt := r.History
	if adopt == nil && m.lost != nil {
		adopt = m.lost.claim.Entries
	}
	m.reset(r.State, r.Epoch, key, r.Roster)
	m.AdoptHistory(adopt)
}

// reopenSettled brings back the intents that a Commit of the lost branch
// settled: that Commit is gone with its branch (a concurrent change by
// another member, which had satisfied them, is not re-proposed by its
// author if it came back: README.md "No lost changes").
func (m *Machine[S]) reopenSettled(f uint64) {
	keptS := m.settled[:0]
	for _, is := range m.settled {
		if is.satisfied > f {
			dup := false
			for _, o := range m.intents {
				if o.ID == is.ID || (o.Kind == is.Kind && o.Target == is.Target) {
					dup = true
				}
			}
			if !dup {
				m.intents = append(m.intents, is)
			}
			continue
		}
		keptS = append(keptS, is)
	}
	m.settled = keptS
}

// settleOnBranchJoined handles a plain re-add of a removed member: an
// intent whose own Commit is on the branch joined was applied there, and
// whatever the branch did to its target since is a later decision made on
// top of it (the same rule as mootAfterCarrier, whose evidence went with
// the old tree): settled, not re-proposed. Re-proposing it undid the
// decisions of the members that re-added this one, and members removing
// and re-adding each other fought without end (restart-split seeds 138,
// 748).
func (m *Machine[S]) settleOnBranchJoined(carrierAt map[*intentState]uint64) {
	keptI := m.intents[:0]
	for _, is := range m.intents {
		if e, ok := carrierAt[is]; ok && m.historyHas(e, is.carrier) {
			if debugf != nil {
				debugf("%s: intent %v applied on the branch joined at %d", m.cfg.Self, is.Intent, e+1)
			}
			is.isSat, is.satisfied = true, e+1
			m.settled = append(m.settled, is)
			if len(m.settled) > maxSettled {
				m.settled = m.settled[len(m.settled)-maxSettled:]
			}
			continue
		}
		keptI = append(keptI, is)
	}
	m.intents = keptI
}

// requeueIntents makes every open intent wait for a new Commit, and adds
// the lost branch's changes that nobody else will re-propose.
func (m *Machine[S]) requeueIntents(afterLoss bool, epoch uint64, changes []lostChange) {
	for _, is := range m.intents {
		is.carrier, is.asked, is.isSat, is.landed = Hash{}, false, false, false
		if afterLoss && !is.restore {
			// Judged again on the branch joined, which may itself lose
			// a fork: settled only a whole window after the rejoin. (Not
			// after a plain re-add: a member removed and re-added again
			// and again would keep its intents forever, and two members
			// with opposite intents would fight without end.)
			is.base = max(is.base, epoch)
		}
	}
	for _, c := range changes {
		dup := false
		for _, is := range m.intents {
			if is.Kind == c.kind && is.Target == c.target {
				dup = true
			}
		}
		if !dup {
			m.intents = append(m.intents, &intentState{
				Intent: Intent{ID: "rejoin/" + c.kind.String() + "/" + c.target, Kind: c.kind, Target: c.target},
				base:   epoch,
			})
		}
	}
}

// AdoptHistory fills the compact history before the current root with the
// entries of the branch this member joined (the adder's or claimant's
// history, as signed by that member): entries this member already has
// before them are kept, the rest replaced. A joiner calls it right after
// New with the history its adder sent with the Welcome.
func (m *Machine[S]) AdoptHistory(entries []Entry) {
	if len(entries) == 0 {
		return
	}
	limit := m.root.epoch // entries of Commits before the root's own
	if m.root.hasKey {
		limit = m.root.key.Epoch
	}
	first := entries[0].Epoch
	var out []Entry
	for _, e := range m.history {
		if e.Epoch < first && e.Epoch < limit {
			out = append(out, e)
		}
	}
	for _, e := range entries {
		if e.Epoch < limit && (len(out) == 0 || e.Epoch > out[len(out)-1].Epoch) {
			out = append(out, e)
		}
	}
	if m.root.hasKey {
		out = append(out, m.root.key)
	}
	m.history = out
}

// RejoinRefused reports that the Rejoin decision could not be carried out
// because this member is not in the winning branch's group (the winning
// branch removed it, or added it only on the lost branch): the external
// commit would not be admitted. The member is out of the group until a
// member re-adds it (WelcomeAcceptable is true).
func (m *Machine[S]) RejoinRefused(now time.Time) []Decision {
	m.begin(nil, now)
	// A member that only lagged (same branch, too far behind to catch up
	// through the window) and is not in the claimant's state is not known
	// to be out: it may have been removed, or the claimant's tip may still
	// lose a fork. It keeps catching up (its own removal shows when it
	// comes) and takes a newer Welcome; it is not detached, which nothing
	// but a Welcome would undo.
	t := refused
	if m.lost != nil && m.lost.lag {
		t = refusedLagging
	}
	m.lost = nil
	m.standing = m.standing.next(t)
	return m.finish()
}

// truncateAfter forgets the compact history from epoch on (the lost
// branch's Commits) and the membership changes after it.
func (m *Machine[S]) truncateAfter(epoch uint64) {
	i := len(m.history)
	for i > 0 && m.history[i-1].Epoch >= epoch {
		i--
	}
	m.history = m.history[:i]
	log := m.eventLog[:0]
	m.events = map[string][]memberEvent{}
	for _, e := range m.eventLog {
		if e.epoch <= epoch {
			log = append(log, e)
			m.events[e.target] = append(m.events[e.target], e)
		}
	}
	m.eventLog = log
}
