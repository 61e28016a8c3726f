package p2p

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestGossipDuplicatesCounted: in a triangle every host is in every other's
// mesh, so a frame published by a reaches c directly and again through b.
// c's reader gets each frame once; the copies after the first are counted
// in canopy_p2p_gossip_duplicates_total.
func TestGossipDuplicatesCounted(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	group := newGroupID()
	reg := prometheus.NewRegistry()
	a, b, c := newTestNode(t), newTestNode(t), newTestNode(t, WithMetrics(reg))
	connect(t, a, b)
	connect(t, b, c)
	connect(t, a, c)
	var topics []*Topic
	for _, n := range []*Node{a, b, c} {
		tp, err := n.JoinGroup(group)
		if err != nil {
			t.Fatal(err)
		}
		topics = append(topics, tp)
	}
	for _, tp := range topics {
		if err := tp.WaitMesh(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	const frames = 20
	for i := range frames {
		if _, err := topics[0].Publish(ctx, mlsFrame(group, 1, fmt.Sprint("frame ", i))); err != nil {
			t.Fatal(err)
		}
	}
	for range frames {
		nextMsg(t, topics[2], 10*time.Second)
	}
	dups := func() float64 { return counterValue(t, reg, metricsNS+"_gossip_duplicates_total", nil) }
	waitFor(t, 10*time.Second, "duplicates counted", func() bool { return dups() > 0 })
	expectNoMsg(t, topics[2], 200*time.Millisecond)
	if got := dups(); got > frames {
		t.Errorf("%v duplicates of %d frames from two neighbours: want at most one per frame", got, frames)
	}
}
