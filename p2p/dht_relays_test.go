package p2p

import (
	"bytes"
	"testing"
	"time"
)

// TestDHTThreeRelays: three relays form the DHT (the second and third
// bootstrap from the first); alice knows only the second relay and bob only
// the third. Joining the same group, they find each other through DHT
// provider records of the group's topic (no relay in common, no mDNS, no
// address exchanged) and a frame passes between them. The time to the
// first topic peer is logged.
func TestDHTThreeRelays(t *testing.T) {
	r1 := newTestRelay(t, RelayConfig{})
	r2 := newTestRelay(t, RelayConfig{}, WithBootstrapPeers(r1.Node().AddrInfo()))
	r3 := newTestRelay(t, RelayConfig{}, WithBootstrapPeers(r1.Node().AddrInfo()))
	waitFor(t, 20*time.Second, "relays 2 and 3 in the DHT", func() bool {
		return r2.Node().kad.RoutingTable().Size() > 0 && r3.Node().kad.RoutingTable().Size() > 0
	})
	opts := []Option{WithDHT(DHTClient), WithDiscoveryInterval(200 * time.Millisecond)}
	alice := newTestNode(t, append(opts, WithBootstrapPeers(r2.Node().AddrInfo()))...)
	bob := newTestNode(t, append(opts, WithBootstrapPeers(r3.Node().AddrInfo()))...)

	group := newGroupID()
	start := time.Now()
	ta, err := alice.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := bob.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	if err := ta.WaitPeers(testCtx(t, 60*time.Second), 1); err != nil {
		t.Fatalf("alice did not find bob through the DHT: %v", err)
	}
	t.Logf("alice found bob through the DHT after %v", time.Since(start).Round(time.Millisecond))
	if ta.Peers()[0] != bob.ID() {
		t.Fatalf("alice's topic peer is %s, not bob", ta.Peers()[0])
	}
	for _, r := range []*Relay{r1, r2, r3} {
		if r.Node().ID() == ta.Peers()[0] {
			t.Fatal("found a relay, not bob")
		}
	}
	if err := tb.WaitMesh(testCtx(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	f := mlsFrame(group, 1, "found through three relays")
	if _, err := ta.Publish(testCtx(t, 5*time.Second), f); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, tb, 10*time.Second); !bytes.Equal(m.Data, f) {
		t.Fatalf("bob got %q", m.Data)
	}
}
