package chat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Invitations.
//
// The inviter fetches the invitee's KeyPackage over /canopy/keypackage/1
// (from the invitee, or from a relay holding it), commits the Add and
// sends the Welcome over /canopy/inbox/1 (or leaves it in relays'
// mailboxes; if neither works it is kept in the outbox and retried when
// the invitee connects). The invitee opens the Welcome at once (fetching
// the ratchet tree over /canopy/tree/1 when the Welcome leaves it out) to
// check it and learn the group's name, and keeps it as a pending
// invitation (in the store, sealed, so that it survives a restart) until
// the user accepts or declines. Accepting joins the group at the
// Welcome's epoch and catches up from there; declining discards the
// Welcome and its KeyPackage and asks the inviter to remove the leaf.

// invitation is a pending invitation. Its JSON is the sealed payload of
// its store row (and was the format of the legacy files): keep the field
// names stable.
type invitation struct {
	ID        string     `json:"id"`
	Welcome   []byte     `json:"welcome"`
	From      p2p.PeerID `json:"from"`
	Tree      []byte     `json:"tree,omitempty"`
	History   [][]byte   `json:"history,omitempty"` // the adder's compact history (encodeKey)
	GroupID   []byte     `json:"group_id"`
	GroupName string     `json:"group_name"`
	FromNick  string     `json:"from_nick"`
	At        time.Time  `json:"at"`
	// Warning says in plain words what is not as it seems (invite.go
	// describeInviter, welcomeForMember).
	Warning string `json:"warning,omitempty"`
	// Inviter is the authenticated inviter (the leaf that signed the
	// envelope), empty if none; From is only who delivered it.
	Inviter p2p.PeerID `json:"inviter,omitempty"`
	// Separate: a Welcome into a group with the id of one we are in that
	// does not continue it; accepting it needs leaving that group first.
	Separate bool `json:"separate,omitempty"`
	// Direct: a direct conversation (/dm, direct.go).
	Direct bool `json:"direct,omitempty"`
}

func (inv *invitation) view() Invitation {
	return Invitation{ID: inv.ID, GroupName: inv.GroupName, From: inv.FromNick, At: inv.At, Warning: inv.Warning, Direct: inv.Direct}
}

// Pending invitations live in the store (store.InvitationStore), sealed
// like the profile's other secrets: the row's payload is the JSON of
// invitation. Older versions kept them in clear as
// ProfileDir/invitations/ID.json; loadInvitations imports those files on
// start and removes each one only after its row committed.

// legacyInvitationDir is where older versions kept pending invitations.
func (e *Engine) legacyInvitationDir() string {
	if e.cfg.ProfileDir == "" {
		return ""
	}
	return filepath.Join(e.cfg.ProfileDir, "invitations")
}

func (e *Engine) saveInvitation(ctx context.Context, inv *invitation) error {
	b, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	return e.db.PutInvitation(ctx, store.Invitation{ID: inv.ID, Payload: b, CreatedAt: inv.At})
}

// forgetInvitation drops an invitation from memory only (its row is gone,
// or goes in the same transaction as the join).
func (e *Engine) forgetInvitation(id string) {
	e.mu.Lock()
	delete(e.invites, id)
	e.mu.Unlock()
}

func (e *Engine) deleteInvitation(ctx context.Context, id string) {
	e.forgetInvitation(id)
	if err := e.db.DeleteInvitation(ctx, id); err != nil {
		e.log.Warn("deleting invitation", "id", id, "err", err)
	}
}

// loadInvitations imports legacy invitation files, then loads the pending
// invitations from the store.
func (e *Engine) loadInvitations() {
	ctx := e.ctx
	e.importLegacyInvitations(ctx)
	rows, err := e.db.ListInvitations(ctx)
	if err != nil {
		e.log.Warn("loading invitations", "err", err)
		return
	}
	for _, r := range rows {
		var inv invitation
		if err := json.Unmarshal(r.Payload, &inv); err != nil || inv.ID != r.ID {
			e.log.Warn("unreadable invitation left in the store", "id", r.ID, "err", err)
			continue
		}
		e.mu.Lock()
		e.invites[inv.ID] = &inv
		e.mu.Unlock()
	}
}

