package chat

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Receiving: frames go through the group's ordering.Machine (forkchoice.go),
// and the loop executes the decisions it returns, in order (exec): persist
// the new tip, deliver messages, describe what a Commit changed, follow a
// switch of branch.

func (g *group) handleFrame(fr inFrame) {
	hdr, ok := g.frameHeader(fr)
	if !ok {
		return
	}
	if g.sync.parking && !fr.synced {
		if len(g.sync.parked) < 1024 {
			g.sync.parked = append(g.sync.parked, fr)
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

// frameHeader parses a frame of this group that the loop can handle now.
func (g *group) frameHeader(fr inFrame) (p2p.MLSHeader, bool) {
	if g.offline || g.m == nil {
		return p2p.MLSHeader{}, false
	}
	hdr, err := p2p.ParseMLSHeader(fr.data)
	if err != nil || !bytes.Equal(hdr.GroupID, g.id) || !hdr.HasEpoch() {
		return p2p.MLSHeader{}, false
	}
	return hdr, true
}

// receiveAuthentic hands an authenticated frame to the fork choice and
// logs it with the state that results.
func (g *group) receiveAuthentic(fr inFrame, hdr p2p.MLSHeader) {
	if !g.precheckCommitWith(fr.data, hdr, fr.verdict) {
		return
	}
	defer func() { g.pre = nil }()
	g.receiveLogged(fr, hdr, g.loggedSeqs([][]byte{fr.data})[0])
}

// receiveLogged hands an authenticated frame to the fork choice; seq is
// where the frame log held it before (0: nowhere; loggedSeqs). A frame
// not logged yet is staged: it is logged with the state that processing
// it produces (persistTip).
func (g *group) receiveLogged(fr inFrame, hdr p2p.MLSHeader, seq int64) {
	if seq != 0 && (g.sync.sessionSeq == 0 || seq < g.sync.sessionSeq) && hdr.Epoch <= g.m.Epoch() {
		// Handled by an earlier run, in an epoch we have reached: a
		// catch-up duplicate (its key is consumed and its message stored,
		// in the transaction that logged it; it would only sit in the
		// machine's buffer).
		return
	}
	if seq == 0 {
		g.stageFrame(fr.data, hdr.Epoch, fr.from)
	}
	g.exec(g.m.Receive(g.proc, fr.data, hdr.Epoch, ordering.ContentType(hdr.ContentType), g.e.now()))
}

// loggedSeqs reports where the frame log holds each of data (0: not
// held), reading only (store.LoggedFrames).
func (g *group) loggedSeqs(data [][]byte) []int64 {
	seqs, err := g.e.db.LoggedFrames(g.ctx, g.topicName, data)
	if err != nil {
		if g.ctx.Err() == nil {
			g.e.log.Debug("frame log", "err", err)
		}
		// As if none were logged: a failed read does not hide a frame.
		return make([]int64, len(data))
	}
	return seqs
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
			g.order.q.begin(g.epoch())
			g.onAdvanced(d.To, before)
			tipMoved = true
		case ordering.Switched:
			before := g.settings
			g.syncTip()
			g.order.q.begin(g.epoch())
			g.onSwitched(d, before)
			tipMoved = true
		case ordering.Deliver:
			g.deliverInOrder(d)
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
			delete(g.intents.welcomes, d.Commit)
			g.reinitDropped(d.Commit)
		case ordering.Announce:
			g.announce(d.Claim)
		case ordering.Rejoin:
			g.rejoin(d)
		case ordering.CatchUp:
			if g.sync.from == 0 || d.From < g.sync.from {
				g.sync.from = d.From
			}
			g.catchUp(true)
		case ordering.Discarded:
			if d.Reason != ordering.Duplicate {
				g.e.log.Debug("frame discarded", "group", g.gid, "epoch", d.Epoch, "reason", d.Reason.String())
			}
		}
	}
	// Within a batch of received frames (handleFrames) the messages they
	// opened are written once, at its end; a new tip and own keys used
	// (ownSent: a frame about to be published) are written at once.
	if tipMoved || g.stage.ownSent || g.stage.pending() && !g.stage.batching {
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
		g.intents.proposals = 0
		clear(g.intents.proposers)
		if g.intents.commitTmr != nil {
			g.intents.commitTmr.Stop()
			g.intents.commitTmr = nil
		}
	}
	wasClosed := g.closed
	g.closed = !g.m.IsMember() || st.Closed()
	g.view.mu.Lock()
	g.view.live = !g.offline
	g.view.mu.Unlock()
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
	for ep := range g.intents.trees {
		if ep+4 < epoch {
			delete(g.intents.trees, ep)
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
	if len(g.intents.queue) > 0 {
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
	for _, c := range g.intents.queue {
		if c.done != nil {
			c.done <- errNotMember
		}
	}
	g.intents.queue = nil
	for id, in := range g.intents.byID {
		if in.done != nil {
			in.done <- errNotMember
		}
		delete(g.intents.byID, id)
	}
	g.after(removedGrace, func() {
		if g.closed && !g.offline {
			g.offline = true
			g.view.mu.Lock()
			g.view.live = false
			g.view.mu.Unlock()
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
		delete(g.intents.leavers, id)
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
		return e.displayName(p2p.PeerID(id), g.hintOf(p2p.PeerID(id)))
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
		case g.intents.leavers[id]:
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

func (g *group) hintOf(p p2p.PeerID) string {
	if in, ok := g.infoByPeer(p); ok {
		return in.hint
	}
	return ""
}

func peerOfIdent(id string) (p2p.PeerID, error) { return p2p.PeerIDFromBytes([]byte(id)) }

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
		if m := g.order.mark; m != orderInPlace {
			if g.stage.marks == nil {
				g.stage.marks = map[string]orderMark{}
			}
			g.stage.marks[string(am.ID)] = m
		}
		g.queueReceipt(am.ID)
	case appFile:
		row := store.Message{
			GroupID: g.id, ID: am.ID, Sender: []byte(sender), Epoch: d.Epoch, Kind: uint16(am.Kind),
			ReplyTo: am.ReplyTo, SentAt: am.SentAt, State: store.Received,
		}
		if !setFileRow(&row, am.Body) {
			return
		}
		g.stageRow(row)
		g.queueReceipt(am.ID)
		if g.e.xfers != nil {
			g.e.xfers.announced(g, row, sender)
		}
	case appEdit, appDelete:
		target, err := g.e.db.Message(g.ctx, g.id, am.ReplyTo)
		if err != nil {
			return
		}
		if p2p.PeerID(target.Sender) != sender {
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
	g.intents.proposals++
	g.intents.proposers[r.Sender.LeafIndex] = true
	p := r.Proposal
	if p != nil && p.Type == mls.ProposalTypeRemove && p.Remove != nil && p.Remove.Removed == r.Sender.LeafIndex {
		g.intents.leavers[sender] = true
		if pid, err := peerOfIdent(sender); err == nil && pid != g.e.id.id {
			g.e.notice(g.gid, NoticeInfo, "%s is leaving %s", g.e.displayName(pid, g.hintOf(pid)), g.settings.Name)
		}
	}
	g.scheduleCommit()
}
