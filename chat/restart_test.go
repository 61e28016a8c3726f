package chat

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/ordering"
)

// TestRestartKeepsWindow: a member restarted from its profile rebuilds its
// fork choice from the canonical states its store retained, not from the
// tip alone: the epochs before the restart are live in its machine (a
// better Commit for one of them would still be judged by rolling back),
// the loop knows their Commits, and the group keeps working both ways.
func TestRestartKeepsWindow(t *testing.T) {
	alice, bob, aliceOpts, g := restartablePair(t, "window")
	epochs := func(p *testPeer) (uint64, uint64) {
		return p.e.group(g).view.snapshot().Epoch, bob.e.group(g).view.snapshot().Epoch
	}
	for i, who := range []*testPeer{alice, bob, alice} {
		who.run(g, "/update")
		waitFor(t, "both at the same epoch", func() bool { a, b := epochs(alice); return a == b && a >= uint64(i+2) })
	}
	tip, _ := epochs(alice)
	alice.run(g, "before the restart")
	bob.rec.wait(t, "message before the restart", isMessage(g, "before the restart"))
	liveBefore := liveStates(t, alice.e.group(g))
	histBefore := history(t, alice.e.group(g))
	alice2, ga := restarted(t, alice, aliceOpts, g)
	live := liveStates(t, ga)
	t.Logf("live before the restart %v, after %v", liveBefore, live)
	for e := tip - 3; e <= tip; e++ {
		if !slices.Contains(live, e) {
			t.Fatalf("restarted machine holds epochs %v, want %d..%d (before the restart: %v)", live, tip-3, tip, liveBefore)
		}
	}
	if h := history(t, ga); !slices.Equal(h, histBefore) {
		t.Fatalf("history after the restart\n%v\nbefore\n%v", h, histBefore)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var known int
	var tipEpoch uint64
	if err := ga.do(ctx, func() {
		_, tipEpoch, _ = ga.m.Current()
		for _, rec := range ga.commits {
			if rec.epoch > tip-3 && rec.epoch <= tip {
				known++
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if tipEpoch != tip || known != 3 {
		t.Fatalf("restarted at epoch %d (want %d) knowing %d of the last 3 Commits", tipEpoch, tip, known)
	}

	connect(t, alice2, bob)
	alice2.run(g, "after the restart")
	bob.rec.wait(t, "alice's message after the restart", isMessage(g, "after the restart"))
	bob.run(g, "welcome back")
	alice2.rec.wait(t, "bob's message after the restart", isMessage(g, "welcome back"))
	bob.run(g, "/update")
	waitFor(t, "alice follows bob's update", func() bool { a, b := epochs(alice2); return a == b && a == tip+1 })
	alice2.run(g, "/update")
	waitFor(t, "bob follows alice's update", func() bool { a, b := epochs(alice2); return a == b && a == tip+2 })
	alice2.run(g, "still here")
	bob.rec.wait(t, "message after the commits", isMessage(g, "still here"))
	if l := liveStates(t, ga); !slices.Contains(l, tip) || !slices.Contains(l, tip+2) {
		t.Fatalf("live states after new commits: %v", l)
	}
}

func liveStates(t *testing.T, g *group) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var out []uint64
	if err := g.do(ctx, func() { out = g.m.LiveStates() }); err != nil {
		t.Fatal(err)
	}
	return out
}

func history(t *testing.T, g *group) []ordering.Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var out []ordering.Entry
	if err := g.do(ctx, func() { out = g.m.History() }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStoredCommitRoundTrip: the stored ordering info of a Commit keeps
// binary identities and the parent's hash; anything else is refused.
func TestStoredCommitRoundTrip(t *testing.T) {
	rec := &commitRec{parent: ordering.Hash{1, 2, 3}, info: ordering.CommitInfo{
		Sender: "\x00\xffsender", External: true, Added: []string{"\xfe\x00a"}, Removed: []string{"r\x80"},
		Updated: []string{"u"}, Path: true,
	}}
	info, parent, ok := decodeStoredCommit(encodeStoredCommit(rec))
	if !ok || parent != rec.parent || !reflect.DeepEqual(info, rec.info) {
		t.Fatalf("round trip: %+v %v %v", info, parent, ok)
	}
	for _, b := range [][]byte{nil, []byte("{}"), []byte(`{"v":1,"p":"AQ=="}`), []byte(`{"v":2,"p":"` + string(make([]byte, 0)) + `"}`), []byte("x")} {
		if _, _, ok := decodeStoredCommit(b); ok {
			t.Fatalf("accepted %q", b)
		}
	}
}

// TestRestartSkipsLoggedFrames: frames an earlier run logged (with the
// state that opened them, in one transaction) are not handed to the fork
// choice again when a catch-up brings them back after a restart: their
// keys are consumed, so they would only sit in the machine's buffer, and
// their messages are not shown again.
func TestRestartSkipsLoggedFrames(t *testing.T) {
	alice, bob, aliceOpts, g := restartablePair(t, "skip")
	const n = 5
	for i := range n {
		bob.run(g, fmt.Sprint("before ", i))
	}
	alice.rec.wait(t, "bob's last message", isMessage(g, fmt.Sprint("before ", n-1)))
	alice2, ga := restarted(t, alice, aliceOpts, g)
	connect(t, alice2, bob)
	// Bob's frame log holds his messages: the catch-up from him brings
	// them back. Wait until it is over and its frames are handled.
	caughtUp := func() (done bool, buffered int) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if err := ga.do(ctx, func() {
			done = !ga.sync.running && ga.sync.peers[bob.e.id.id] && len(ga.frames) == 0
			buffered = ga.m.Stats().Buffered
		}); err != nil {
			t.Fatal(err)
		}
		return done, buffered
	}
	waitFor(t, "catch-up from bob", func() bool { done, _ := caughtUp(); return done })
	if _, buffered := caughtUp(); buffered != 0 {
		t.Fatalf("%d frames buffered after the catch-up: frames of the earlier run handled again", buffered)
	}
	bob.run(g, "after")
	alice2.rec.wait(t, "bob's message after the restart", isMessage(g, "after"))
	for i := range n {
		if alice2.rec.has(isMessage(g, fmt.Sprint("before ", i))) {
			t.Fatalf("message %d of the earlier run shown again", i)
		}
	}
}

// TestStopStoresHeldMessages: a message held for its sender's order (an
// earlier one is missing) when the engine closes is shown and stored
// before it stops, so the closing run's front ends see it, and it is in
// the history after the restart.
func TestStopStoresHeldMessages(t *testing.T) {
	alice, _, aliceOpts, g := holdingPair(t, "held")
	alice2, _ := restarted(t, alice, aliceOpts, g)
	if !alice.rec.has(isMessage(g, "held")) {
		t.Fatal("the held message was not shown when the engine closed")
	}
	found := false
	for _, m := range alice2.e.History(g, "", 10) {
		found = found || m.Body == "held"
	}
	if !found {
		t.Fatal("the held message is not in the history after the restart")
	}
}

// TestCrashKeepsHeldMessage: a message held for its sender's order is
// stored with the state that opened it. When the engine stops without
// writing anything more (a crash: here its database goes away first), the
// restarted engine shows it, marked as after a gap, and the missing
// earlier message, when the catch-up brings it, marked late.
func TestCrashKeepsHeldMessage(t *testing.T) {
	alice, bob, aliceOpts, g := holdingPair(t, "crash")
	held, err := alice.e.db.HeldMessages(context.Background(), alice.e.group(g).id)
	if err != nil || len(held) != 1 {
		t.Fatalf("held messages in the store: %v, %v", held, err)
	}
	if err := alice.e.db.Close(); err != nil {
		t.Fatal(err)
	}
	_ = alice.e.Close() // it cannot store what it shows on the way out
	if alice.rec.has(isMessage(g, "held")) {
		t.Fatal("the held message was shown although it could not be stored")
	}

	alice2 := newPeer(t, alice.e.nick(), aliceOpts)
	placed := func(body string, p Placement) func(Event) bool {
		return func(ev Event) bool {
			m, ok := ev.(MessageEvent)
			return ok && m.Message.Group == g && m.Message.Body == body && m.Message.Placement == p
		}
	}
	alice2.rec.wait(t, "the held message after the restart", placed("held", AfterGap))
	connect(t, alice2, bob)
	alice2.rec.wait(t, "the lost message, late", placed("lost", Late))
	var bodies []string
	for _, m := range alice2.e.History(g, "", 10) {
		bodies = append(bodies, m.Body)
	}
	if !slices.Contains(bodies, "held") || !slices.Contains(bodies, "lost") {
		t.Fatalf("history after the restart: %q", bodies)
	}
	ga2 := alice2.e.group(g)
	waitFor(t, "the held message deleted from the store", func() bool {
		h, err := alice2.e.db.HeldMessages(context.Background(), ga2.id)
		return err == nil && len(h) == 0
	})
}

// holdingPair is restartablePair with alice holding bob's message "held"
// for its sender's order, written to her store: his "lost" before it is
// only in his frame log.
func holdingPair(t *testing.T, name string) (alice, bob *testPeer, aliceOpts func(*Config), g GroupID) {
	t.Helper()
	alice, bob, aliceOpts, g = restartablePair(t, name)
	bob.run(g, "first")
	alice.rec.wait(t, "first", isMessage(g, "first"))
	waitSyncedFrom(t, alice, bob, g)
	sendUngossiped(t, bob, g, "lost")
	bob.run(g, "held")
	ga := alice.e.group(g)
	waitFor(t, "alice holding bob's next message, stored", func() bool {
		var held, stored int
		_ = ga.do(context.Background(), func() { held, stored = ga.heldForOrder(), len(ga.order.stored) })
		return held == 1 && stored == 1
	})
	return alice, bob, aliceOpts, g
}

// TestSendRefusedWhenStateNotStored: when the state that protected an own
// message cannot be written, the message is refused and never published.
// A restart would protect the next message with the same ratchet
// generation (the key and nonce of the one sent), which MLS forbids.
func TestSendRefusedWhenStateNotStored(t *testing.T) {
	alice, bob, g := pairInGroup(t, "refused")
	alice.run(g, "stored")
	bob.rec.wait(t, "the stored message", isMessage(g, "stored"))

	if err := alice.e.db.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := alice.e.Run(ctx, g, "not stored"); err == nil {
		t.Fatal("a message whose state could not be stored was accepted")
	}
	if ev, ok := bob.rec.log.Wait(0, 2*time.Second, isMessage(g, "not stored")); ok {
		t.Fatalf("bob received a message whose state was never stored: %+v", ev)
	}
}

// restarted closes p's engine and starts it again with opts (its
// profile), returning the new peer and its group g.
func restarted(t *testing.T, p *testPeer, opts func(*Config), g GroupID) (*testPeer, *group) {
	t.Helper()
	if err := p.e.Close(); err != nil {
		t.Fatal(err)
	}
	p2 := newPeer(t, p.e.nick(), opts)
	gr := p2.e.group(g)
	if gr == nil {
		t.Fatal("group not loaded")
	}
	return p2, gr
}