// importLegacyInvitations moves ProfileDir/invitations/*.json into the
// store. A file is removed only after its invitation is committed to the
// store; a file that cannot be read or stored stays where it is (and is
// tried again on the next start).
func (e *Engine) importLegacyInvitations(ctx context.Context) {
	dir := e.legacyInvitationDir()
	if dir == "" {
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			e.log.Warn("reading legacy invitations", "err", err)
		}
		return
	}
	n := 0
	for _, ent := range ents {
		if !strings.HasSuffix(ent.Name(), ".json") || ent.IsDir() {
			continue
		}
		path := filepath.Join(dir, ent.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			e.log.Warn("reading legacy invitation", "file", path, "err", err)
			continue
		}
		var inv invitation
		if err := json.Unmarshal(b, &inv); err != nil || inv.ID == "" {
			e.log.Warn("legacy invitation file not understood; left in place", "file", path, "err", err)
			continue
		}
		if err := e.saveInvitation(ctx, &inv); err != nil {
			e.log.Warn("importing legacy invitation; file left in place", "file", path, "err", err)
			continue
		}
		if err := os.Remove(path); err != nil {
			e.log.Warn("removing imported invitation file", "file", path, "err", err)
			continue
		}
		n++
	}
	if n > 0 {
		e.log.Info("imported legacy invitations into the store", "count", n)
	}
	_ = os.Remove(dir) // only when empty
}

// rootKeyOf finds, in the adder's history, the key of the Commit that
// created epoch (the one a Welcome joins).
func rootKeyOf(hist []ordering.Entry, epoch uint64) *ordering.Key {
	for i := range hist {
		if epoch > 0 && hist[i].Epoch == epoch-1 {
			k := hist[i]
			return &k
		}
	}
	return nil
}

// onWelcome handles a Welcome received directly or from a relay mailbox.
// from is only a hint (where to fetch the ratchet tree, who delivered it
// when src is viaStream): the inviter is the leaf that signed the envelope.
func (e *Engine) onWelcome(ctx context.Context, src inboxSource, from p2p.PeerID, topic string, data []byte) error {
	env, err := decodeWelcome(data)
	if err != nil {
		return err
	}
	welcome := env.Welcome
	id := invitationID(welcome)
	e.mu.Lock()
	_, known := e.invites[id]
	e.mu.Unlock()
	if known {
		return nil
	}
	bundle, _, err := e.welcomeBundle(ctx, welcome)
	if err != nil {
		e.log.Info("welcome not usable", "from", from, "err", err)
		return fmt.Errorf("%w: %v", p2p.ErrBadRequest, err)
	}
	sources := e.reinitSources(ctx)
	opts := e.mlsOptions()
	for old := range sources {
		opts = append(opts, mls.WithResumptionGroups(old))
	}
	sw, err := mls.OpenWelcome(welcome, []*mls.KeyPackageBundle{bundle}, opts...)
	if errors.Is(err, mls.ErrMissingPSK) {
		e.holdForReInit(src, from, topic, data)
	}
	if err != nil {
		e.log.Info("welcome not usable", "from", from, "err", err)
		return fmt.Errorf("%w: %v", p2p.ErrBadRequest, err)
	}
	gid := sw.GroupID()
	if topic != "" && topic != p2p.TopicName(gid) {
		return fmt.Errorf("%w: welcome for another topic", p2p.ErrBadRequest)
	}
	var tree []byte
	if sw.NeedsRatchetTree() {
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		tree, err = e.node.FetchTree(tctx, from, p2p.TreeRequest{Topic: p2p.TopicName(gid), Epoch: sw.Epoch(), TreeHash: sw.TreeHash()})
		cancel()
		if err != nil {
			e.log.Warn("fetching ratchet tree for a welcome", "from", from, "err", err)
			return fmt.Errorf("fetching the ratchet tree: %w", err)
		}
	}
	st, err := sw.Join(tree)
	if err == nil {
		err = checkDirectWelcome(st)
	}
	if err != nil {
		e.log.Warn("invalid welcome", "from", from, "err", err)
		return fmt.Errorf("%w: %v", p2p.ErrBadRequest, err)
	}
	inviter, warning := e.describeInviter(st, env, src, from)
	if old, ok := continuesReInit(sw, st, sources); ok && warning == "" {
		return e.joinReInit(ctx, old, st, welcome, inviter.name)
	}
	e.mu.Lock()
	existing := e.groups[string(gid)]
	e.mu.Unlock()
	if existing != nil && existing.liveMember() && !existing.view.snapshot().Left {
		// A Welcome into a group we are in (say our join Commit lost and
		// the adder added us again): it is a fork heal only if it proves
		// to continue our group (welcomeForMember), else at most a
		// separate invitation.
		existing.post(func() { existing.welcomeForMember(env, tree, inviter, warning, from) })
		return nil
	}
	return e.addInvitation(ctx, st, env, tree, from, inviter, warning, false)
}

