package p2p

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

func rpcOf(topic string, sizes ...int) *pubsub.RPC {
	rpc := &pubsub.RPC{}
	for _, n := range sizes {
		t := topic
		rpc.Publish = append(rpc.Publish, &pb.Message{Topic: &t, Data: make([]byte, n)})
	}
	return rpc
}

// TestGossipBudgetAdmitsSettlesExpires: the inspector keeps frames while
// their class's budget lasts and strips the rest; a settled frame's bytes
// are free again; an unsettled one's after the hold time; frames of topics
// the node does not validate are passed on uncounted; a graylisted
// peer's are stripped.
func TestGossipBudgetAdmitsSettlesExpires(t *testing.T) {
	const maxFrame = 1 << 20
	b := newGossipBudget(maxFrame)
	now := time.Unix(1000, 0)
	b.now = func() time.Time { return now }
	b.watch("t")

	large := rpcOf("t", make([]int, gossipLargeFrames+2)...)
	for _, m := range large.Publish {
		m.Data = make([]byte, maxFrame)
	}
	_ = b.inspect("", large)
	if len(large.Publish) != gossipLargeFrames {
		t.Fatalf("kept %d maximal frames, want %d", len(large.Publish), gossipLargeFrames)
	}
	// Small frames have their own budget: a full large budget leaves them be.
	small := rpcOf("t", 1000, 1000, 1000)
	_ = b.inspect("", small)
	if len(small.Publish) != 3 {
		t.Fatalf("kept %d of 3 small frames while the large budget was full", len(small.Publish))
	}
	if in, dropped := b.usage(); in != gossipLargeFrames*maxFrame+3000 || dropped != 2 {
		t.Fatalf("in flight %d, dropped %d", in, dropped)
	}
	// Settling one large frame makes room for exactly one more.
	b.settle(&pubsub.Message{Message: large.Publish[0]})
	b.settle(&pubsub.Message{Message: large.Publish[0]}) // a second verdict frees nothing more
	again := rpcOf("t", maxFrame, maxFrame)
	_ = b.inspect("", again)
	if len(again.Publish) != 1 {
		t.Fatalf("after one settled, kept %d of 2", len(again.Publish))
	}
	// Another topic: not counted, not stripped.
	other := rpcOf("other", maxFrame, maxFrame)
	_ = b.inspect("", other)
	if len(other.Publish) != 2 {
		t.Fatalf("stripped frames of a topic the node does not validate")
	}
	// Unsettled frames are presumed gone after the hold time.
	now = now.Add(gossipValidatorTimeout + gossipHoldMargin + time.Second)
	fresh := rpcOf("t", maxFrame, maxFrame, maxFrame, maxFrame)
	_ = b.inspect("", fresh)
	if len(fresh.Publish) != 4 {
		t.Fatalf("after the hold time, kept %d of 4", len(fresh.Publish))
	}
	if in, _ := b.usage(); in != 4*maxFrame {
		t.Fatalf("in flight after expiry: %d", in)
	}
	// A graylisted peer's frames are dropped by gossipsub without a
	// verdict: they are stripped, not counted.
	b.graylisted = func(p peer.ID) bool { return p == "gray" }
	gray := rpcOf("t", 10, 10)
	_ = b.inspect("gray", gray)
	if len(gray.Publish) != 0 {
		t.Fatalf("kept %d frames of a graylisted peer", len(gray.Publish))
	}
	if in, _ := b.usage(); in != 4*maxFrame {
		t.Fatalf("a graylisted peer's frames were counted: %d in flight", in)
	}
}

// floodPeer is a flooding peer in its own process (floodPeerMain).
type floodPeer struct {
	id    peer.ID
	stdin io.WriteCloser
	lines *bufio.Scanner
}

func startFloodPeer(t *testing.T, victim *Node, group []byte, frames int) *floodPeer {
	t.Helper()
	addr := victim.AddrInfo().Addrs[0].String() + "/p2p/" + victim.ID().String()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CANOPY_P2P_FLOOD_PEER="+addr, "CANOPY_P2P_FLOOD_GROUP="+hex.EncodeToString(group), fmt.Sprintf("CANOPY_P2P_FLOOD_N=%d", frames))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	fp := &floodPeer{stdin: stdin, lines: bufio.NewScanner(stdout)}
	if !fp.lines.Scan() {
		t.Fatalf("flood peer did not start: %v", fp.lines.Err())
	}
	id, ok := strings.CutPrefix(fp.lines.Text(), "id ")
	if !ok {
		t.Fatalf("flood peer said %q", fp.lines.Text())
	}
	if fp.id, err = peer.Decode(id); err != nil {
		t.Fatal(err)
	}
	return fp
}

