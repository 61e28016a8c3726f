package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/internal/cputime"
)

// Benchmarks. BenchmarkSearch uses CANOPY_BENCH_MESSAGES messages (default
// 20,000); the 1,000,000-message figures in the package notes come from
//
//	CANOPY_BENCH_MESSAGES=1000000 go test -run '^$' -bench Search -benchtime 2s ./store/

// benchVocab is a synthetic vocabulary; words are drawn Zipf-distributed,
// like words in real chat.
type benchVocab struct {
	words []string
	zipf  *rand.Zipf
	rng   *rand.Rand
}

func newBenchVocab(seed uint64) *benchVocab {
	rng := rand.New(rand.NewPCG(seed, 1))
	syll := []string{"ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "qua", "ber", "dan", "el", "fi", "gor", "hu", "ix", "jo", "pen", "sol", "tri"}
	words := make([]string, 20000)
	seen := map[string]bool{}
	for i := range words {
		for {
			var sb strings.Builder
			for n := 2 + rng.IntN(3); n > 0; n-- {
				sb.WriteString(syll[rng.IntN(len(syll))])
			}
			if w := sb.String(); !seen[w] {
				seen[w] = true
				words[i] = w
				break
			}
		}
	}
	return &benchVocab{words: words, zipf: rand.NewZipf(rng, 1.07, 2, uint64(len(words)-1)), rng: rng}
}

func (v *benchVocab) text(i int) string {
	n := 6 + v.rng.IntN(15)
	parts := make([]string, 0, n+1)
	for range n {
		parts = append(parts, v.words[v.zipf.Uint64()])
	}
	if i%10000 == 0 {
		parts = append(parts, "rareword"+strconv.Itoa(i/10000%10)) // each rare word in 1 of 100,000 messages
	}
	return strings.Join(parts, " ")
}

func benchGroups(b testing.TB, db *DB, n int) [][]byte {
	var groups [][]byte
	for g := range n {
		id := fmt.Appendf(nil, "bench-group-%d", g)
		createGroup(b, db, id)
		groups = append(groups, id)
	}
	return groups
}

func benchMessage(groups [][]byte, v *benchVocab, i int) Message {
	return Message{GroupID: groups[i%len(groups)], ID: fmt.Appendf(nil, "msg-%012d", i), Sender: []byte("sender"),
		Epoch: uint64(i / 1000), Text: v.text(i), SentAt: t0.Add(time.Duration(i) * time.Second), ReceivedAt: t0.Add(time.Duration(i) * time.Second)}
}

// BenchmarkInsertMessages measures message inserts (with the search index)
// one per transaction (each received message commits on its own, with an
// fsync) and in batches of 100.
func BenchmarkInsertMessages(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := openTest(b, b.TempDir())
			groups := benchGroups(b, db, 10)
			v := newBenchVocab(1)
			msgs := make([]Message, 0, batch)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				msgs = append(msgs, benchMessage(groups, v, i))
				if len(msgs) == batch || i == b.N-1 {
					if _, err := db.AddMessages(context.Background(), msgs...); err != nil {
						b.Fatal(err)
					}
					msgs = msgs[:0]
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkSearch measures search latency over CANOPY_BENCH_MESSAGES
// messages in 10 groups.
func BenchmarkSearch(b *testing.B) {
	n := 20000
	if s := os.Getenv("CANOPY_BENCH_MESSAGES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("CANOPY_BENCH_MESSAGES=%q", s)
		}
	}
	dir := b.TempDir()
	db := openTest(b, dir)
	groups := benchGroups(b, db, 10)
	v := newBenchVocab(2)
	start := time.Now()
	const batch = 1000
	msgs := make([]Message, 0, batch)
	for i := 0; i < n; i++ {
		msgs = append(msgs, benchMessage(groups, v, i))
		if len(msgs) == batch || i == n-1 {
			if _, err := db.AddMessages(context.Background(), msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	elapsed := time.Since(start)
	if _, err := db.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, DBFileName))
	b.Logf("inserted %d messages in %v (%.0f msgs/s, batches of %d); database %.1f MiB",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), batch, float64(st.Size())/(1<<20))

	common, medium := v.words[2], v.words[300]
	cases := []struct {
		name string
		q    SearchQuery
	}{
		{"rare-word", SearchQuery{Text: "rareword3"}},
		{"common-word", SearchQuery{Text: common}},
		{"medium-word", SearchQuery{Text: medium}},
		{"two-words", SearchQuery{Text: common + " " + medium}},
		{"phrase", SearchQuery{Text: `"` + common + " " + v.words[3] + `"`}},
		{"prefix", SearchQuery{Text: v.words[40][:4] + "*"}},
		{"one-group", SearchQuery{Text: medium, GroupID: groups[3]}},
		{"no-match", SearchQuery{Text: "zzzunknown"}},
		{"short-no-match", SearchQuery{Text: "zq"}}, // under three letters: LIKE over every message
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var hits int
			for i := 0; i < b.N; i++ {
				r, err := db.Search(context.Background(), c.q)
				if err != nil {
					b.Fatal(err)
				}
				hits = len(r)
			}
			b.ReportMetric(float64(hits), "hits")
		})
	}
}

