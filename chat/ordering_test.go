package chat

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/p2p/p2ptest"
)

// state returns a member's epoch and epoch authenticator for a group.
func (p *testPeer) state(t testing.TB, gid GroupID) (uint64, []byte) {
	t.Helper()
	g := p.e.group(gid)
	if g == nil {
		return 0, nil
	}
	var epoch uint64
	var auth []byte
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.do(ctx, func() {
		if g.st != nil && !g.closed {
			epoch, auth = g.st.Epoch(), g.st.EpochAuthenticator()
		}
	})
	return epoch, auth
}

// converged reports whether all peers are at the same epoch with the same
// epoch authenticator (the same view of the group).
func converged(t testing.TB, gid GroupID, ps ...*testPeer) bool {
	e0, a0 := ps[0].state(t, gid)
	if a0 == nil {
		return false
	}
	for _, p := range ps[1:] {
		e, a := p.state(t, gid)
		if e != e0 || !bytes.Equal(a, a0) {
			return false
		}
	}
	return true
}

// convergedWith is converged, with every peer seeing n members.
func convergedWith(t testing.TB, gid GroupID, n int, ps ...*testPeer) bool {
	if !converged(t, gid, ps...) {
		return false
	}
	for _, p := range ps {
		if len(p.e.Members(gid)) != n {
			return false
		}
	}
	return true
}

// concurrently makes each (peer, change) Commit at the same time: the
// group loops are held until all changes are ready, so that no member sees
// the other's Commit before making its own.
func concurrently(t *testing.T, gid GroupID, changes map[*testPeer]func(*group)) {
	t.Helper()
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	for p, f := range changes {
		g := p.e.group(gid)
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			_ = g.do(ctx, func() {
				ready.Done()
				<-release
				f(g)
			})
		}()
	}
	ready.Wait()
	close(release)
	done.Wait()
}

// Journey 4: two members invite at the same moment. Both Commits are made
// for the same epoch; the fork choice keeps one everywhere, the other
// member's change is committed again, both invitees join, messages sent
// around the fork are not lost, and the timeline says what happened.
func TestConcurrentInvites(t *testing.T) {
	alice, bob, carol := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "carol")
	dave, erin := newPeer(t, "dave"), newPeer(t, "erin")
	connect(t, alice, bob)
	connect(t, alice, carol)
	connect(t, bob, carol)
	connect(t, alice, dave)
	connect(t, bob, erin)
	gid := alice.run("", "/create five "+bob.card()+" "+carol.card()).Group
	bob.acceptInvitation()
	carol.acceptInvitation()
	waitFor(t, "three members converge", func() bool { return converged(t, gid, alice, bob, carol) })

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	dk, err := alice.e.prepareInvitees(ctx, []string{dave.card()})
	if err != nil {
		t.Fatal(err)
	}
	ek, err := bob.e.prepareInvitees(ctx, []string{erin.card()})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := alice.state(t, gid)
	concurrently(t, gid, map[*testPeer]func(*group){
		alice: func(g *group) {
			g.intents.queue = append(g.intents.queue, change{kind: changeAdd, kp: dk[0].kp, peer: dk[0].peer})
			g.flush()
			_, _ = g.send(appText, []byte("alice during the race"), nil)
		},
		bob: func(g *group) {
			g.intents.queue = append(g.intents.queue, change{kind: changeAdd, kp: ek[0].kp, peer: ek[0].peer})
			g.flush()
			_, _ = g.send(appText, []byte("bob during the race"), nil)
		},
	})
	if e, _ := alice.state(t, gid); e <= before {
		t.Fatalf("alice at epoch %d after her commit, want more than %d", e, before)
	}

	dave.acceptInvitation()
	erin.acceptInvitation()
	all := []*testPeer{alice, bob, carol, dave, erin}
	waitFor(t, "five members converge", func() bool { return convergedWith(t, gid, 5, all...) })
	for _, p := range []*testPeer{alice, bob, carol} {
		p.rec.wait(t, p.e.nick()+": alice's message", isMessage(gid, "alice during the race"))
		p.rec.wait(t, p.e.nick()+": bob's message", isMessage(gid, "bob during the race"))
	}
	healed := func(p *testPeer) bool { return p.rec.has(isSystem(gid, "concurrent changes resolved")) }
	if !healed(alice) && !healed(bob) {
		t.Error("neither committer shows a notice for the fork it lost")
	}
	// Nothing duplicated in the history of the loser.
	for _, p := range []*testPeer{alice, bob} {
		n := 0
		for _, m := range p.e.History(gid, "", 100) {
			if strings.HasSuffix(m.Body, "during the race") {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%s has %d race messages in its history, want 2", p.e.nick(), n)
		}
	}
}

