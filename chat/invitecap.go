package chat

import (
	"slices"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Pending invitations are bounded (issue 13, item 7): anyone who can
// reach a peer (or its relay mailbox) can leave Welcomes, each of which is
// opened, kept sealed in the store and listed to the user.
//
//   - An inviter has at most maxInvitesPerInviter pending invitations: its
//     oldest makes room for its newest.
//   - All inviters together have at most maxInvites. When full, the oldest
//     invitation from an unknown inviter goes first. A known inviter's
//     invitation is always kept (evicting the oldest overall if every
//     pending invitation is a known inviter's); an unknown inviter's is
//     refused when only known inviters' invitations are pending.
//
// The inviter is the authenticated one (the leaf that signed the Welcome's
// envelope, invitation.Inviter), else the peer that delivered it. Known is
// what a stranger cannot make itself: an authenticated inviter whose key
// is the one we know (no warning) and who is a member of one of our
// groups or a contact the user named or verified. Fresh peer ids get
// strangers only the unknown share: they can push out each other's
// invitations, never a known inviter's.
const (
	maxInvitesPerInviter = 4
	maxInvites           = 32
)

// knownInviters returns the peers whose invitations are kept first: the
// members of our groups and the contacts the user named or verified.
// e.mu must not be held.
func (e *Engine) knownInviters() map[p2p.PeerID]bool {
	e.mu.Lock()
	groups := make([]*group, 0, len(e.groups))
	for _, g := range e.groups {
		groups = append(groups, g)
	}
	known := map[p2p.PeerID]bool{}
	for p, c := range e.contacts {
		if c.petname != "" || c.verif == store.Verified {
			known[p] = true
		}
	}
	e.mu.Unlock()
	for _, g := range groups {
		if g.view.snapshot().Left {
			continue
		}
		for _, p := range g.view.memberPeers() {
			known[p] = true
		}
	}
	return known
}

// makeRoomForInvitation decides whether inv may be kept and which pending
// invitations it pushes out (their ids, to delete); known is
// knownInviters(). e.mu is held.
func (e *Engine) makeRoomForInvitation(inv *invitation, known map[p2p.PeerID]bool) (drop []string, ok bool) {
	type pend struct {
		id      string
		inv     *invitation
		contact bool
	}
	var all []pend
	for id, p := range e.invites {
		all = append(all, pend{id: id, inv: p, contact: isKnown(p, known)})
	}
	slices.SortFunc(all, func(a, b pend) int {
		if c := a.inv.At.Compare(b.inv.At); c != 0 {
			return c
		}
		if a.id < b.id {
			return -1
		}
		return 1
	})
	dropped := map[string]bool{}
	mine := 0
	for _, p := range all {
		if inviterKey(p.inv) == inviterKey(inv) {
			mine++
		}
	}
	for _, p := range all {
		if mine < maxInvitesPerInviter {
			break
		}
		if inviterKey(p.inv) == inviterKey(inv) {
			dropped[p.id] = true
			mine--
		}
	}
	left := len(all) - len(dropped)
	contact := isKnown(inv, known)
	for _, strangersOnly := range []bool{true, false} {
		for _, p := range all {
			if left < maxInvites {
				break
			}
			if dropped[p.id] || (strangersOnly && p.contact) {
				continue
			}
			if !strangersOnly && !contact {
				return nil, false
			}
			dropped[p.id] = true
			left--
		}
	}
	for id := range dropped {
		drop = append(drop, id)
	}
	slices.Sort(drop)
	return drop, true
}

// inviterKey is who an invitation counts against.
func inviterKey(inv *invitation) p2p.PeerID {
	if inv.Inviter != "" {
		return inv.Inviter
	}
	return inv.From
}

// isKnown: the invitation's authenticated inviter is known, with the key
// we know for it.
func isKnown(inv *invitation, known map[p2p.PeerID]bool) bool {
	return inv.Inviter != "" && inv.Warning == "" && known[inv.Inviter]
}
