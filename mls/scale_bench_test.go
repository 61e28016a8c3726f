package mls

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// Scale benchmarks: the operations of the performance table (issue 4) on
// realistic full trees (ScaleFixture: every member has committed once), in
// cipher suite 1, at 10, 100, 1,000 and 10,000 members, and 100,000 with
// -mls.huge (sub-benchmarks n=10 … n=100000):
//
//	go test ./mls -run '^$' -bench "$MLS_SCALE" -count 6 | tee new.txt
//	go test ./mls -run '^$' -bench "$MLS_SCALE" -mls.huge -benchtime 5x
//
// with MLS_SCALE='^Benchmark(Commit|ProcessCommit|AddMember|Join|JoinExternalTree|GroupProtect|GroupUnprotect|StateMemory)$'.
// Custom metrics: commit-bytes, welcome-bytes (tree included),
// welcome-no-tree-bytes and tree-bytes, state-bytes (heap retained by one
// member's state). The same numbers as a table of medians, with CPU time
// per operation, come from go run ./mls/cmd/mlsbench.

var hugeBench = flag.Bool("mls.huge", false, "also run the scale benchmarks at 100,000 members (building the fixture takes several seconds)")

func scaleSizes() []int {
	sizes := []int{10, 100, 1000, 10000}
	if *hugeBench {
		sizes = append(sizes, 100000)
	}
	return sizes
}

var (
	scaleFixturesMu sync.Mutex
	scaleFixtures   = map[int]*ScaleFixture{}
)

// scaleFixture returns the shared fixture of n members (built once).
func scaleFixture(b *testing.B, n int) *ScaleFixture {
	b.Helper()
	scaleFixturesMu.Lock()
	defer scaleFixturesMu.Unlock()
	if f, ok := scaleFixtures[n]; ok {
		return f
	}
	f, err := NewScaleFixture(benchSuite, n, 1)
	if err != nil {
		b.Fatal(err)
	}
	scaleFixtures[n] = f
	return f
}

func scaleMember(b *testing.B, f *ScaleFixture, l LeafIndex, seed uint64) *Group {
	b.Helper()
	g, err := f.Member(l, WithRandom(treeTestRand(seed)))
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// typicalReceiver is the member that processes the Commits of member 0 in
// the receive benchmarks: one in the other half of the tree, like half of
// all members, who decrypts the path secret of the root and derives one key
// pair.
func typicalReceiver(f *ScaleFixture) LeafIndex { return LeafIndex(f.Size() - 1) }

func scaleEach(b *testing.B, run func(b *testing.B, f *ScaleFixture)) {
	for _, n := range scaleSizes() {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			run(b, scaleFixture(b, n))
		})
	}
}

