package chat

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Ordering integration.
//
// Every frame of a group goes through the group's ordering.Machine, which
// holds the MLS states of the retained epochs (the canonical chain and
// losing branches), decides which Commit of an epoch is canonical, buffers
// what cannot be read yet and returns decisions the loop executes in
// order (exec): persist the new tip, deliver messages, re-send own
// messages whose epoch lost, re-commit own changes whose Commit lost, send
// or drop held Welcomes, announce claims, rejoin, catch up.
//
// The store keeps the canonical tip's state. Its commit id (the store's
// CommitHash) is the Commit's ordering key, encoded (commitRef), so that
// the compact history survives a restart (store.EpochHistory); with it the
// store keeps the Commit's ordering info (storedCommit, with the hash of
// the parent state's Commit). The store retains the last window of
// canonical states (PruneBelow), and a restart rebuilds the machine from
// that chain (newMachine: ordering.New with the oldest, Restore for the
// others), so that a better Commit for an epoch before the restart is
// still judged by rolling back. Losing-branch states are not kept across
// restarts, and where the chain is missing (rows from before the info was
// stored, a switch that skipped epochs) the machine starts from the tip
// alone: a fork found later heals by the deep path (claims, rejoin).
//
// Identities in the machine are credential identities: the binary peer id
// as a string (ident).

func ident(p peer.ID) string { return string(p) }

// encodeKey and decodeKey convert an ordering key to the store's commit id:
// hash (32) || class (1) || ticket (8) || epoch (8).
func encodeKey(k ordering.Key) []byte {
	b := make([]byte, 0, 49)
	b = append(b, k.Hash[:]...)
	b = append(b, byte(k.Class))
	b = binary.BigEndian.AppendUint64(b, k.Ticket)
	return binary.BigEndian.AppendUint64(b, k.Epoch)
}

func decodeKey(b []byte) (ordering.Key, bool) {
	if len(b) != 49 || b[32] > 1 {
		return ordering.Key{}, false
	}
	var k ordering.Key
	copy(k.Hash[:], b[:32])
	k.Class = ordering.Class(b[32])
	k.Ticket = binary.BigEndian.Uint64(b[33:41])
	k.Epoch = binary.BigEndian.Uint64(b[41:49])
	return k, true
}

// orderingConfig is the machine policy of a group.
func (e *Engine) orderingConfig(groupID []byte) ordering.Config {
	c := e.cfg.Ordering
	c.GroupID, c.Self = groupID, ident(e.id.id)
	c.WindowEpochs = 0 // the default: the same on every member
	c.SettleTime = e.cfg.SettleTime
	return c
}

func roster(st *mls.Group) []string {
	var out []string
	for _, m := range st.Members() {
		out = append(out, string(m.Credential.Identity))
	}
	return out
}

// newMachine builds the fork choice of a group from its stored tip st
// (commitRef: the stored id of its Commit) and, when the store has them,
// the retained canonical states before it (restoreMachine).
func (e *Engine) newMachine(g *group, st *mls.Group, commitRef []byte) *ordering.Machine[*mls.Group] {
	var hist []ordering.Entry
	if recs, err := e.db.EpochHistory(e.ctx, g.id, 0); err == nil {
		for _, r := range recs {
			if k, ok := decodeKey(r.CommitHash); ok {
				hist = append(hist, k)
			}
		}
	}
	if m := e.restoreMachine(g, st, commitRef, hist); m != nil {
		return m
	}
	var rootKey *ordering.Key
	if k, ok := decodeKey(commitRef); ok {
		rootKey = &k
	}
	m := ordering.New(e.orderingConfig(g.id), st, st.Epoch(), rootKey, roster(st), e.now())
	m.AdoptHistory(hist)
	return m
}

// restoreMachine rebuilds the machine from the canonical chain the store
// retained (store.CanonicalChain) ending at st: the longest run of states
// each created by a Commit with a stored info naming the previous state's
// Commit as its parent. The loop's records of those Commits (g.commits,
// g.stateHash) are rebuilt as the live path made them. hist is the stored
// compact history, adopted before the oldest state (the entries of the
// restored states are the machine's own). It returns nil when there is no
// such run beyond st (the caller starts from st alone).
func (e *Engine) restoreMachine(g *group, st *mls.Group, commitRef []byte, hist []ordering.Entry) *ordering.Machine[*mls.Group] {
	chain, err := e.db.CanonicalChain(e.ctx, g.id)
	if err != nil || len(chain) < 2 {
		return nil
	}
	last := len(chain) - 1
	if chain[last].Epoch != st.Epoch() || !bytes.Equal(chain[last].CommitHash, commitRef) {
		return nil
	}
	// nodeHash is the machine's id of a stored state: its Commit's hash,
	// zero for a state without a Commit (creation, a Welcome without key).
	nodeHash := func(c store.EpochState) (ordering.Hash, bool) {
		if len(c.CommitHash) == 0 {
			return ordering.Hash{}, true
		}
		k, ok := decodeKey(c.CommitHash)
		return k.Hash, ok
	}
	type link struct {
		key    ordering.Key
		info   ordering.CommitInfo
		parent ordering.Hash
		st     *mls.Group
	}
	links := make([]link, len(chain))
	start := last
	for i := last; i > 0; i-- {
		k, ok := decodeKey(chain[i].CommitHash)
		if !ok || k.Epoch+1 != chain[i].Epoch {
			break
		}
		info, parent, ok := decodeStoredCommit(chain[i].Info)
		if !ok {
			break
		}
		if ph, ok := nodeHash(chain[i-1]); !ok || ph != parent {
			break
		}
		links[i] = link{key: k, info: info, parent: parent}
		start = i - 1
	}
	if start == last {
		return nil
	}
	links[last].st = st
	for i := last - 1; i >= start; i-- {
		s, err := mls.UnmarshalState(chain[i].State, e.mlsOptions()...)
		if err != nil {
			start = i + 1
			break
		}
		links[i].st = s
	}
	if start == last {
		return nil
	}
	now := e.now()
	var rootKey *ordering.Key
	if k, ok := decodeKey(chain[start].CommitHash); ok {
		rootKey = &k
	}
	root := links[start].st
	m := ordering.New(e.orderingConfig(g.id), root, root.Epoch(), rootKey, roster(root), now)
	m.AdoptHistory(hist)
	for i := start + 1; i <= last; i++ {
		l := links[i]
		if err := m.Restore(l.st, l.key, l.info, now); err != nil {
			e.log.Warn("restoring the window failed; starting from the current state", "group", hex.EncodeToString(g.id), "epoch", chain[i].Epoch, "err", err)
			return nil
		}
	}
	rootHash, _ := nodeHash(chain[start])
	g.stateHash[root] = rootHash
	for i := start + 1; i <= last; i++ {
		l := links[i]
		g.commits[l.key.Hash] = &commitRec{info: l.info, parent: l.parent, epoch: chain[i].Epoch, settings: settingsOf(l.st.Extensions())}
		g.stateHash[l.st] = l.key.Hash
	}
	return m
}

