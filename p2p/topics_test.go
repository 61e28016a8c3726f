package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestTopicName(t *testing.T) {
	a, b := TopicName([]byte("g1")), TopicName([]byte("g2"))
	if a == b || !isTopicName(a) || !isTopicName(b) {
		t.Fatalf("bad topic names %q %q", a, b)
	}
	if bytes.Contains([]byte(a), []byte("g1")) {
		t.Fatal("group id appears in topic name")
	}
	for _, bad := range []string{"", "/canopy/group/1/", a + "0", a[:len(a)-1] + "G", "/other/" + a[len(topicPrefix):]} {
		if isTopicName(bad) {
			t.Errorf("isTopicName(%q) = true", bad)
		}
	}
}

// TestGossipChain: five hosts connected in a chain A-B-C-D-E (no mDNS, no
// DHT); every frame published anywhere reaches every other host.
func TestGossipChain(t *testing.T) {
	const n = 5
	group := newGroupID()
	nodes := make([]*Node, n)
	topics := make([]*Topic, n)
	for i := range nodes {
		nodes[i] = newTestNode(t)
	}
	for i := 1; i < n; i++ {
		connect(t, nodes[i-1], nodes[i])
	}
	for i, nd := range nodes {
		tp, err := nd.JoinGroup(group)
		if err != nil {
			t.Fatal(err)
		}
		topics[i] = tp
	}
	for i, tp := range topics {
		want := 2
		if i == 0 || i == n-1 {
			want = 1
		}
		// All hosts are new: wait for the overlay itself, not only for the
		// subscriptions (see Topic.WaitMesh).
		if err := tp.WaitMesh(testCtx(t, 10*time.Second), want); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	sent := make([][]byte, n)
	for i, tp := range topics {
		sent[i] = mlsFrame(group, uint64(i), fmt.Sprintf("hello from %d", i))
		res, err := tp.Publish(testCtx(t, 5*time.Second), sent[i])
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if res.Peers == 0 || res.Queued || res.ID != IDOf(sent[i]) {
			t.Fatalf("publish %d: %+v", i, res)
		}
	}
	for i, tp := range topics {
		var got []Message
		for len(got) < n-1 {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			m, err := tp.Next(ctx)
			cancel()
			if err != nil {
				var eps []uint64
				for _, g := range got {
					eps = append(eps, g.Header.Epoch)
				}
				t.Fatalf("node %d: got frames of nodes %v only: %v", i, eps, err)
			}
			if bytes.Equal(m.Data, sent[i]) {
				t.Fatalf("node %d received its own frame", i)
			}
			if containsData(got, m.Data) {
				t.Fatalf("node %d received a frame twice", i)
			}
			if !bytes.Equal(m.Header.GroupID, group) || m.ID != IDOf(m.Data) {
				t.Fatalf("node %d: bad message metadata %+v", i, m.Header)
			}
			got = append(got, m)
		}
		for j := range sent {
			if j != i && !containsData(got, sent[j]) {
				t.Fatalf("node %d missed frame of node %d", i, j)
			}
		}
	}
}

// TestPublishRightAfterJoin: B subscribes while A joins and publishes at
// once. A's topic has no peer yet when it joins (the subscription exchange
// takes a round trip); Publish waits for the first peer instead of sending
// into the void, and B receives the frame.
func TestPublishRightAfterJoin(t *testing.T) {
	for i := 0; i < 3; i++ {
		group := newGroupID()
		a, b := newTestNode(t), newTestNode(t)
		connect(t, a, b)
		ta, err := a.JoinGroup(group)
		if err != nil {
			t.Fatal(err)
		}
		peersAtJoin := len(ta.Peers())
		go func() {
			// B subscribes concurrently with A's publish.
			if _, err := b.JoinGroup(group); err != nil {
				t.Error(err)
			}
		}()
		f := mlsFrame(group, 1, "first words")
		res, err := ta.Publish(testCtx(t, 10*time.Second), f)
		if err != nil {
			t.Fatal(err)
		}
		if peersAtJoin != 0 || res.Peers != 1 || res.Queued {
			t.Fatalf("peers at join %d, publish result %+v", peersAtJoin, res)
		}
		var tb *Topic
		waitFor(t, 5*time.Second, "B's topic", func() bool { tb = b.topic(TopicName(group)); return tb != nil })
		if m := nextMsg(t, tb, 10*time.Second); !bytes.Equal(m.Data, f) {
			t.Fatalf("B got %q", m.Data)
		}
	}
}

// TestPublishWithoutPeersIsDeliveredLater: A publishes while alone in the
// topic; the frame is queued and delivered directly to B when B joins, and B
// re-publishes it into its own mesh so that C, connected only to B, gets it
// too.
func TestPublishWithoutPeersIsDeliveredLater(t *testing.T) {
	group := newGroupID()
	a := newTestNode(t, WithPublishWait(50*time.Millisecond))
	b, c := newTestNode(t), newTestNode(t)
	connect(t, b, c)
	tc, err := c.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}

	ta, err := a.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	f := mlsFrame(group, 7, "anyone there?")
	res, err := ta.Publish(testCtx(t, 5*time.Second), f)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Queued || res.Peers != 0 {
		t.Fatalf("publish result %+v, want queued", res)
	}

	tb, err := b.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.WaitPeers(testCtx(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	connect(t, b, a)
	if m := nextMsg(t, tb, 10*time.Second); !bytes.Equal(m.Data, f) || m.From != a.ID() {
		t.Fatalf("B got %q from %s", m.Data, m.From)
	}
	if m := nextMsg(t, tc, 10*time.Second); !bytes.Equal(m.Data, f) {
		t.Fatalf("C got %q", m.Data)
	}
	// Each host sees the frame once although it arrived twice at B (direct
	// and, after B re-published it, by gossip from C's side).
	expectNoMsg(t, tb, 300*time.Millisecond)
	expectNoMsg(t, tc, 100*time.Millisecond)
}

func TestPublishChecksFrames(t *testing.T) {
	group := newGroupID()
	a := newTestNode(t, WithPublishWait(0))
	ta, err := a.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 5*time.Second)
	for name, f := range map[string][]byte{
		"garbage":     []byte("hello"),
		"wrong group": mlsFrame([]byte("other"), 1, "x"),
		"oversize":    mlsFrame(group, 1, string(make([]byte, DefaultMaxMessageSize))),
	} {
		if _, err := ta.Publish(ctx, f); !errors.Is(err, ErrInvalidFrame) {
			t.Errorf("%s: %v, want ErrInvalidFrame", name, err)
		}
	}
	if _, err := a.JoinGroup(group); !errors.Is(err, ErrAlreadyJoined) {
		t.Fatalf("second join: %v", err)
	}
	if err := ta.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.Publish(ctx, mlsFrame(group, 1, "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close: %v", err)
	}
	if _, err := ta.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("next after close: %v", err)
	}
	// The topic can be joined again after it was left.
	if _, err := a.JoinGroup(group); err != nil {
		t.Fatal(err)
	}
}

