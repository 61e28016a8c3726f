package chat

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/internal/testwait"
	"github.com/canopy-chat/canopy/store"
)

// Tests run real engines: real libp2p hosts on 127.0.0.1 (mDNS, DHT,
// AutoNAT off), connected by explicit addresses, with in-memory or
// t.TempDir() stores. Waits are readiness waits with deadlines.

const waitLong = 20 * time.Second

type testPeer struct {
	t   testing.TB
	e   *Engine
	rec *recorder
}

type engineOpt func(*Config)

func newPeer(t testing.TB, nick string, opts ...engineOpt) *testPeer {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenMemory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Store: db,
		Nick:  nick,
		// TCP and QUIC, like the default: libp2p prefers QUIC between them.
		ListenAddrs:  []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		NoNAT:        true,
		Logger:       testLogger(t, nick),
		SyncInterval: 300 * time.Millisecond,
		BatchDelay:   50 * time.Millisecond,
		CommitDelay:  100 * time.Millisecond,
		SettleTime:   200 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open %s: %v", nick, err)
	}
	p := &testPeer{t: t, e: e, rec: newRecorder(e.Events())}
	t.Cleanup(func() {
		_ = e.Close()
		_ = db.Close()
	})
	return p
}

func testLogger(t testing.TB, name string) *slog.Logger {
	if os.Getenv("CANOPY_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("who", name)
}

// connect dials b from a.
func connect(t testing.TB, a, b *testPeer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.e.node.Connect(ctx, b.e.node.AddrInfo()); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

// run executes a command line and fails the test on error.
func (p *testPeer) run(g GroupID, line string) Result {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	r, err := p.e.Run(ctx, g, line)
	if err != nil {
		p.t.Fatalf("%s: %q: %v", p.e.nick(), line, err)
	}
	return r
}

func (p *testPeer) card() string { return p.e.Self().Card }

// recorder keeps every event and lets tests wait for one.
type recorder struct{ log testwait.Log[Event] }

func newRecorder(ch <-chan Event) *recorder {
	r := &recorder{}
	go func() {
		for ev := range ch {
			r.log.Add(ev)
		}
		r.log.Close()
	}()
	return r
}

// wait returns the first event (from the start) matching f.
func (r *recorder) wait(t testing.TB, what string, f func(Event) bool) Event {
	t.Helper()
	ev, ok := r.log.Wait(0, waitLong, f)
	if !ok {
		events, _ := r.log.Events()
		var sb strings.Builder
		for _, ev := range events {
			fmt.Fprintf(&sb, "\n  %T %+v", ev, ev)
		}
		t.Fatalf("timed out waiting for %s; events:%s", what, sb.String())
	}
	return ev
}

func (r *recorder) has(f func(Event) bool) bool { return r.log.Has(f) }

func isMessage(g GroupID, body string) func(Event) bool {
	return func(ev Event) bool {
		m, ok := ev.(MessageEvent)
		return ok && m.Message.Group == g && m.Message.Body == body
	}
}

func isSystem(g GroupID, substr string) func(Event) bool {
	return func(ev Event) bool {
		m, ok := ev.(MessageEvent)
		return ok && m.Message.Group == g && m.Message.Kind == KindSystem && strings.Contains(m.Message.Body, substr)
	}
}

func isInvitation(ev Event) bool { _, ok := ev.(InvitationEvent); return ok }

// waitFor polls cond until it holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, waitLong, what, cond)
}

func memberNames(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Nick)
	}
	return out
}

func hasMember(ms []Member, nick string) bool {
	for _, m := range ms {
		if m.Nick == nick {
			return true
		}
	}
	return false
}

// join accepts the pending invitation of p and returns its group.
func (p *testPeer) acceptInvitation() GroupID {
	p.t.Helper()
	p.rec.wait(p.t, p.e.nick()+" invitation", isInvitation)
	return p.run("", "/accept").Group
}

// restartablePair creates a group of two, alice (whose profile lives in a
// directory, so that the test can restart her with newPeer(t, "alice",
// aliceOpts)) and bob, and waits until both see both.
func restartablePair(t *testing.T, name string) (alice, bob *testPeer, aliceOpts func(*Config), g GroupID) {
	t.Helper()
	dir := t.TempDir()
	aliceOpts = func(c *Config) { c.Store, c.ProfileDir = nil, dir }
	alice, bob, g = pairInGroup(t, name, aliceOpts)
	return alice, bob, aliceOpts, g
}

// pairInGroup starts alice (with aliceOpts) and bob, connects them, has
// alice create group name with bob and waits until both see both.
func pairInGroup(t *testing.T, name string, aliceOpts ...engineOpt) (alice, bob *testPeer, g GroupID) {
	t.Helper()
	alice, bob = newPeer(t, "alice", aliceOpts...), newPeer(t, "bob")
	connect(t, alice, bob)
	g = alice.run("", "/create "+name+" "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(g)) == 2 && len(bob.e.Members(g)) == 2 })
	return alice, bob, g
}
