package chat

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Declining an invitation discards it and the inviter removes the leaf it
// added; a nearby peer (one that introduced itself on connecting) can be
// invited by its nick.
func TestNearbyInviteAndDecline(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	connect(t, alice, bob)
	alice.rec.wait(t, "bob nearby", func(ev Event) bool {
		p, ok := ev.(PeerEvent)
		return ok && p.Online && p.Peer.Nick == "bob"
	})
	if st := alice.e.Status(); len(st.Nearby) != 1 || st.Nearby[0].Nick != "bob" || st.Peers == 0 {
		t.Fatalf("status %+v", st)
	}
	g := alice.run("", "/create lan bob").Group
	bob.rec.wait(t, "invitation", isInvitation)
	if out := bob.run("", "/decline"); !strings.Contains(out.Text, "lan") {
		t.Fatalf("decline: %q", out.Text)
	}
	if len(bob.e.Invitations()) != 0 {
		t.Fatal("invitation still pending after /decline")
	}
	alice.rec.wait(t, "decline notice", func(ev Event) bool {
		n, ok := ev.(NoticeEvent)
		return ok && strings.Contains(n.Text, "declined")
	})
	waitFor(t, "bob's leaf removed", func() bool { return len(alice.e.Members(g)) == 1 })
}

// A Welcome that leaves the ratchet tree out: the joiner fetches it over
// /canopy/tree/1 and checks it against the signed GroupInfo.
func TestWelcomeWithoutTree(t *testing.T) {
	alice := newPeer(t, "alice", func(c *Config) { c.ExternalTreeAbove = -1 })
	bob := newPeer(t, "bob")
	connect(t, alice, bob)
	g := alice.run("", "/create big "+bob.card()).Group
	if got := bob.acceptInvitation(); got != g {
		t.Fatalf("joined %s", got)
	}
	alice.run(g, "tree fetched")
	bob.rec.wait(t, "message", isMessage(g, "tree fetched"))
}

// Automatic key rotation after RotateMessages own messages; disappearing
// messages set in the group context reach every member; a nick change is
// announced.
func TestRotationRetentionNick(t *testing.T) {
	alice := newPeer(t, "alice", func(c *Config) { c.RotateMessages = 3 })
	bob := newPeer(t, "bob")
	connect(t, alice, bob)
	g := alice.run("", "/create policy "+bob.card()).Group
	bob.acceptInvitation()
	// A settings change right after joining (its parent is the joined state).
	alice.run(g, "/retention 30d")
	bob.rec.wait(t, "retention line", isSystem(g, "disappear after 30d"))
	before, _ := bob.state(t, g)
	for i := range 3 {
		alice.run(g, "message "+string(rune('1'+i)))
	}
	bob.rec.wait(t, "automatic rotation", isSystem(g, "alice rotated their keys"))
	if e, _ := bob.state(t, g); e <= before {
		t.Fatalf("epoch %d after rotation, was %d", e, before)
	}

	if out := alice.run(g, "/retention 7d"); !strings.Contains(out.Text, "7d") {
		t.Fatalf("retention: %q", out.Text)
	}
	bob.rec.wait(t, "retention line", isSystem(g, "disappear after 7d"))
	waitFor(t, "retention stored", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		row, err := bob.e.db.Group(ctx, bob.e.group(g).id)
		return err == nil && row.Retention == 7*24*time.Hour
	})

	alice.run("", "/nick alicia")
	bob.rec.wait(t, "nick change", isSystem(g, "alice is now known as alicia"))
	if !hasMember(bob.e.Members(g), "alicia") {
		t.Fatalf("members %v", memberNames(bob.e.Members(g)))
	}
}