func TestValidatorHookSeesFrames(t *testing.T) {
	group := newGroupID()
	type call struct {
		epoch uint64
		self  bool
	}
	calls := make(chan call, 16)
	var bID = make(chan struct{})
	var b *Node
	val := func(ctx context.Context, from peer.ID, hdr MLSHeader, data []byte) ValidationResult {
		<-bID
		calls <- call{hdr.Epoch, from == b.ID()}
		if hdr.Epoch == 13 {
			return Reject
		}
		return Accept
	}
	a := newTestNode(t)
	b = newTestNode(t, WithValidator(val))
	close(bID)
	connect(t, a, b)
	ta, _ := a.JoinGroup(group)
	tb, _ := b.JoinGroup(group)
	if err := ta.WaitPeers(testCtx(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.Publish(testCtx(t, 5*time.Second), mlsFrame(group, 13, "unlucky")); err != nil {
		t.Fatal(err)
	}
	// A far-future epoch is accepted by p2p and handed to the validator.
	future := mlsFrame(group, 1<<40, "from the future")
	if _, err := ta.Publish(testCtx(t, 5*time.Second), future); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, tb, 10*time.Second); !bytes.Equal(m.Data, future) || m.Header.Epoch != 1<<40 {
		t.Fatalf("B got %q", m.Data)
	}
	// Validators run concurrently: compare as a set.
	got := map[call]bool{<-calls: true, <-calls: true}
	if !got[call{13, false}] || !got[call{1 << 40, false}] {
		t.Fatalf("validator calls %v", got)
	}
	// B's own publication runs through its validator as a local frame.
	if _, err := tb.Publish(testCtx(t, 5*time.Second), mlsFrame(group, 13, "mine")); !errors.Is(err, ErrInvalidFrame) {
		t.Fatalf("own rejected frame: %v", err)
	}
	if got := <-calls; got != (call{13, true}) {
		t.Fatalf("validator call %+v", got)
	}
}
