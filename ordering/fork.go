package ordering

import (
	"fmt"
	"slices"
	"time"
)

// Deep forks: claims, rejoins, catch-up (README.md "Deep forks").

// MakeClaim returns this member's claim: its canonical Commits' keys,
// dense for the last ClaimDense epochs and for want (a range a peer asked
// for), exponentially sparser before. The engine fills in GroupInfo.
func (m *Machine[S]) MakeClaim(want *Range) Claim {
	all := m.History()
	c := Claim{Signer: m.cfg.Self, Tip: m.tip.epoch, Stale: slices.Clone(m.stale)}
	if len(all) == 0 {
		return c
	}
	last := all[len(all)-1].Epoch
	denseFrom := uint64(0)
	if last >= uint64(m.cfg.ClaimDense) {
		denseFrom = last - uint64(m.cfg.ClaimDense) + 1
	}
	keep := func(e uint64) bool {
		if e >= denseFrom || e == all[0].Epoch {
			return true
		}
		if want != nil && e >= want.From && e <= want.To {
			return true
		}
		d := denseFrom - e // a power of two back from the dense part
		return d&(d-1) == 0
	}
	for _, e := range all {
		if keep(e.Epoch) && len(c.Entries) < MaxClaimEntries {
			c.Entries = append(c.Entries, e)
		}
	}
	if len(c.Entries) == MaxClaimEntries {
		// Never drop the recent end.
		c.Entries = c.Entries[len(c.Entries)-MaxClaimEntries:]
	}
	return c
}

// ClaimReceived handles a peer's claim (its signature checked by the
// engine, Signer its verified identity). It compares histories and, when
// this member's branch lost a fork, rolls back if the window still allows
// or decides to rejoin; when the peer's branch lost, it answers with its
// own claim.
func (m *Machine[S]) ClaimReceived(p Processor[S], c Claim, now time.Time) []Decision {
	m.begin(p, now)
	if c.Signer != m.cfg.Self {
		m.claim(c)
	}
	return m.finish()
}

func (m *Machine[S]) claim(c Claim) {
	m.oweStale(c)
	v := CompareHistories(m.History(), c.Entries)
	if debugf != nil {
		debugf("%s: claim of %s (tip %d): verdict %+v", m.cfg.Self, c.Signer, c.Tip, v)
	}
	if c.Want != nil {
		m.announce(c.Want, true)
	}
	switch v.Kind {
	case NeedTheirs:
		m.announce(&v.Gap, true)
	case Agree:
		m.claimAgrees(v, c)
	case Fork:
		m.claimForks(v, c)
	}
}

// oweStale records the own messages the claimant received too late to
// read: they are sent again at the tip (once per copy; a re-sent copy has
// a new hash). A member that is out of the group for now (removed, or
// waiting to rejoin) owes them: it sends them once it is back (evaluate).
func (m *Machine[S]) oweStale(c Claim) {
	for _, h := range c.Stale {
		if id, ok := m.ownHashes[h]; ok {
			delete(m.ownHashes, h)
			if !slices.ContainsFunc(m.owed, func(o *owedMsg) bool { return o.id == id }) {
				m.owed = append(m.owed, &owedMsg{id: id})
			}
		}
	}
	if len(m.owed) > MaxClaimStale {
		m.owed = m.owed[len(m.owed)-MaxClaimStale:]
	}
}

// claimAgrees handles a claim on this member's branch: the group went on
// past its removal, it lags behind (catch up, or rejoin if too far), or
// the claimant lags.
func (m *Machine[S]) claimAgrees(v Verdict, c Claim) {
	if !m.IsMember() && c.Tip > m.tip.epoch && v.Common+1 >= m.tip.epoch {
		m.standing = m.standing.next(confirmOut) // the group went on past our removal
		return
	}
	if c.Tip > m.tip.epoch && m.WasMember(c.Signer, m.tip.epoch) {
		// Same branch, this member is behind: fetch what it misses;
		// if it cannot catch up, it rejoins like a loser.
		m.lagging = true
		if c.Tip > m.tip.epoch+uint64(m.cfg.WindowEpochs) && m.IsMember() && len(c.GroupInfo) > 0 {
			if m.loseTo(m.tip.epoch, Key{}, c, true) {
				m.timers()
			}
		}
	} else if c.Tip < m.tip.epoch && m.tipRoster[c.Signer] {
		m.evidence = true // a member lags: tell it where we are
	}
}

