package chat

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
)

// Committing own changes. A change (add, remove, update, settings) is
// queued, proposed and committed as an intent; the intent is kept until its
// Commit settles so that a Commit that loses the fork choice is re-made
// (repropose), and the Welcome of an own Commit is held until it settles.

// intentState is what the next Commit carries: queued changes, own intents
// until their Commit settles, proposals cached in the tip's epoch, and the
// Welcomes and ratchet trees of own Commits. Owned by the loop.
type intentState struct {
	queue      []change
	flushArmed bool
	byID       map[string]*intentRec
	welcomes   map[ordering.Hash][]heldWelcome
	reinit     *pendingReInit // own ReInit Commit until it settles (reinit.go)
	proposals  int            // proposals cached in the tip's epoch
	proposers  map[uint32]bool
	leavers    map[string]bool // identities that proposed their own removal
	commitTmr  *time.Timer
	trees      map[uint64][]byte // ratchet trees of own Commits' epochs, served to joiners
}

func newIntentState() intentState {
	return intentState{
		byID:      make(map[string]*intentRec),
		welcomes:  make(map[ordering.Hash][]heldWelcome),
		proposers: make(map[uint32]bool),
		leavers:   make(map[string]bool),
		trees:     make(map[uint64][]byte),
	}
}

// intentRec is an own membership change until it is applied.
type intentRec struct {
	ordering.Intent
	peer p2p.PeerID
	kp   *mls.KeyPackage
	done chan error
	at   time.Time
	// welcomed: a Welcome for kp was sent (the invitee may have used the
	// KeyPackage, so a re-add needs a fresh one).
	welcomed   bool
	refreshing bool
}

// intentTTL is how long an own change is kept for re-committing: well
// beyond the machine's retention window, after which a lost change can no
// longer be noticed.
const intentTTL = time.Hour

// prune forgets intents older than intentTTL, and those the fork choice
// no longer tracks (settled for good, or moot): nothing will ask for them
// again, and a record kept could only re-commit a decision the group has
// since undone.
func (s *intentState) prune(now time.Time, tracked func(id string) bool) {
	for id, in := range s.byID {
		if now.Sub(in.at) > intentTTL || (tracked != nil && !tracked(id) && in.done == nil && !in.refreshing) {
			delete(s.byID, id)
		}
	}
}

// heldWelcome is the Welcome of an own Commit, held until it settles.
type heldWelcome struct {
	to      p2p.PeerID
	ref     []byte
	welcome []byte
	intent  string
}

// scheduleCommit arranges for the proposals of others to be committed by
// one member: members in leaf order (the proposers and those leaving
// excluded) wait CommitDelay + rank×CommitStagger, and the first whose
// timer fires while proposals are still pending commits them. If two do,
// the fork choice keeps one.
func (g *group) scheduleCommit() {
	if g.intents.proposals == 0 || g.closed || g.meta.Leaving || g.m == nil {
		return
	}
	mine := g.st.LeafIndex()
	if g.intents.proposers[uint32(mine)] {
		return
	}
	rank := 0
	for _, m := range g.st.Members() {
		if m.Index == mine {
			break
		}
		if !g.intents.proposers[uint32(m.Index)] && !g.intents.leavers[string(m.Credential.Identity)] {
			rank++
		}
	}
	if g.intents.commitTmr != nil {
		g.intents.commitTmr.Stop()
	}
	epoch := g.st.Epoch()
	d := g.e.cfg.CommitDelay + time.Duration(rank)*g.e.cfg.CommitStagger
	g.intents.commitTmr = g.after(d, func() {
		if !g.closed && g.st.Epoch() == epoch && g.intents.proposals > 0 {
			g.flush()
		}
	})
}