// Journey 4 with a removal: alice kicks carol while bob invites dave at the
// same moment. Removals win the fork choice; bob's invite is redone.
func TestConcurrentKickAndInvite(t *testing.T) {
	alice, bob, carol, dave := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "carol"), newPeer(t, "dave")
	connect(t, alice, bob)
	connect(t, alice, carol)
	connect(t, bob, carol)
	connect(t, bob, dave)
	gid := alice.run("", "/create four "+bob.card()+" "+carol.card()).Group
	bob.acceptInvitation()
	carol.acceptInvitation()
	waitFor(t, "three members converge", func() bool { return converged(t, gid, alice, bob, carol) })

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	dk, err := bob.e.prepareInvitees(ctx, []string{dave.card()})
	if err != nil {
		t.Fatal(err)
	}
	concurrently(t, gid, map[*testPeer]func(*group){
		alice: func(g *group) {
			g.intents.queue = append(g.intents.queue, change{kind: changeRemove, peer: carol.e.id.id})
			g.flush()
		},
		bob: func(g *group) {
			g.intents.queue = append(g.intents.queue, change{kind: changeAdd, kp: dk[0].kp, peer: dk[0].peer})
			g.flush()
		},
	})
	dave.acceptInvitation()
	waitFor(t, "alice, bob and dave converge without carol", func() bool {
		if !converged(t, gid, alice, bob, dave) {
			return false
		}
		ms := alice.e.Members(gid)
		return len(ms) == 3 && hasMember(ms, "dave") && !hasMember(ms, "carol")
	})
	carol.rec.wait(t, "carol removed", isSystem(gid, "removed you"))
	alice.run(gid, "after the race")
	dave.rec.wait(t, "message to the new group", isMessage(gid, "after the race"))
	bob.rec.wait(t, "message to the new group", isMessage(gid, "after the race"))
}

// fastOrdering makes fork healing quick in tests.
func fastOrdering(c *Config) {
	c.Ordering = ordering.Config{OrphanTime: time.Second, AnnounceInterval: time.Second, RejoinGrace: 2 * time.Second, RejoinRetry: 2 * time.Second}
}

// Journey 4 across a partition: bob is cut off from alice and carol while
// both invite someone; each invitee joins its side's branch. When the
// partition heals, the fork choice keeps one branch everywhere, the losing
// side's invitee is added again and rejoins by itself, and the messages of
// both sides are kept.
func TestPartitionHeal(t *testing.T) {
	gt := &p2ptest.Partition{}
	alice, carol, dave := newPeer(t, "alice", fastOrdering), newPeer(t, "carol", fastOrdering), newPeer(t, "dave", fastOrdering)
	bob := newPeer(t, "bob", fastOrdering, func(c *Config) { c.P2POptions = []p2p.Option{p2p.WithConnectionGater(gt)} })
	erin := newPeer(t, "erin", fastOrdering)
	connect(t, alice, bob)
	connect(t, alice, carol)
	connect(t, bob, carol)
	connect(t, alice, dave)
	connect(t, bob, erin)
	gid := alice.run("", "/create split "+bob.card()+" "+carol.card()).Group
	bob.acceptInvitation()
	carol.acceptInvitation()
	waitFor(t, "three members converge", func() bool { return converged(t, gid, alice, bob, carol) })

	// Partition: {alice, carol, dave} | {bob, erin}.
	gt.Block(alice.e.id.id, carol.e.id.id)
	for _, p := range []*testPeer{alice, carol} {
		_ = bob.e.node.Disconnect(p.e.id.id)
	}
	waitFor(t, "partition", func() bool { return !bob.e.isConnected(alice.e.id.id) && !bob.e.isConnected(carol.e.id.id) })

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); alice.run(gid, "/invite "+dave.card()) }()
	go func() { defer wg.Done(); bob.run(gid, "/invite "+erin.card()) }()
	wg.Wait()
	dave.acceptInvitation()
	erin.acceptInvitation()
	alice.run(gid, "side A")
	bob.run(gid, "side B")
	carol.rec.wait(t, "side A", isMessage(gid, "side A"))
	erin.rec.wait(t, "side B", isMessage(gid, "side B"))

	// Heal.
	gt.Heal()
	connect(t, bob, alice)
	connect(t, bob, carol)
	all := []*testPeer{alice, bob, carol, dave, erin}
	waitFor(t, "all five converge", func() bool { return convergedWith(t, gid, 5, all...) })
	for _, p := range []*testPeer{alice, bob, carol} {
		p.rec.wait(t, p.e.nick()+" side A", isMessage(gid, "side A"))
		p.rec.wait(t, p.e.nick()+" side B", isMessage(gid, "side B"))
	}
	alice.run(gid, "together again")
	for _, p := range []*testPeer{bob, carol, dave, erin} {
		p.rec.wait(t, p.e.nick()+" after healing", isMessage(gid, "together again"))
	}
}
