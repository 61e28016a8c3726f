package chat

import (
	"slices"

	"github.com/canopy-chat/canopy/store"
	"github.com/libp2p/go-libp2p/core/peer"
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
// Known is what a stranger cannot make itself: a member of one of our
// groups, or a contact the user named or verified (sending a Welcome
// already makes its sender a contact row, so being a contact is not
// enough). Fresh peer ids get strangers only the unknown share: they can
// push out each other's invitations, never a known inviter's.
const (
	maxInvitesPerInviter = 4
	maxInvites           = 32
)

// knownInviters returns the peers whose invitations are kept first: the
// members of our groups and the contacts the user named or verified.
// e.mu must not be held.
func (e *Engine) knownInviters() map[peer.ID]bool {
	e.mu.Lock()
	groups := make([]*group, 0, len(e.groups))
	for _, g := range e.groups {
		groups = append(groups, g)
	}
	known := map[peer.ID]bool{}
	for p, c := range e.contacts {
		if c.petname != "" || c.verif == store.Verified {
			known[p] = true
		}
	}
	e.mu.Unlock()
	for _, g := range groups {
		if g.snapshot().Left {
			continue
		}
		for _, p := range g.memberPeers() {
			known[p] = true
		}
	}
	return known
}

// makeRoomForInvitation decides whether inv may be kept and which pending
// invitations it pushes out (their ids, to delete); known is
// knownInviters(). e.mu is held.
func (e *Engine) makeRoomForInvitation(inv *invitation, known map[peer.ID]bool) (drop []string, ok bool) {
	type pend struct {
		id      string
		inv     *invitation
		contact bool
	}
	var all []pend
	for id, p := range e.invites {
		all = append(all, pend{id: id, inv: p, contact: known[p.From]})
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
		if p.inv.From == inv.From {
			mine++
		}
	}
	for _, p := range all {
		if mine < maxInvitesPerInviter {
			break
		}
		if p.inv.From == inv.From {
			dropped[p.id] = true
			mine--
		}
	}
	left := len(all) - len(dropped)
	contact := known[inv.From]
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
