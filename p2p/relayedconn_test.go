package p2p

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// connKinds counts n's open relayed and direct connections to p.
func connKinds(n *Node, p peer.ID) (relayed, direct int) {
	for _, c := range n.Host().Network().ConnsToPeer(p) {
		switch {
		case c.IsClosed():
		case isRelayed(c):
			relayed++
		default:
			direct++
		}
	}
	return relayed, direct
}

// joinWatch records the peers joining a topic (WithPeerJoined).
type joinWatch chan peer.ID

func (w joinWatch) option() TopicOption {
	return WithPeerJoined(func(p peer.ID) {
		select {
		case w <- p:
		default:
		}
	})
}

func (w joinWatch) drain() {
	for {
		select {
		case <-w:
		default:
			return
		}
	}
}

func (w joinWatch) wait(t *testing.T, ctx context.Context, who string, p peer.ID) {
	t.Helper()
	for {
		select {
		case got := <-w:
			if got == p {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s: %s did not join the topic again", who, shortID(p))
		}
	}
}

// TestDirectConnectionRetiresRelayed: A and B meet through a relay and
// gossip over the circuit. Once a direct connection opens (as DCUtR opens
// one), both close the relayed connection while the relay is still up, and
// each sees the other join the topic again: gossipsub re-opened its streams
// on the direct connection (the moment the engine catches up from the
// peer, for frames lost with the old streams). Then, with the relay shut
// down, gossip flows both ways over the direct connection alone.
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
	joinsA, joinsB := make(joinWatch, 16), make(joinWatch, 16)
	ta, err := a.JoinGroup(group, joinsA.option())
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.JoinGroup(group, joinsB.option())
	if err != nil {
		t.Fatal(err)
	}
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
	if rl, d := connKinds(a, b.ID()); rl != 1 || d != 0 {
		t.Fatalf("before the direct dial A has %d relayed and %d direct connections to B", rl, d)
	}
	joinsA.drain()
	joinsB.drain()

	a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), time.Hour)
	if _, err := a.Host().Network().DialPeer(network.WithForceDirectDial(ctx, "test"), b.ID()); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]*Node{{a, b}, {b, a}} {
		n, other := pair[0], pair[1]
		waitFor(t, 10*time.Second, "only a direct connection", func() bool {
			rl, d := connKinds(n, other.ID())
			return rl == 0 && d > 0
		})
	}
	joinsA.wait(t, ctx, "A", b.ID())
	joinsB.wait(t, ctx, "B", a.ID())

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []struct {
		from, to *Topic
		what     string
	}{{ta, tb, "A to B, direct"}, {tb, ta, "B to A, direct"}} {
		f := mlsFrame(group, 3, dir.what)
		if _, err := dir.from.Publish(ctx, f); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: gossipsub lists %d, forgotten %d", dir.what, len(dir.from.pt.ListPeers()), len(dir.from.forgotten(dir.from.pt.ListPeers())))
		if m := nextMsg(t, dir.to, 10*time.Second); !bytes.Equal(m.Data, f) {
			t.Fatalf("%s: got %q", dir.what, m.Data)
		}
	}
}

// resetGossipTo resets n's own gossipsub stream to p, as a connection
// switch kills it.
func resetGossipTo(t *testing.T, n *Node, p peer.ID) {
	t.Helper()
	for _, c := range n.Host().Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if strings.HasPrefix(string(s.Protocol()), "/meshsub/") && s.Stat().Direction == network.DirOutbound {
				_ = s.Reset()
				return
			}
		}
	}
	t.Fatalf("%s has no gossipsub stream to %s", shortID(n.ID()), shortID(p))
}

