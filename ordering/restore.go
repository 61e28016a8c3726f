package ordering

import (
	"errors"
	"fmt"
	"time"
)

// ErrRestore is returned by Restore for a state that does not continue the
// canonical tip.
var ErrRestore = errors.New("ordering: state does not continue the tip")

// Restore rebuilds the window of a member that restarts. The engine calls
// New with the oldest canonical state it retained (and the key of the
// Commit that created it), then Restore once per later canonical state, in
// order: next is the state of epoch Epoch()+1, created by the Commit with
// key key (key.Epoch == Epoch()) and info info, as the live path got them
// from ProcessCommit or OwnCommit.
//
// The state becomes the canonical child and the new tip, as if the Commit
// had been processed, but nothing is processed and no decision is emitted:
// the engine acted on them before it stopped. The roster, the membership
// events, the compact history and retention end up as after processing the
// chain live (states past the window are finalized into the history at
// once, released without a Released decision: the engine should restore
// only its window). A replay of a restored Commit is a Duplicate, and a
// better sibling of one is judged (and rolls back) as on a member that
// never stopped. AdoptHistory may be called before or after.
//
// now is taken as the time the parent stopped being the tip (the restart
// time: the window's time bound then counts from the restart, the states
// having been kept by the store meanwhile). The machine's clock never goes
// back.
func (m *Machine[S]) Restore(next S, key Key, info CommitInfo, now time.Time) error {
	parent := m.tip
	switch {
	case key.Epoch != parent.epoch:
		return fmt.Errorf("%w: Commit of epoch %d on a tip of epoch %d", ErrRestore, key.Epoch, parent.epoch)
	case key.Class != info.Class() || key.Ticket != Ticket(m.cfg.GroupID, key.Epoch, info.Sender):
		return fmt.Errorf("%w: key does not match the Commit's info", ErrRestore)
	}
	if _, ok := m.nodes[key.Hash]; ok {
		return fmt.Errorf("%w: Commit %s already in the tree", ErrRestore, key.Hash)
	}
	if now.After(m.now) {
		m.now = now
	}
	n := &node[S]{
		id: key.Hash, parent: parent, epoch: parent.epoch + 1, key: key, hasKey: true, info: info,
		state: next, live: true, canon: true, canonSince: m.now,
	}
	parent.kids = append(parent.kids, n)
	parent.best = n
	m.nodes[n.id] = n
	m.byEpoch[n.epoch] = append(m.byEpoch[n.epoch], n)
	m.liveCount++
	// As recanon does for an Advanced tip.
	m.applyRoster(n)
	parent.left = m.now
	m.tip = n
	m.lastProgress = m.now
	// Retention as after the live step; its decisions are not the
	// engine's business (nothing happened).
	m.p, m.out = nil, nil
	m.prune()
	m.out = nil
	return nil
}
