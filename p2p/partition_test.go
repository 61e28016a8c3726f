package p2p_test

import (
	"context"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/p2p/p2ptest"
)

func partitionNode(t *testing.T, opts ...p2p.Option) *p2p.Node {
	t.Helper()
	opts = append([]p2p.Option{p2p.WithListenAddrs("/ip4/127.0.0.1/tcp/0"), p2p.WithMDNS(false), p2p.WithDHT(p2p.DHTOff),
		p2p.WithAutoNAT(false), p2p.WithHolePunching(false)}, opts...)
	n, err := p2p.New(context.Background(), nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func TestPartition(t *testing.T) {
	var g p2ptest.Partition
	a := partitionNode(t, p2p.WithConnectionGater(&g))
	b, c := partitionNode(t), partitionNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []*p2p.Node{b, c} {
		if err := a.Connect(ctx, n.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	g.Block(b.ID())
	if err := a.Disconnect(b.ID()); err != nil {
		t.Fatal(err)
	}
	if a.IsConnected(b.ID()) || !a.IsConnected(c.ID()) {
		t.Fatal("after Block(b) and Disconnect(b): b still connected or c lost")
	}
	if err := a.Connect(ctx, b.AddrInfo()); err == nil {
		t.Fatal("a dialled a blocked peer")
	}
	if err := b.Connect(ctx, a.AddrInfo()); err == nil && a.IsConnected(b.ID()) {
		t.Fatal("a accepted a blocked peer")
	}
	g.Heal()
	if err := a.Connect(ctx, b.AddrInfo()); err != nil {
		t.Fatalf("connect after Heal: %v", err)
	}
}