// claimForks handles a claim for another branch: ours wins (answer it,
// unless this member concedes), or theirs does and the claim is trusted
// and not a removed member's for its barred Commit (lose, roll back or
// rejoin, and lift the bar).
func (m *Machine[S]) claimForks(v Verdict, c Claim) {
	if v.Ours.Less(v.Theirs) {
		if m.concede(v, c) {
			return
		}
		// Our branch wins: make sure the losers hear it, whoever the
		// claimant (a joiner whose join Commit lost was never a member
		// of our branch, and only our claim can tell it).
		m.evidence = true
		m.announce(&Range{From: v.Epoch, To: v.Epoch}, false)
		return
	}
	if !m.TrustClaim(c.Signer, v.Epoch) {
		if l := m.lost; l != nil && !l.lag && len(l.claim.GroupInfo) == 0 && len(c.GroupInfo) > 0 &&
			v.Epoch == l.epoch && v.Theirs.Compare(l.theirs) == 0 &&
			CompareHistories(l.claim.Entries, c.Entries).Kind == Agree {
			// A trusted claim (a member at the fork) showed we lost but
			// could not say how to rejoin (its signer is out of the
			// group now); this one is on the same winning branch as far
			// as both go, and its GroupInfo (signed by a member of that
			// branch) is the way in. The winning branch is still the
			// trusted claim's: only the way in comes from here.
			if debugf != nil {
				debugf("%s: rejoins through %s's GroupInfo on %s's branch", m.cfg.Self, c.Signer, l.claim.Signer)
			}
			l.claim = c
			m.timers()
			return
		}
		if debugf != nil {
			debugf("%s: distrusts %s at %d (root %d): events %v", m.cfg.Self, c.Signer, v.Epoch, m.root.epoch, m.events[c.Signer])
		}
		return
	}
	t, held := m.nodes[v.Theirs.Hash]
	// barredHere: the bar refused their Commit here, or would have if
	// this member had held the fork: it joined by the fork's own
	// Commit, so no sibling of it ever reached it. (Not a member that
	// joined later: on an honest fork deeper than that, the winners
	// may all have been removed since, mls-deep seed 1.)
	barredHere := (held && t.barred) || (!held && v.Epoch == m.knownFrom)
	if barredHere && v.Theirs.Class == ClassRemove &&
		!m.tipRoster[c.Signer] && m.removedPastFork(c.Signer, v.Epoch) {
		// A member this member's chain removed after the fork (not
		// in a race at the fork's own epoch, decided by the key),
		// vouching for a removal that the bar refused: its own,
		// forged from a state it kept, or another removed member's
		// that it went on with (a removed member is a member again
		// on such a branch). README.md "Removed members". Members
		// that really went on there claim it too, and their claims
		// lift the bar. Checked before anything is marked lost: our
		// canonical Commit marked dead would make this member refuse
		// every Welcome into its own branch (WelcomeAcceptable).
		if debugf != nil {
			debugf("%s: ignores the claim of %s for its barred Commit", m.cfg.Self, c.Signer)
		}
		return
	}
	// Even a member that joined or was removed after the fork tries:
	// if the winning branch has it as a member it may resync; if not,
	// the engine answers RejoinRefused and it waits for a Welcome.
	undo := lossUndo{standing: m.standing, dead: m.deadCommit, lostAt: m.lostAt}
	m.standing = m.standing.next(loseFork)
	// Our Commit at the fork has a better sibling: every branch
	// through it is dead (WelcomeAcceptable).
	m.deadCommit = some(v.Ours)
	if debugf != nil {
		debugf("%s loses to %s at %d: ours %v theirs %v (root %d tip %d)", m.cfg.Self, c.Signer, v.Epoch, v.Ours, v.Theirs, m.root.epoch, m.tip.epoch)
	}
	newer := m.loseTo(v.Epoch, v.Theirs, c, false)
	// A joiner at the fork: the claim would have been ignored above had
	// this member's chain already removed its signer (the removal may
	// reach it after the claim): the verdict waits on that (withdrawLoss).
	m.vouch(v, c.Signer, !held && v.Epoch == m.knownFrom && v.Theirs.Class == ClassRemove, undo)
	if newer {
		m.timers()
	}
	m.liftBar(v.Theirs)
}

