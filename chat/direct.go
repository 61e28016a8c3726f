package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Direct conversations.
//
// `/dm CONTACT` opens a two-member group with one peer. It is an ordinary
// MLS group whose settings (the CanopyGroupSettings GroupContext
// extension, ext.go) carry the direct flag, so the flag is as
// authenticated as the group itself: only members can commit, and the
// invitee reads it from the GroupContext its Welcome proves, never from
// anything a relay or a stranger could set. The wire name of a direct
// group is empty: each side names it after the other member, as its own
// roster knows them.
//
// Every member enforces the rules on every Commit (directCommitRule): the
// flag cannot be set or cleared after creation, and a direct group never
// has more than two members. /invite and /kick refuse locally with a
// clear message; /leave works as in any group.
//
// An existing direct group is reused when its other member has the key
// (fingerprint) of the contact asked for; the nick and the peer id alone
// do not decide it (identity is the key).

var (
	// ErrDirectInvite is returned by /invite in a direct conversation.
	ErrDirectInvite = errors.New("this is a direct conversation; /create a group to add people")
	// ErrDirectKick is returned by /kick in a direct conversation.
	ErrDirectKick = errors.New("this is a direct conversation: nobody can be removed; /leave to end it")
	errDirectRule = errors.New("chat: commit breaks the rules of a direct conversation")
)

// directMaxMembers is the size of a direct conversation.
const directMaxMembers = 2

// directCommitRule checks a Commit that takes base to next against the
// rules of direct conversations. Every member runs it (groupProc), so a
// modified client cannot add a third person or flip the flag.
func directCommitRule(base, next *mls.Group) error {
	was, is := settingsOf(base.Extensions()).Direct, settingsOf(next.Extensions()).Direct
	if was != is {
		return fmt.Errorf("%w: the direct flag changed", errDirectRule)
	}
	if is && next.MemberCount() > directMaxMembers {
		return fmt.Errorf("%w: %d members", errDirectRule, next.MemberCount())
	}
	return nil
}

// checkDirectWelcome refuses a Welcome into a "direct" group that has
// more than two members (a malformed or hostile group).
func checkDirectWelcome(st *mls.Group) error {
	if settingsOf(st.Extensions()).Direct && st.MemberCount() != directMaxMembers {
		return fmt.Errorf("%w: a direct conversation with %d members", errDirectRule, st.MemberCount())
	}
	return nil
}

// directPeerName names the other member of a joined direct group as this
// profile knows them (empty if there is none).
func (e *Engine) directPeerName(st *mls.Group) string {
	for _, m := range st.Members() {
		p, err := peerOfCredential(&m.Credential)
		if err != nil || p == e.id.id {
			continue
		}
		return e.displayName(p, leafNick(m.LeafNode))
	}
	return ""
}

// applyDirectView names a direct group's view after its other member
// (g.mu held) and reports whether the name or the key flag changed. After
// the peer left, the last known name stays.
func applyDirectView(v *GroupView, members []Member) (changed bool) {
	if !v.Direct {
		return false
	}
	was, wasChanged := v.Name, v.PeerKeyChanged
	for _, m := range members {
		if m.Self {
			continue
		}
		v.Peer, v.PeerKeyChanged = m.Nick, m.KeyChanged
		break
	}
	if v.Peer == "" {
		v.Peer = v.Name
	}
	v.Name = v.Peer
	return v.Name != was || v.PeerKeyChanged != wasChanged
}

// directTarget is the peer a /dm names, with the fingerprint it is known
// by (nil if unknown yet).
type directTarget struct {
	peer p2p.PeerID
	card *Card
	fp   []byte
}

func (e *Engine) resolveDirect(arg string) (directTarget, error) {
	p, card, err := e.resolvePeerInput(arg)
	if err != nil {
		return directTarget{}, err
	}
	if p == e.id.id {
		return directTarget{}, errors.New("you cannot message yourself directly")
	}
	t := directTarget{peer: p, card: card}
	if card != nil {
		t.fp = card.Fingerprint
	} else {
		e.mu.Lock()
		if ci := e.contacts[p]; ci != nil && len(ci.fp) > 0 {
			t.fp = bytes.Clone(ci.fp)
		}
		e.mu.Unlock()
	}
	return t, nil
}