// TestGossipFloodStaysInBudget (issue 13): six throw-away peers, each in
// its own process, send ten maximal (8 MiB) Commit frames with a valid
// header at once to a victim whose engine validator holds every frame of
// theirs it is given (as a slow or stuck MLS check would). Meanwhile five
// honest peers send 400 small frames each. Gossipsub lets through to the
// validator only what fits the gossip budget (gossipbudget.go): at most
// gossipLargeFrames maximal frames are held, the victim's live heap grows
// by less than the budget (plus 16 MiB of slack), its sampled heap stays
// under the worst case p2p/doc.go states, and all 2,000 honest frames
// arrive. Once the validator lets go, gossipsub's verdicts empty the
// budget (no leak waiting for the hold time) and an honest maximal frame
// arrives. Before the budget (validation queue 256, no inspector) the
// validator held every sybil's whole byte-rate burst (24 frames, +199 MiB
// live) and 1,252 of the 2,000 honest frames arrived.
func TestGossipFloodStaysInBudget(t *testing.T) {
	const payloadAfter = DefaultMaxMessageSize - 4096
	const sybils, perSybil, honestPeers, perHonest = 6, 10, 5, 400
	group := newGroupID()
	var (
		mu      sync.Mutex
		bad     = map[peer.ID]bool{}
		held    int
		maxHeld int
		release = make(chan struct{})
	)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	reg := prometheus.NewRegistry()
	victim := newTestNode(t, WithMetrics(reg), WithValidator(func(ctx context.Context, from peer.ID, hdr MLSHeader, data []byte) ValidationResult {
		mu.Lock()
		isBad := bad[from]
		if isBad {
			held++
			maxHeld = max(maxHeld, held)
		}
		mu.Unlock()
		if !isBad {
			return Accept
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		mu.Lock()
		held--
		mu.Unlock()
		return Ignore
	}))
	tv, err := victim.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 60*time.Second)

	var honest []*Topic
	for range honestPeers {
		h := newTestNode(t)
		th, err := h.JoinGroup(group)
		if err != nil {
			t.Fatal(err)
		}
		connect(t, h, victim)
		honest = append(honest, th)
	}
	var floods []*floodPeer
	for range sybils {
		fp := startFloodPeer(t, victim, group, perSybil)
		mu.Lock()
		bad[fp.id] = true
		mu.Unlock()
		floods = append(floods, fp)
	}
	waitFor(t, 20*time.Second, "everyone in the victim's topic", func() bool { return len(tv.Peers()) == sybils+honestPeers })
	// Each honest peer knows the victim is in the topic (else its frames
	// would be queued for direct sending, a path this test is not about).
	for _, th := range honest {
		if err := th.WaitPeers(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}

	// Baseline, then the flood with the heap sampled throughout.
	runtime.GC() // buffer pools keep freed buffers through one collection
	base := heapInuse()
	var peak atomic.Uint64
	sampling := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-sampling:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	for _, fp := range floods {
		if _, err := io.WriteString(fp.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	want := map[string]bool{}
	for i, th := range honest {
		frames := make([][]byte, perHonest)
		for j := range frames {
			frames[j] = mlsFrame(group, 1, fmt.Sprintf("honest %d frame %d", i, j))
			want[string(frames[j])] = true
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, f := range frames {
				if _, err := th.Publish(ctx, f); err != nil {
					t.Errorf("honest publish: %v", err)
					return
				}
			}
		}()
	}
	got, total := 0, len(want)
	for got < total {
		m, err := tv.Next(ctx)
		if err != nil {
			t.Fatalf("victim received %d of %d honest frames during the flood: %v", got, total, err)
		}
		if want[string(m.Data)] {
			delete(want, string(m.Data))
			got++
		}
	}
	wg.Wait()
	// Every sybil frame has met its fate at the victim: held by the
	// validator, ignored over the sender's rate, or stripped by the budget.
	rateIgnored := func() int { return int(gossipCount(t, reg, Ignore, "rate")) }
	waitFor(t, 60*time.Second, "every sybil frame judged", func() bool {
		mu.Lock()
		h := held
		mu.Unlock()
		_, dropped := victim.budget.usage()
		return h+rateIgnored()+int(dropped) >= sybils*perSybil
	})
	close(sampling)
	<-samplerDone
	// Two collections: buffer pools (sync.Pool) keep freed buffers
	// through one.
	runtime.GC()
	live := int64(heapInuse()) - int64(base)
	mu.Lock()
	h, mh := held, maxHeld
	mu.Unlock()
	inflight, dropped := victim.budget.usage()
	bound := victim.budget.bound()
	t.Logf("%d sybils × %d maximal frames, %d honest frames: delivered %d/%d; validator held %d (max %d) maximal frames; budget stripped %d, rate ignored %d; in flight %d MiB (bound %d MiB); live heap +%d MiB, sampled peak +%d MiB (load: see report)",
		sybils, perSybil, honestPeers*perHonest, got, honestPeers*perHonest, h, mh, dropped, rateIgnored(), inflight>>20, bound>>20, live>>20, (int64(peak.Load())-int64(base))>>20)
	if mh > gossipLargeFrames {
		t.Errorf("the validator held %d maximal frames at once, want at most %d", mh, gossipLargeFrames)
	}
	if worst := victim.budget.worstCase(sybils+honestPeers, DefaultMaxMessageSize+64<<10); int64(peak.Load())-int64(base) > worst {
		t.Errorf("victim's sampled heap peaked %d MiB over its baseline, want at most the stated worst case %d MiB", (int64(peak.Load())-int64(base))>>20, worst>>20)
	}
	if live > bound+16<<20 {
		t.Errorf("victim's live heap grew by %d MiB under the flood, want < %d MiB (budget %d MiB + 16 MiB)", live>>20, (bound+16<<20)>>20, bound>>20)
	}
	// Once the validator lets go, gossipsub's verdicts settle every
	// admitted frame: the budget empties well before the hold time would
	// free it, and a maximal honest frame gets through again.
	unblock()
	waitFor(t, 10*time.Second, "the budget to empty", func() bool { in, _ := victim.budget.usage(); return in == 0 })
	big := BuildPrivateMessage(group, 1, ContentCommit, nil, []byte("sender-data"), make([]byte, payloadAfter))
	if _, err := honest[0].Publish(ctx, big); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := tv.Next(ctx)
		if err != nil {
			t.Fatalf("an honest maximal frame after the flood: %v", err)
		}
		if len(m.Data) == len(big) {
			break
		}
	}
}