func invitationID(welcome []byte) string {
	sum := sha256.Sum256(welcome)
	return hex.EncodeToString(sum[:4])
}

// describeInviter names the inviter of a joined Welcome for the user: the
// leaf that signed the envelope; for an unsigned (older) envelope, the
// peer that delivered it directly, never a relay's sender field. warning
// says in plain words what is not as it seems: a signing key that is not
// the one known for that contact, an inviter nobody vouches for.
func (e *Engine) describeInviter(st *mls.Group, env *welcomeEnvelope, src inboxSource, from p2p.PeerID) (who inviterInfo, warning string) {
	if m, ok := adderOf(st, env); ok {
		p, err := peerOfCredential(&m.Credential)
		if err != nil {
			return inviterInfo{name: "someone unknown"}, "the inviter's credential is not a peer id"
		}
		name := e.displayName(p, leafNick(m.LeafNode))
		who = inviterInfo{peer: p, name: name}
		fp := Fingerprint(uint16(suite), m.SignatureKey)
		e.mu.Lock()
		ci := e.contacts[p]
		e.mu.Unlock()
		if ci != nil && len(ci.fp) > 0 && !bytes.Equal(ci.fp, fp) {
			warning = fmt.Sprintf("the inviter uses the name of %s but not the key you know for %s (fingerprint %s)", name, name, FormatFingerprint(fp))
		}
		return who, warning
	}
	if src == viaStream && memberOf(st, from) {
		return inviterInfo{peer: from, name: e.displayName(from, "")}, "the invitation is not signed by its inviter (an older version?)"
	}
	return inviterInfo{name: "someone unknown"}, "the invitation is not signed by its inviter and came through a relay: nobody vouches for it"
}

// inviterInfo is who sent an invitation as far as it is authenticated:
// peer is empty when nobody is.
type inviterInfo struct {
	peer p2p.PeerID
	name string
}

// addInvitation keeps a joined Welcome as a pending invitation and tells
// the user. separate marks a Welcome for a group we are in that does not
// continue it (welcomeForMember).
func (e *Engine) addInvitation(ctx context.Context, st *mls.Group, env *welcomeEnvelope, tree []byte, from p2p.PeerID, inviter inviterInfo, warning string, separate bool) error {
	settings := settingsOf(st.Extensions())
	id := invitationID(env.Welcome)
	inv := &invitation{ID: id, Welcome: env.Welcome, From: from, Tree: tree, GroupID: st.GroupID(), GroupName: settings.Name,
		FromNick: inviter.name, Inviter: inviter.peer, At: e.now(), Warning: warning, Separate: separate, Direct: settings.Direct}
	if inv.Direct {
		inv.GroupName = e.directPeerName(st)
	}
	for _, k := range env.History {
		inv.History = append(inv.History, encodeKey(k))
	}
	inviters := e.knownInviters()
	e.mu.Lock()
	if _, dup := e.invites[id]; dup {
		e.mu.Unlock()
		return nil
	}
	drop, ok := e.makeRoomForInvitation(inv, inviters) // invitecap.go
	if ok {
		e.invites[id] = inv
	}
	e.mu.Unlock()
	for _, d := range drop {
		e.log.Info("pending invitation dropped: too many pending", "id", d)
		e.deleteInvitation(ctx, d)
	}
	if !ok {
		e.log.Info("invitation refused: too many pending from strangers", "from", from)
		return fmt.Errorf("%w: too many pending invitations", p2p.ErrDenied)
	}
	if err := e.saveInvitation(ctx, inv); err != nil {
		e.log.Warn("saving invitation", "id", id, "err", err)
	}
	e.log.Info("invitation received", "id", id, "from", from, "separate", separate)
	e.emit(InvitationEvent{Invitation: inv.view()})
	return nil
}

