package chat

import (
	"context"
	"fmt"
	"testing"

	"github.com/canopy-chat/canopy/p2p"
)

// TestLostMessageComesBackByGap: a message gossip never delivered (here
// alice's topic is taken away for one send, so the frame is only in her
// frame log) is proven missing by the next one's MLS generation. Bob holds
// the next one for the hold time, shows it marked AfterGap, and then
// fetches the lost one from alice's log (catchUpForGap), shown Late.
// Without the catch-up the lost message would never arrive: nothing else
// is sent.
func TestLostMessageComesBackByGap(t *testing.T) {
	alice, bob, g := lostFrame(t)
	alice.run(g, "after")

	after := bob.rec.wait(t, "the message after the lost one", isMessage(g, "after")).(MessageEvent)
	if after.Message.Placement != AfterGap {
		t.Fatalf("the message after a lost one is placed %v, want %v", after.Message.Placement, AfterGap)
	}
	lost := bob.rec.wait(t, "the lost message, by catch-up", isMessage(g, "lost")).(MessageEvent)
	if lost.Message.Placement != Late {
		t.Fatalf("the lost message is placed %v, want %v", lost.Message.Placement, Late)
	}
}

// TestLostMessageComesBackAfterABurst: a frame is lost and its sender
// goes on sending, faster than the hold time passes, more messages than
// MLS's default window of skipped keys (128). The messages waiting behind
// the gap start the catch-up at once, and the member still has the key to
// open the lost one (maxSkippedKeys): it is shown (in order if it came
// back within the hold time, else Late), not lost for good.
func TestLostMessageComesBackAfterABurst(t *testing.T) {
	alice, bob, g := lostFrame(t)
	const burst = 300
	for i := range burst {
		alice.run(g, fmt.Sprintf("burst %d", i))
	}
	bob.rec.wait(t, "the lost message, by catch-up", isMessage(g, "lost"))
	bob.rec.wait(t, "the burst's last message", isMessage(g, fmt.Sprintf("burst %d", burst-1)))
}

// lostFrame makes a group of alice and bob in which alice's message
// "lost" never went out by gossip (her topic is taken away for that one
// send, so the frame is only in her frame log). Bob has caught up from
// alice once before, so the tick's catch-up (from peers not synced from
// yet) does not ask her again: what brings the frame back is the gap.
func lostFrame(t *testing.T) (alice, bob *testPeer, g GroupID) {
	t.Helper()
	alice, bob, g = pairInGroup(t, "gap")
	alice.run(g, "first")
	bob.rec.wait(t, "first", isMessage(g, "first"))
	waitSyncedFrom(t, bob, alice, g)
	sendUngossiped(t, alice, g, "lost")
	return alice, bob, g
}

// waitSyncedFrom waits until p has caught up from peer once in g (so the
// tick's catch-up, from peers not synced from yet, does not ask it again).
func waitSyncedFrom(t *testing.T, p, peer *testPeer, g GroupID) {
	t.Helper()
	gr := p.e.group(g)
	waitFor(t, p.e.nick()+"'s first catch-up from "+peer.e.nick(), func() bool {
		var done bool
		_ = gr.do(context.Background(), func() { done = gr.sync.peers[peer.e.id.id] && !gr.sync.running })
		return done
	})
}

// sendUngossiped has p send line in g with its topic taken away for that
// one send: the frame is only in p's frame log, as if gossip lost it.
func sendUngossiped(t *testing.T, p *testPeer, g GroupID, line string) {
	t.Helper()
	gr := p.e.group(g)
	var topic *p2p.Topic
	if err := gr.do(context.Background(), func() { topic, gr.topic = gr.topic, nil }); err != nil {
		t.Fatal(err)
	}
	p.run(g, line)
	if err := gr.do(context.Background(), func() { gr.topic = topic }); err != nil {
		t.Fatal(err)
	}
}
