package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
)

// Welcomes for this member, claims and rejoins: forks older than the
// machine's window heal by announcing the branch we are on and rejoining
// the winning one through an external Commit.

// liveMember reports whether the group is running its fork choice (a
// member, or removed moments ago and still listening).
func (g *group) liveMember() bool {
	g.view.mu.RLock()
	defer g.view.mu.RUnlock()
	return g.view.live
}

// maxRefusedWelcomes bounds the Welcomes kept for a later decision.
const maxRefusedWelcomes = 8

type refusedWelcome struct {
	env     *welcomeEnvelope
	tree    []byte
	inviter inviterInfo
	warning string
	from    p2p.PeerID
	// until: a Welcome held only while a claim may still lift a bar
	// (ErrAdderRemoved) is dropped after it; zero: held as long as the
	// bound allows.
	until time.Time
}

// heldWelcomeTTL is how long a Welcome into a branch our chain bars waits
// for a claim that shows the group went that way (a restore re-add): a few
// claim round trips, not the life of the group, so that a member's
// Welcome into a removed member's branch does not make us ask for claims
// for ever.
const heldWelcomeTTL = 2 * time.Minute

// welcomeForMember handles a Welcome into a group this member already
// runs. It is a fork heal only if it proves to continue this member's
// group (welcomeContinues: its adder was a member of a state of our own
// canonical chain and knew that state's secrets); then it replaces the
// state when the fork choice says it leads forward (our join Commit lost,
// our branch lost, we were removed on a branch that lost), else it is kept
// and asked about again later; so is one into a branch our chain bars
// (its first Commit a removed member's: a restore re-add, askForClaims),
// for heldWelcomeTTL. A Welcome that does not prove it is
// somebody else's group with the same id: at most a separate invitation,
// which the user sees as such and must accept explicitly.
func (g *group) welcomeForMember(env *welcomeEnvelope, tree []byte, inviter inviterInfo, warning string, from p2p.PeerID) {
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
		if errors.Is(err, ordering.ErrNotForward) || errors.Is(err, ordering.ErrAdderRemoved) {
			if len(g.refused) < maxRefusedWelcomes {
				r := refusedWelcome{env: env, tree: tree, inviter: inviter, warning: warning, from: from}
				if errors.Is(err, ordering.ErrAdderRemoved) {
					r.until = e.now().Add(heldWelcomeTTL)
				}
				g.refused = append(g.refused, r)
			}
			if errors.Is(err, ordering.ErrAdderRemoved) {
				g.askForClaims()
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
	g.sync.from = st.Epoch()
	g.catchUp(true)
}

// identityOf returns the credential identity of p's leaf in st (the id
// the fork choice knows members by), or "" when p has none.
func identityOf(st *mls.Group, p p2p.PeerID) string {
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
func (g *group) separateWelcome(st *mls.Group, env *welcomeEnvelope, tree []byte, inviter inviterInfo, warning string, from p2p.PeerID) {
	e := g.e
	name := g.settings.Name
	what := fmt.Sprintf("%s invited you into a different group that claims the id of %s; it does not continue your group", inviter.name, name)
	if warning != "" {
		what += " (" + warning + ")"
	}
	e.log.Warn("welcome for a group we are in does not continue it", "group", g.gid, "from", from)
	// The invitation is listed before the notice that says so goes out: a
	// front end that reacts to the notice finds it.
	if err := e.addInvitation(g.ctx, st, env, tree, from, inviter, what, true); err != nil {
		e.log.Warn("keeping a separate invitation", "err", err)
		e.notice(g.gid, NoticeWarning, "%s. Your group is unchanged; the invitation was not kept.", what)
		return
	}
	e.notice(g.gid, NoticeWarning, "%s. Your group is unchanged; the invitation is listed separately (/decline %s drops it).", what, invitationID(env.Welcome))
}

// askForClaims sends this member's claim to its roster, at most once per
// claimAskInterval. A proven Welcome into a branch that starts with (or
// was made by) a member this member's chain removed is what a restore
// re-add looks like to its victim (ordering README, "Restoration"): the
// removed member's Commit became canonical through a trusted claim that
// has not reached this member yet (the lagging member's claims go to its
// own roster, which no longer lists the victim). The members answer a
// claim that lost with theirs; a trusted one lifts the bar here, and the
// held Welcome (retryRefused) then passes CheckWelcome. Nothing is taken
// from the Welcome itself: it is held, not trusted, and an adder's
// Welcome into a branch that no trusted member claims is dropped after
// heldWelcomeTTL; until then it is asked about again at each tick, and we
// ask for claims at most once per claimAskInterval.
func (g *group) askForClaims() {
	if g.m == nil || (!g.askedAt.IsZero() && g.e.now().Sub(g.askedAt) < claimAskInterval) {
		return
	}
	g.askedAt = g.e.now()
	g.announce(g.m.MakeClaim(nil))
}

// claimAskInterval rate-limits askForClaims: a stream of Welcomes makes a
// member send at most one claim per interval.
const claimAskInterval = 5 * time.Second

// retryRefused asks again about Welcomes the fork choice refused.
func (g *group) retryRefused() {
	refused := g.refused
	g.refused = nil
	now := g.e.now()
	for _, r := range refused {
		if !r.until.IsZero() && now.After(r.until) {
			g.e.log.Info("held welcome dropped: no claim showed the group on its branch", "group", g.gid, "from", r.from)
			continue
		}
		n := len(g.refused)
		g.welcomeForMember(r.env, r.tree, r.inviter, r.warning, r.from)
		if len(g.refused) > n && !r.until.IsZero() {
			g.refused[len(g.refused)-1].until = r.until // held again: keep its deadline
		}
	}
}

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
	var targets []p2p.PeerID
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
func (g *group) knowsKey(p p2p.PeerID, key []byte) bool {
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
