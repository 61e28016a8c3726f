package chat

import (
	"context"
	"testing"

	"github.com/canopy-chat/canopy/p2p"
)

// contactRows is the number of rows in p's contacts table.
func contactRows(t *testing.T, p *testPeer) int {
	t.Helper()
	all, err := p.e.db.ListContacts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(all)
}

func hasContactRow(t *testing.T, p *testPeer, id string) bool {
	t.Helper()
	all, err := p.e.db.ListContacts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if c.ID == id {
			return true
		}
	}
	return false
}

// TestStrangersDoNotGrowContacts (issue 13): strangers minting peer ids
// send signed hellos and Welcomes naming themselves as the adder. None of
// them becomes a contact: a key is written to the contacts table only
// after the user acts (accepts, invites, verifies) or for members of a
// group the user is in. An accepted invitation's inviter and the group's
// other members are still learned.
func TestStrangersDoNotGrowContacts(t *testing.T) {
	const strangers = 50
	alice := newPeer(t, "alice")
	before := contactRows(t, alice)

	for i := range strangers {
		s := newSybil(t, nil, alice)
		// A hello signed by the stranger's own key, sent directly: alice
		// shows it as nearby but keeps no contact row for it.
		_, priv, pub := testSigner(t)
		card := Card{PeerID: s.node.ID(), Fingerprint: Fingerprint(uint16(suite), pub), Nick: "stranger"}
		body, err := card.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c := signedControlFor(t, s.node.ID(), priv, pub, dmHello, "", body)
		data, err := c.marshal()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		err = s.node.SendInbox(ctx, alice.e.id.id, p2p.InboxMessage{Kind: p2p.InboxDirect, Data: append([]byte{dmSigned}, data...)})
		cancel()
		if err != nil {
			t.Fatalf("stranger %d hello: %v", i, err)
		}
		waitFor(t, "the stranger's hello", func() bool {
			alice.e.mu.Lock()
			defer alice.e.mu.Unlock()
			return alice.e.nearby[s.node.ID()] != nil
		})
		// A Welcome whose only other member (the adder) is the stranger.
		welcomeFlood(t, s, alice, 1)
		_ = s.node.Close()
	}
	if n := len(alice.e.Invitations()); n == 0 || n > maxInvites {
		t.Fatalf("%d pending invitations from %d strangers (want 1..%d): the Welcomes were not processed", n, strangers, maxInvites)
	}
	if n := contactRows(t, alice); n != before {
		t.Fatalf("%d stranger ids grew alice's contacts from %d to %d rows", strangers, before, n)
	}

	// bob, a stranger too, invites alice with carol; once alice accepts,
	// bob (the inviter) and carol (a member) are contacts.
	bob, carol := newPeer(t, "bob"), newPeer(t, "carol")
	connect(t, alice, bob)
	connect(t, bob, carol)
	g := bob.run("", "/create friends "+alice.card()+" "+carol.card()).Group
	carol.acceptInvitation()
	var id string
	waitFor(t, "bob's invitation", func() bool {
		for _, inv := range alice.e.Invitations() {
			if inv.GroupName == "friends" {
				id = inv.ID
				return true
			}
		}
		return false
	})
	if hasContactRow(t, alice, bob.e.id.id.String()) {
		t.Fatal("bob's invitation made him a contact before alice accepted it")
	}
	alice.run("", "/accept "+id)
	waitFor(t, "three members", func() bool { return len(alice.e.Members(g)) == 3 })
	for _, p := range []*testPeer{bob, carol} {
		if !hasContactRow(t, alice, p.e.id.id.String()) {
			t.Fatalf("%s is not alice's contact after she joined the group", p.e.nick())
		}
	}
	if n := contactRows(t, alice); n != before+2 {
		t.Fatalf("alice has %d contact rows, want %d (before) + bob + carol", n, before)
	}
	t.Logf("%d strangers sent hellos and Welcomes: contacts %d -> %d; after accepting bob's invitation: %d", strangers, before, before, contactRows(t, alice))
}

// TestKeyWithoutCardTakesTheHelloCard: a key learnt without a card (a
// leaf in a Welcome) takes the card the peer signed in its hello when
// that card names the same key, so that an invitee knows its inviter's
// addresses (and can dial it after a restart) before any card is sent in
// the group; a hello naming another key is not used.
func TestKeyWithoutCardTakesTheHelloCard(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	connect(t, alice, bob)
	aid := alice.e.id.id
	waitFor(t, "alice's hello", func() bool {
		bob.e.mu.Lock()
		defer bob.e.mu.Unlock()
		return bob.e.nearby[aid] != nil
	})
	ctx := context.Background()
	bob.e.learnKey(ctx, aid, []byte("not alice's key, 32 bytes long!!"), nil, "")
	if c, err := bob.e.db.Contact(ctx, aid.String()); err != nil {
		t.Fatal(err)
	} else if card, err := UnmarshalCard(c.Card); err != nil || len(card.Addrs) != 0 {
		t.Fatalf("a hello naming another key lent its addresses: %v, %v", card, err)
	}
	bob.e.learnKey(ctx, aid, alice.e.id.fp, nil, "")
	c, err := bob.e.db.Contact(ctx, aid.String())
	if err != nil {
		t.Fatal(err)
	}
	card, err := UnmarshalCard(c.Card)
	if err != nil {
		t.Fatal(err)
	}
	if card.Nick != "alice" || len(card.Addrs) == 0 {
		t.Fatalf("bob's contact for alice after her key was seen: nick %q, addresses %v; want her hello's", card.Nick, card.Addrs)
	}
}