// lossUndo is what a lost fork changed, to undo if its verdict is
// withdrawn (withdrawLoss).
type lossUndo struct {
	standing standing
	dead     opt[Key]
	lostAt   opt[uint64]
}

// vouch records that signer's claim showed the pending lost fork (v's):
// withdrawable says the claim would have been ignored (claimForks) if
// this member's chain had removed the signer after the fork by then (a
// joiner at the fork, the winning Commit a removal). The first voucher
// keeps what the loss changed.
func (m *Machine[S]) vouch(v Verdict, signer string, withdrawable bool, undo lossUndo) {
	l := m.lost
	if l == nil || l.lag || l.epoch != v.Epoch || l.theirs.Compare(v.Theirs) != 0 {
		return
	}
	if l.vouchers == nil {
		l.undo = undo
	}
	if !withdrawable {
		l.firm = true
	}
	if !slices.Contains(l.vouchers, signer) {
		l.vouchers = append(l.vouchers, signer)
	}
}

// withdrawLoss undoes a pending lost fork whose every voucher is a
// removable one (vouch) that this member's chain has removed since the
// fork, and not taken back: each claim would now be ignored as a removed
// member's for a Commit the bar refused (claimForks, "Joiners at the
// fork" in README.md), so the verdict no longer depends on whether the
// claims came before or after those removals. It reports whether it did.
func (m *Machine[S]) withdrawLoss() bool {
	l := m.lost
	if l == nil || l.lag || l.firm || len(l.vouchers) == 0 {
		return false
	}
	for _, s := range l.vouchers {
		if m.tipRoster[s] || !m.removedPastFork(s, l.epoch) {
			return false
		}
	}
	if debugf != nil {
		debugf("%s: withdraws the loss at %d: %v removed since", m.cfg.Self, l.epoch, l.vouchers)
	}
	m.lost = nil
	if d, ok := m.deadCommit.get(); ok && d.Epoch == l.epoch {
		m.deadCommit = l.undo.dead
	}
	if e, ok := m.lostAt.get(); ok && e == l.epoch {
		m.lostAt = l.undo.lostAt
	}
	if l.undo.standing == standingIn || l.undo.standing == standingOut {
		m.standing = m.standing.next(withdraw)
	}
	return true
}

