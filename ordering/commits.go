package ordering

import (
	"errors"
	"slices"
	"time"
)

// Commits and messages: processing them on the retained states, the
// buffer, the tree of states and its canonical chain (README.md
// "Machinery", "Removed members").

func (m *Machine[S]) receiveCommit(h Hash, msg []byte, epoch uint64) {
	if _, ok := m.nodes[h]; ok || m.pendingIdx[h] != nil {
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Duplicate})
		return
	}
	if e, ok := m.gone[h]; ok && e == epoch {
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Duplicate})
		return
	}
	if epoch < m.root.epoch {
		if m.historyHas(epoch, h) {
			m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Duplicate})
			return
		}
		// A Commit we can no longer judge: a replay of a Commit that lost,
		// or a branch older than the window. Evidence for a claim.
		m.evidence = true
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Stale})
		return
	}
	if epoch > m.tip.epoch+m.cfg.MaxAhead {
		m.lagging = true
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Overflow})
		return
	}
	pm := &pendingMsg{hash: h, msg: msg, epoch: epoch, ct: Commit, at: m.now}
	if !m.tryCommit(pm, m.byEpoch[epoch]) {
		m.buffer(pm)
	}
}

// tryCommit processes a Commit against candidate states (canonical first)
// and reports whether one accepted it.
func (m *Machine[S]) tryCommit(pm *pendingMsg, cands []*node[S]) bool {
	for _, n := range m.ordered(cands) {
		if !n.live || slices.Contains(pm.tried, n.id) {
			continue
		}
		next, info, err := m.p.ProcessCommit(n.state, pm.msg)
		if err != nil {
			if errors.Is(err, ErrLater) {
				pm.later = true
			} else {
				pm.tried = append(pm.tried, n.id)
			}
			continue
		}
		m.addNode(n, pm.hash, next, info)
		return true
	}
	return false
}

// ordered returns the candidates canonical first, then by key.
func (m *Machine[S]) ordered(cands []*node[S]) []*node[S] {
	if len(cands) <= 1 {
		return cands
	}
	out := slices.Clone(cands)
	slices.SortStableFunc(out, func(a, b *node[S]) int {
		if a.canon != b.canon {
			if a.canon {
				return -1
			}
			return 1
		}
		return a.key.Compare(b.key)
	})
	return out
}

func (m *Machine[S]) receiveMessage(h Hash, msg []byte, epoch uint64, ct ContentType) {
	if _, ok := m.seen[h]; ok || m.pendingIdx[h] != nil {
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Duplicate})
		return
	}
	if epoch < m.root.epoch {
		m.noteStale(h, ct)
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Stale})
		return
	}
	if epoch > m.tip.epoch+m.cfg.MaxAhead {
		m.lagging = true
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Overflow})
		return
	}
	pm := &pendingMsg{hash: h, msg: msg, epoch: epoch, ct: ct, at: m.now}
	if !m.tryOpen(pm, m.byEpoch[epoch]) {
		m.buffer(pm)
	}
}

func (m *Machine[S]) tryOpen(pm *pendingMsg, cands []*node[S]) bool {
	for _, n := range m.ordered(cands) {
		if !n.live || slices.Contains(pm.tried, n.id) {
			continue
		}
		o, err := m.p.Open(n.state, pm.msg, pm.ct)
		if err != nil {
			pm.tried = append(pm.tried, n.id)
			continue
		}
		m.seen[pm.hash] = pm.epoch
		if pm.ct == Proposal {
			// A Commit waiting for this proposal may go through now.
			m.work = append(m.work, n)
			return true
		}
		if o.ID != "" {
			if _, dup := m.ids[o.ID]; dup {
				m.emit(Discarded{Hash: pm.hash, Epoch: pm.epoch, Reason: Duplicate})
				return true
			}
			m.markID(o.ID)
		}
		if !n.canon {
			// A member speaks on a branch that is not ours: evidence that
			// one of us has to move. Usually it knows (it has our better
			// Commit), but not when it barred it, nor when we took a
			// replay it barred: only a claim tells either side.
			m.evidence = true
		}
		m.emit(Deliver{ID: o.ID, Sender: o.Sender, Epoch: n.epoch, Node: n.id, Payload: o.Payload, Canonical: n.canon})
		return true
	}
	return false
}

