package chat

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/internal/cputime"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// BenchmarkDelivery measures the messenger's delivery path end to end: N
// in-process engines (real libp2p hosts on 127.0.0.1; in-memory stores, or
// SQLite files like the binary's in the /disk variants) in one group;
// members 1…N-1 send text messages as fast as a bounded window lets them
// (each sender keeps at most benchWindow messages that the observer,
// member 0, has not shown yet), every member receives them.
// One iteration is one message sent; it is delivered N-1 times (to the
// other senders and to member 0).
//
// Metrics:
//   - deliveries/cpu-s: deliveries at all receivers per second of process
//     CPU (all N engines share this process, so this is the cost of one
//     delivery including its share of sending; a receiver on its own core
//     does at least this many per second);
//   - deliveries/s: deliveries per wall-clock second across receivers;
//   - p50-ms, p99-ms: send (Execute called) to MessageEvent at a receiver;
//   - reorders: messages a receiver showed after a later one of the same
//     sender (per-sender order, issue #14): past the 2 s hold under a
//     saturating load, and always marked Late (an unmarked one fails the
//     benchmark).
//
// Run with
//
//	go test -run '^$' -bench Delivery -benchtime 300x ./chat/
//
// N = 30 starts 30 hosts; it is left out under -short.
func BenchmarkDelivery(b *testing.B) {
	for _, n := range []int{3, 10, 30} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			if n > 10 && testing.Short() {
				b.Skip("30 engines: not under -short")
			}
			benchDelivery(b, n, false)
		})
	}
	// The real binary's store: SQLite files (WAL, synchronous=FULL) in a
	// temporary directory, so every batch's transaction is fsynced.
	for _, n := range []int{3, 10} {
		b.Run(fmt.Sprintf("N=%d/disk", n), func(b *testing.B) { benchDelivery(b, n, true) })
	}
}

// onDisk replaces a test peer's in-memory store with a profile database
// in a fresh temporary directory.
func onDisk(t testing.TB) engineOpt {
	return func(c *Config) {
		db, err := store.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		c.Store = db
	}
}

// benchGossipRate replaces gossip's per-neighbour flood limit (50 frames/s,
// which senders keep under by pacing their own frames): the benchmark
// measures what the engine can deliver, not the limit.
var benchGossipRate = p2p.RateLimit{Rate: 20_000, Burst: 20_000}

// benchWindow bounds each sender's messages in flight (sent, not yet shown
// by member 0): the benchmark measures a loaded but not runaway group.
const benchWindow = 32

// deliveryStats collects the receivers' MessageEvents.
type deliveryStats struct {
	mu       sync.Mutex
	cond     *sync.Cond
	sentAt   map[string]time.Time // body → when Execute was called
	lat      []time.Duration
	count    int
	reorders int
	unmarked int            // reorders not marked Late
	last     map[string]int // receiver|sender → highest sequence shown
	shown0   map[int]int    // sender index → messages member 0 showed
}

