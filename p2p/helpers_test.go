package p2p

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/internal/testwait"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Tests run real hosts on 127.0.0.1 only, with mDNS, UPnP and AutoNAT off.

const loopTCP = "/ip4/127.0.0.1/tcp/0"

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("P2P_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

func baseOpts(t testing.TB) []Option {
	opts := []Option{
		WithListenAddrs(loopTCP),
		WithMDNS(false),
		WithDHT(DHTOff),
		WithAutoNAT(false),
		WithHolePunching(false),
		withHeartbeat(100 * time.Millisecond),
	}
	if l := testLogger(t); l != nil {
		opts = append(opts, WithLogger(l))
	}
	return opts
}

func newTestNode(t testing.TB, opts ...Option) *Node {
	t.Helper()
	n, err := New(context.Background(), nil, append(baseOpts(t), opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func newTestRelay(t testing.TB, cfg RelayConfig, opts ...Option) *Relay {
	t.Helper()
	cfg.Circuit.AllowPrivateAddrs = true
	opts = append(append(baseOpts(t), WithDHT(DHTServer)), opts...)
	r, err := NewRelay(context.Background(), nil, cfg, opts...)
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func connect(t testing.TB, a, b *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.AddrInfo()); err != nil {
		t.Fatalf("connect %s -> %s: %v", shortID(a.ID()), shortID(b.ID()), err)
	}
}

// waitFor polls cond until it holds: a readiness wait with a deadline.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, timeout, what, cond)
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var groupSeq struct {
	sync.Mutex
	n int
}

// newGroupID returns a group id unique within the test binary.
func newGroupID() []byte {
	groupSeq.Lock()
	defer groupSeq.Unlock()
	groupSeq.n++
	return fmt.Appendf(nil, "group-%d-%d", groupSeq.n, time.Now().UnixNano())
}

// mlsFrame builds a syntactically valid PrivateMessage of group at epoch.
func mlsFrame(group []byte, epoch uint64, payload string) []byte {
	return BuildPrivateMessage(group, epoch, ContentApplication, nil, []byte("sender-data"), []byte(payload))
}

// nextMsg reads the next message of t within d.
func nextMsg(t testing.TB, tp *Topic, d time.Duration) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := tp.Next(ctx)
	if err != nil {
		t.Fatalf("%s: Next: %v", shortID(tp.n.ID()), err)
	}
	return m
}

// expectNoMsg checks that nothing arrives on t within d.
func expectNoMsg(t testing.TB, tp *Topic, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := tp.Next(ctx); err == nil {
		t.Fatalf("%s: unexpected message %q", shortID(tp.n.ID()), m.Data)
	}
}

func containsData(ms []Message, data []byte) bool {
	for _, m := range ms {
		if bytes.Equal(m.Data, data) {
			return true
		}
	}
	return false
}

func peerIDs(ns ...*Node) []peer.ID {
	out := make([]peer.ID, len(ns))
	for i, n := range ns {
		out[i] = n.ID()
	}
	return out
}