// concede handles a trusted claim for a branch that our own Commit at the
// fork beats by key: when that Commit is a removal and the claimed branch
// removed this member after the fork (and did not take it back), every
// member on that branch bars our Commit (it looks exactly like a removed
// member's replay) and ignores our claims, so the key does not decide:
// this member bars its own Commit like they do, switches to their branch
// and is out there, a removed member like any other (a re-add reaches it
// by the normal path). It judges the claimed branch from its own tree;
// when it does not hold it, it fetches the messages since the fork
// (CatchUp) and judges at the next claim. README.md "Removed members".
// It reports that the claim was settled here.
func (m *Machine[S]) concede(v Verdict, c Claim) bool {
	o, ok := m.nodes[v.Ours.Hash]
	if !ok || !o.canon || o.barred || o.info.Sender != m.cfg.Self || o.key.Class != ClassRemove ||
		c.Tip <= v.Epoch+1 || !m.TrustClaim(c.Signer, v.Epoch) {
		return false
	}
	t, ok := m.nodes[v.Theirs.Hash]
	out, held := false, ok && t.parent == o.parent && !t.barred && !t.gone
	for _, e := range c.Entries {
		if e.Epoch <= v.Epoch {
			continue
		}
		n, ok := m.nodes[e.Hash]
		if !ok {
			held = false
			continue
		}
		if removes(n, m.cfg.Self) {
			out = true
		} else if slices.Contains(n.info.Added, m.cfg.Self) {
			out = false
		}
	}
	if !out {
		if !held {
			// Fetch the claimed branch from the fork on: it may remove us.
			m.lagging = true
			if f, ok := m.fetchFork.get(); !ok || v.Epoch < f {
				m.fetchFork = some(v.Epoch)
			}
		}
		return false
	}
	if t == nil || t.parent != o.parent || t.barred || t.gone || !descend(t).live {
		return false
	}
	if debugf != nil {
		debugf("%s: concedes its Commit %s at %d: %s's branch removed it since", m.cfg.Self, o.id, v.Epoch, c.Signer)
	}
	o.barred, o.conceded = true, true
	p := o.parent
	p.best = t
	m.recanon(p)
	return true
}

// liftBar lets a barred Commit win after all when a trusted claim (a
// member at the fork that the canonical chain has not removed since) shows
// that its branch is the group's: the bar is judged by arrival order (a
// Commit that raced its sender's removal is barred by the members that saw
// the removal first, not by the others), and the claims settle such a race
// by key as for any fork. A removed member's own claims are not trusted
// (TrustClaim), so it cannot lift the bar on its replayed Commits.
func (m *Machine[S]) liftBar(k Key) {
	n, ok := m.nodes[k.Hash]
	if !ok || !n.barred || n.gone {
		return
	}
	n.barred = false
	p := n.parent
	if p == nil || p.gone || (p.best != nil && !n.key.Less(p.best.key)) {
		return
	}
	m.restoreVictims(n)
	if !descend(n).live {
		// The barred branch's states were released while it lost (it fell
		// out of the window behind this member's own branch): a switch
		// would leave this member at a tip it cannot process anything
		// on. The claim's loss stands (loseTo) and it rejoins the branch
		// like any member whose losing states expired.
		if debugf != nil {
			debugf("%s: bar on %s lifted, its branch released: rejoin", m.cfg.Self, n.id)
		}
		return
	}
	if debugf != nil {
		debugf("%s: bar on %s lifted by a claim", m.cfg.Self, n.id)
	}
	p.best = n
	if p.canon {
		m.recanon(p)
	}
}

// restoreVictims is called when a lifted bar lets n win its epoch: when
// this member's chain had removed n's sender after n's parent (n is a
// removed member's Commit, replayed from a state it kept or racing its
// removal, that a member which had not processed the removal took and
// vouched for), the members n removed are re-added: this member intends
// their add (README.md "Removed members", "Restoration"). The fork choice
// itself is untouched; the add is an ordinary Commit, re-proposed until a
// canonical Commit after n adds the member back (intentStatus), so several
// restorers converge on one re-add and a later removal by the group
// stands. This member itself, if n removed it, is restored by the others.
func (m *Machine[S]) restoreVictims(n *node[S]) {
	x := n.info.Sender
	if x == "" || !(n.senderOut || m.RemovedSince(x, n.key.Epoch+1)) {
		return
	}
	if m.reinstated == nil {
		m.reinstated = map[string]uint64{}
	}
	if e, ok := m.reinstated[x]; !ok || n.key.Epoch < e {
		m.reinstated[x] = n.key.Epoch
	}
	m.restoreRemoved(n)
}

// reinstatedCommit is called for each Commit that becomes canonical: a
// removal by a member reinstated by its own lifted Commit (restoreVictims),
// made on top of it, is restored like that Commit's; the group's removal
// of the member landing again ends it.
func (m *Machine[S]) reinstatedCommit(n *node[S]) {
	if len(m.reinstated) == 0 || !n.hasKey {
		return
	}
	for _, id := range n.info.Removed {
		if e, ok := m.reinstated[id]; ok && n.key.Epoch > e && !slices.Contains(n.info.Added, id) {
			delete(m.reinstated, id)
		}
	}
	if e, ok := m.reinstated[n.info.Sender]; ok && n.key.Epoch > e {
		m.restoreRemoved(n)
	}
}

