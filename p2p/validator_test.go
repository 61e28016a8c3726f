package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestValidatorChecks(t *testing.T) {
	n := newTestNode(t, WithMaxMessageSize(4096), WithGossipRateLimit(RateLimit{Rate: 1, Burst: 3}, RateLimit{Rate: 1 << 20, Burst: 1 << 20}))
	group := newGroupID()
	check, err := newFrameCheck(TopicName(group), n.cfg.maxMsgSize)
	if err != nil {
		t.Fatal(err)
	}
	v := newTopicValidator(n, check, nil)
	clock := time.Unix(1e9, 0)
	v.frames.now = func() time.Time { return clock }
	v.bytes.now = func() time.Time { return clock }
	ctx := context.Background()
	other, _ := newTestIdentity(t)
	third, _ := newTestIdentity(t)

	welcome := []byte{0, 1, 0, 3, 0xaa}
	cases := []struct {
		name   string
		data   []byte
		want   ValidationResult
		reason string
	}{
		{"garbage", []byte("definitely not MLS"), Reject, "malformed"},
		{"empty", nil, Reject, "malformed"},
		{"oversize", mlsFrame(group, 1, string(make([]byte, 5000))), Reject, "oversize"},
		{"wrong group", mlsFrame([]byte("another group"), 1, "x"), Reject, "wrong_group"},
		{"welcome on topic", welcome, Reject, "wire_format"},
		{"current epoch", mlsFrame(group, 1, "a"), Accept, ""},
		{"future epoch", mlsFrame(group, 1<<62, "b"), Accept, ""},
	}
	for _, c := range cases {
		// Use a fresh peer per case so the rate limit does not interfere.
		from, _ := newTestIdentity(t)
		_, got, reason := v.validate(ctx, from, c.data)
		if got != c.want || reason != c.reason {
			t.Errorf("%s: got %v (%s), want %v (%s)", c.name, got, reason, c.want, c.reason)
		}
	}

	// Flood: a burst of 3 frames, then one per second.
	for i := 0; i < 3; i++ {
		if _, r, _ := v.validate(ctx, other, mlsFrame(group, 2, "burst")); r != Accept {
			t.Fatalf("burst frame %d: %v", i, r)
		}
	}
	if _, r, reason := v.validate(ctx, other, mlsFrame(group, 2, "flood")); r != Ignore || reason != "rate" {
		t.Fatalf("flood frame: %v %s", r, reason)
	}
	// Other peers and the local node are not affected.
	if _, r, _ := v.validate(ctx, third, mlsFrame(group, 2, "x")); r != Accept {
		t.Fatalf("other peer throttled: %v", r)
	}
	for i := 0; i < 10; i++ {
		if _, r, _ := v.validate(ctx, n.ID(), mlsFrame(group, 2, "mine")); r != Accept {
			t.Fatalf("own frame throttled: %v", r)
		}
	}
	clock = clock.Add(time.Second)
	if _, r, _ := v.validate(ctx, other, mlsFrame(group, 2, "later")); r != Accept {
		t.Fatalf("frame after refill: %v", r)
	}

	// The engine's validator runs last and decides.
	v.user = verdictless(func(ctx context.Context, from peer.ID, hdr MLSHeader, data []byte) ValidationResult {
		if hdr.Epoch == 9 {
			return Ignore
		}
		return Accept
	})
	if _, r, reason := v.validate(ctx, third, mlsFrame(group, 9, "x")); r != Ignore || reason != "validator" {
		t.Fatalf("user validator: %v %s", r, reason)
	}
}

// rawPeer is a gossipsub peer without canopy's validation: it can publish
// anything, as an attacker would.
func rawPeer(t *testing.T) (host.Host, *pubsub.PubSub) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings(loopTCP), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); _ = h.Close() })
	params := pubsub.DefaultGossipSubParams()
	params.HeartbeatInterval = 100 * time.Millisecond
	var extra []pubsub.Option
	if l := testLogger(t); l != nil {
		extra = append(extra, pubsub.WithLogger(l.With("who", "attacker")))
	}
	ps, err := pubsub.NewGossipSub(ctx, h, append(extra,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { s := sha256.Sum256(m.Data); return string(s[:]) }),
		pubsub.WithGossipSubParams(params),
		// Send own frames to every topic peer, mesh or not (as canopy does).
		pubsub.WithFloodPublish(true),
		pubsub.WithMaxMessageSize(1<<20))...,
	)
	if err != nil {
		t.Fatal(err)
	}
	return h, ps
}

func joinRaw(t *testing.T, h host.Host, ps *pubsub.PubSub, victim *Node, topic string) *pubsub.Topic {
	t.Helper()
	if err := h.Connect(testCtx(t, 10*time.Second), victim.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	pt, err := ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	// Subscribing announces the topic to the victim.
	if _, err := pt.Subscribe(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "victim in attacker's topic", func() bool { return len(pt.ListPeers()) == 1 })
	return pt
}

// TestValidatorRejectsOnTheWire: a peer that skips validation sends garbage,
// frames of another group and oversize frames; the node delivers none of
// them, and accepts a valid frame of a far-future epoch.
func TestValidatorRejectsOnTheWire(t *testing.T) {
	group := newGroupID()
	victim := newTestNode(t, WithMaxMessageSize(2048))
	tv, err := victim.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	h, ps := rawPeer(t)
	pt := joinRaw(t, h, ps, victim, tv.Name())
	waitFor(t, 10*time.Second, "attacker in victim's topic", func() bool { return len(tv.Peers()) == 1 })

	ctx := testCtx(t, 10*time.Second)
	future := mlsFrame(group, 1<<50, "valid, from a future epoch")
	if err := pt.Publish(ctx, future); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, tv, 10*time.Second); !bytes.Equal(m.Data, future) || m.From != h.ID() {
		t.Fatalf("got %q", m.Data)
	}
	for _, bad := range [][]byte{
		[]byte("garbage"),
		mlsFrame([]byte("someone else's group"), 1, "x"),
		mlsFrame(group, 1, string(make([]byte, 4096))),
	} {
		if err := pt.Publish(ctx, bad); err != nil {
			t.Fatal(err)
		}
	}
	expectNoMsg(t, tv, 500*time.Millisecond)
}

// TestValidatorDropsFlood: a neighbour publishing faster than the rate
// limit gets its burst through and nothing more.
func TestValidatorDropsFlood(t *testing.T) {
	group := newGroupID()
	const burst = 5
	victim := newTestNode(t, WithGossipRateLimit(RateLimit{Rate: 0.001, Burst: burst}, DefaultGossipByteRate))
	tv, err := victim.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	h, ps := rawPeer(t)
	pt := joinRaw(t, h, ps, victim, tv.Name())
	waitFor(t, 10*time.Second, "attacker in victim's topic", func() bool { return len(tv.Peers()) == 1 })
	ctx := testCtx(t, 10*time.Second)
	for i := 0; i < 50; i++ {
		if err := pt.Publish(ctx, mlsFrame(group, uint64(i), "flood")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < burst; i++ {
		nextMsg(t, tv, 10*time.Second)
	}
	expectNoMsg(t, tv, 500*time.Millisecond)
}

func newTestIdentity(t testing.TB) (peer.ID, error) {
	k, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return PeerIDOf(k)
}