// storedCommit is the ordering info of a canonical state's Commit as the
// store keeps it with the state (store.EpochTransition.CommitInfo), JSON
// with identities as bytes (they are binary peer ids), with the hash of
// the Commit that created the parent state (zero: a state without one) so
// that a restart can tell a chain from states of two branches.
type storedCommit struct {
	V        int      `json:"v"`
	Parent   []byte   `json:"p"`
	Sender   []byte   `json:"s"`
	External bool     `json:"x,omitempty"`
	Added    [][]byte `json:"a,omitempty"`
	Removed  [][]byte `json:"r,omitempty"`
	Updated  [][]byte `json:"u,omitempty"`
	Path     bool     `json:"w,omitempty"`
}

const storedCommitVersion = 1

func encodeStoredCommit(rec *commitRec) []byte {
	ids := func(l []string) [][]byte {
		var out [][]byte
		for _, id := range l {
			out = append(out, []byte(id))
		}
		return out
	}
	ci := rec.info
	b, err := json.Marshal(storedCommit{V: storedCommitVersion, Parent: rec.parent[:], Sender: []byte(ci.Sender), External: ci.External,
		Added: ids(ci.Added), Removed: ids(ci.Removed), Updated: ids(ci.Updated), Path: ci.Path})
	if err != nil {
		return nil
	}
	return b
}

func decodeStoredCommit(b []byte) (ordering.CommitInfo, ordering.Hash, bool) {
	var sc storedCommit
	var parent ordering.Hash
	if len(b) == 0 || json.Unmarshal(b, &sc) != nil || sc.V != storedCommitVersion || len(sc.Parent) != len(parent) {
		return ordering.CommitInfo{}, parent, false
	}
	copy(parent[:], sc.Parent)
	ids := func(l [][]byte) []string {
		var out []string
		for _, id := range l {
			out = append(out, string(id))
		}
		return out
	}
	return ordering.CommitInfo{Sender: string(sc.Sender), External: sc.External, Added: ids(sc.Added),
		Removed: ids(sc.Removed), Updated: ids(sc.Updated), Path: sc.Path}, parent, true
}

// tipCommitInfo is the stored info of the canonical tip's Commit, nil when
// the loop does not know it (the store then keeps what it has).
func (g *group) tipCommitInfo() []byte {
	if len(g.commitRef) == 0 || g.m == nil {
		return nil
	}
	_, _, h := g.m.Current()
	if rec := g.commits[h]; rec != nil {
		return encodeStoredCommit(rec)
	}
	return nil
}

// commitRec is what the loop remembers of a Commit in the window.
type commitRec struct {
	info   ordering.CommitInfo
	parent ordering.Hash
	epoch  uint64 // the epoch it created
	// settings of the state it created, to describe changes
	settings groupSettings
}