// restoreRemoved intends the re-add of each member n removed (but its
// sender and this member).
func (m *Machine[S]) restoreRemoved(n *node[S]) {
	x := n.info.Sender
	for _, id := range n.info.Removed {
		if id == x || id == m.cfg.Self || slices.Contains(n.info.Added, id) {
			continue
		}
		if slices.ContainsFunc(m.intents, func(is *intentState) bool {
			return is.Target == id && is.Kind != Update && !m.appliedBefore(is, n)
		}) {
			continue // already intended (or this member wants it out)
		}
		if debugf != nil {
			debugf("%s: restores %s, removed by %s's Commit %s at %d", m.cfg.Self, id, x, n.id, n.key.Epoch)
		}
		m.intents = append(m.intents, &intentState{
			Intent:  Intent{ID: fmt.Sprintf("restore/%d/%s", n.key.Epoch, id), Kind: Add, Target: id},
			base:    n.key.Epoch + 1,
			restore: true,
		})
	}
}

// appliedBefore reports whether an own add was applied by the canonical
// chain before n (at or below n's parent): n removing its target undid it,
// so it does not stand for a restore. (An own add not yet final when the
// replay came, e.g. the group's creation, kept the victim out: the add
// stayed "carried by a canonical Commit" and was never re-proposed.)
func (m *Machine[S]) appliedBefore(is *intentState, n *node[S]) bool {
	if is.Kind != Add {
		return false
	}
	if is.isSat && is.satisfied <= n.key.Epoch {
		return true
	}
	c, ok := m.nodes[is.carrier]
	return ok && c.canon && c.hasKey && c.key.Epoch < n.key.Epoch
}

// debugf is set by tests to trace decisions.
var debugf func(format string, args ...any)

// loseTo records that this member's branch lost the fork at epoch to
// theirs (or that it lags too far behind to catch up). It reports whether
// that is news (then the caller runs the timers: rejoin, announce).
func (m *Machine[S]) loseTo(epoch uint64, theirs Key, c Claim, lag bool) bool {
	if m.lost != nil && m.lost.epoch == epoch && m.lost.theirs.Compare(theirs) <= 0 && c.Tip <= m.lost.claim.Tip &&
		(len(m.lost.claim.GroupInfo) > 0 || len(c.GroupInfo) == 0) {
		return false // nothing newer
	}
	since := m.now
	var prev *lostFork
	if m.lost != nil && m.lost.epoch == epoch {
		since = m.lost.since
		if !lag && !m.lost.lag && m.lost.theirs.Compare(theirs) == 0 {
			prev = m.lost // a newer claim for the same loss: same vouchers
		}
	}
	old := m.lost
	m.lost = &lostFork{epoch: epoch, theirs: theirs, claim: c, since: since, lag: lag}
	if prev != nil {
		m.lost.vouchers, m.lost.firm, m.lost.undo = prev.vouchers, prev.firm, prev.undo
	} else if old != nil {
		// It replaces another loss, which withdrawing this one would not
		// bring back: never withdrawn.
		m.lost.firm = true
	}
	m.lostAt = some(epoch)
	if lag {
		// Any Commit at that epoch, once caught up, ends the lag.
		m.lost.theirs = Key{Epoch: epoch, Class: 255}
	}
	return true
}

// announce emits a claim, rate-limited unless it answers a request.
func (m *Machine[S]) announce(want *Range, answer bool) {
	if !answer && m.announced && m.now.Sub(m.lastAnnounce) < m.cfg.AnnounceInterval {
		m.evidence = true
		return
	}
	m.announced, m.lastAnnounce, m.evidence = true, m.now, false
	defer func() { m.stale = nil }() // asked for in this claim
	if !m.IsMember() {
		m.announceCount++
	} else {
		m.announceCount = 0
	}
	m.emit(Announce{Claim: m.MakeClaim(want)})
}

