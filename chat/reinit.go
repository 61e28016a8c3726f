package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Moving a group to another cipher suite: /reinit --pq (RFC 9420 §11.2).
//
// A group cannot change its suite in place. ReInit closes it and names its
// successor (a new group id, the new suite, the same GroupContext
// extensions, so the same name and settings); one member then creates the
// successor with every member of the old group, tied to the old group by a
// resumption PSK of usage reinit, and sends it a Welcome.
//
// In canopy the member who types /reinit does all of it:
//
//  1. It checks that every member's leaf lists the new suite and fetches a
//     KeyPackage of that suite for every other member, checking that each
//     is signed with the key that member has in the group (a relay cannot
//     slip in a key of its own). Nothing is committed if one is missing:
//     a ReInit closes the old group, and every old member must be in the
//     new one (§11.2), so a missing KeyPackage would strand the group.
//  2. It commits the ReInit alone (through the fork choice, like any own
//     Commit). Once that Commit is canonical and settled (the moment an
//     Add's Welcome would go out), it creates the successor (mls
//     ReInitGroup) and delivers its Welcome like an invitation's. If the
//     Commit loses its epoch to another, nothing happened: the user is
//     told and may try again.
//
// The other members close the old group when they apply the ReInit
// Commit. The successor's Welcome joins them at once, without /accept,
// only when it proves to continue a group they are in: mls checked its
// reinit PSK against the closed group (StagedWelcome.Resumption), its
// members are exactly the old group's, each with the signature key it had
// there. Anything else is an ordinary invitation.

// pendingReInit is the own ReInit Commit of a group awaiting settlement.
type pendingReInit struct {
	commit ordering.Hash
	kps    []*mls.KeyPackage
	to     []p2p.PeerID
	done   chan reinitResult
}

type reinitResult struct {
	gid GroupID
	err error
}

// reinitGroup runs /reinit --pq on g and waits until the new group exists.
func (e *Engine) reinitGroup(ctx context.Context, g *group, args []string) (Result, error) {
	rest, pq := parsePQFlag(args)
	if !pq || len(rest) > 0 {
		return Result{}, errors.New("usage: /reinit --pq")
	}
	cs := pqSuite
	v := g.view.snapshot()
	if v.Left {
		return Result{}, errors.New("you are not a member of this group")
	}
	if mls.CipherSuite(v.CipherSuite) == cs {
		return Result{}, fmt.Errorf("%s is already on %s", v.Name, suiteName(cs))
	}
	// 1. Who must come along, and with which key.
	var members []mls.Member
	var derr error
	if err := g.do(ctx, func() {
		if g.closed || g.st == nil {
			derr = errNotMember
			return
		}
		members = g.st.Members()
	}); err != nil {
		return Result{}, err
	}
	if derr != nil {
		return Result{}, derr
	}
	pr, err := e.successorKeyPackages(ctx, v.Name, members, cs)
	if err != nil {
		return Result{}, err
	}
	// 2. Commit the ReInit.
	if err := g.do(ctx, func() { derr = g.commitReInit(cs, pr) }); err != nil {
		return Result{}, err
	}
	if derr != nil {
		return Result{}, derr
	}
	select {
	case r := <-pr.done:
		if r.err != nil {
			return Result{}, r.err
		}
		return Result{Text: fmt.Sprintf("moved %s to %s", v.Name, suiteName(cs)), Group: r.gid}, nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-g.done:
		return Result{}, errGroupClosed
	}
}

// successorKeyPackages checks that every member's leaf lists cs and
// fetches a KeyPackage of cs for every other member, signed with the key
// that member has in the group.
func (e *Engine) successorKeyPackages(ctx context.Context, name string, members []mls.Member, cs mls.CipherSuite) (*pendingReInit, error) {
	type target struct {
		peer p2p.PeerID
		name string
		fp   []byte
		kp   *mls.KeyPackage
		err  error
	}
	var targets []*target
	var lacking []error
	for _, m := range members {
		p, err := peerOfCredential(&m.Credential)
		if err != nil {
			return nil, fmt.Errorf("member %d has no peer id: %w", m.Index, err)
		}
		who := e.displayName(p, leafNick(m.LeafNode))
		if !m.LeafNode.Capabilities.SupportsCipherSuite(cs) {
			lacking = append(lacking, &SuiteUnsupportedError{Name: who, Suite: cs})
			continue
		}
		if p != e.id.id {
			targets = append(targets, &target{peer: p, name: who, fp: Fingerprint(uint16(suite), m.SignatureKey)})
		}
	}
	if len(lacking) > 0 {
		return nil, fmt.Errorf("cannot move %s: %w", name, errors.Join(lacking...))
	}
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var fp []byte
			t.kp, fp, t.err = e.fetchKeyPackageFor(ctx, t.peer, nil, cs)
			if t.err == nil && !bytes.Equal(fp, t.fp) {
				t.err = fmt.Errorf("the KeyPackage offered for %s is not signed with their key in this group", t.name)
			}
		}()
	}
	wg.Wait()
	pr := &pendingReInit{done: make(chan reinitResult, 1)}
	var errs []error
	for _, t := range targets {
		if t.err != nil {
			errs = append(errs, t.err)
			continue
		}
		pr.kps = append(pr.kps, t.kp)
		pr.to = append(pr.to, t.peer)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cannot move %s yet (every member needs a KeyPackage of %s): %w", name, suiteName(cs), err)
	}
	return pr, nil
}