// flush commits the queued changes together with the proposals of others
// cached in this epoch: one Commit, one Welcome. Each change is an intent
// of the fork choice: if the Commit loses, the machine asks for it again
// (Repropose) until it is applied.
func (g *group) flush() {
	e := g.e
	queue := g.intents.queue
	g.intents.queue = nil
	if g.closed || g.m == nil {
		for _, c := range queue {
			if c.done != nil {
				c.done <- errNotMember
			}
		}
		return
	}
	if g.meta.Leaving {
		for _, c := range queue {
			if c.done != nil {
				c.done <- errors.New("you are leaving this group")
			}
		}
		return
	}
	var ids []string
	for _, c := range queue {
		in := &intentRec{peer: c.peer, kp: c.kp, done: c.done, at: e.now()}
		in.ID = hex.EncodeToString(newID())
		switch c.kind {
		case changeAdd:
			in.Kind, in.Target = ordering.Add, ident(c.peer)
		case changeRemove:
			in.Kind, in.Target = ordering.Remove, ident(c.peer)
		case changeUpdate:
			in.Kind = ordering.Update
		case changeSettings:
			// Settings are not membership: committed directly, not
			// re-proposed by the machine.
			if err := g.commitSettings(c.settings); c.done != nil {
				c.done <- err
			}
			continue
		}
		g.intents.byID[in.ID] = in
		g.exec(g.m.Intend(in.Intent, e.now()))
		ids = append(ids, in.ID)
	}
	if len(ids) == 0 && g.intents.proposals == 0 {
		return
	}
	g.commitIntents(ids)
}

// commitIntents makes one Commit from Current() carrying the intents
// still needed (plus the cached proposals of others).
func (g *group) commitIntents(ids []string) {
	e := g.e
	present := map[string]mls.LeafIndex{}
	for _, m := range g.st.Members() {
		present[string(m.Credential.Identity)] = m.Index
	}
	var (
		props     []*mls.Proposal
		forcePath bool
		used      []string
		adds      []*intentRec
	)
	finish := func(in *intentRec, err error) {
		if in.done != nil {
			in.done <- err
			in.done = nil
		}
	}
	for _, id := range ids {
		in := g.intents.byID[id]
		if in == nil {
			continue
		}
		switch in.Kind {
		case ordering.Add:
			if in.kp == nil {
				continue // an adopted add still waiting for its KeyPackage
			}
			if _, ok := present[in.Target]; ok {
				finish(in, fmt.Errorf("%s is already a member", e.displayName(in.peer, "")))
				continue
			}
			present[in.Target] = 0
			props = append(props, &mls.Proposal{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *in.kp}})
			adds = append(adds, in)
		case ordering.Remove:
			leaf, ok := present[in.Target]
			if !ok {
				finish(in, fmt.Errorf("%s is not a member", e.displayName(in.peer, "")))
				continue
			}
			delete(present, in.Target)
			props = append(props, &mls.Proposal{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: uint32(leaf)}})
		case ordering.Update:
			forcePath = true
		}
		used = append(used, id)
	}
	if len(props) == 0 && !forcePath && g.intents.proposals == 0 {
		return
	}
	base := g.st
	work := base.Clone()
	external := e.cfg.ExternalTreeAbove < 0 || base.MemberCount()+len(adds) > e.cfg.ExternalTreeAbove
	pc, err := work.Commit(mls.CommitOptions{Proposals: props, ForcePath: forcePath, ExternalTree: external && len(adds) > 0})
	if err == nil {
		_, err = work.MergePendingCommit(pc)
	}
	if err == nil {
		err = directCommitRule(base, work) // cached proposals included
	}
	if err != nil {
		e.log.Warn("commit failed", "group", g.gid, "err", err)
		for _, id := range used {
			if in := g.intents.byID[id]; in != nil {
				finish(in, err)
			}
		}
		return
	}
	info := commitInfoOf(base, work, pc.Update)
	h := ordering.HashOf(pc.Message)
	g.commits[h] = &commitRec{info: info, parent: g.tipHash, epoch: work.Epoch(), settings: settingsOf(work.Extensions())}
	g.stateHash[work] = h
	if len(pc.RatchetTree) > 0 {
		g.intents.trees[work.Epoch()] = pc.RatchetTree
	}
	if pc.Welcome != nil {
		for _, in := range adds {
			ref, _ := in.kp.Ref()
			g.intents.welcomes[h] = append(g.intents.welcomes[h], heldWelcome{to: in.peer, ref: ref, welcome: pc.Welcome, intent: in.ID})
		}
	}
	epoch := base.Epoch()
	// The machine applies the Commit at once (Advanced: persisted by exec)
	// before it is published.
	g.exec(g.m.OwnCommit(g.proc, pc.Message, work, info, used, pc.Welcome != nil, e.now()))
	g.publish(pc.Message, epoch, nil)
	for _, id := range used {
		if in := g.intents.byID[id]; in != nil {
			finish(in, nil)
		}
	}
}

