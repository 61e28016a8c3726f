package p2p

import (
	"bytes"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// TestDirectConnectionRetiresRelayed: A and B meet through the relay and
// gossip over the circuit; once a direct connection opens (as DCUtR opens
// one), the relayed connection is closed while the relay is still up, and
// gossip carries on over the direct connection with the relay gone.
func TestDirectConnectionRetiresRelayed(t *testing.T) {
	r := newTestRelay(t, RelayConfig{})
	a, b := newTestNode(t), newTestNode(t)
	ctx := testCtx(t, 30*time.Second)
	if _, err := client.Reserve(ctx, b.Host(), r.Node().AddrInfo()); err != nil {
		t.Fatal(err)
	}
	circuit, err := ma.NewMultiaddr(r.Node().Host().Addrs()[0].String() + "/p2p/" + r.Node().ID().String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatal(err)
	}
	group := newGroupID()
	ta, _ := a.JoinGroup(group)
	tb, _ := b.JoinGroup(group)
	if err := ta.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	relayed := mlsFrame(group, 3, "through the relay")
	if _, err := ta.Publish(ctx, relayed); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, tb, 10*time.Second); !bytes.Equal(m.Data, relayed) {
		t.Fatalf("B got %q", m.Data)
	}

	a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), time.Hour)
	if _, err := a.Host().Network().DialPeer(network.WithForceDirectDial(ctx, "test"), b.ID()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b} {
		other := b.ID()
		if n == b {
			other = a.ID()
		}
		for {
			var relayed, direct int
			for _, c := range n.Host().Network().ConnsToPeer(other) {
				if isRelayed(c) {
					relayed++
				} else {
					direct++
				}
			}
			if relayed == 0 && direct > 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: %d relayed and %d direct connections remain", n.ID(), relayed, direct)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	f := mlsFrame(group, 3, "direct only")
	// The mesh re-forms on the direct connection within a heartbeat.
	if err := ta.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.Publish(ctx, f); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, tb, 10*time.Second); !bytes.Equal(m.Data, f) {
		t.Fatalf("B got %q", m.Data)
	}
}