// commitReInit commits a ReInit to cs on the loop's tip and holds pr until
// the Commit settles (reinitSettled) or loses (reinitDropped).
func (g *group) commitReInit(cs mls.CipherSuite, pr *pendingReInit) error {
	if g.closed || g.m == nil {
		return errNotMember
	}
	if g.intents.reinit != nil {
		return errors.New("a move of this group is already under way")
	}
	// The successor must have every member of the closed group (§11.2):
	// the KeyPackages were fetched for the members of a moment ago.
	want := map[p2p.PeerID]bool{}
	for _, p := range pr.to {
		want[p] = true
	}
	for _, m := range g.st.Members() {
		p, err := peerOfCredential(&m.Credential)
		if err != nil || p == g.e.id.id {
			continue
		}
		if !want[p] {
			return errors.New("the group's members changed meanwhile: try /reinit again")
		}
		delete(want, p)
	}
	if len(want) > 0 {
		return errors.New("the group's members changed meanwhile: try /reinit again")
	}
	newID := make([]byte, 16)
	if _, err := rand.Read(newID); err != nil {
		return err
	}
	base := g.st
	work := base.Clone()
	r := &mls.ReInit{GroupID: newID, Version: mls.ProtocolMLS10, CipherSuite: cs, Extensions: base.Extensions()}
	pc, err := work.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeReInit, ReInit: r}}})
	if err == nil {
		_, err = work.MergePendingCommit(pc)
	}
	if err != nil {
		return fmt.Errorf("committing the ReInit: %w", err)
	}
	info := commitInfoOf(base, work, pc.Update)
	h := ordering.HashOf(pc.Message)
	g.commits[h] = &commitRec{info: info, parent: g.tipHash, epoch: work.Epoch(), settings: settingsOf(work.Extensions())}
	g.stateHash[work] = h
	pr.commit = h
	g.intents.reinit = pr
	// Persisted with the ReInit's state: a restart before the successor
	// exists makes it then (resumeReInits).
	g.meta.ReInitPending = true
	epoch := base.Epoch()
	// Held like a Welcome: the successor is made once the Commit settled.
	g.exec(g.m.OwnCommit(g.proc, pc.Message, work, info, nil, true, g.e.now()))
	g.publish(pc.Message, epoch, nil)
	return nil
}

// reinitDropped: the own ReInit Commit lost its epoch; the group goes on.
func (g *group) reinitDropped(h ordering.Hash) {
	pr := g.intents.reinit
	if pr == nil || pr.commit != h {
		return
	}
	g.intents.reinit = nil
	pr.done <- reinitResult{err: errors.New("another change of the group won the epoch: nothing was moved; try /reinit again")}
}

// reinitSettled: the own ReInit Commit is canonical and settled: create
// the successor group and send its Welcome to the other members.
func (g *group) reinitSettled(h ordering.Hash) {
	pr := g.intents.reinit
	if pr == nil || pr.commit != h {
		return
	}
	g.intents.reinit = nil
	gid, err := g.createSuccessor(h, pr)
	if err != nil {
		g.e.log.Warn("creating the ReInit successor", "group", g.gid, "err", err)
		g.e.notice(g.gid, NoticeError, "%s was closed for a move but its successor could not be made: %v", g.settings.Name, err)
	}
	pr.done <- reinitResult{gid: gid, err: err}
}

func (g *group) createSuccessor(h ordering.Hash, pr *pendingReInit) (GroupID, error) {
	old, _, ok := g.m.StateAt(h)
	if !ok {
		return "", errors.New("the closed state is gone")
	}
	gid, cs, err := g.e.makeSuccessor(old.Clone(), pr)
	if err != nil {
		return "", err
	}
	g.meta.ReInitPending = false
	g.stage.rows = append(g.stage.rows, g.systemLine("%s moved to %s: this group is closed", g.settings.Name, suiteName(cs)))
	_ = g.persistTip()
	return gid, nil
}