func newDeliveryStats() *deliveryStats {
	s := &deliveryStats{sentAt: map[string]time.Time{}, last: map[string]int{}, shown0: map[int]int{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// consume follows receiver r's recorder from event from on until stop
// is set.
func (s *deliveryStats) consume(r int, rec *recorder, from int, stop *atomicBool) {
	always := func(Event) bool { return true }
	for i := from; !stop.get(); {
		ev, ok := rec.log.Wait(i, 100*time.Millisecond, always)
		if !ok {
			continue
		}
		i++
		m, ok := ev.(MessageEvent)
		if !ok || m.Message.Own || !strings.HasPrefix(m.Message.Body, "bench ") {
			continue
		}
		now := time.Now()
		f := strings.Fields(m.Message.Body) // bench <sender> <seq>
		if len(f) != 3 {
			continue
		}
		sender, _ := strconv.Atoi(f[1])
		seq, _ := strconv.Atoi(f[2])
		s.mu.Lock()
		if at, ok := s.sentAt[m.Message.Body]; ok {
			s.lat = append(s.lat, now.Sub(at))
		}
		s.count++
		k := strconv.Itoa(r) + "|" + f[1]
		if prev, ok := s.last[k]; ok && seq < prev {
			s.reorders++
			if m.Message.Placement != Late {
				s.unmarked++
			}
		} else {
			s.last[k] = seq
		}
		if r == 0 {
			s.shown0[sender]++
		}
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// newGroupOf starts n engines, connects them (each to member 0 and to the
// one before it) and puts them in one group created by member 0.
func newGroupOf(b testing.TB, n int, disk bool) ([]*testPeer, GroupID) {
	b.Helper()
	peers := make([]*testPeer, n)
	for i := range peers {
		opts := []engineOpt{func(c *Config) {
			c.SyncInterval = time.Second
			c.P2POptions = append(c.P2POptions, p2p.WithGossipRateLimit(benchGossipRate, p2p.DefaultGossipByteRate))
		}}
		if disk {
			opts = append(opts, onDisk(b))
		}
		peers[i] = newPeer(b, fmt.Sprintf("p%d", i), opts...)
	}
	for i := 1; i < n; i++ {
		connect(b, peers[i], peers[0])
		if i > 1 {
			connect(b, peers[i], peers[i-1])
		}
	}
	cards := make([]string, 0, n-1)
	for _, p := range peers[1:] {
		cards = append(cards, p.card())
	}
	g := peers[0].run("", "/create bench "+strings.Join(cards, " ")).Group
	for _, p := range peers[1:] {
		if got := p.acceptInvitation(); got != g {
			b.Fatalf("joined %s, want %s", got, g)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, p := range peers {
		for len(p.e.Members(g)) != n {
			if time.Now().After(deadline) {
				b.Fatalf("%s sees %d members, want %d", p.e.nick(), len(p.e.Members(g)), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Every member must be in everyone's gossip mesh before the clock
	// starts: a warm-up message from each, seen by every other.
	for i, p := range peers {
		p.run(g, fmt.Sprintf("warmup %d", i))
	}
	for i, p := range peers {
		for j := range peers {
			if j != i {
				p.rec.wait(b, "warm-up", isMessage(g, fmt.Sprintf("warmup %d", j)))
			}
		}
	}
	return peers, g
}

// atomicBool is a stop flag.
type atomicBool struct{ v atomic.Bool }

func (a *atomicBool) get() bool { return a.v.Load() }
func (a *atomicBool) set()      { a.v.Store(true) }

func benchDelivery(b *testing.B, n int, disk bool) {
	peers, g := newGroupOf(b, n, disk)
	stats := newDeliveryStats()
	var stopped atomicBool
	var wg sync.WaitGroup
	defer func() {
		stopped.set()
		wg.Wait()
	}()
	for i, p := range peers {
		from := p.rec.log.Len()
		wg.Add(1)
		go func() { defer wg.Done(); stats.consume(i, p.rec, from, &stopped) }()
	}
	senders := n - 1
	per := make([]int, senders)
	for i := range b.N {
		per[i%senders]++
	}
	runtime.GC()
	b.ResetTimer()
	cpu0, wall0 := cputime.Process(b), time.Now()
	// A sender waits for its window at most 2 minutes (then the
	// benchmark fails with what member 0 has).
	stalled := time.Now().Add(2 * time.Minute)
	wake := time.AfterFunc(2*time.Minute, func() { stats.mu.Lock(); stats.cond.Broadcast(); stats.mu.Unlock() })
	defer wake.Stop()
	var swg sync.WaitGroup
	errs := make(chan error, senders)
	for s := 1; s <= senders; s++ {
		swg.Add(1)
		go func() {
			defer swg.Done()
			ctx := context.Background()
			for seq := range per[s-1] {
				stats.mu.Lock()
				for seq-stats.shown0[s] >= benchWindow && time.Now().Before(stalled) {
					stats.cond.Wait()
				}
				shown := stats.shown0[s]
				stats.mu.Unlock()
				if seq-shown >= benchWindow {
					errs <- fmt.Errorf("sender %d: member 0 showed %d of its first %d messages in 2 minutes:%s",
						s, shown, seq, missingReport(peers, per))
					return
				}
				body := fmt.Sprintf("bench %d %d", s, seq)
				stats.mu.Lock()
				stats.sentAt[body] = time.Now()
				stats.mu.Unlock()
				if _, err := peers[s].e.Execute(ctx, g, body); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	swg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	want := b.N * (n - 1)
	deadline := time.Now().Add(2 * time.Minute)
	stop := time.AfterFunc(time.Until(deadline), func() { stats.mu.Lock(); stats.cond.Broadcast(); stats.mu.Unlock() })
	stats.mu.Lock()
	for stats.count < want && time.Now().Before(deadline) {
		stats.cond.Wait()
	}
	got := stats.count
	stats.mu.Unlock()
	stop.Stop()
	wall, cpu := time.Since(wall0), cputime.Process(b)-cpu0
	b.StopTimer()
	if got < want {
		b.Fatalf("%d of %d deliveries after 2 minutes:%s", got, want, missingReport(peers, per))
	}
	stats.mu.Lock()
	lat := slices.Clone(stats.lat)
	reorders, unmarked := stats.reorders, stats.unmarked
	stats.mu.Unlock()
	if unmarked > 0 {
		b.Errorf("%d of %d messages shown after a later one of their sender were not marked late", unmarked, reorders)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(want)/cpu.Seconds(), "deliveries/cpu-s")
	b.ReportMetric(float64(want)/wall.Seconds(), "deliveries/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(reorders), "reorders")
	b.ReportMetric(0, "ns/op")
}

// missingReport lists, for each member, the first messages of each sender
// (sender s sent per[s-1]) that it has shown no MessageEvent for.
func missingReport(peers []*testPeer, per []int) string {
	var sb strings.Builder
	for r, p := range peers {
		events, _ := p.rec.log.Events()
		shown := map[string]bool{}
		for _, ev := range events {
			if m, ok := ev.(MessageEvent); ok {
				shown[m.Message.Body] = true
			}
		}
		for s := 1; s <= len(per); s++ {
			if s == r {
				continue
			}
			var miss []int
			for q := range per[s-1] {
				if !shown[fmt.Sprintf("bench %d %d", s, q)] {
					miss = append(miss, q)
				}
			}
			if len(miss) > 0 {
				fmt.Fprintf(&sb, "\n  member %d misses %d of sender %d's messages, first %v", r, len(miss), s, miss[:min(len(miss), 20)])
			}
		}
	}
	return sb.String()
}