// intentRec is an own membership change until it is applied.
type intentRec struct {
	ordering.Intent
	peer peer.ID
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

func (g *group) pruneIntents() {
	for id, in := range g.intents {
		if g.e.now().Sub(in.at) > intentTTL {
			delete(g.intents, id)
		}
	}
}

// heldWelcome is the Welcome of an own Commit, held until it settles.
type heldWelcome struct {
	to      peer.ID
	ref     []byte
	welcome []byte
	intent  string
}

// ownLog keeps recent own messages for re-sending (ordering.Resend).
type ownLog struct {
	byID  map[string]*ownMsg
	order []string
}

type ownMsg struct {
	payload []byte
	epoch   uint64
	at      time.Time
}

const maxOwnLog = 2048

func newOwnLog() *ownLog { return &ownLog{byID: map[string]*ownMsg{}} }

func (l *ownLog) add(id string, payload []byte, epoch uint64, at time.Time) {
	if o, ok := l.byID[id]; ok {
		o.epoch, o.at = epoch, at
		return
	}
	l.byID[id] = &ownMsg{payload: payload, epoch: epoch, at: at}
	l.order = append(l.order, id)
	for len(l.order) > maxOwnLog {
		delete(l.byID, l.order[0])
		l.order = l.order[1:]
	}
}

// groupProc runs MLS for the machine (ordering.Processor).
type groupProc struct{ g *group }

func (p *groupProc) ProcessCommit(base *mls.Group, msg []byte) (*mls.Group, ordering.CommitInfo, error) {
	var (
		next *mls.Group
		r    *mls.Received
		err  error
	)
	if pre := p.g.pre; pre != nil && pre.base == base && pre.hash == ordering.HashOf(msg) {
		next, r = pre.next, pre.r // opened by precheckCommit
		p.g.pre = nil
	} else {
		next = base.Clone()
		r, err = next.Process(msg)
	}
	if err != nil {
		if errors.Is(err, mls.ErrUnknownProposal) {
			return nil, ordering.CommitInfo{}, fmt.Errorf("%w: %v", ordering.ErrLater, err)
		}
		return nil, ordering.CommitInfo{}, err
	}
	if r.Commit == nil {
		return nil, ordering.CommitInfo{}, errors.New("chat: not a commit")
	}
	if err := directCommitRule(base, next); err != nil {
		return nil, ordering.CommitInfo{}, err
	}
	info := commitInfoOf(base, next, r.Commit)
	h := ordering.HashOf(msg)
	// (A removed member's next state does not advance: count from base.)
	p.g.commits[h] = &commitRec{info: info, parent: p.g.stateHash[base], epoch: base.Epoch() + 1, settings: settingsOf(next.Extensions())}
	p.g.stateHash[next] = h
	return next, info, nil
}

func (p *groupProc) Open(st *mls.Group, msg []byte, ct ordering.ContentType) (ordering.Opened, error) {
	r, err := st.Process(msg)
	if err != nil {
		return ordering.Opened{}, err
	}
	g := p.g
	// The machine may have moved its tip during this very call (a drained
	// buffer): compare with its tip, not with the loop's copy.
	tip, _, _ := g.m.Current()
	if st == tip {
		g.dirty = true
	}
	sender := ""
	if m, ok := st.Member(mls.LeafIndex(r.Sender.LeafIndex)); ok {
		sender = string(m.Credential.Identity)
	}
	switch r.ContentType {
	case mls.ContentTypeProposal:
		if st == tip {
			g.onProposalOpened(r, sender)
		}
		return ordering.Opened{Sender: sender}, nil
	case mls.ContentTypeApplication:
		am, err := parseAppMessage(r.ApplicationData)
		if err != nil {
			// Unknown versions and malformed payloads are ignored, never
			// fatal: the key was used, the message shows nothing.
			return ordering.Opened{Sender: sender}, nil
		}
		return ordering.Opened{ID: ordering.MessageID(am.ID), Sender: sender, Payload: r.ApplicationData}, nil
	}
	return ordering.Opened{}, errors.New("chat: unexpected content")
}

func identityAt(g *mls.Group, l mls.LeafIndex) string {
	m, ok := g.Member(l)
	if !ok {
		return ""
	}
	return string(m.Credential.Identity)
}

// commitInfoOf describes a Commit as the machine needs it: a deterministic
// function of the state it was sent in and its bytes.
func commitInfoOf(base, next *mls.Group, u *mls.StateUpdate) ordering.CommitInfo {
	ci := ordering.CommitInfo{External: u.External}
	if u.External {
		ci.Sender = identityAt(next, u.Committer)
	} else {
		ci.Sender = identityAt(base, u.Committer)
		if ob, ok := base.Member(u.Committer); ok {
			if nb, ok := next.Member(u.Committer); ok {
				ci.Path = !bytes.Equal(ob.LeafNode.EncryptionKey, nb.LeafNode.EncryptionKey)
			}
		}
	}
	for _, l := range u.Added {
		ci.Added = append(ci.Added, identityAt(next, l))
	}
	for _, r := range u.Removed {
		if r.LeafNode != nil {
			ci.Removed = append(ci.Removed, string(r.LeafNode.Credential.Identity))
		}
	}
	for _, l := range u.Updated {
		ci.Updated = append(ci.Updated, identityAt(next, l))
	}
	return ci
}

// ---- receiving ----

func (g *group) handleFrame(fr inFrame) {
	if g.offline || g.m == nil {
		return
	}
	hdr, err := p2p.ParseMLSHeader(fr.data)
	if err != nil || !bytes.Equal(hdr.GroupID, g.id) || !hdr.HasEpoch() {
		return
	}
	if g.parking && !fr.synced {
		if len(g.parked) < 1024 {
			g.parked = append(g.parked, fr)
		}
		return
	}
	// Only what a member of the frame's epoch sent is stored or reaches
	// the fork choice (framegate.go); the rest is held or dropped.
	if !g.admitFrame(fr, hdr) {
		return
	}
	g.receiveAuthentic(fr, hdr)
}

// receiveAuthentic logs an authenticated frame and hands it to the fork
// choice.
func (g *group) receiveAuthentic(fr inFrame, hdr p2p.MLSHeader) {
	if !g.precheckCommit(fr.data, hdr) {
		return
	}
	defer func() { g.pre = nil }()
	seq, inserted := g.logFrame(fr.data, hdr.Epoch, fr.from)
	if !inserted && (g.sessionSeq == 0 || seq < g.sessionSeq) && hdr.Epoch <= g.m.Epoch() {
		// Handled by an earlier run, in an epoch we have reached: a
		// catch-up duplicate (its key is consumed; it would only sit in
		// the machine's buffer).
		return
	}
	g.exec(g.m.Receive(g.proc, fr.data, hdr.Epoch, ordering.ContentType(hdr.ContentType), g.e.now()))
}

// exec carries out the machine's decisions in order, then persists the
// tip with what they produced.
func (g *group) exec(ds []ordering.Decision) {
	tipMoved := false
	for _, d := range ds {
		switch d := d.(type) {
		case ordering.Advanced:
			before := g.settings
			g.syncTip()
			g.onAdvanced(d.To, before)
			tipMoved = true
		case ordering.Switched:
			before := g.settings
			g.syncTip()
			g.onSwitched(d, before)
			tipMoved = true
		case ordering.Deliver:
			g.deliver(d)
		case ordering.Released:
			delete(g.commits, d.Node)
			for st, h := range g.stateHash {
				if h == d.Node {
					delete(g.stateHash, st)
				}
			}
		case ordering.Resend:
			g.resend(d)
		case ordering.ResendSince:
			g.resendSince(d)
		case ordering.Repropose:
			g.repropose(d.Intents)
		case ordering.SendWelcome:
			g.sendWelcome(d.Commit)
			g.reinitSettled(d.Commit)
		case ordering.DropWelcome:
			delete(g.welcomes, d.Commit)
			g.reinitDropped(d.Commit)
		case ordering.Announce:
			g.announce(d.Claim)
		case ordering.Rejoin:
			g.rejoin(d)
		case ordering.CatchUp:
			if g.syncFrom == 0 || d.From < g.syncFrom {
				g.syncFrom = d.From
			}
			g.catchUp(true)
		case ordering.Discarded:
			if d.Reason != ordering.Duplicate {
				g.e.log.Debug("frame discarded", "group", g.gid, "epoch", d.Epoch, "reason", d.Reason.String())
			}
		}
	}
	if tipMoved || g.dirty || len(g.rows) > 0 || len(g.outbox) > 0 {
		_ = g.persistTip()
	}
	if tipMoved {
		g.afterTipMoved()
	}
	g.refreshGate()
}

// syncTip makes the loop's view follow the machine's canonical tip.
func (g *group) syncTip() {
	st, epoch, h := g.m.Current()
	changedEpoch := g.st == nil || g.st.Epoch() != epoch || g.tipHash != h
	g.st, g.tipHash = st, h
	if changedEpoch {
		g.commitRef = nil
		if hist := g.m.History(); len(hist) > 0 && hist[len(hist)-1].Hash == h {
			g.commitRef = encodeKey(hist[len(hist)-1])
		}
		// The epoch's proposals are gone with it.
		g.proposals = 0
		clear(g.proposers)
		if g.commitTmr != nil {
			g.commitTmr.Stop()
			g.commitTmr = nil
		}
	}
	wasClosed := g.closed
	g.closed = !g.m.IsMember() || st.Closed()
	g.mu.Lock()
	g.live = !g.offline
	g.mu.Unlock()
	old := g.settings
	g.settings = settingsOf(st.Extensions())
	if g.settings.Name == "" {
		g.settings.Name = old.Name
	}
	g.refreshInfos()
	if g.closed && !wasClosed {
		g.leaveLater()
	} else if !g.closed && wasClosed {
		g.e.notice(g.gid, NoticeInfo, "you are a member of %s again", g.settings.Name)
	}
	for ep := range g.trees {
		if ep+4 < epoch {
			delete(g.trees, ep)
		}
	}
}

// afterTipMoved runs what a new epoch allows.
func (g *group) afterTipMoved() {
	g.emitGroup()
	g.refreshMembers(true)
	if g.closed {
		return
	}
	g.flushHeld()
	if g.meta.Leaving {
		g.proposeLeave()
	}
	if len(g.queue) > 0 {
		g.armFlush()
	}
	g.flushReceipts()
}

// removedGrace is how long a member removed at the canonical tip keeps
// listening: a better Commit that keeps it may still win.
const removedGrace = 30 * time.Second

func (g *group) leaveLater() {
	if r, ok := g.st.PendingReInit(); ok {
		g.e.notice(g.gid, NoticeInfo, "%s is closed: it moves to a new group on %s", g.settings.Name, suiteName(r.CipherSuite))
		g.e.retryReInitWelcomes()
	} else {
		g.e.notice(g.gid, NoticeWarning, "you are no longer a member of %s", g.settings.Name)
	}
	for _, c := range g.queue {
		if c.done != nil {
			c.done <- errNotMember
		}
	}
	g.queue = nil
	for id, in := range g.intents {
		if in.done != nil {
			in.done <- errNotMember
		}
		delete(g.intents, id)
	}
	g.after(removedGrace, func() {
		if g.closed && !g.offline {
			g.offline = true
			g.mu.Lock()
			g.live = false
			g.mu.Unlock()
			if g.topic != nil {
				_ = g.topic.Close()
			}
		}
	})
}

// onAdvanced writes the timeline lines of the Commit that created h.
func (g *group) onAdvanced(h ordering.Hash, before groupSettings) {
	rec := g.commits[h]
	if rec == nil {
		return
	}
	parentSettings := before
	if p := g.commits[rec.parent]; p != nil {
		parentSettings = p.settings
	}
	for _, l := range g.describe(rec, parentSettings) {
		l.Epoch = rec.epoch
		g.stageRow(l)
	}
	if rec.info.Sender == ident(g.e.id.id) && !rec.info.External {
		g.meta.LastPath = g.e.now().Unix()
		g.meta.SentSince = 0
	}
	for _, id := range rec.info.Removed {
		delete(g.leavers, id)
	}
}

// describe turns a Commit into timeline lines.
func (g *group) describe(rec *commitRec, before groupSettings) []store.Message {
	e := g.e
	self := ident(e.id.id)
	name := func(id string) string {
		if id == "" {
			return "someone"
		}
		return e.displayName(peer.ID(id), g.hintOf(peer.ID(id)))
	}
	ci := rec.info
	var lines []store.Message
	if ci.External {
		if slices.Contains(ci.Removed, ci.Sender) {
			lines = append(lines, g.systemLine("%s rejoined", name(ci.Sender)))
		} else {
			lines = append(lines, g.systemLine("%s joined", name(ci.Sender)))
		}
		return lines
	}
	for _, id := range ci.Added {
		if p, err := peerOfIdent(id); err == nil {
			if in, ok := g.infoByPeer(p); ok {
				e.learnKey(g.ctx, p, in.fp, nil, in.hint)
			}
		}
		lines = append(lines, g.systemLine("%s added %s", name(ci.Sender), name(id)))
	}
	for _, id := range ci.Removed {
		switch {
		case id == self && g.meta.Leaving:
			lines = append(lines, g.systemLine("you left the group"))
		case id == self:
			g.noteRemovedBy(name(ci.Sender))
			lines = append(lines, g.systemLine("%s removed you from the group", name(ci.Sender)))
		case g.leavers[id]:
			lines = append(lines, g.systemLine("%s left", name(id)))
		default:
			lines = append(lines, g.systemLine("%s removed %s", name(ci.Sender), name(id)))
		}
	}
	if rec.settings.Name != "" && rec.settings.Name != before.Name {
		lines = append(lines, g.systemLine("%s renamed the group to %s", name(ci.Sender), rec.settings.Name))
	}
	if rec.settings.Retention != before.Retention {
		if rec.settings.Retention == 0 {
			lines = append(lines, g.systemLine("%s turned disappearing messages off", name(ci.Sender)))
		} else {
			lines = append(lines, g.systemLine("%s set messages to disappear after %s", name(ci.Sender), fmtDuration(rec.settings.Retention)))
		}
	}
	if len(lines) == 0 && len(ci.Added) == 0 && len(ci.Removed) == 0 {
		lines = append(lines, g.systemLine("%s rotated their keys", name(ci.Sender)))
	}
	return lines
}

func (g *group) hintOf(p peer.ID) string {
	if in, ok := g.infoByPeer(p); ok {
		return in.hint
	}
	return ""
}

func peerOfIdent(id string) (peer.ID, error) { return peer.IDFromBytes([]byte(id)) }

// onSwitched: a better Commit won an epoch we had passed; the machine
// rolled back and applied the winning branch. One line tells the user;
// the winning branch's changes are described like any other.
func (g *group) onSwitched(d ordering.Switched, before groupSettings) {
	var chain []*commitRec
	for h := d.To; ; {
		rec := g.commits[h]
		if rec == nil || rec.epoch <= d.ForkEpoch {
			break
		}
		chain = append(chain, rec)
		h = rec.parent
	}
	slices.Reverse(chain)
	if len(chain) > 0 {
		if p := g.commits[chain[0].parent]; p != nil {
			before = p.settings
		}
	}
	for _, rec := range chain {
		for _, l := range g.describe(rec, before) {
			l.Epoch = rec.epoch
			g.stageRow(l)
		}
		before = rec.settings
	}
	text := fmt.Sprintf("concurrent changes resolved: %d change(s) of epoch %d were replaced by the winning one; nothing is lost (own changes and messages are redone)", d.RolledBack, d.ForkEpoch)
	g.stageRow(g.systemLine("%s", text))
	g.e.notice(g.gid, NoticeInfo, "fork healed in %s at epoch %d", g.settings.Name, d.ForkEpoch)
	g.e.log.Info("fork healed", "group", g.gid, "fork_epoch", d.ForkEpoch, "rolled_back", d.RolledBack, "epoch", d.Epoch)
}

// deliver handles an application message the machine opened.
func (g *group) deliver(d ordering.Deliver) {
	am, err := parseAppMessage(d.Payload)
	if err != nil || d.ID == "" {
		return
	}
	sender, err := peerOfIdent(d.Sender)
	if err != nil {
		return
	}
	var senderFP []byte
	hint := ""
	if in, ok := g.infoByPeer(sender); ok {
		senderFP, hint = in.fp, in.hint
	}
	switch am.Kind {
	case appText, appReaction:
		row := store.Message{
			GroupID: g.id, ID: am.ID, Sender: []byte(sender), Epoch: d.Epoch, Kind: uint16(am.Kind),
			Text: string(am.Body), ReplyTo: am.ReplyTo, SentAt: am.SentAt, State: store.Received,
		}
		g.stageRow(row)
		g.queueReceipt(am.ID)
	case appEdit, appDelete:
		target, err := g.e.db.Message(g.ctx, g.id, am.ReplyTo)
		if err != nil {
			return
		}
		if peer.ID(target.Sender) != sender {
			// Only the author may change a message: a member's client
			// refuses this, so it comes from a modified one.
			g.e.log.Warn("ignored an edit or deletion of another member's message", "group", g.gid, "sender", sender)
			return
		}
		if am.Kind == appEdit {
			err = g.e.db.EditMessage(g.ctx, g.id, am.ReplyTo, string(am.Body), nil)
		} else {
			err = g.e.db.DeleteMessage(g.ctx, g.id, am.ReplyTo)
		}
		if err != nil {
			return
		}
		m := g.e.messageFromRow(g, store.Message{ID: am.ID, Sender: []byte(sender), Kind: uint16(am.Kind), Text: string(am.Body), ReplyTo: am.ReplyTo, SentAt: am.SentAt, Epoch: d.Epoch})
		g.e.emit(MessageEvent{Message: m})
		g.queueReceipt(am.ID)
	case appReceipt:
		if ids, err := parseIDList(am.Body); err == nil {
			g.onReceipt(ids)
		}
	case appTyping:
		m := g.e.messageFromRow(g, store.Message{ID: am.ID, Sender: []byte(sender), Kind: uint16(appTyping), SentAt: am.SentAt, Epoch: d.Epoch})
		g.e.emit(MessageEvent{Message: m})
	case appProfile:
		card, err := UnmarshalCard(am.Body)
		if err != nil || card.PeerID != sender || !bytes.Equal(card.Fingerprint, senderFP) {
			g.e.log.Debug("profile card does not match its sender", "group", g.gid)
			return
		}
		old := g.e.displayName(sender, hint)
		g.e.learnKey(g.ctx, sender, senderFP, card, hint)
		g.e.addContactAddrs(sender, card.Addrs)
		g.e.refreshMembersOf(sender)
		if now := g.e.displayName(sender, hint); now != old && old != shortPeer(sender) {
			g.stageRow(g.systemLine("%s is now known as %s", old, now))
		}
		g.e.connectAsync(sender, card.Addrs)
	}
}

// onProposalOpened notes a proposal cached in the tip's epoch.
func (g *group) onProposalOpened(r *mls.Received, sender string) {
	g.proposals++
	g.proposers[r.Sender.LeafIndex] = true
	p := r.Proposal
	if p != nil && p.Type == mls.ProposalTypeRemove && p.Remove != nil && p.Remove.Removed == r.Sender.LeafIndex {
		g.leavers[sender] = true
		if pid, err := peerOfIdent(sender); err == nil && pid != g.e.id.id {
			g.e.notice(g.gid, NoticeInfo, "%s is leaving %s", g.e.displayName(pid, g.hintOf(pid)), g.settings.Name)
		}
	}
	g.scheduleCommit()
}

// scheduleCommit arranges for the proposals of others to be committed by
// one member: members in leaf order (the proposers and those leaving
// excluded) wait CommitDelay + rank×CommitStagger, and the first whose
// timer fires while proposals are still pending commits them. If two do,
// the fork choice keeps one.
func (g *group) scheduleCommit() {
	if g.proposals == 0 || g.closed || g.meta.Leaving || g.m == nil {
		return
	}
	mine := g.st.LeafIndex()
	if g.proposers[uint32(mine)] {
		return
	}
	rank := 0
	for _, m := range g.st.Members() {
		if m.Index == mine {
			break
		}
		if !g.proposers[uint32(m.Index)] && !g.leavers[string(m.Credential.Identity)] {
			rank++
		}
	}
	if g.commitTmr != nil {
		g.commitTmr.Stop()
	}
	epoch := g.st.Epoch()
	d := g.e.cfg.CommitDelay + time.Duration(rank)*g.e.cfg.CommitStagger
	g.commitTmr = g.after(d, func() {
		if !g.closed && g.st.Epoch() == epoch && g.proposals > 0 {
			g.flush()
		}
	})
}

// ---- committing ----

// flush commits the queued changes together with the proposals of others
// cached in this epoch: one Commit, one Welcome. Each change is an intent
// of the fork choice: if the Commit loses, the machine asks for it again
// (Repropose) until it is applied.
func (g *group) flush() {
	e := g.e
	queue := g.queue
	g.queue = nil
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
		g.intents[in.ID] = in
		g.exec(g.m.Intend(in.Intent, e.now()))
		ids = append(ids, in.ID)
	}
	if len(ids) == 0 && g.proposals == 0 {
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
		in := g.intents[id]
		if in == nil {
			continue
		}
		switch in.Kind {
		case ordering.Add:
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
	if len(props) == 0 && !forcePath && g.proposals == 0 {
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
			if in := g.intents[id]; in != nil {
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
		g.trees[work.Epoch()] = pc.RatchetTree
	}
	if pc.Welcome != nil {
		for _, in := range adds {
			ref, _ := in.kp.Ref()
			g.welcomes[h] = append(g.welcomes[h], heldWelcome{to: in.peer, ref: ref, welcome: pc.Welcome, intent: in.ID})
		}
	}
	epoch := base.Epoch()
	// The machine applies the Commit at once (Advanced: persisted by exec)
	// before it is published.
	g.exec(g.m.OwnCommit(g.proc, pc.Message, work, info, used, pc.Welcome != nil, e.now()))
	g.publish(pc.Message, epoch, nil)
	for _, id := range used {
		if in := g.intents[id]; in != nil {
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
// invitee may have joined the losing branch with the old one.
func (g *group) repropose(intents []ordering.Intent) {
	var ids []string
	for _, in := range intents {
		rec := g.intents[in.ID]
		if rec == nil {
			continue
		}
		if rec.Kind == ordering.Add && rec.welcomed {
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
	g.dirty = true
	_ = g.persistTip()
	g.publish(msg, g.st.Epoch(), nil)
}

// ---- re-sending ----

// resendState is the state a re-send goes into: the retained canonical
// state at (ordering.Resend.At, ResendSince.At), or the tip when at is zero;
// ok is false when that state is no longer retained.
func (g *group) resendState(at ordering.Hash) (*mls.Group, uint64, bool) {
	if at == (ordering.Hash{}) {
		return g.st, g.st.Epoch(), true
	}
	return g.m.StateAt(at)
}

func (g *group) resend(d ordering.Resend) {
	st, epoch, ok := g.resendState(d.At)
	if !ok {
		return
	}
	for _, id := range d.IDs {
		o := g.own.byID[string(id)]
		if o == nil {
			continue
		}
		g.resendOne(st, epoch, []byte(id), o)
	}
}

func (g *group) resendSince(d ordering.ResendSince) {
	st, epoch, ok := g.resendState(d.At)
	if !ok {
		return
	}
	for _, id := range g.own.order {
		o := g.own.byID[id]
		if o.epoch > d.Epoch && !o.at.After(d.Until) {
			g.resendOne(st, epoch, []byte(id), o)
		}
	}
}

func (g *group) resendOne(st *mls.Group, epoch uint64, id []byte, o *ownMsg) {
	if g.closed {
		return
	}
	wire, err := st.Protect(o.payload, nil)
	if err != nil {
		g.e.log.Debug("re-send", "err", err)
		return
	}
	g.dirty = true
	o.epoch, o.at = epoch, g.e.now()
	g.exec(g.m.Sent(ordering.MessageID(id), wire, g.e.now()))
	g.publish(wire, epoch, nil)
}

// ---- welcomes ----

func (g *group) sendWelcome(h ordering.Hash) {
	hw := g.welcomes[h]
	delete(g.welcomes, h)
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
		if in := g.intents[w.intent]; in != nil {
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

// liveMember reports whether the group is running its fork choice (a
// member, or removed moments ago and still listening).
func (g *group) liveMember() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.live
}

// maxRefusedWelcomes bounds the Welcomes kept for a later decision.
const maxRefusedWelcomes = 8

type refusedWelcome struct {
	env     *welcomeEnvelope
	tree    []byte
	inviter inviterInfo
	warning string
	from    peer.ID
}

// welcomeForMember handles a Welcome into a group this member already
// runs. It is a fork heal only if it proves to continue this member's
// group (welcomeContinues: its adder was a member of a state of our own
// canonical chain and knew that state's secrets); then it replaces the
// state when the fork choice says it leads forward (our join Commit lost,
// our branch lost, we were removed on a branch that lost), else it is kept
// and asked about again later. A Welcome that does not prove it is
// somebody else's group with the same id: at most a separate invitation,
// which the user sees as such and must accept explicitly.
func (g *group) welcomeForMember(env *welcomeEnvelope, tree []byte, inviter inviterInfo, warning string, from peer.ID) {
	e := g.e
	if g.m == nil || g.offline {
		return
	}
	welcome, hist := env.Welcome, env.History
	bundle, ref, err := e.bundleFor(g.ctx, welcome)
	if err != nil {
		return
	}
	st, err := mls.JoinFromWelcome(welcome, bundle, tree, e.mlsOptions()...)
	if err != nil {
		e.log.Debug("welcome for a joined group", "group", g.gid, "err", err)
		return
	}
	canon := g.canonicalStates()
	if holdsState(canon, st) {
		// A Welcome into a state we already hold (a relay replaying the
		// Welcome we joined with): nothing new, nothing to say.
		e.log.Debug("welcome into a state we hold", "group", g.gid, "epoch", st.Epoch())
		return
	}
	signer, ok := welcomeContinues(st, env, canon, e.id.id)
	if !ok {
		g.separateWelcome(st, env, tree, inviter, warning, from)
		return
	}
	// The continuity proof shows the adder was a member of a state of our
	// chain; the fork choice then checks the adder's history against our
	// own chain (shared Commit, adder a member where the branch leaves ours
	// and not removed since, the branch's first Commit a real member's).
	if err := g.m.CheckWelcome(identityOf(st, signer), st.Epoch(), hist); err != nil {
		if errors.Is(err, ordering.ErrNotForward) {
			if len(g.refused) < maxRefusedWelcomes {
				g.refused = append(g.refused, refusedWelcome{env: env, tree: tree, inviter: inviter, warning: warning, from: from})
			}
			return
		}
		e.log.Warn("welcome refused by the fork choice", "group", g.gid, "err", err)
		g.separateWelcome(st, env, tree, inviter, warning, from)
		return
	}
	key := rootKeyOf(hist, st.Epoch())
	if key != nil {
		g.stateHash[st] = key.Hash
	}
	_ = e.db.DeleteKeyPackage(g.ctx, ref)
	e.log.Info("rejoined from a welcome", "group", g.gid, "epoch", st.Epoch())
	g.exec(g.m.Rejoined(g.proc, ordering.RejoinResult[*mls.Group]{
		State: st, Epoch: st.Epoch(), Key: key, Roster: roster(st), ForkEpoch: g.m.LostFork(), History: hist,
	}, e.now()))
	g.syncFrom = st.Epoch()
	g.catchUp(true)
}

// identityOf returns the credential identity of p's leaf in st (the id
// the fork choice knows members by), or "" when p has none.
func identityOf(st *mls.Group, p peer.ID) string {
	for _, m := range st.Members() {
		if q, err := peerOfCredential(&m.Credential); err == nil && q == p {
			return string(m.Credential.Identity)
		}
	}
	return ""
}

// separateWelcome keeps a Welcome that claims our group's id without
// continuing it as a separate invitation, and says so in plain words. Our
// group, its state and its messages are untouched.
func (g *group) separateWelcome(st *mls.Group, env *welcomeEnvelope, tree []byte, inviter inviterInfo, warning string, from peer.ID) {
	e := g.e
	name := g.settings.Name
	what := fmt.Sprintf("%s invited you into a different group that claims the id of %s; it does not continue your group", inviter.name, name)
	if warning != "" {
		what += " (" + warning + ")"
	}
	e.log.Warn("welcome for a group we are in does not continue it", "group", g.gid, "from", from)
	e.notice(g.gid, NoticeWarning, "%s. Your group is unchanged; the invitation is listed separately (/decline %s drops it).", what, invitationID(env.Welcome))
	if err := e.addInvitation(g.ctx, st, env, tree, from, inviter, what, true); err != nil {
		e.log.Warn("keeping a separate invitation", "err", err)
	}
}

// retryRefused asks again about Welcomes the fork choice refused.
func (g *group) retryRefused() {
	refused := g.refused
	g.refused = nil
	for _, r := range refused {
		g.welcomeForMember(r.env, r.tree, r.inviter, r.warning, r.from)
	}
}

// ---- claims and rejoins (forks older than the window) ----

// announce sends our claim (with a GroupInfo of the tip) to every member
// of the roster over /canopy/inbox/1, signed (control.go): the streams are
// encrypted and authenticate the sender's peer id, and the signature
// binds the claim to the key of the member's leaf, so that no relay or
// stranger can make one in a member's name.
func (g *group) announce(c ordering.Claim) {
	// Only a member's state can be joined: a member that processed its own
	// removal holds the closed state of the epoch before, and a GroupInfo
	// of it would send rejoiners to a dead epoch.
	if g.m.IsMember() && g.st != nil && !g.st.Closed() {
		if gi, err := g.st.GroupInfo(mls.GroupInfoOptions{RatchetTree: true, ExternalPub: true}); err == nil && len(gi) <= ordering.MaxClaimGroupInfo {
			c.GroupInfo = gi
		}
	}
	data, err := ordering.MarshalClaim(&c)
	if err != nil {
		return
	}
	signed, err := g.e.signControl(dmClaim, g.topicName, data)
	if err != nil {
		return
	}
	msg := p2p.InboxMessage{Kind: p2p.InboxDirect, Topic: g.topicName, Data: signed}
	var targets []peer.ID
	for _, id := range g.m.Roster() {
		if p, err := peerOfIdent(id); err == nil && p != g.e.id.id {
			targets = append(targets, p)
		}
	}
	for _, p := range targets {
		g.e.goBackground(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := g.e.node.SendInbox(ctx, p, msg); err != nil {
				g.e.log.Debug("claim not delivered", "peer", p, "err", err)
			}
		})
	}
}

// onClaim: a member's signed claim about its branch, received directly.
// Its signer is the sender only if the signing key is that member's leaf
// key in a state this member holds.
func (e *Engine) onClaim(c *signedControl) error {
	e.mu.Lock()
	g := e.byTopic[c.Topic]
	e.mu.Unlock()
	if g == nil {
		return p2p.ErrNotFound
	}
	cl, err := ordering.ParseClaim(c.Body)
	if err != nil {
		return p2p.ErrBadRequest
	}
	cl.Signer = ident(c.Sender)
	g.post(func() {
		if g.m == nil || g.offline {
			return
		}
		if !g.knowsKey(c.Sender, c.SigKey) {
			e.log.Warn("claim signed by a key that is not the member's", "group", g.gid, "peer", c.Sender)
			return
		}
		g.exec(g.m.ClaimReceived(g.proc, *cl, e.now()))
	})
	return nil
}

// knowsKey reports whether p has a leaf with signature key key in a state
// the loop holds (the tip, or any retained state of the window).
func (g *group) knowsKey(p peer.ID, key []byte) bool {
	has := func(st *mls.Group) bool {
		for _, m := range st.Members() {
			if q, err := peerOfCredential(&m.Credential); err == nil && q == p && bytes.Equal(m.SignatureKey, key) {
				return true
			}
		}
		return false
	}
	if g.st != nil && has(g.st) {
		return true
	}
	for st := range g.stateHash {
		if has(st) {
			return true
		}
	}
	return false
}

// rejoin: our branch lost a fork older than the window; join the winning
// branch by an external commit that replaces our old leaf.
func (g *group) rejoin(d ordering.Rejoin) {
	e := g.e
	leafExt, err := profileExtension(e.nick())
	if err != nil {
		return
	}
	opts := append([]mls.Option{mls.WithCapabilities(e.capabilities()), mls.WithLeafExtensions(leafExt)}, e.mlsOptions()...)
	st, msg, err := mls.JoinExternal(d.GroupInfo, e.id.sigPriv, e.id.cred, mls.ExternalJoinOptions{RemovePrior: true}, opts...)
	if err != nil {
		e.log.Warn("rejoin failed", "group", g.gid, "err", err)
		if errors.Is(err, mls.ErrInvalidProposal) {
			g.exec(g.m.RejoinRefused(e.now()))
		}
		return
	}
	if !g.rejoinTargetTrusted(d.GroupInfo, st, d.Signer) {
		e.log.Warn("rejoin refused: the claim's GroupInfo is not its signer's state of this group", "group", g.gid)
		g.exec(g.m.RejoinRefused(e.now()))
		return
	}
	self := ident(e.id.id)
	info := ordering.CommitInfo{Sender: self, External: true, Added: []string{self}, Removed: []string{self}, Path: true}
	h := ordering.HashOf(msg)
	g.commits[h] = &commitRec{info: info, epoch: st.Epoch(), settings: settingsOf(st.Extensions())}
	g.stateHash[st] = h
	// The joined state's own epoch (the GroupInfo's plus one), which is
	// the claim's tip only for an honest, current claimant.
	g.exec(g.m.Rejoined(g.proc, ordering.RejoinResult[*mls.Group]{
		State: st, Epoch: st.Epoch(), Commit: msg, Info: info, Roster: roster(st), ForkEpoch: d.ForkEpoch,
	}, e.now()))
	g.publish(msg, st.Epoch()-1, nil)
	e.notice(g.gid, NoticeInfo, "rejoined %s after a long split", g.settings.Name)
}

// rejoinTargetTrusted reports whether a claim's GroupInfo may take us
// there: it is of this group, and signed by the claim's signer, with the
// key this member knows for that signer. A claim is a member's word (its
// signature was checked against the member's leaf, onClaim); it may send
// us only to that member's own state, never to a GroupInfo of somebody
// else's group with the same id.
func (g *group) rejoinTargetTrusted(groupInfo []byte, st *mls.Group, signer string) bool {
	var m mls.MLSMessage
	if m.Unmarshal(groupInfo) != nil || m.GroupInfo == nil || !bytes.Equal(st.GroupID(), g.id) {
		return false
	}
	mem, ok := st.Member(mls.LeafIndex(m.GroupInfo.Signer))
	if !ok || string(mem.Credential.Identity) != signer {
		return false
	}
	p, err := peerOfIdent(signer)
	return err == nil && g.knowsKey(p, mem.SignatureKey)
}