// makeSuccessor creates, stores and starts the successor of old (a state
// closed by a ReInit this member committed) with the members of pr, and
// queues its Welcome to them.
func (e *Engine) makeSuccessor(old *mls.Group, pr *pendingReInit) (GroupID, mls.CipherSuite, error) {
	r, ok := old.PendingReInit()
	if !ok {
		return "", 0, errors.New("the state has no ReInit")
	}
	external := e.cfg.ExternalTreeAbove < 0 || len(pr.kps)+1 > e.cfg.ExternalTreeAbove
	opts := append([]mls.Option{mls.WithCapabilities(e.capabilities())}, e.mlsOptions()...)
	st, pc, err := old.ReInitGroup(pr.kps, nil, mls.CommitOptions{ExternalTree: external}, opts...)
	if err != nil {
		return "", 0, err
	}
	settings := settingsOf(st.Extensions())
	meta, _ := json.Marshal(groupMeta{LastPath: e.now().Unix()})
	row := store.Group{ID: r.GroupID, Name: settings.Name, Retention: settings.Retention, Meta: meta, CreatedAt: e.now(), UpdatedAt: e.now()}
	state, err := st.MarshalState()
	if err != nil {
		return "", 0, err
	}
	nw := e.newGroup(row, st, nil)
	line := nw.systemLine("%s continues here on %s (moved by you; the old group is closed)", settings.Name, suiteName(r.CipherSuite))
	if _, err := e.db.CommitEpoch(e.ctx, store.EpochTransition{GroupID: r.GroupID, Epoch: st.Epoch(), State: state, Group: &row, Messages: []store.Message{line}}); err != nil {
		return "", 0, err
	}
	nw.start()
	welcome, tree := pc.Welcome, pc.RatchetTree
	nw.post(func() {
		nw.unpark()
		if len(tree) > 0 {
			nw.intents.trees[st.Epoch()] = tree
		}
		nw.emitRows([]store.Message{line}, nil)
		nw.refreshMembers(true)
		for i, to := range pr.to {
			env, err := e.sealWelcome(welcome, nil, st, nil, to)
			if err != nil {
				e.log.Warn("sealing a ReInit welcome", "group", nw.gid, "err", err)
				continue
			}
			ref, _ := pr.kps[i].Ref()
			e.queueWelcome(to, nw, append([]byte("welcome:"), ref...), env, true)
		}
	})
	e.log.Info("group reinitialized", "old", hex.EncodeToString(old.GroupID()), "new", nw.gid, "suite", uint16(r.CipherSuite))
	return nw.gid, r.CipherSuite, nil
}

// resumeReInits makes, after a restart, the successors of groups this
// member closed by a ReInit before it could make them (the flag
// ReInitPending is stored with the ReInit's state). Other members'
// KeyPackages are fetched again; it retries a few times (they may be
// coming online too), then tells the user.
func (e *Engine) resumeReInits() {
	gs := e.groupList()
	for _, g := range gs {
		var st *mls.Group
		if err := g.do(e.ctx, func() {
			if g.st != nil && g.meta.ReInitPending {
				if _, ok := g.st.PendingReInit(); ok {
					st = g.st.Clone()
				}
			}
		}); err != nil || st == nil {
			continue
		}
		e.goBackground(func(ctx context.Context) {
			var err error
			for attempt := range resumeAttempts {
				if attempt > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(resumeRetry):
					}
				}
				if err = e.remakeSuccessor(ctx, g, st); err == nil {
					return
				}
				e.log.Info("successor of a closed group not made yet", "group", g.gid, "err", err)
			}
			e.notice(g.gid, NoticeError, "%s is closed for a move, but its successor could not be made: %v", g.view.snapshot().Name, err)
		})
	}
}

const (
	resumeAttempts = 6
	resumeRetry    = 10 * time.Second
)

func (e *Engine) remakeSuccessor(ctx context.Context, g *group, st *mls.Group) error {
	r, _ := st.PendingReInit()
	if e.group(GroupID(hex.EncodeToString(r.GroupID))) == nil {
		pr, err := e.successorKeyPackages(ctx, g.view.snapshot().Name, st.Members(), r.CipherSuite)
		if err != nil {
			return err
		}
		if _, _, err := e.makeSuccessor(st, pr); err != nil {
			return err
		}
	}
	// Closed groups are not persisted by their loop (no fork choice):
	// the flag is cleared in the row directly.
	return g.do(ctx, func() {
		g.meta.ReInitPending = false
		row := g.row
		g.saveMetaInto(&row)
		if err := e.db.UpdateGroup(ctx, row); err == nil {
			g.row = row
		}
	})
}

