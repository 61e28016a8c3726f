package p2p

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestVerdictReachesNext: what a topic's VerdictValidator returns for an
// accepted frame comes back with that frame from Next, for gossip and for
// frames delivered directly over /canopy/inbox/1; rejected frames carry
// nothing anywhere.
func TestVerdictReachesNext(t *testing.T) {
	group := newGroupID()
	a, b := newTestNode(t), newTestNode(t)
	connect(t, a, b)
	val := func(ctx context.Context, from peer.ID, hdr MLSHeader, data []byte) (ValidationResult, any) {
		if hdr.Epoch == 13 {
			return Reject, "never seen"
		}
		return Accept, fmt.Sprintf("judged epoch %d from %s", hdr.Epoch, from)
	}
	ta, err := a.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.JoinGroup(group, WithTopicVerdictValidator(val))
	if err != nil {
		t.Fatal(err)
	}
	if err := ta.WaitPeers(testCtx(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]byte{mlsFrame(group, 13, "rejected"), mlsFrame(group, 5, "gossip")} {
		if _, err := ta.Publish(testCtx(t, 5*time.Second), f); err != nil {
			t.Fatal(err)
		}
	}
	m := nextMsg(t, tb, 10*time.Second)
	if want := fmt.Sprintf("judged epoch 5 from %s", a.ID()); !bytes.Equal(m.Data, mlsFrame(group, 5, "gossip")) || m.Verdict != want {
		t.Fatalf("gossip: %q verdict %v, want %q", m.Data, m.Verdict, want)
	}
	// Directly: deliverDirect validates as the sender; re-publishing it
	// locally keeps that verdict (not the local node's).
	direct := mlsFrame(group, 6, "direct")
	if err := a.SendInbox(testCtx(t, 5*time.Second), b.ID(), InboxMessage{Kind: InboxTopic, Topic: TopicName(group), Data: direct}); err != nil {
		t.Fatal(err)
	}
	m = nextMsg(t, tb, 10*time.Second)
	if want := fmt.Sprintf("judged epoch 6 from %s", a.ID()); !bytes.Equal(m.Data, direct) || m.From != a.ID() || m.Verdict != want {
		t.Fatalf("direct: %q from %s verdict %v, want %q", m.Data, m.From, m.Verdict, want)
	}
	// A topic without a verdict validator hands back none.
	if _, err := tb.Publish(testCtx(t, 5*time.Second), mlsFrame(group, 7, "back")); err != nil {
		t.Fatal(err)
	}
	for { // A also gets the direct frame, which B forwarded
		m := nextMsg(t, ta, 10*time.Second)
		if m.Verdict != nil {
			t.Fatalf("plain topic: epoch %d verdict %v", m.Header.Epoch, m.Verdict)
		}
		if m.Header.Epoch == 7 {
			break
		}
	}
}
