package p2p

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

// benchGroup starts n hosts on loopback connected in a ring with chords
// (each host to the next two), joins them to one topic and waits for the
// mesh. Rate limits are off: the benchmark is its own flood.
func benchGroup(b *testing.B, n int) ([]*Node, []*Topic, []byte) {
	b.Helper()
	group := newGroupID()
	nodes := make([]*Node, n)
	topics := make([]*Topic, n)
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
	for i, nd := range nodes {
		tp, err := nd.JoinGroup(group)
		if err != nil {
			b.Fatal(err)
		}
		topics[i] = tp
	}
	for _, tp := range topics {
		if err := tp.WaitMesh(testCtx(b, 20*time.Second), min(2, n-1)); err != nil {
			b.Fatal(err)
		}
	}
	return nodes, topics, group
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