// noteStale records an application message that arrived (or waited) until
// its epoch had left the window: it cannot be read any more, and the next
// claim asks its sender to send it again (Claim.Stale). A replayed or
// losing-branch message is asked for too; its sender's re-send is a
// duplicate that receivers drop by id.
func (m *Machine[S]) noteStale(h Hash, ct ContentType) {
	if ct != Application || slices.Contains(m.stale, h) {
		return
	}
	if len(m.stale) >= MaxClaimStale {
		m.stale = m.stale[1:]
	}
	m.stale = append(m.stale, h)
	m.evidence = true
	if debugf != nil {
		debugf("%s: stale %s", m.cfg.Self, h)
	}
}

func (m *Machine[S]) markID(id MessageID) {
	if id == "" {
		return
	}
	if _, ok := m.ids[id]; ok {
		return
	}
	m.ids[id] = struct{}{}
	m.idOrder = append(m.idOrder, id)
	for len(m.idOrder) > m.cfg.MaxSeenIDs {
		delete(m.ids, m.idOrder[0])
		m.idOrder = m.idOrder[1:]
	}
}

// buffer keeps a message that no retained state accepts yet, evicting the
// furthest-ahead message when full.
func (m *Machine[S]) buffer(pm *pendingMsg) {
	size := len(pm.msg)
	for len(m.pending) >= m.cfg.MaxBuffered || m.pendingBytes+size > m.cfg.MaxBufferedBytes {
		worst := -1
		for i, q := range m.pending {
			if worst < 0 || q.epoch > m.pending[worst].epoch {
				worst = i
			}
		}
		if worst < 0 || m.pending[worst].epoch <= pm.epoch {
			m.lagging = true
			m.emit(Discarded{Hash: pm.hash, Epoch: pm.epoch, Reason: Overflow})
			return
		}
		q := m.pending[worst]
		m.dropPending(worst)
		m.lagging = true
		m.emit(Discarded{Hash: q.hash, Epoch: q.epoch, Reason: Overflow})
	}
	m.pending = append(m.pending, pm)
	m.pendingIdx[pm.hash] = pm
	m.pendingBytes += size
}

func (m *Machine[S]) dropPending(i int) {
	q := m.pending[i]
	delete(m.pendingIdx, q.hash)
	m.pendingBytes -= len(q.msg)
	m.pending = slices.Delete(m.pending, i, i+1)
}

// drain re-processes buffered messages against every new state (and
// against states that received a proposal), until nothing moves.
func (m *Machine[S]) drain() {
	for len(m.work) > 0 {
		n := m.work[0]
		m.work = m.work[1:]
		if !n.live {
			continue
		}
		for i := 0; i < len(m.pending); {
			pm := m.pending[i]
			if pm.epoch != n.epoch {
				i++
				continue
			}
			var ok bool
			if pm.ct == Commit {
				ok = m.tryCommit(pm, []*node[S]{n})
			} else {
				ok = m.tryOpen(pm, []*node[S]{n})
			}
			if ok {
				// The slice may have changed (tryCommit adds nodes, not
				// messages): find pm again.
				if j := slices.Index(m.pending, pm); j >= 0 {
					m.dropPending(j)
				}
				i = 0
				continue
			}
			i++
		}
	}
}

// addNode inserts the state a Commit created on parent and updates the
// canonical chain. It returns nil when the Commit is refused.
func (m *Machine[S]) addNode(parent *node[S], h Hash, next S, info CommitInfo) *node[S] {
	if info.External {
		if a := m.admit(parent, info.Sender); a != Admitted {
			m.release(next)
			m.gone[h] = parent.epoch
			m.emit(Discarded{Hash: h, Epoch: parent.epoch, Reason: NotAdmitted})
			return nil
		}
	}
	if old, ok := m.nodes[h]; ok {
		// The same Commit valid on two retained states is impossible (the
		// transcript binds it to one); keep the first.
		m.release(next)
		return old
	}
	if debugf != nil {
		debugf("%s: node %s on %s (epoch %d): %+v", m.cfg.Self, h, parent.id, parent.epoch+1, info)
	}
	n := &node[S]{
		id: h, parent: parent, epoch: parent.epoch + 1,
		key:    Key{Epoch: parent.epoch, Class: info.Class(), Ticket: Ticket(m.cfg.GroupID, parent.epoch, info.Sender), Hash: h},
		hasKey: true, info: info, state: next, live: true,
	}
	parent.kids = append(parent.kids, n)
	m.nodes[h] = n
	m.byEpoch[n.epoch] = append(m.byEpoch[n.epoch], n)
	m.liveCount++
	m.work = append(m.work, n)
	if parent.best == nil || n.key.Less(parent.best.key) {
		if bar, senderOut := m.barred(parent, info.Sender); bar {
			// A Commit by a member the canonical chain removed after
			// parent never displaces that chain (README.md "Removed
			// members"); the bar is kept, it never wins later either.
			n.barred, n.senderOut = true, senderOut
			if debugf != nil {
				debugf("%s: %s by %s barred at %d: removed since", m.cfg.Self, h, info.Sender, parent.epoch)
			}
		} else {
			parent.best = n
			if parent.canon {
				m.recanon(parent)
				return n
			}
		}
	}
	n.left = m.now
	return n
}