// timers runs what waits on time: evidence of other branches, catch-up,
// rejoin after the grace period.
func (m *Machine[S]) timers() {
	for _, pm := range m.pending {
		if m.now.Sub(pm.at) < m.cfg.OrphanTime {
			continue
		}
		if pm.epoch <= m.tip.epoch && !pm.noted {
			// A Commit no retained state accepts, or a message no
			// retained state opens: a branch this member does not have
			// (e.g. a joiner whose join Commit lost, in a group that has
			// nothing more to commit: only a claim can tell it).
			pm.noted = true
			m.evidence = true
		} else if pm.epoch > m.tip.epoch {
			// Stuck behind: fetch what is missing, and tell the others
			// where we are, so that they answer if our branch lost.
			m.lagging, m.evidence = true, true
		}
	}
	if !m.IsMember() && m.standing.quiet() {
		// Out of the group for good (a member's claim confirmed the
		// branch that removed us): nothing to catch up with or announce.
		m.evidence, m.lagging = false, false
	}
	interval := m.cfg.AnnounceInterval
	if !m.IsMember() {
		// Removed (on our branch at least): back off, the group owes us
		// nothing unless our branch lost.
		interval *= time.Duration(min(64, 1+m.announceCount))
	}
	if m.evidence && (!m.announced || m.now.Sub(m.lastAnnounce) >= interval) {
		m.announce(nil, false)
	}
	if m.lagging && (m.lastCatchUp.IsZero() || m.now.Sub(m.lastCatchUp) >= interval) {
		m.lagging, m.lastCatchUp = false, m.now
		from := m.tip.epoch
		if f, ok := m.fetchFork.get(); ok && f < from {
			from = f
		}
		m.fetchFork = opt[uint64]{}
		m.emit(CatchUp{From: from})
	}
	if l := m.lost; l != nil && !l.lag && !m.withdrawLoss() {
		// Our branch may have changed since: the claim must still win.
		v := CompareHistories(m.History(), l.claim.Entries)
		if v.Kind != Fork || !v.Theirs.Less(v.Ours) {
			m.lost = nil
		} else if v.Epoch != l.epoch {
			l.epoch, l.theirs, l.since = v.Epoch, v.Theirs, m.now
			l.firm = true // another fork: the vouchers were for the old one
		}
	}
	if l := m.lost; l != nil {
		deep := l.epoch < m.root.epoch
		if (deep || m.now.Sub(l.since) >= m.cfg.RejoinGrace) && len(l.claim.GroupInfo) == 0 {
			// A claim without a GroupInfo (its signer is out of the group
			// at its tip: a removed member's state cannot be joined) tells
			// us we lost, not how to rejoin: ask the winners.
			m.announce(nil, false)
		} else if (deep || m.now.Sub(l.since) >= m.cfg.RejoinGrace) &&
			(m.lastRejoin.IsZero() || m.now.Sub(m.lastRejoin) >= m.cfg.RejoinRetry) {
			if !m.lastRejoin.IsZero() {
				// A retry: the GroupInfo we hold may be stale, ask the
				// winners for fresh claims too.
				m.announce(nil, false)
			}
			m.lastRejoin = m.now
			m.emit(Rejoin{GroupInfo: l.claim.GroupInfo, Signer: l.claim.Signer, ForkEpoch: l.epoch, Epoch: l.claim.Tip})
		}
	}
}

// rosterAtEpoch returns the members at epoch as this member knows them.
func (m *Machine[S]) rosterAtEpoch(epoch uint64) map[string]bool {
	out := map[string]bool{}
	for id := range m.events {
		if m.WasMember(id, epoch) {
			out[id] = true
		}
	}
	for id := range m.tipRoster {
		if m.WasMember(id, epoch) {
			out[id] = true
		}
	}
	return out
}