func (inv *invitation) history() []ordering.Entry {
	var out []ordering.Entry
	for _, b := range inv.History {
		if k, ok := decodeKey(b); ok {
			out = append(out, k)
		}
	}
	return out
}

// findInvitation returns the invitation with id (or the only pending one
// when id is empty).
func (e *Engine) findInvitation(id string) (*invitation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id = strings.TrimSpace(id)
	if id == "" {
		switch len(e.invites) {
		case 0:
			return nil, errors.New("no pending invitation")
		case 1:
			for _, inv := range e.invites {
				return inv, nil
			}
		}
		return nil, errors.New("several invitations are pending: name one (see the invitation's id)")
	}
	if inv, ok := e.invites[id]; ok {
		return inv, nil
	}
	var hit *invitation
	for _, inv := range e.invites {
		if strings.EqualFold(inv.GroupName, id) || strings.HasPrefix(inv.ID, id) {
			if hit != nil {
				return nil, fmt.Errorf("%q matches several invitations", id)
			}
			hit = inv
		}
	}
	if hit == nil {
		return nil, fmt.Errorf("no invitation %q", id)
	}
	return hit, nil
}

// bundleFor finds the KeyPackage a Welcome is addressed to.
func (e *Engine) bundleFor(ctx context.Context, welcome []byte) (*mls.KeyPackageBundle, []byte, error) {
	return e.welcomeBundle(ctx, welcome)
}

// accept joins the group of an invitation.
func (e *Engine) accept(ctx context.Context, id string) (*group, error) {
	inv, err := e.findInvitation(id)
	if err != nil {
		return nil, err
	}
	bundle, ref, err := e.bundleFor(ctx, inv.Welcome)
	if err != nil {
		return nil, err
	}
	st, err := mls.JoinFromWelcome(inv.Welcome, bundle, inv.Tree, e.mlsOptions()...)
	if err != nil {
		return nil, fmt.Errorf("joining: %w", err)
	}
	gid := st.GroupID()
	e.mu.Lock()
	old := e.groups[string(gid)]
	e.mu.Unlock()
	if old != nil {
		if !old.view.snapshot().Left {
			if inv.Separate {
				// Never replace a group the user is in behind its back: the
				// user leaves it first, knowingly.
				return nil, fmt.Errorf("this invitation is into a different group that claims the id of %s, which you are in: /leave %s first to accept it, or /decline %s", old.view.snapshot().Name, old.view.snapshot().Name, inv.ID)
			}
			e.deleteInvitation(ctx, inv.ID)
			return nil, errors.New("you are already a member of this group")
		}
		old.stop()
		e.mu.Lock()
		delete(e.groups, string(gid))
		e.mu.Unlock()
	}
	settings := settingsOf(st.Extensions())
	if settings.Direct {
		settings.Name = e.directPeerName(st) // the local name (direct.go)
	}
	meta := groupMeta{LastPath: e.now().Unix()}
	mb, _ := json.Marshal(meta)
	row := store.Group{ID: gid, Name: settings.Name, Retention: settings.Retention, Meta: mb, CreatedAt: e.now(), UpdatedAt: e.now()}
	state, err := st.MarshalState()
	if err != nil {
		return nil, err
	}
	hist := inv.history()
	var ref0 []byte
	if k := rootKeyOf(hist, st.Epoch()); k != nil {
		ref0 = encodeKey(*k)
	}
	g := e.newGroup(row, st, ref0)
	if g.m != nil {
		g.m.AdoptHistory(hist)
	}
	line := g.systemLine("you joined %s (invited by %s)", settings.Name, inv.FromNick)
	if settings.Direct {
		line = g.systemLine("you accepted the direct conversation with %s", settings.Name)
	}
	if _, err := e.db.CommitEpoch(ctx, store.EpochTransition{
		GroupID: gid, Epoch: st.Epoch(), CommitHash: ref0, State: state, Group: &row,
		Messages: []store.Message{line}, ConsumedKeyPackage: ref, InvitationDone: inv.ID,
	}); err != nil {
		return nil, err
	}
	e.learnJoinedKeys(ctx, g, st)
	e.forgetInvitation(inv.ID)
	g.startJoined(line)
	e.goBackground(func(context.Context) { e.fillKeyPackages(e.ctx) })
	e.log.Info("joined group", "group", g.gid, "epoch", st.Epoch())
	return g, nil
}

