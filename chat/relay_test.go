package chat

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/p2p"
)

func newTestRelay(t *testing.T) *p2p.Relay {
	t.Helper()
	r, err := p2p.NewRelay(context.Background(), nil, p2p.RelayConfig{Circuit: p2p.CircuitLimits{AllowPrivateAddrs: true}},
		p2p.WithListenAddrs("/ip4/127.0.0.1/tcp/0"), p2p.WithMDNS(false), p2p.WithAutoNAT(false), p2p.WithHolePunching(false),
		p2p.WithLogger(testLogger(t, "relay")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// Journeys 5 and 6 with a relay: bob is offline when alice invites him;
// alice and bob never learn each other's addresses: alice gets bob's
// KeyPackage from the relay, leaves the Welcome in its mailbox, and bob
// joins on his next start; they then chat through the relay.
func TestRelayOfflineInvite(t *testing.T) {
	relay := newTestRelay(t)
	boot := relay.Node().Addrs()[0].String()
	viaRelay := func(c *Config) {
		c.Bootstrap = []string{boot}
		c.MailboxInterval = 300 * time.Millisecond
	}
	dir := t.TempDir()
	bobOpts := func(c *Config) { viaRelay(c); c.Store, c.ProfileDir = nil, dir }
	bob := newPeer(t, "bob", bobOpts)
	alice := newPeer(t, "alice", viaRelay)

	// Bob's card without addresses: the peers only share the relay.
	card := bob.e.Card()
	card.Addrs = nil
	bobCard := card.String()
	bobID := bob.e.id.id
	waitFor(t, "bob's KeyPackages on the relay", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := alice.e.node.FetchKeyPackage(ctx, relay.Node().ID(), bobID)
		return err == nil
	})
	if err := bob.e.Close(); err != nil {
		t.Fatal(err)
	}

	g := alice.run("", "/create pair "+bobCard).Group
	alice.run(g, "written before bob joined")
	alice.rec.wait(t, "the invitation left on the relay", func(ev Event) bool {
		n, ok := ev.(NoticeEvent)
		return ok && strings.Contains(n.Text, "invitation waits on 1 relay")
	})

	bob2 := newPeer(t, "bob", bobOpts)
	inv := bob2.rec.wait(t, "invitation from the mailbox", isInvitation).(InvitationEvent)
	if inv.Invitation.GroupName != "pair" {
		t.Fatalf("invitation %+v", inv.Invitation)
	}
	if got := bob2.run("", "/accept").Group; got != g {
		t.Fatalf("joined %s, want %s", got, g)
	}
	bob2.rec.wait(t, "message written before joining (relay sync)", isMessage(g, "written before bob joined"))
	bob2.run(g, "hello via the relay")
	alice.rec.wait(t, "bob's message", isMessage(g, "hello via the relay"))
	alice.run(g, "and back")
	bob2.rec.wait(t, "alice's reply", isMessage(g, "and back"))
}