// commitSettings commits new group settings (GroupContextExtensions).
func (g *group) commitSettings(s groupSettings) error {
	exts, err := groupExtensions(g.st.Extensions(), s)
	if err != nil {
		return err
	}
	base := g.st
	work := base.Clone()
	pc, err := work.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeGroupContextExtensions, GroupContextExtensions: &mls.GroupContextExtensions{Extensions: exts}}}})
	if err == nil {
		_, err = work.MergePendingCommit(pc)
	}
	if err == nil {
		err = directCommitRule(base, work) // cached proposals included
	}
	if err != nil {
		return err
	}
	info := commitInfoOf(base, work, pc.Update)
	h := ordering.HashOf(pc.Message)
	g.commits[h] = &commitRec{info: info, parent: g.tipHash, epoch: work.Epoch(), settings: settingsOf(work.Extensions())}
	g.stateHash[work] = h
	epoch := base.Epoch()
	g.exec(g.m.OwnCommit(g.proc, pc.Message, work, info, nil, false, g.e.now()))
	g.publish(pc.Message, epoch, nil)
	return nil
}

// repropose commits own changes again after their Commit lost. An add
// whose Welcome already went out gets a fresh KeyPackage first: the
// invitee may have joined the losing branch with the old one. Intents the
// machine made itself (restore/, rejoin/) are adopted first (adoptIntent).
func (g *group) repropose(intents []ordering.Intent) {
	var ids []string
	for _, in := range intents {
		rec := g.intents.byID[in.ID]
		if rec == nil {
			if rec = g.adoptIntent(in); rec == nil {
				continue
			}
		}
		if rec.Kind == ordering.Add && (rec.welcomed || rec.kp == nil) {
			g.refreshKeyPackage(rec)
			continue
		}
		ids = append(ids, in.ID)
	}
	if len(ids) > 0 && !g.closed {
		g.e.log.Info("re-committing changes whose commit lost", "group", g.gid, "count", len(ids))
		g.after(0, func() {
			if !g.closed {
				g.commitIntents(ids)
			}
		})
	}
}

// adoptIntent makes a record for an intent the fork choice made itself:
// "restore/<epoch>/<identity>" (re-add a member that a removed member's
// replayed Commit removed, ordering README "Restoration") and
// "rejoin/<kind>/<identity>" (a change of the branch this member lost that
// nobody else will make again). The machine decides when such an intent is
// done and stops asking; the record lives under the intent's ID so that
// OwnCommit links its Commit, and prune drops it once the machine no
// longer tracks it.
//
//   - Add: the target is a peer id (ident); the add needs a fresh
//     KeyPackage of it, fetched as for any re-add (refreshKeyPackage: one
//     fetch per record in flight, bounded by a timeout, tried again on the
//     next Repropose), and its Welcome is sent when the Commit settles, as
//     for any add: the member re-added proves continuity with it
//     (welcome.go), its adder being a member of its chain at the fork.
//   - Remove: carried out like an own removal. The machine only asks for
//     the removals of a lost branch that nobody on the joined branch will
//     make again (a rejoin); dropping them would quietly undo a removal
//     the group made. commitIntents skips it if the target is already out.
//   - Update: no target, committed as an own update.
//
// Nothing here is taken from outside the machine: the targets come from
// Commits that MLS authenticated and the fork choice judged.
func (g *group) adoptIntent(in ordering.Intent) *intentRec {
	if g.closed || g.m == nil || !g.m.Intended(in.ID) {
		return nil
	}
	rec := &intentRec{Intent: in, at: g.e.now()}
	switch in.Kind {
	case ordering.Add, ordering.Remove:
		rec.peer = p2p.PeerID(in.Target)
		if rec.peer == "" || rec.peer == g.e.id.id {
			return nil
		}
		if err := rec.peer.Validate(); err != nil {
			g.e.log.Warn("fork choice intent with a bad target", "group", g.gid, "intent", in.ID, "err", err)
			return nil
		}
	case ordering.Update:
	default:
		return nil
	}
	g.e.log.Info("carrying out the fork choice's own change", "group", g.gid, "intent", in.ID, "kind", in.Kind.String())
	g.intents.byID[in.ID] = rec
	return rec
}