// BenchmarkCommit: member 0 creates a Commit with an UpdatePath (no
// proposals) and merges it.
func BenchmarkCommit(b *testing.B) {
	scaleEach(b, func(b *testing.B, f *ScaleFixture) {
		g := scaleMember(b, f, 0, 11)
		size := 0
		for b.Loop() {
			pc, err := g.Commit(CommitOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := g.MergePendingCommit(pc); err != nil {
				b.Fatal(err)
			}
			size = len(pc.Message)
		}
		b.ReportMetric(float64(size), "commit-bytes")
	})
}

// BenchmarkProcessCommit: a typical receiver processes member 0's
// Commits (created beforehand, outside the timer).
func BenchmarkProcessCommit(b *testing.B) {
	scaleEach(b, func(b *testing.B, f *ScaleFixture) {
		committer := scaleMember(b, f, 0, 12)
		recv := scaleMember(b, f, typicalReceiver(f), 13)
		msgs := make([][]byte, b.N)
		for i := range msgs {
			pc, err := committer.Commit(CommitOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := committer.MergePendingCommit(pc); err != nil {
				b.Fatal(err)
			}
			msgs[i] = pc.Message
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := recv.Process(msgs[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAddMember: member 0 creates a Commit adding one member and
// its Welcome (with the ratchet tree), then discards it.
func BenchmarkAddMember(b *testing.B) {
	scaleEach(b, func(b *testing.B, f *ScaleFixture) {
		g := scaleMember(b, f, 0, 14)
		kp, err := f.NewKeyPackage(1)
		if err != nil {
			b.Fatal(err)
		}
		add := []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}}
		var welcome, noTree int
		pc, err := g.Commit(CommitOptions{Proposals: add, ExternalTree: true})
		if err != nil {
			b.Fatal(err)
		}
		noTree = len(pc.Welcome)
		g.DiscardPendingCommit(pc)
		for b.Loop() {
			pc, err := g.Commit(CommitOptions{Proposals: add})
			if err != nil {
				b.Fatal(err)
			}
			welcome = len(pc.Welcome)
			g.DiscardPendingCommit(pc)
		}
		b.ReportMetric(float64(welcome), "welcome-bytes")
		b.ReportMetric(float64(noTree), "welcome-no-tree-bytes")
	})
}

// scaleWelcome returns a Welcome for a new client (with or without the
// tree), the tree, and the client's KeyPackage bundle.
func scaleWelcome(b *testing.B, f *ScaleFixture, externalTree bool) (welcome, tree []byte, kp *KeyPackageBundle) {
	b.Helper()
	g := scaleMember(b, f, 0, 15)
	kp, err := f.NewKeyPackage(2)
	if err != nil {
		b.Fatal(err)
	}
	pc, err := g.Commit(CommitOptions{ExternalTree: externalTree,
		Proposals: []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}}})
	if err != nil {
		b.Fatal(err)
	}
	return pc.Welcome, pc.RatchetTree, kp
}

// BenchmarkJoin: a new member joins from a Welcome that carries the
// ratchet tree (every leaf signature is verified, on all cores).
func BenchmarkJoin(b *testing.B) {
	scaleEach(b, func(b *testing.B, f *ScaleFixture) {
		welcome, _, kp := scaleWelcome(b, f, false)
		for b.Loop() {
			if _, err := JoinFromWelcome(welcome, kp, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(welcome)), "welcome-bytes")
	})
}

// BenchmarkJoinExternalTree: the same with the tree fetched apart
// from the Welcome and checked against the GroupInfo's tree hash.
func BenchmarkJoinExternalTree(b *testing.B) {
	scaleEach(b, func(b *testing.B, f *ScaleFixture) {
		welcome, tree, kp := scaleWelcome(b, f, true)
		for b.Loop() {
			if _, err := JoinFromWelcome(welcome, kp, tree); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(welcome)), "welcome-bytes")
		b.ReportMetric(float64(len(tree)), "tree-bytes")
	})
}

// BenchmarkGroupProtect: a member encrypts a 100-byte application message.
func BenchmarkGroupProtect(b *testing.B) {
	scaleEach(b, func(b *testing.B, f *ScaleFixture) {
		g := scaleMember(b, f, 0, 16)
		msg := make([]byte, 100)
		for b.Loop() {
			if _, err := g.Protect(msg, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGroupUnprotect: a member processes 100-byte application
// messages of another (encrypted beforehand, outside the timer).
func BenchmarkGroupUnprotect(b *testing.B) {
	scaleEach(b, func(b *testing.B, f *ScaleFixture) {
		sender := scaleMember(b, f, 0, 17)
		recv := scaleMember(b, f, typicalReceiver(f), 18)
		msg := make([]byte, 100)
		cts := make([][]byte, b.N)
		for i := range cts {
			var err error
			if cts[i], err = sender.Protect(msg, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := recv.Process(cts[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStateMemory reports the heap one member's group state
// retains: a client that joined from a Welcome (so nothing is shared with
// the fixture) and processed one Commit (so every lazy index is built).
// The time per op is meaningless.
func BenchmarkStateMemory(b *testing.B) {
	scaleEach(b, func(b *testing.B, f *ScaleFixture) {
		mem := scaleStateMemory(b, f)
		for b.Loop() {
		}
		b.ReportMetric(float64(mem), "state-bytes")
	})
}

func scaleStateMemory(b *testing.B, f *ScaleFixture) uint64 {
	g := scaleMember(b, f, 0, 19)
	kp, err := f.NewKeyPackage(3)
	if err != nil {
		b.Fatal(err)
	}
	pc, err := g.Commit(CommitOptions{Proposals: []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.MergePendingCommit(pc); err != nil {
		b.Fatal(err)
	}
	pc2, err := g.Commit(CommitOptions{})
	if err != nil {
		b.Fatal(err)
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	j, err := JoinFromWelcome(pc.Welcome, kp, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := j.Process(pc2.Message); err != nil {
		b.Fatal(err)
	}
	// The heap with and without the joiner's state: nothing else changes
	// in between.
	scaleKeep = j
	with := heap()
	scaleKeep = nil
	without := heap()
	if with < without {
		return 0
	}
	return with - without
}

// scaleKeep holds the measured state (a global, so that the compiler
// cannot drop it early).
var scaleKeep *Group