// findDirect returns the direct group, still active, whose other member has
// the key fp.
func (e *Engine) findDirect(fp []byte) *group {
	if len(fp) == 0 {
		return nil
	}
	gs := e.groupList()
	var best *group
	for _, g := range gs {
		v := g.view.snapshot()
		if !v.Direct || v.Left {
			continue
		}
		g.view.mu.RLock()
		hit := false
		for _, in := range g.view.infos {
			if in.peer != e.id.id && bytes.Equal(in.fp, fp) {
				hit = true
			}
		}
		g.view.mu.RUnlock()
		if hit && (best == nil || v.LastAt.After(best.view.snapshot().LastAt)) {
			best = g
		}
	}
	return best
}

// dm opens the direct conversation with a contact, creating it if there
// is none.
func (e *Engine) dm(ctx context.Context, arg string) (Result, error) {
	t, err := e.resolveDirect(arg)
	if err != nil {
		return Result{}, err
	}
	if g := e.findDirect(t.fp); g != nil {
		return Result{Text: "direct conversation with " + g.view.snapshot().Name, Group: g.gid}, nil
	}
	invitees, err := e.prepareInvitees(ctx, []string{arg})
	if err != nil {
		return Result{}, err
	}
	in := invitees[0]
	// The key offered now may be the first we learn for this peer: look
	// again by it before making a second conversation.
	if g := e.findDirect(in.fp); g != nil {
		return Result{Text: "direct conversation with " + g.view.snapshot().Name, Group: g.gid}, nil
	}
	g, err := e.createDirect(ctx, in)
	if err != nil {
		return Result{}, err
	}
	done := make(chan error, 1)
	if err := g.do(ctx, func() {
		g.intents.queue = append(g.intents.queue, change{kind: changeAdd, kp: in.kp, peer: in.peer, done: done})
		g.flush()
	}); err != nil {
		return Result{Group: g.gid}, err
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return Result{Group: g.gid}, err
	}
	return Result{Text: "direct conversation with " + e.displayName(in.peer, "") + " started: they see it once they /accept", Group: g.gid}, nil
}

// createDirect makes the one-member group a direct conversation with in
// starts as (the Add follows in its own Commit, as /create does).
func (e *Engine) createDirect(ctx context.Context, in *invitee) (*group, error) {
	gid := make([]byte, 16)
	if _, err := rand.Read(gid); err != nil {
		return nil, err
	}
	exts, err := groupExtensions(nil, groupSettings{Direct: true})
	if err != nil {
		return nil, err
	}
	leafExt, err := profileExtension(e.nick())
	if err != nil {
		return nil, err
	}
	opts := append([]mls.Option{mls.WithGroupExtensions(exts), mls.WithCapabilities(capabilities()), mls.WithLeafExtensions(leafExt)}, e.mlsOptions()...)
	st, err := mls.CreateGroup(suite, gid, e.id.sigPriv, e.id.cred, opts...)
	if err != nil {
		return nil, err
	}
	name := e.displayName(in.peer, leafNick(&in.kp.LeafNode))
	meta, _ := json.Marshal(groupMeta{LastPath: e.now().Unix()})
	// The stored name is the local fallback (the wire name is empty).
	row := store.Group{ID: gid, Name: name, Meta: meta, CreatedAt: e.now(), UpdatedAt: e.now()}
	state, err := st.MarshalState()
	if err != nil {
		return nil, err
	}
	g := e.newGroup(row, st, nil)
	line := g.systemLine("you started a direct conversation with %s", name)
	if _, err := e.db.CommitEpoch(ctx, store.EpochTransition{GroupID: gid, Epoch: st.Epoch(), State: state, Group: &row, Messages: []store.Message{line}}); err != nil {
		return nil, err
	}
	g.start()
	g.post(func() {
		g.unpark()
		g.emitRows([]store.Message{line}, nil)
		g.refreshMembers(true)
	})
	return g, nil
}