// refreshKeyPackage fetches a new KeyPackage for a re-add, then commits.
func (g *group) refreshKeyPackage(rec *intentRec) {
	if rec.refreshing {
		return
	}
	rec.refreshing = true
	to := rec.peer
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ctx, cancel := context.WithTimeout(g.ctx, 30*time.Second)
		kp, _, err := g.e.fetchKeyPackageFor(ctx, to, nil, g.groupSuite())
		cancel()
		g.post(func() {
			rec.refreshing = false
			if err != nil {
				g.e.log.Info("re-add: no fresh KeyPackage yet", "peer", to, "err", err)
				return
			}
			if g.intents.byID[rec.ID] != rec || g.m == nil || !g.m.Intended(rec.ID) {
				// Settled or dropped while fetching (another member
				// re-added the target, or the group removed it again):
				// adding now would undo the group's later decision.
				delete(g.intents.byID, rec.ID)
				return
			}
			rec.kp, rec.welcomed = kp, false
			if !g.closed {
				g.commitIntents([]string{rec.ID})
			}
		})
	}()
}

// proposeLeave sends a Remove proposal for ourselves (RFC 9420: a member
// cannot commit its own removal; another member commits it).
func (g *group) proposeLeave() {
	if g.closed || g.m == nil {
		return
	}
	msg, err := g.st.ProposeRemove(g.st.LeafIndex(), nil)
	if err != nil {
		g.e.log.Warn("leave proposal", "err", err)
		return
	}
	g.stage.dirty = true
	_ = g.persistTip()
	g.publish(msg, g.st.Epoch(), nil)
}

func (g *group) sendWelcome(h ordering.Hash) {
	hw := g.intents.welcomes[h]
	delete(g.intents.welcomes, h)
	if len(hw) == 0 {
		return
	}
	joined, _, ok := g.m.StateAt(h)
	if !ok {
		joined = g.st
	}
	hist := g.m.MakeClaim(nil).Entries
	held := g.heldStates()
	for _, w := range hw {
		if in := g.intents.byID[w.intent]; in != nil {
			in.welcomed = true
		}
		env, err := g.e.sealWelcome(w.welcome, hist, joined, held, w.to)
		if err != nil {
			g.e.log.Warn("sealing a welcome", "group", g.gid, "err", err)
			continue
		}
		g.e.queueWelcome(w.to, g, append([]byte("welcome:"), w.ref...), env, true)
	}
}

type changeKind int

type change struct {
	kind     changeKind
	kp       *mls.KeyPackage
	peer     p2p.PeerID
	settings groupSettings
	done     chan error
}

// enqueue adds a change to the next Commit and arms the batch timer.
// submitChanges queues changes on the group's loop, to be committed together
// at the next batched flush, and waits until each has settled (committed on
// the canonical branch, or failed) or ctx ends.
func (g *group) submitChanges(ctx context.Context, changes []change) error {
	dones := make([]chan error, len(changes))
	err := g.do(ctx, func() {
		for i := range changes {
			dones[i] = make(chan error, 1)
			changes[i].done = dones[i]
			g.enqueue(changes[i])
		}
	})
	if err != nil {
		return err
	}
	for _, d := range dones {
		select {
		case err := <-d:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (g *group) enqueue(c change) {
	g.intents.queue = append(g.intents.queue, c)
	g.armFlush()
}

func (g *group) armFlush() {
	if g.intents.flushArmed {
		return
	}
	g.intents.flushArmed = true
	g.after(g.e.cfg.BatchDelay, func() {
		g.intents.flushArmed = false
		g.flush()
	})
}

// countForRotation counts an own message and rotates the leaf key when the
// policy says so.
func (g *group) countForRotation() {
	g.meta.SentSince++
	if g.meta.SentSince >= g.e.cfg.RotateMessages {
		g.meta.SentSince = 0
		g.enqueue(change{kind: changeUpdate})
	}
}
