package p2p

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/internal/cputime"
	"github.com/prometheus/client_golang/prometheus"
)

// benchGroup starts n hosts on loopback connected in a ring with chords
// (each host to the next two), joins them to one topic and waits for the
// mesh. Rate limits are off: the benchmark is its own flood.
func benchGroup(b *testing.B, n int) ([]*Node, []*Topic, []byte) {
	b.Helper()
	group := newGroupID()
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = newTestNode(b, WithGossipRateLimit(RateLimit{}, RateLimit{}))
	}
	for i := range nodes {
		for _, j := range []int{(i + 1) % n, (i + 2) % n} {
			if j != i && nodes[i].Host().Network().Connectedness(nodes[j].ID()) != 1 {
				connect(b, nodes[i], nodes[j])
			}
		}
	}
	return nodes, joinMeshed(b, nodes, group, min(2, n-1)), group
}

// joinMeshed joins every node to group's topic and waits until each has
// at least mesh peers in its mesh.
func joinMeshed(b *testing.B, nodes []*Node, group []byte, mesh int) []*Topic {
	b.Helper()
	topics := make([]*Topic, len(nodes))
	for i, nd := range nodes {
		tp, err := nd.JoinGroup(group)
		if err != nil {
			b.Fatal(err)
		}
		topics[i] = tp
	}
	for _, tp := range topics {
		if err := tp.WaitMesh(testCtx(b, 20*time.Second), mesh); err != nil {
			b.Fatal(err)
		}
	}
	return topics
}