// barred reports that a Commit of sender on parent must not displace
// parent's canonical child: parent is on the canonical chain below its tip
// and a canonical Commit after parent (its canonical child included)
// removed sender. That Commit is a removed member's, made from a state it
// kept from before its removal (or a counter that arrived after the
// removal it raced): README.md "Removed members".
//
// A member that is out at its tip also bars every Commit on parent when
// its chain removed it after parent (its canonical child included): it
// stopped at its removal and never saw what the group did since (another
// member's removal among it), so it cannot judge such a Commit, and
// taking it would make it a member again on a branch that may be only a
// removed member's replay, which its claims would then vouch for. It
// goes there only when a trusted claim (a member at the fork that its
// chain has not removed since) shows that the group did (liftBar): an
// honest race its removal lost reaches it that way.
//
// senderOut reports the first reason: the chain removed sender.
func (m *Machine[S]) barred(parent *node[S], sender string) (bar, senderOut bool) {
	if !parent.canon || parent == m.tip || sender == "" {
		return false, false
	}
	out := !m.tipRoster[m.cfg.Self]
	for x := m.tip; x != nil && x != parent; x = x.parent {
		if removes(x, sender) {
			return true, true
		}
		if out && removes(x, m.cfg.Self) {
			bar = true
		}
	}
	return bar, false
}

// removes reports that n's Commit removed id (a resync removes and
// re-adds its own sender: nobody is removed).
func removes[S any](n *node[S], id string) bool {
	return slices.Contains(n.info.Removed, id) && !slices.Contains(n.info.Added, id)
}

// descend follows the best children to the deepest state.
func descend[S any](n *node[S]) *node[S] {
	for n.best != nil {
		n = n.best
	}
	return n
}

// recanon moves the canonical chain below from (a canonical node whose
// best child changed).
func (m *Machine[S]) recanon(from *node[S]) {
	newTip := descend(from)
	oldTip := m.tip
	if newTip == oldTip {
		return
	}
	rolled := 0
	for x := oldTip; x != from; x = x.parent {
		x.canon = false
		m.undoRoster(x)
		if x.left.IsZero() {
			x.left = m.now
		}
		rolled++
	}
	var path []*node[S]
	for x := newTip; x != from; x = x.parent {
		path = append(path, x)
	}
	slices.Reverse(path)
	for _, x := range path {
		x.canon = true
		x.canonSince = m.now
		m.applyRoster(x)
		x.left = m.now
		m.reinstatedCommit(x)
	}
	if from.left.IsZero() {
		from.left = m.now
	}
	newTip.left = time.Time{}
	m.tip = newTip
	m.lastProgress = m.now
	member := m.tipRoster[m.cfg.Self]
	if rolled == 0 {
		m.emit(Advanced{From: oldTip.id, To: newTip.id, Epoch: newTip.epoch, Member: member})
	} else {
		m.emit(Switched{From: oldTip.id, To: newTip.id, ForkEpoch: from.epoch, Epoch: newTip.epoch,
			RolledBack: rolled, Member: member})
	}
}

func (m *Machine[S]) applyRoster(n *node[S]) {
	for _, id := range n.info.Removed {
		delete(m.tipRoster, id)
	}
	for _, id := range n.info.Added {
		m.tipRoster[id] = true
	}
}

func (m *Machine[S]) undoRoster(n *node[S]) {
	for _, id := range n.info.Added {
		delete(m.tipRoster, id)
	}
	for _, id := range n.info.Removed {
		m.tipRoster[id] = true
	}
}
