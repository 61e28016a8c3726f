package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Contacts are keyed by peer id (the identity in members' credentials).
// A contact's fingerprint is the one of the signature key last seen for
// that peer id, in a KeyPackage, a leaf or a signed card. When it changes,
// the store records the new key and a verified contact becomes KeyChanged:
// front ends flag it loudly until the user verifies again.
//
// Who becomes a contact: only peers the user acted on (invited with
// /invite or /create, verified, or whose invitation was accepted) and
// members of groups the user is in (the roster at join, members added
// later, their profile cards). A stranger's hello, Welcome or invitation
// writes nothing here: hellos of peers that are not contacts live only in
// the in-memory nearby list (dropped on disconnect) and invitations are
// capped (invitecap.go). So peer ids minted by strangers cannot grow the
// contacts table (TestStrangersDoNotGrowContacts).
//
// Names: a petname the user chose (set when inviting by card, unique), else
// the nickname of the contact's latest card, else the nickname hint of the
// member's leaf, else the start of the peer id.

type contactInfo struct {
	petname string
	nick    string
	fp      []byte
	verif   store.Verification
	addrs   []p2p.Multiaddr
}

func (e *Engine) loadContacts(ctx context.Context) error {
	all, err := e.db.ListContacts(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range all {
		id, err := p2p.DecodePeerID(c.ID)
		if err != nil || id == e.id.id {
			continue
		}
		e.contacts[id] = contactFromRow(c)
	}
	return nil
}

func contactFromRow(c store.Contact) *contactInfo {
	ci := &contactInfo{petname: c.Petname, fp: c.Fingerprint, verif: c.Verification}
	if card, err := UnmarshalCard(c.Card); err == nil {
		ci.nick, ci.addrs = card.Nick, card.Addrs
	}
	return ci
}

func shortPeer(p p2p.PeerID) string {
	s := p.String()
	if len(s) > 8 {
		return s[len(s)-8:]
	}
	return s
}

// displayName returns the name the user knows peer p by.
func (e *Engine) displayName(p p2p.PeerID, leafHint string) string {
	if p == e.id.id {
		return e.nick()
	}
	e.mu.Lock()
	ci := e.contacts[p]
	e.mu.Unlock()
	switch {
	case ci != nil && ci.petname != "":
		return ci.petname
	case ci != nil && ci.nick != "":
		return ci.nick
	case leafHint != "":
		return leafHint
	}
	return shortPeer(p)
}

// learnKey records that peer p uses the signature key with fingerprint fp
// (seen in a leaf, KeyPackage or card) and, when a card is given, its nick
// and addresses. It returns whether the key differs from the one known
// before; a loud notice is emitted then.
func (e *Engine) learnKey(ctx context.Context, p p2p.PeerID, fp []byte, card *Card, leafHint string) (changed bool) {
	if p == e.id.id || p == "" {
		return false
	}
	e.mu.Lock()
	ci := e.contacts[p]
	if card == nil {
		// A key seen without a card (a leaf in a Welcome or Commit) takes
		// the card the peer signed itself in its hello, if that names the
		// same key: a member invited by someone it is connected to then
		// knows the inviter's addresses before any card is sent in the
		// group, and can dial it after a restart.
		if nb := e.nearby[p]; nb != nil && bytes.Equal(nb.Fingerprint, fp) {
			card = nb
		}
	}
	e.mu.Unlock()
	if ci != nil && string(ci.fp) == string(fp) && (card == nil || (card.Nick == ci.nick && sameAddrs(card.Addrs, ci.addrs))) {
		return false
	}
	row, err := e.db.Contact(ctx, p.String())
	if errors.Is(err, store.ErrNotFound) {
		row = store.Contact{ID: p.String()}
	} else if err != nil {
		e.log.Warn("reading contact", "err", err)
		return false
	}
	// Keep the best card we have: a new card replaces the old one; a key
	// seen without a card keeps the old card's nick and addresses.
	nc := Card{PeerID: p, Fingerprint: fp}
	if old, err := UnmarshalCard(row.Card); err == nil {
		nc.Nick, nc.Addrs = old.Nick, old.Addrs
	}
	if card != nil {
		nc.Nick = card.Nick
		if len(card.Addrs) > 0 {
			nc.Addrs = card.Addrs
		}
	}
	if nc.Nick == "" {
		nc.Nick = leafHint
	}
	if nc.Nick == "" {
		nc.Nick = shortPeer(p)
	}
	if b, err := nc.Marshal(); err == nil {
		row.Card = b
	}
	row.Fingerprint = fp
	changed, err = e.db.PutContact(ctx, row)
	if err != nil {
		e.log.Warn("storing contact", "err", err)
		return false
	}
	if changed {
		// A key change is flagged whether or not the old key was verified
		// (the store already demotes a verified contact).
		_ = e.db.SetVerification(ctx, p.String(), fp, store.KeyChanged, time.Time{})
	}
	fresh, err := e.db.Contact(ctx, p.String())
	if err == nil {
		e.mu.Lock()
		e.contacts[p] = contactFromRow(fresh)
		e.mu.Unlock()
	}
	if changed {
		name := e.displayName(p, leafHint)
		e.log.Warn("contact key changed", "peer", p)
		e.notice("", NoticeWarning, "SECURITY WARNING: the key of %s changed (new fingerprint %s). Compare safety numbers again with /verify %s", name, FormatFingerprint(fp), name)
		e.refreshMembersOf(p)
	}
	return changed
}

func sameAddrs(a, b []p2p.Multiaddr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// setPetname gives contact p a petname if it has none and name is free.
func (e *Engine) setPetname(ctx context.Context, p p2p.PeerID, name string) {
	row, err := e.db.Contact(ctx, p.String())
	if err != nil || row.Petname != "" {
		return
	}
	for i := 1; i <= 9; i++ {
		cand := name
		if i > 1 {
			cand = fmt.Sprintf("%s-%d", name, i)
		}
		row.Petname = cand
		if _, err := e.db.PutContact(ctx, row); err == nil {
			e.mu.Lock()
			if ci := e.contacts[p]; ci != nil {
				ci.petname = cand
			}
			e.mu.Unlock()
			return
		} else if !errors.Is(err, store.ErrConflict) {
			return
		}
	}
}

// addContactAddrs makes a contact's known addresses usable for dialing.
func (e *Engine) addContactAddrs(p p2p.PeerID, addrs []p2p.Multiaddr) {
	if len(addrs) == 0 || e.node == nil || p == e.id.id {
		return
	}
	e.node.AddAddrs(p, addrs)
}

// dialContacts connects, in the background, to contacts that are members
// of our groups, so that group topics find their peers after a restart
// without mDNS or the DHT.
func (e *Engine) dialContacts() {
	want := map[p2p.PeerID]bool{}
	e.mu.Lock()
	for _, g := range e.groups {
		for _, p := range g.view.memberPeers() {
			want[p] = true
		}
	}
	type target struct {
		id    p2p.PeerID
		addrs []p2p.Multiaddr
	}
	var targets []target
	for p := range want {
		if ci := e.contacts[p]; ci != nil && len(ci.addrs) > 0 && p != e.id.id {
			targets = append(targets, target{p, ci.addrs})
		}
	}
	e.mu.Unlock()
	for _, t := range targets {
		e.goBackground(func(ctx context.Context) {
			e.addContactAddrs(t.id, t.addrs)
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := e.node.Connect(ctx, p2p.AddrInfo{ID: t.id, Addrs: t.addrs}); err != nil {
				e.log.Debug("member unreachable", "peer", t.id, "err", err)
			}
		})
	}
}

// refreshMembersOf recomputes the member views of the groups p is in.
func (e *Engine) refreshMembersOf(p p2p.PeerID) {
	gs := e.groupList()
	for _, g := range gs {
		if g.view.hasMember(p) {
			g.refreshMembers(true)
		}
	}
}

// resolvePeerInput finds the peer a user means by s: a pasted card, a
// petname, a nearby peer's nick, a contact's nick, or a peer id.
func (e *Engine) resolvePeerInput(s string) (p2p.PeerID, *Card, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, CardPrefix) {
		c, err := ParseCard(s)
		if err != nil {
			return "", nil, err
		}
		return c.PeerID, c, nil
	}
	name := strings.TrimPrefix(s, "@")
	e.mu.Lock()
	defer e.mu.Unlock()
	var matches []p2p.PeerID
	for p, ci := range e.contacts {
		if strings.EqualFold(ci.petname, name) {
			return p, nil, nil
		}
	}
	seen := map[p2p.PeerID]bool{}
	for p, c := range e.nearby {
		if strings.EqualFold(c.Nick, name) && !seen[p] {
			matches = append(matches, p)
			seen[p] = true
		}
	}
	if len(matches) == 0 {
		for p, ci := range e.contacts {
			if strings.EqualFold(ci.nick, name) && !seen[p] {
				matches = append(matches, p)
				seen[p] = true
			}
		}
	}
	if len(matches) == 1 {
		if c := e.nearby[matches[0]]; c != nil {
			return matches[0], c, nil
		}
		return matches[0], nil, nil
	}
	if len(matches) > 1 {
		return "", nil, fmt.Errorf("%q is ambiguous (%d peers have that name): paste their contact card instead", name, len(matches))
	}
	if id, err := p2p.DecodePeerID(name); err == nil {
		return id, e.nearby[id], nil
	}
	return "", nil, fmt.Errorf("no contact or nearby peer called %q: paste their contact card (canopy id)", name)
}