// BenchmarkCommitEpochMessage measures what a member does per received
// message at a steady rate, when a batch holds one message: one
// CommitEpoch with the advanced state and the message (in memory, so
// without the fsync, to see the CPU).
func BenchmarkCommitEpochMessage(b *testing.B) {
	benchCommitEpochBatch(b, openMemoryTest(b), false, 2048, 1)
}

// BenchmarkCommitEpochFrame measures what a member writes per message
// since the frame log is written with the state: one CommitEpoch with
// the message and its frame (compare BenchmarkCommitEpochMessage plus
// BenchmarkAppendFrames/batch=1, the two transactions it replaces). /disk
// is a profile's database file with the state of an 11-member group (4
// KB), as a receiving peer writes it; batch=8 has eight messages and
// their frames in each transition (one op is still one message).
func BenchmarkCommitEpochFrame(b *testing.B) {
	b.Run("mem", func(b *testing.B) { benchCommitEpochBatch(b, openMemoryTest(b), true, 2048, 1) })
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("disk/batch=%d", n), func(b *testing.B) {
			benchCommitEpochBatch(b, openTest(b, b.TempDir()), true, 4<<10, n)
		})
	}
}

func benchCommitEpochBatch(b *testing.B, db *DB, withFrame bool, stateSize, batch int) {
	groups := benchGroups(b, db, 1)
	v := newBenchVocab(1)
	state := make([]byte, stateSize)
	q := FrameQuota{MaxFrameBytes: 9 << 20, PerTopic: Limit{Bytes: 256 << 20}}
	epoch := uint64(7)
	// The engine's contexts can be cancelled (its group's, a command's).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Process(b)
	for i := 0; i < b.N; i += batch {
		t := EpochTransition{GroupID: groups[0], Epoch: 0, State: state, At: t0}
		for j := i; j < min(i+batch, b.N); j++ {
			t.Messages = append(t.Messages, benchMessage(groups, v, j))
			if withFrame {
				t.Frames = append(t.Frames, benchFrame(j, &epoch))
			}
		}
		t.FrameQuota = q
		if _, err := db.CommitEpoch(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cputime.Process(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// benchFrame is the i-th frame of a benchmark's topic (about 230 bytes).
func benchFrame(i int, epoch *uint64) Frame {
	data := fmt.Appendf(make([]byte, 0, 256), "frame %012d %0200d", i, i)
	return Frame{Topic: "canopy/group/bench", Epoch: epoch, Peer: "12D3KooWBenchPeer", Data: data}
}

// BenchmarkAppendFrames measures the frame log's write per received
// frame, one frame per transaction (a steady rate) and 32 (a burst), in
// memory; one op is one frame.
func BenchmarkAppendFrames(b *testing.B) {
	q := FrameQuota{MaxFrameBytes: 9 << 20, PerTopic: Limit{Bytes: 256 << 20}}
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := openMemoryTest(b)
			frames := make([]Frame, 0, batch)
			epoch := uint64(7)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cputime.Process(b)
			for i := 0; i < b.N; i++ {
				frames = append(frames, benchFrame(i, &epoch))
				if len(frames) == batch || i == b.N-1 {
					if _, err := db.AppendFrames(context.Background(), frames, q); err != nil {
						b.Fatal(err)
					}
					frames = frames[:0]
				}
			}
			b.ReportMetric(float64((cputime.Process(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
