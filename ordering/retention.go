package ordering

import (
	"slices"
)

// Retention: the window, the cap on losing states, the compact history
// (README.md "Retention").

func (m *Machine[S]) release(st S) {
	if r, ok := m.p.(Releaser[S]); ok && m.p != nil {
		r.Release(st)
	}
}

func (m *Machine[S]) releaseNode(n *node[S]) {
	if !n.live {
		return
	}
	m.release(n.state)
	var zero S
	n.state, n.live = zero, false
	m.liveCount--
	m.emit(Released{Node: n.id, Epoch: n.epoch})
}

func (m *Machine[S]) expired(n *node[S]) bool {
	if n == m.tip {
		return false
	}
	if m.tip.epoch > n.epoch+uint64(m.cfg.WindowEpochs) {
		return true
	}
	return !n.left.IsZero() && m.now.Sub(n.left) > m.cfg.WindowTime
}

// prune releases states outside the window, finalizes the canonical chain
// above the oldest retained canonical state into the compact history, and
// drops what can no longer matter.
func (m *Machine[S]) prune() {
	// The deepest expired canonical state: everything above it goes.
	var cut *node[S]
	for x := m.tip.parent; x != nil; x = x.parent {
		if m.expired(x) {
			cut = x
			break
		}
		if x == m.root {
			break
		}
	}
	if cut != nil {
		m.finalize(cut.best)
	}
	// Losing branches: release expired states, drop dead subtrees. Only
	// the candidates are sorted (deterministic order of the decisions).
	var cands []*node[S]
	for _, n := range m.nodes {
		if !n.canon && (!n.live || m.expired(n)) {
			cands = append(cands, n)
		}
	}
	if len(cands) > 0 {
		sortNodes(cands)
		for _, n := range cands {
			if n.live {
				m.releaseNode(n)
			}
		}
		for _, n := range cands {
			if !n.gone && !m.hasLive(n) {
				m.dropSubtree(n)
			}
		}
	}
	// Hard cap on losing states: the oldest go first.
	if losing := m.liveCount - m.canonLive(); losing > m.cfg.MaxLosingStates {
		var sorted []*node[S]
		for _, n := range m.nodes {
			if n.live && !n.canon {
				sorted = append(sorted, n)
			}
		}
		sortNodes(sorted)
		// States that may still become canonical (a barred Commit that
		// wins by key, and the best path below it) go last: a trusted
		// claim can lift the bar (liftBar), and releasing them first
		// would lose the late messages of a race the bar only delayed.
		slices.SortStableFunc(sorted, func(a, b *node[S]) int {
			pa, pb := m.mayWin(a), m.mayWin(b)
			switch {
			case pa == pb:
				return 0
			case pb:
				return -1
			}
			return 1
		})
		for _, n := range sorted {
			if losing <= m.cfg.MaxLosingStates {
				break
			}
			m.releaseNode(n)
			losing--
		}
	}
	// Buffered messages and seen hashes older than the window.
	for i := 0; i < len(m.pending); {
		if pm := m.pending[i]; pm.epoch < m.root.epoch {
			if pm.ct == Commit && !m.historyHas(pm.epoch, pm.hash) {
				m.evidence = true
			}
			m.noteStale(pm.hash, pm.ct)
			m.dropPending(i)
			m.emit(Discarded{Hash: pm.hash, Epoch: pm.epoch, Reason: Stale})
			continue
		}
		i++
	}
	if m.root.epoch != m.sweptAt {
		m.sweptAt = m.root.epoch
		for h, e := range m.seen {
			if e < m.root.epoch {
				delete(m.seen, h)
			}
		}
		for h, e := range m.gone {
			if e < m.root.epoch {
				delete(m.gone, h)
			}
		}
	}
}

// mayWin reports that n is a barred Commit that would win its epoch by
// key, or on the best path below one: the branch a lifted bar switches to.
func (m *Machine[S]) mayWin(n *node[S]) bool {
	for x := n; x.parent != nil && !x.canon; x = x.parent {
		if x.barred {
			p := x.parent
			return p.best == nil || x.key.Less(p.best.key)
		}
		if x.parent.best != x {
			return false
		}
	}
	return false
}

func (m *Machine[S]) canonLive() int {
	k := 0
	for x := m.tip; x != nil; x = x.parent {
		if x.live {
			k++
		}
		if x == m.root {
			break
		}
	}
	return k
}

// sortedNodes returns the tree's nodes by epoch then key (deterministic).
func (m *Machine[S]) sortedNodes() []*node[S] {
	out := make([]*node[S], 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n)
	}
	sortNodes(out)
	return out
}