// TestPublishReachesPeerGossipsubForgot: when gossipsub's own stream to a
// peer dies, it forgets the peer's subscriptions, though they came in on
// the peer's stream, which lives on; it relearns them only from the
// peer's next hello (what a connection switch can leave behind, see
// peerSubs). Here A's stream to B is reset: A's gossipsub no longer lists
// B, while B, which got A's new hello, lists A and announces nothing
// again. A's frames still reach B, sent directly, whether A had joined
// the topic before the reset or joins it only after; and B is told that A
// announced itself again (the engine's cue to catch up from A).
func TestPublishReachesPeerGossipsubForgot(t *testing.T) {
	for _, joinFirst := range []bool{true, false} {
		name := "A joined after the reset"
		if joinFirst {
			name = "A joined before the reset"
		}
		t.Run(name, func(t *testing.T) {
			a, b := newTestNode(t), newTestNode(t)
			connect(t, a, b)
			group := newGroupID()
			ctx := testCtx(t, 30*time.Second)
			joinsB := make(joinWatch, 16)
			tb, err := b.JoinGroup(group, joinsB.option())
			if err != nil {
				t.Fatal(err)
			}
			var ta *Topic
			join := func() {
				if ta, err = a.JoinGroup(group); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 10*time.Second, "B listing A", func() bool { return slices.Contains(tb.pt.ListPeers(), a.ID()) })
			}
			if joinFirst {
				join()
				if err := ta.WaitMesh(ctx, 1); err != nil {
					t.Fatal(err)
				}
			} else {
				// B's subscription reaches A before A joins.
				waitFor(t, 10*time.Second, "A learning B's subscription", func() bool {
					return slices.Contains(a.peerSubs.peers(tb.Name()), b.ID())
				})
			}
			joinsB.drain()
			resetGossipTo(t, a, b.ID())
			if !joinFirst {
				join()
			}
			// A's new stream announces the topic (again, or for the first
			// time).
			joinsB.wait(t, ctx, "B", a.ID())
			waitFor(t, 10*time.Second, "A's gossipsub forgetting B, B listing A", func() bool {
				return len(ta.pt.ListPeers()) == 0 && slices.Contains(tb.pt.ListPeers(), a.ID())
			})
			if got := ta.Peers(); !slices.Equal(got, []peer.ID{b.ID()}) {
				t.Fatalf("A's topic peers %v, want B", got)
			}
			f := mlsFrame(group, 3, "to a forgotten peer")
			res, err := ta.Publish(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if res.Peers != 1 || res.Queued {
				t.Fatalf("publish result %+v", res)
			}
			if m := nextMsg(t, tb, 10*time.Second); !bytes.Equal(m.Data, f) {
				t.Fatalf("B got %q", m.Data)
			}
			// Not by A's gossip: its gossipsub still does not list B.
			if len(ta.pt.ListPeers()) != 0 {
				t.Fatal("B announced itself again: the test no longer shows the forgotten state")
			}
		})
	}
}

// TestPeerJoinedSpaced: a peer that announces its subscription over and
// over (here B joins and leaves the topic) gets WithPeerJoined calls at
// least rejoinEvery apart, so it cannot keep the engine syncing from it;
// its last announcement is still reported, late.
func TestPeerJoinedSpaced(t *testing.T) {
	a, b := newTestNode(t), newTestNode(t)
	connect(t, a, b)
	group := newGroupID()
	var mu sync.Mutex
	var calls []time.Time
	ta, err := a.JoinGroup(group, WithPeerJoined(func(p peer.ID) {
		if p == b.ID() {
			mu.Lock()
			calls = append(calls, time.Now())
			mu.Unlock()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for range 5 {
		tb, err := b.JoinGroup(group)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "A listing B", func() bool { return slices.Contains(ta.Peers(), b.ID()) })
		last = time.Now()
		if err := tb.Close(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "A no longer listing B", func() bool { return !slices.Contains(ta.Peers(), b.ID()) })
	}
	waitFor(t, 2*rejoinEvery+5*time.Second, "the last announcement reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) > 0 && !calls[len(calls)-1].Before(last)
	})
	mu.Lock()
	defer mu.Unlock()
	if len(calls) >= 5 {
		t.Fatalf("%d calls for 5 announcements", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		if d := calls[i].Sub(calls[i-1]); d < rejoinEvery-50*time.Millisecond {
			t.Fatalf("calls %d and %d only %v apart", i-1, i, d)
		}
	}
}