// learnJoinedKeys records the keys of the members of a group just joined
// for peers not known yet. A leaf that names a known contact with another
// key does not replace that contact's key (the adder, not the contact,
// put it there): it is flagged as a key change in the member list
// (refreshMembers) and the user is told in plain words.
func (e *Engine) learnJoinedKeys(ctx context.Context, g *group, st *mls.Group) {
	for _, m := range st.Members() {
		p, err := peerOfCredential(&m.Credential)
		if err != nil || p == e.id.id {
			continue
		}
		fp := Fingerprint(uint16(suite), m.SignatureKey)
		e.mu.Lock()
		ci := e.contacts[p]
		e.mu.Unlock()
		if ci != nil && len(ci.fp) > 0 && !bytes.Equal(ci.fp, fp) {
			name := e.displayName(p, leafNick(m.LeafNode))
			e.log.Warn("joined a group where a contact's leaf has another key", "group", g.gid, "peer", p)
			e.notice(g.gid, NoticeWarning, "SECURITY WARNING: in %s, the member called %s has the key %s, not the key you know for %s: it may not be them. Compare safety numbers with /verify %s", g.settings.Name, name, FormatFingerprint(fp), name, name)
			continue
		}
		e.learnKey(ctx, p, fp, nil, leafNick(m.LeafNode))
	}
}