// reinitSources returns the closed states of our groups whose last Commit
// was a ReInit: the groups a ReInit Welcome may continue.
func (e *Engine) reinitSources(ctx context.Context) map[*mls.Group]*group {
	e.mu.Lock()
	var closed []*group
	for _, g := range e.groups {
		if g.view.snapshot().Left {
			closed = append(closed, g)
		}
	}
	e.mu.Unlock()
	out := map[*mls.Group]*group{}
	for _, g := range closed {
		var st *mls.Group
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = g.do(dctx, func() {
			if g.st != nil {
				if _, ok := g.st.PendingReInit(); ok {
					st = g.st.Clone()
				}
			}
		})
		cancel()
		if st != nil {
			out[st] = g
		}
	}
	return out
}

// continuesReInit reports which of our closed groups the joined state st
// continues by ReInit: mls checked the reinit PSK (sw.Resumption) against
// that group, and st has exactly its members, each with the signature
// key it had there.
func continuesReInit(sw *mls.StagedWelcome, st *mls.Group, sources map[*mls.Group]*group) (*group, bool) {
	id, ok := sw.Resumption()
	if !ok || id.Usage != mls.ResumptionReInit {
		return nil, false
	}
	for old, g := range sources {
		if !bytes.Equal(old.GroupID(), id.PSKGroupID) || old.Epoch() != id.PSKEpoch {
			continue
		}
		keys := map[string][]byte{}
		for _, m := range old.Members() {
			keys[string(m.Credential.Identity)] = m.SignatureKey
		}
		news := st.Members()
		if len(news) != len(keys) {
			return nil, false
		}
		for _, m := range news {
			k, ok := keys[string(m.Credential.Identity)]
			if !ok || !bytes.Equal(k, m.SignatureKey) {
				return nil, false
			}
		}
		return g, true
	}
	return nil, false
}

// joinReInit joins the successor of old (a ReInit Welcome that
// continuesReInit checked) at once.
func (e *Engine) joinReInit(ctx context.Context, old *group, st *mls.Group, welcome []byte, mover string) error {
	_, ref, err := e.bundleFor(ctx, welcome)
	if err != nil {
		return err
	}
	gid := st.GroupID()
	e.mu.Lock()
	existing := e.groups[string(gid)]
	e.mu.Unlock()
	if existing != nil {
		return nil // a replay: joined already
	}
	settings := settingsOf(st.Extensions())
	meta, _ := json.Marshal(groupMeta{LastPath: e.now().Unix()})
	row := store.Group{ID: gid, Name: settings.Name, Retention: settings.Retention, Meta: meta, CreatedAt: e.now(), UpdatedAt: e.now()}
	state, err := st.MarshalState()
	if err != nil {
		return err
	}
	g := e.newGroup(row, st, nil)
	line := g.systemLine("%s continues here on %s (moved by %s; the old group is closed)", settings.Name, suiteName(st.CipherSuite()), mover)
	if _, err := e.db.CommitEpoch(ctx, store.EpochTransition{
		GroupID: gid, Epoch: st.Epoch(), State: state, Group: &row,
		Messages: []store.Message{line}, ConsumedKeyPackage: ref,
	}); err != nil {
		return err
	}
	g.startJoined(line)
	e.emit(GroupEvent{Group: g.view.snapshot()})
	e.goBackground(func(context.Context) { _ = e.fillKeyPackages(e.ctx) })
	e.log.Info("joined the successor of a group", "old", old.gid, "new", g.gid, "suite", uint16(st.CipherSuite()))
	return nil
}

// A successor's Welcome can arrive before the ReInit Commit that closes
// the old group (from a relay mailbox, while this member catches up): it
// names a resumption PSK no closed group of ours has yet. It is kept, a
// few at most (maxWaitingWelcomes, the oldest dropped), and opened again
// when one of our groups closes by ReInit. Kept in memory only: after a
// restart the mover's copy in the outbox or relays is what remains.

const maxWaitingWelcomes = 8

type waitingWelcome struct {
	src   inboxSource
	from  p2p.PeerID
	topic string
	data  []byte
}

func (e *Engine) holdForReInit(src inboxSource, from p2p.PeerID, topic string, data []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, w := range e.reinitWaiting {
		if bytes.Equal(w.data, data) {
			return
		}
	}
	if len(e.reinitWaiting) >= maxWaitingWelcomes {
		e.reinitWaiting = e.reinitWaiting[1:]
	}
	e.reinitWaiting = append(e.reinitWaiting, waitingWelcome{src: src, from: from, topic: topic, data: bytes.Clone(data)})
}

// retryReInitWelcomes opens the waiting Welcomes again (a group of ours
// just closed by ReInit). It runs in the background: onWelcome asks the
// groups' loops for their states.
func (e *Engine) retryReInitWelcomes() {
	e.mu.Lock()
	todo := e.reinitWaiting
	e.reinitWaiting = nil
	e.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	e.goBackground(func(ctx context.Context) {
		for _, w := range todo {
			if err := e.onWelcome(ctx, w.src, w.from, w.topic, w.data); err != nil {
				e.log.Debug("waiting welcome", "err", err)
			}
		}
	})
}