// collect counts frames per receiver and signals when all receivers have
// seen `want` frames.
func collect(b *testing.B, topics []*Topic, onMsg func(i int, m Message)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, tp := range topics {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := tp.Next(ctx)
				if err != nil {
					return
				}
				onMsg(i, m)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// BenchmarkGossipDelivery measures the latency from Publish until every
// other host has received the frame (one frame in flight at a time).
// ns/op is that end-to-end latency; p50-ms and p99-ms are per receiver.
func BenchmarkGossipDelivery(b *testing.B) {
	for _, n := range []int{5, 10} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			_, topics, group := benchGroup(b, n)
			type arrival struct {
				seq uint64
				at  time.Time
			}
			arrivals := make(chan arrival, 1024)
			stop := collect(b, topics[1:], func(_ int, m Message) {
				arrivals <- arrival{binary.BigEndian.Uint64(m.Data[len(m.Data)-8:]), time.Now()}
			})
			defer stop()
			payload := make([]byte, 256)
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				binary.BigEndian.PutUint64(payload[len(payload)-8:], uint64(i))
				f := mlsFrame(group, 1, string(payload))
				start := time.Now()
				if _, err := topics[0].Publish(context.Background(), f); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < n-1; {
					select {
					case a := <-arrivals:
						if a.seq == uint64(i) {
							got++
							lat = append(lat, a.at.Sub(start))
						}
					case <-time.After(10 * time.Second):
						b.Fatalf("frame %d reached %d of %d hosts", i, got, n-1)
					}
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkGossipThroughput publishes b.N frames from one host, keeping at
// most `window` frames in flight (published but not yet received by every
// host: gossipsub has no backpressure and drops what overflows its queues),
// and waits until every other host has all of them. MB/s counts payload
// bytes published; deliveries/s counts frames received across all hosts.
func BenchmarkGossipThroughput(b *testing.B) {
	for _, n := range []int{5, 10} {
		for _, size := range []int{1 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("peers=%d/size=%dKiB", n, size>>10), func(b *testing.B) {
				_, topics, group := benchGroup(b, n)
				const window = 128
				var mu sync.Mutex
				cond := sync.NewCond(&mu)
				counts := make([]int, n-1)
				stop := collect(b, topics[1:], func(i int, m Message) {
					mu.Lock()
					counts[i]++
					mu.Unlock()
					cond.Broadcast()
				})
				defer stop()
				payload := make([]byte, size)
				frames := make([][]byte, b.N)
				for i := range frames {
					binary.BigEndian.PutUint64(payload, uint64(i))
					frames[i] = mlsFrame(group, 1, string(payload))
				}
				b.SetBytes(int64(size))
				b.ResetTimer()
				start := time.Now()
				deadline := time.AfterFunc(60*time.Second, func() {
					mu.Lock()
					defer mu.Unlock()
					b.Errorf("stalled: delivered %v of %d", counts, b.N)
					counts = slices.Repeat([]int{b.N}, n-1) // unblock
					cond.Broadcast()
				})
				defer deadline.Stop()
				waitUntil := func(k int) {
					mu.Lock()
					for slices.Min(counts) < k {
						cond.Wait()
					}
					mu.Unlock()
				}
				for i, f := range frames {
					waitUntil(i - window)
					if _, err := topics[0].Publish(context.Background(), f); err != nil {
						b.Fatal(err)
					}
				}
				waitUntil(b.N)
				b.StopTimer()
				b.ReportMetric(float64(b.N*(n-1))/time.Since(start).Seconds(), "deliveries/s")
			})
		}
	}
}

// BenchmarkGossipFloor is what gossip alone costs per delivery in issue
// #14's load shape: the floor under chat.BenchmarkDelivery and under the
// load test's observer (TestE2ELoad). Eleven hosts with canopy's
// production gossip settings (QUIC and TCP, the 1 s heartbeat, flood
// publishing, peer scoring, the frame validator), each connected to every
// other as a small group's members are; ten publish 256-byte frames in
// turn, the eleventh only receives. No MLS and no store: a frame is
// delivered when a host's topic reader has it. Rate limits are off: the
// shape, not the limiter, decides the rate.
//
//   - rate=50: 50 frames/s in all, as the load test sends them.
//   - rate=max: as fast as every host takes them (64 frames in flight).
//   - D=4: canopy runs gossipsub's default mesh degree of 6; a degree of 4
//     shows what fewer copies per frame would save, at the price of a mesh
//     that a few neighbours dropping frames can cut.
//   - tcp: the hosts listen on TCP only. Canopy listens on both and
//     libp2p dials QUIC first, as it hole-punches more often; this shows
//     what QUIC's per-packet work costs at a low rate.
//
// Metrics: cpu-µs/delivery is the process's CPU per frame received by a
// host (the hosts share the process, so publishing and forwarding are
// included) and deliveries/cpu-s its inverse; busy-µs/delivery leaves out
// what the hosts spend while no frame flows (heartbeats, keep-alives:
// idle-ms/s, measured over 3 s before the run); copies/delivery is what
// the receive-only host got per frame it delivered, the first copy
// included.
// Run with -benchtime=600x (12 s per run at rate=50).
func BenchmarkGossipFloor(b *testing.B) {
	const quic = "/ip4/127.0.0.1/udp/0/quic-v1"
	for _, c := range []struct {
		name   string
		rate   int // frames per second in all; 0: as fast as they go
		degree int
		listen []string
	}{
		{"rate=50/D=6", 50, 6, []string{loopTCP, quic}},
		{"rate=50/D=4", 50, 4, []string{loopTCP, quic}},
		{"rate=50/D=6/tcp", 50, 6, []string{loopTCP}},
		{"rate=max/D=6", 0, 6, []string{loopTCP, quic}},
	} {
		b.Run(c.name, func(b *testing.B) { benchGossipFloor(b, c.rate, c.degree, c.listen) })
	}
}

func benchGossipFloor(b *testing.B, rate, degree int, listen []string) {
	const n, window, size = 11, 64, 256
	group := newGroupID()
	nodes := make([]*Node, n)
	reg := prometheus.NewRegistry() // the receive-only host's
	for i := range nodes {
		opts := []Option{
			WithListenAddrs(listen...),
			withHeartbeat(time.Second),
			withMeshDegree(degree),
			WithGossipRateLimit(RateLimit{}, RateLimit{}),
		}
		if i == n-1 {
			opts = append(opts, WithMetrics(reg))
		}
		nodes[i] = newTestNode(b, opts...)
	}
	for i := range nodes {
		for j := i + 1; j < n; j++ {
			connect(b, nodes[i], nodes[j])
		}
	}
	topics := joinMeshed(b, nodes, group, degree*5/6)

	// Frame k is published by host k%(n-1) and carries k in its last 8
	// bytes; negative k are the warm-up.
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	delivered, observed := 0, 0
	stop := collect(b, topics, func(i int, m Message) {
		mu.Lock()
		delivered++
		if i == n-1 {
			observed++
		}
		mu.Unlock()
		cond.Broadcast()
	})
	defer stop()
	deadline := time.AfterFunc(10*time.Minute, func() {
		mu.Lock()
		defer mu.Unlock()
		b.Errorf("stalled: %d deliveries", delivered)
		delivered = math.MaxInt / 2 // unblock
		cond.Broadcast()
	})
	defer deadline.Stop()
	waitFor := func(d int) {
		mu.Lock()
		for delivered < d {
			cond.Wait()
		}
		mu.Unlock()
	}
	publish := func(k int) {
		payload := make([]byte, size)
		binary.BigEndian.PutUint64(payload[size-8:], uint64(k))
		if _, err := topics[((k%(n-1))+n-1)%(n-1)].Publish(context.Background(), mlsFrame(group, 1, string(payload))); err != nil {
			b.Fatal(err)
		}
	}
	const warm = 2 * (n - 1)
	for k := -warm; k < 0; k++ {
		publish(k)
	}
	waitFor(warm * (n - 1))

	// The hosts' CPU while no frame flows (a measurement window, not a
	// wait for something).
	idle0, idleAt := cputime.Process(b), time.Now()
	time.Sleep(3 * time.Second)
	idle := float64(cputime.Process(b)-idle0) / float64(time.Since(idleAt))

	mu.Lock()
	delivered, observed = 0, 0
	mu.Unlock()
	dups0 := counterValue(b, reg, metricsNS+"_gossip_duplicates_total", nil)
	cpu0, wall0 := cputime.Process(b), time.Now()
	b.ResetTimer()
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		tick = t.C
	}
	for k := range b.N {
		if tick != nil {
			<-tick
		} else {
			waitFor((k - window) * (n - 1))
		}
		publish(k)
	}
	waitFor(b.N * (n - 1))
	b.StopTimer()
	cpu, wall := cputime.Process(b)-cpu0, time.Since(wall0)
	busy := cpu - time.Duration(idle*float64(wall))
	dups := counterValue(b, reg, metricsNS+"_gossip_duplicates_total", nil) - dups0
	mu.Lock()
	deliveries, seen := delivered, observed
	mu.Unlock()
	b.ReportMetric(float64(cpu.Microseconds())/float64(deliveries), "cpu-µs/delivery")
	b.ReportMetric(float64(deliveries)/cpu.Seconds(), "deliveries/cpu-s")
	b.ReportMetric(float64(busy.Microseconds())/float64(deliveries), "busy-µs/delivery")
	b.ReportMetric(idle*1000, "idle-ms/s")
	b.ReportMetric((float64(seen)+dups)/float64(seen), "copies/delivery")
}
