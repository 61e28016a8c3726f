package chat

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/p2p/p2ptest"
)

// logTap is a slog handler that keeps the records of one message.
type logTap struct {
	msg  string
	mu   *sync.Mutex
	seen *[]map[string]string
}

func newLogTap(msg string) *logTap {
	return &logTap{msg: msg, mu: new(sync.Mutex), seen: new([]map[string]string)}
}

func (h *logTap) Enabled(context.Context, slog.Level) bool { return true }
func (h *logTap) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logTap) WithGroup(string) slog.Handler            { return h }
func (h *logTap) Handle(_ context.Context, r slog.Record) error {
	if r.Message != h.msg {
		return nil
	}
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	*h.seen = append(*h.seen, attrs)
	h.mu.Unlock()
	return nil
}

// count returns how many records had attribute key = value.
func (h *logTap) count(key, value string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, a := range *h.seen {
		if a[key] == value {
			n++
		}
	}
	return n
}

// TestCatchUpAfterGossipSwitch: alice reaches bob only through a relay,
// and they chat over the circuit. A direct connection opens next to it
// while a request keeps the relayed one busy, so gossipsub's streams stay
// on the circuit (bob catches up from alice on the new connection, as
// before). Then the relay falls silent and alice writes: gossip loses the
// message with the circuit. Once the request ends, both retire the
// relayed connection, gossipsub re-opens its streams on the direct one,
// and alice announces her subscription again: bob catches up from her
// then, and the message arrives.
func TestCatchUpAfterGossipSwitch(t *testing.T) {
	relay := newTestRelay(t)
	rID := relay.Node().ID()
	toAlice, toBob := p2ptest.NewSilentLink(t, relay.Node().Addrs()[0]), p2ptest.NewSilentLink(t, relay.Node().Addrs()[0])
	synced := newLogTap("synced")
	alice := newPeer(t, "alice")
	bob := newPeer(t, "bob", func(c *Config) { c.Logger = slog.New(synced) })
	aliceID, bobID := alice.e.id.id, bob.e.id.id

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p2ptest.Reserve(ctx, bob.e.node, p2p.AddrInfo{ID: rID, Addrs: []p2p.Multiaddr{toBob.Addr()}}); err != nil {
		t.Fatal(err)
	}
	circuit := p2ptest.CircuitAddr(toAlice.Addr(), rID)
	if err := alice.e.node.Connect(ctx, p2p.AddrInfo{ID: bobID, Addrs: []p2p.Multiaddr{circuit}}); err != nil {
		t.Fatal(err)
	}
	card := bob.e.Card()
	card.Addrs = nil // only the circuit leads to bob
	g := alice.run("", "/create switch "+card.String()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(g)) == 2 && len(bob.e.Members(g)) == 2 })
	alice.run(g, "through the relay")
	bob.rec.wait(t, "the relayed message", isMessage(g, "through the relay"))
	if relayed, direct := p2ptest.ConnKinds(alice.e.node, bobID); relayed != 1 || direct != 0 {
		t.Fatalf("alice has %d relayed and %d direct connections to bob", relayed, direct)
	}

	// A request in progress keeps the relayed connection from being
	// retired; the direct connection opens next to it, and bob catches up
	// from alice on it.
	release := p2ptest.Hold(t, alice.e.node, bob.e.node)
	before := synced.count("peer", aliceID.String())
	if err := p2ptest.DialDirect(ctx, alice.e.node, bob.e.node); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's catch-up from alice on the direct connection", func() bool {
		return synced.count("peer", aliceID.String()) > before
	})
	before = synced.count("peer", aliceID.String())

	// The relay falls silent; gossip still runs on the circuit.
	toAlice.Silence()
	toBob.Silence()
	alice.run(g, "lost by gossip")

	// The request ends: the relayed connections are retired, gossip moves.
	release()
	bob.rec.wait(t, "the message gossip lost", isMessage(g, "lost by gossip"))
	if synced.count("peer", aliceID.String()) <= before {
		t.Fatal("the message arrived, but not by a catch-up from alice")
	}
}