// sortNodes sorts nodes by epoch then key.
func sortNodes[S any](out []*node[S]) {
	slices.SortFunc(out, func(a, b *node[S]) int {
		if a.epoch != b.epoch {
			if a.epoch < b.epoch {
				return -1
			}
			return 1
		}
		return a.key.Compare(b.key)
	})
}

func (m *Machine[S]) hasLive(n *node[S]) bool {
	if n.live {
		return true
	}
	for _, k := range n.kids {
		if m.hasLive(k) {
			return true
		}
	}
	return false
}

func (m *Machine[S]) dropSubtree(n *node[S]) {
	if n.gone {
		return
	}
	for _, k := range slices.Clone(n.kids) {
		m.dropSubtree(k)
	}
	m.releaseNode(n)
	n.gone = true
	delete(m.nodes, n.id)
	m.gone[n.id] = n.epoch - 1
	l := m.byEpoch[n.epoch]
	if i := slices.Index(l, n); i >= 0 {
		l = slices.Delete(l, i, i+1)
	}
	if len(l) == 0 {
		delete(m.byEpoch, n.epoch)
	} else {
		m.byEpoch[n.epoch] = l
	}
	if p := n.parent; p != nil && !p.gone {
		if i := slices.Index(p.kids, n); i >= 0 {
			p.kids = slices.Delete(p.kids, i, i+1)
		}
	}
}

// finalize makes newRoot (canonical) the root: the canonical Commits above
// it join the compact history, the states above it and every losing branch
// that forked above it are dropped.
func (m *Machine[S]) finalize(newRoot *node[S]) {
	var path []*node[S]
	for x := newRoot; x != m.root; x = x.parent {
		path = append(path, x)
	}
	slices.Reverse(path)
	prev := m.root
	for _, x := range path {
		for _, k := range slices.Clone(prev.kids) {
			if k != x {
				m.dropSubtree(k)
			}
		}
		m.releaseNode(prev)
		prev.gone = true
		delete(m.nodes, prev.id)
		l := m.byEpoch[prev.epoch]
		if i := slices.Index(l, prev); i >= 0 {
			l = slices.Delete(l, i, i+1)
		}
		if len(l) == 0 {
			delete(m.byEpoch, prev.epoch)
		} else {
			m.byEpoch[prev.epoch] = l
		}
		// x's Commit becomes history; its membership changes final.
		m.appendHistory(x.key)
		for _, id := range x.info.Removed {
			if !slices.Contains(x.info.Added, id) {
				delete(m.rootRoster, id)
				m.recordEvent(memberEvent{epoch: x.epoch, target: id, author: x.info.Sender})
			}
		}
		for _, id := range x.info.Added {
			if !m.rootRoster[id] {
				m.rootRoster[id] = true
				m.recordEvent(memberEvent{epoch: x.epoch, target: id, add: true, author: x.info.Sender})
			}
		}
		prev = x
	}
	newRoot.parent = nil
	m.root = newRoot
}

func (m *Machine[S]) appendHistory(k Key) {
	if n := len(m.history); n > 0 && m.history[n-1].Epoch >= k.Epoch {
		// Replace a tail that a rejoin made obsolete.
		i, _ := slices.BinarySearchFunc(m.history, k.Epoch, func(e Entry, t uint64) int {
			switch {
			case e.Epoch < t:
				return -1
			case e.Epoch > t:
				return 1
			}
			return 0
		})
		m.history = m.history[:i]
	}
	m.history = append(m.history, k)
}

func (m *Machine[S]) historyHas(epoch uint64, h Hash) bool {
	if e, ok := m.entryAt(epoch); ok {
		return e.Hash == h
	}
	return false
}

// entryAt returns the canonical Commit's key at epoch (history or window).
func (m *Machine[S]) entryAt(epoch uint64) (Entry, bool) {
	if epoch+1 > m.root.epoch {
		for n := m.tip; n != nil && n != m.root; n = n.parent {
			if n.epoch == epoch+1 {
				return n.key, n.hasKey
			}
		}
		if m.root.epoch == epoch+1 && m.root.hasKey {
			return m.root.key, true
		}
		return Entry{}, false
	}
	i, ok := slices.BinarySearchFunc(m.history, epoch, func(e Entry, t uint64) int {
		switch {
		case e.Epoch < t:
			return -1
		case e.Epoch > t:
			return 1
		}
		return 0
	})
	if !ok {
		return Entry{}, false
	}
	return m.history[i], true
}

func (m *Machine[S]) recordEvent(e memberEvent) {
	m.events[e.target] = append(m.events[e.target], e)
	m.eventLog = append(m.eventLog, e)
}
