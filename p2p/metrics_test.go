package p2p

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestGossipDuplicatesCounted: in a triangle every host is in every other's
// mesh, and a publishes each frame to b and c directly. Whichever of b and
// c has a frame first forwards it to the other, so per frame at least one
// of them gets a second copy, and neither gets more than two (a's and the
// other's). Readers get each frame once; the copies after the first are
// counted in canopy_p2p_gossip_duplicates_total. Which of b and c counts
// a frame's duplicate depends on timing (under load a's copy to one of
// them can come after the other's forward), so the test counts both.
func TestGossipDuplicatesCounted(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	group := newGroupID()
	regB, regC := prometheus.NewRegistry(), prometheus.NewRegistry()
	a, b, c := newTestNode(t), newTestNode(t, WithMetrics(regB)), newTestNode(t, WithMetrics(regC))
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
	for _, tp := range topics[1:] {
		for range frames {
			nextMsg(t, tp, 10*time.Second)
		}
	}
	dups := func() float64 {
		const name = metricsNS + "_gossip_duplicates_total"
		return counterValue(t, regB, name, nil) + counterValue(t, regC, name, nil)
	}
	waitFor(t, 10*time.Second, "a duplicate per frame counted", func() bool { return dups() >= frames })
	for _, tp := range topics[1:] {
		expectNoMsg(t, tp, 200*time.Millisecond)
	}
	if got := dups(); got > 2*frames {
		t.Errorf("%v duplicates of %d frames at two hosts with two neighbours each: want at most one per frame and host", got, frames)
	}
}
