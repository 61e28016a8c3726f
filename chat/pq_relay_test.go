package chat

import (
	"context"
	"strings"
	"testing"
	"time"
)

// relayPair starts a relay and two peers that share only it; bob's profile
// lives in a directory so that he can be stopped and started again.
func relayPair(t *testing.T) (alice, bob *testPeer, bobOpts engineOpt, bobCard string) {
	t.Helper()
	relay := newTestRelay(t)
	boot := relay.Node().Addrs()[0].String()
	viaRelay := func(c *Config) {
		c.Bootstrap = []string{boot}
		c.MailboxInterval = 300 * time.Millisecond
	}
	dir := t.TempDir()
	bobOpts = func(c *Config) { viaRelay(c); c.Store, c.ProfileDir = nil, dir }
	bob = newPeer(t, "bob", bobOpts)
	alice = newPeer(t, "alice", viaRelay)
	card := bob.e.Card()
	card.Addrs = nil // the peers only share the relay
	// Both kinds of KeyPackage reach the relay.
	for _, cs := range []uint16{uint16(suite), uint16(pqSuite)} {
		waitFor(t, "bob's KeyPackages on the relay", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			kp, err := alice.e.node.FetchKeyPackageForSuite(ctx, relay.Node().ID(), bob.e.id.id, cs)
			return err == nil && kp.CipherSuite == cs
		})
	}
	return alice, bob, bobOpts, card.String()
}

// An offline invitee is added to a --pq group with the X-Wing KeyPackage
// its client left on a relay; the Welcome waits in the relay's mailbox.
func TestPQRelayOfflineInvite(t *testing.T) {
	alice, bob, bobOpts, bobCard := relayPair(t)
	if err := bob.e.Close(); err != nil {
		t.Fatal(err)
	}
	g := alice.run("", "/create pair --pq "+bobCard).Group
	alice.rec.wait(t, "the invitation left on the relay", func(ev Event) bool {
		n, ok := ev.(NoticeEvent)
		return ok && strings.Contains(n.Text, "invitation waits on 1 relay")
	})
	bob2 := newPeer(t, "bob", bobOpts)
	if got := bob2.acceptInvitation(); got != g {
		t.Fatalf("joined %s, want %s", got, g)
	}
	if !bob2.groupView(g).PostQuantum() {
		t.Fatalf("bob's view %+v", bob2.groupView(g))
	}
	bob2.run(g, "pq via the relay")
	alice.rec.wait(t, "bob's message", isMessage(g, "pq via the relay"))
}

// /reinit --pq while a member is offline: the mover gets that member's
// X-Wing KeyPackage from the relay and leaves the successor's Welcome in
// its mailbox. When the member starts again it learns the ReInit Commit
// from the relay's topic log and the Welcome from the mailbox, in either
// order, and ends up in the successor.
func TestPQReInitOfflineMember(t *testing.T) {
	alice, bob, bobOpts, bobCard := relayPair(t)
	old := alice.run("", "/create team "+bobCard).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(old)) == 2 && len(bob.e.Members(old)) == 2 })
	bob.run(old, "before the move")
	alice.rec.wait(t, "bob's message", isMessage(old, "before the move"))
	if err := bob.e.Close(); err != nil {
		t.Fatal(err)
	}

	res := alice.run(old, "/reinit --pq")
	ng := res.Group
	alice.rec.wait(t, "the successor's Welcome left on the relay", func(ev Event) bool {
		n, ok := ev.(NoticeEvent)
		return ok && n.Group == ng && strings.Contains(n.Text, "waits on 1 relay")
	})
	alice.run(ng, "written while bob was away")

	bob2 := newPeer(t, "bob", bobOpts)
	waitFor(t, "bob in the successor", func() bool {
		id, ok := bob2.findPQGroup("team")
		return ok && id == ng
	})
	waitFor(t, "bob's old group closed", func() bool { return bob2.groupView(old).Left })
	bob2.rec.wait(t, "the message written before bob joined", isMessage(ng, "written while bob was away"))
	bob2.run(ng, "back, post-quantum")
	alice.rec.wait(t, "bob's message in the successor", isMessage(ng, "back, post-quantum"))
}