// decline discards an invitation.
func (e *Engine) decline(ctx context.Context, id string) (*invitation, error) {
	inv, err := e.findInvitation(id)
	if err != nil {
		return nil, err
	}
	e.deleteInvitation(ctx, inv.ID)
	// The decline names the declined leaf by its encryption key, and the
	// KeyPackage goes, the last-resort one included (fillKeyPackages makes
	// a new one): no later invitation can carry that key, so a relay that
	// replays this signed decline cannot make the inviter remove us from a
	// group we joined later (control.go).
	var leafKey []byte
	if b, ref, err := e.bundleFor(ctx, inv.Welcome); err == nil {
		leafKey = b.KeyPackage.LeafNode.EncryptionKey
		_ = e.db.DeleteKeyPackage(ctx, ref)
	}
	topic := p2p.TopicName(inv.GroupID)
	e.goBackground(func(ctx context.Context) {
		defer func() { _ = e.fillKeyPackages(ctx) }()
		// A separate invitation shares the topic of our own group and may
		// name one of its members as inviter: nobody there added us, so
		// nobody is told.
		if leafKey == nil || inv.Separate {
			return
		}
		data, err := e.signControl(dmDecline, topic, leafKey)
		if err != nil {
			e.log.Warn("signing a decline", "err", err)
			return
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		msg := p2p.InboxMessage{Kind: p2p.InboxDirect, Topic: topic, Data: data}
		to := inv.Inviter // never a relay's word for who sent the Welcome
		if to == "" {
			to = inv.From
		}
		if _, err := e.node.SendOrDeposit(ctx, to, msg, 5*time.Second, 7*24*time.Hour); err != nil {
			e.log.Debug("decline notice", "err", err)
		}
	})
	return inv, nil
}

// onDecline: an invitee declined; the inviter removes the leaf it added.
// The decline must be signed with the key of that leaf and name its
// encryption key, whatever path it took.
func (e *Engine) onDecline(src inboxSource, relay p2p.PeerID, c *signedControl) {
	e.mu.Lock()
	g := e.byTopic[c.Topic]
	e.mu.Unlock()
	if g == nil {
		return
	}
	g.post(func() {
		if g.closed || g.st == nil {
			return
		}
		if _, ok := g.infoByPeer(c.Sender); !ok {
			return
		}
		if !declineMatches(g.st, c) {
			why := "it does not match the invitation they got (not signed by their key, or a replay)"
			if src == viaMailbox {
				e.distrust(relay, c.Sender, "a decline for "+g.settings.Name, why)
			} else {
				e.log.Warn("decline does not match the invitee's leaf", "group", g.gid, "peer", c.Sender)
			}
			return
		}
		e.notice(g.gid, NoticeInfo, "%s declined the invitation to %s", e.displayName(c.Sender, ""), g.settings.Name)
		g.enqueue(change{kind: changeRemove, peer: c.Sender})
	})
}

// declineMatches reports whether st has the leaf a signed decline names:
// the sender's, with the signing key and the declined encryption key.
func declineMatches(st *mls.Group, c *signedControl) bool {
	for _, m := range st.Members() {
		p, err := peerOfCredential(&m.Credential)
		if err != nil || p != c.Sender {
			continue
		}
		if bytes.Equal(m.SignatureKey, c.SigKey) && bytes.Equal(m.LeafNode.EncryptionKey, c.Body) {
			return true
		}
	}
	return false
}

// fetchKeyPackage gets a KeyPackage of p from p or a relay and checks it:
// valid (RFC 9420 §10.1), for p's peer id, canopy-capable, and with the
// key of the card when one was pasted.
func (e *Engine) fetchKeyPackage(ctx context.Context, p p2p.PeerID, card *Card) (*mls.KeyPackage, []byte, error) {
	return e.fetchKeyPackageFor(ctx, p, card, suite)
}

// fetchKeyPackageFor is fetchKeyPackage for a group of cipher suite cs.
// When p itself answers that it has no package of cs, its client does not
// offer cs: a SuiteUnsupportedError.
func (e *Engine) fetchKeyPackageFor(ctx context.Context, p p2p.PeerID, card *Card, cs mls.CipherSuite) (*mls.KeyPackage, []byte, error) {
	if card != nil {
		e.addContactAddrs(p, card.Addrs)
	} else {
		e.mu.Lock()
		if ci := e.contacts[p]; ci != nil {
			e.addContactAddrs(p, ci.addrs)
		}
		e.mu.Unlock()
	}
	var kpData []byte
	var errs []error
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	kp, err := e.node.FetchKeyPackageForSuite(dctx, p, p, uint16(cs))
	cancel()
	peerLacksSuite := cs != suite && errors.Is(err, p2p.ErrNotFound)
	if err == nil {
		kpData = kp.Data
	} else {
		errs = append(errs, fmt.Errorf("from the peer: %w", err))
		for _, r := range e.relays {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			kp, err := e.node.FetchKeyPackageForSuite(rctx, r.ID, p, uint16(cs))
			cancel()
			if err == nil {
				kpData = kp.Data
				break
			}
			errs = append(errs, fmt.Errorf("from relay %s: %w", shortPeer(r.ID), err))
		}
	}
	if kpData == nil && peerLacksSuite {
		return nil, nil, &SuiteUnsupportedError{Name: e.displayName(p, cardNick(card)), Suite: cs}
	}
	if kpData == nil {
		hint := "" // a pasted card names the invitee by its nick
		if card != nil {
			hint = card.Nick
		}
		return nil, nil, fmt.Errorf("could not get a KeyPackage of %s (offline, and no relay holds one): %w", e.displayName(p, hint), errors.Join(errs...))
	}
	pkg, err := mls.ParseKeyPackage(kpData, mls.WithClock(e.now))
	if err != nil {
		return nil, nil, fmt.Errorf("invalid KeyPackage: %w", err)
	}
	owner, err := peerOfCredential(&pkg.LeafNode.Credential)
	if err != nil || owner != p {
		return nil, nil, errors.New("the KeyPackage is not for that peer")
	}
	if pkg.CipherSuite != cs || !pkg.LeafNode.Capabilities.SupportsExtension(extSettings) {
		return nil, nil, errors.New("that peer runs an incompatible canopy")
	}
	fp := Fingerprint(uint16(suite), pkg.LeafNode.SignatureKey)
	if card != nil && !bytes.Equal(fp, card.Fingerprint) {
		e.notice("", NoticeError, "SECURITY WARNING: the key %s offered for %s does not match the fingerprint on the card (%s); not inviting", FormatFingerprint(fp), card.Nick, FormatFingerprint(card.Fingerprint))
		return nil, nil, errors.New("key does not match the contact card: not invited")
	}
	return pkg, fp, nil
}

// queueWelcome delivers a Welcome to a new member: directly, else into
// relay mailboxes, else kept (outbox) and retried when the peer connects.
func (e *Engine) queueWelcome(to p2p.PeerID, g *group, entryID, welcome []byte, persist bool) {
	if persist {
		if err := e.db.Enqueue(g.ctx, store.OutboxEntry{GroupID: g.id, ID: entryID, Kind: outWelcome, Epoch: g.epoch(), Payload: []byte(to), Wire: welcome}); err != nil {
			e.log.Warn("welcome outbox", "err", err)
		}
	}
	pw := &pendingWelcome{to: to, g: g, id: entryID, welcome: welcome}
	e.mu.Lock()
	e.welcomes = append(e.welcomes, pw)
	e.mu.Unlock()
	e.goBackground(func(ctx context.Context) { e.deliverWelcome(ctx, pw) })
}

type pendingWelcome struct {
	to      p2p.PeerID
	g       *group
	id      []byte
	welcome []byte
	busy    bool
}

func (e *Engine) deliverWelcome(ctx context.Context, pw *pendingWelcome) {
	e.mu.Lock()
	if pw.busy {
		e.mu.Unlock()
		return
	}
	pw.busy = true
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	msg := p2p.InboxMessage{Kind: p2p.InboxWelcome, Topic: pw.g.topicName, Data: pw.welcome}
	d, err := e.node.SendOrDeposit(ctx, pw.to, msg, 5*time.Second, 14*24*time.Hour)
	e.mu.Lock()
	pw.busy = false
	if err == nil {
		for i, x := range e.welcomes {
			if x == pw {
				e.welcomes = append(e.welcomes[:i], e.welcomes[i+1:]...)
				break
			}
		}
	}
	e.mu.Unlock()
	name := e.displayName(pw.to, "")
	if err != nil {
		e.log.Info("welcome not delivered yet; retrying when the peer connects", "to", pw.to, "err", err)
		e.notice(pw.g.gid, NoticeInfo, "%s is offline: the invitation will be delivered when they are online", name)
		return
	}
	e.log.Info("welcome delivered", "to", pw.to, "direct", d.Direct, "relays", len(d.Relays))
	if !d.Direct {
		e.notice(pw.g.gid, NoticeInfo, "%s is offline: the invitation waits on %d relay(s)", name, len(d.Relays))
	}
	_ = e.db.Settle(e.ctx, pw.g.id, pw.id)
}

// retryWelcomes retries Welcomes for a peer that just connected.
func (e *Engine) retryWelcomes(p p2p.PeerID) {
	e.mu.Lock()
	var todo []*pendingWelcome
	for _, pw := range e.welcomes {
		if pw.to == p && !pw.busy {
			todo = append(todo, pw)
		}
	}
	e.mu.Unlock()
	for _, pw := range todo {
		e.goBackground(func(ctx context.Context) { e.deliverWelcome(ctx, pw) })
	}
}

// startJoined starts the loop of a group just joined (its state and first
// line already committed to the store), shows that line and catches up
// with what the group said before we joined.
func (g *group) startJoined(line store.Message) {
	g.start()
	g.refreshMembers(false)
	g.post(func() {
		g.emitRows([]store.Message{line}, nil)
		g.refreshMembers(true)
		g.catchUp(true)
	})
}
