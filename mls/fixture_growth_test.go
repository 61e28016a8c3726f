package mls

import (
	"fmt"
	"runtime"
	"testing"
)

// TestScaleGrowth counts the work of Commits at two group sizes, 1,000 and
// 16,000 members (16× more), and fails if any count grows faster than
// log n allows (log2 16384 / log2 1024 = 1.4; the bound is 2×). It times
// nothing, so it is reliable on a loaded machine, and it runs in plain
// go test (a reduced fixture: only the members that act have real keys).
//
// Counted per operation: copy-on-write copies of tree chunks, tree-hash and
// parent-hash computations, nodes visited computing resolutions, key-index
// node visits, leaves visited by linear scans, heap bytes allocated and
// allocations. The operations: a Commit with an UpdatePath (created and
// merged), processing it, and processing a Commit that removes a member and
// adds one (the committer's side of an Add is O(n) by nature: it encodes
// the tree for the new member).
func TestScaleGrowth(t *testing.T) {
	small := measureGrowth(t, 1000)
	large := measureGrowth(t, 16000)
	for _, op := range []string{"commit", "process", "process-add-remove"} {
		s, l := small[op], large[op]
		t.Logf("%-20s n=1000: %v", op, s)
		t.Logf("%-20s n=16000: %v", op, l)
		for name, a := range s {
			b := l[name]
			if b > 2*a+64 {
				t.Errorf("%s: %s grows from %d at 1,000 members to %d at 16,000 (more than log n)", op, name, a, b)
			}
		}
	}
}

type opCounts map[string]int64

func (c opCounts) String() string {
	return fmt.Sprintf("chunks %d hashes %d parent-hashes %d resolution %d index %d scans %d bytes %d allocs %d",
		c["chunk-copies"], c["tree-hashes"], c["parent-hashes"], c["resolution-visits"], c["index-visits"],
		c["leaf-scans"], c["alloc-bytes"], c["allocs"])
}

func snapshotOps() opCounts {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return opCounts{
		"chunk-copies":      treeOps.chunkCopies.Load(),
		"tree-hashes":       treeOps.hashes.Load(),
		"parent-hashes":     treeOps.parentHashes.Load(),
		"resolution-visits": treeOps.resolutionVisits.Load(),
		"index-visits":      treeOps.indexOps.Load(),
		"leaf-scans":        treeOps.leafScans.Load(),
		"alloc-bytes":       int64(m.TotalAlloc),
		"allocs":            int64(m.Mallocs),
	}
}

// measureGrowth returns the average counts per operation at n members.
func measureGrowth(t *testing.T, n int) map[string]opCounts {
	cs := benchSuite
	recvLeaf := LeafIndex(n - 1)
	f, err := newScaleFixture(cs, n, 5, &fixtureOptions{realKeys: []LeafIndex{0, recvLeaf}})
	if err != nil {
		t.Fatal(err)
	}
	committer, err := f.Member(0, WithRandom(treeTestRand(1)))
	if err != nil {
		t.Fatal(err)
	}
	recv, err := f.Member(recvLeaf, WithRandom(treeTestRand(2)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]opCounts{}
	add := func(op string, before, after opCounts) {
		if out[op] == nil {
			out[op] = opCounts{}
		}
		for k, v := range after {
			out[op][k] += v - before[k]
		}
	}
	const rounds = 6
	commit := func(opts CommitOptions, measure bool) []byte {
		before := snapshotOps()
		pc, err := committer.Commit(opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := committer.MergePendingCommit(pc); err != nil {
			t.Fatal(err)
		}
		if measure {
			add("commit", before, snapshotOps())
		}
		return pc.Message
	}
	process := func(op string, msg []byte, measure bool) {
		before := snapshotOps()
		if _, err := recv.Process(msg); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if measure {
			add(op, before, snapshotOps())
		}
	}
	// Warm up (first writes after cloning the fixture copy shared chunks).
	for range 2 {
		process("process", commit(CommitOptions{}, false), false)
	}
	for range rounds {
		process("process", commit(CommitOptions{}, true), true)
	}
	for i := range rounds {
		kp, err := f.NewKeyPackage(uint64(100 + i))
		if err != nil {
			t.Fatal(err)
		}
		msg := commit(CommitOptions{ExternalTree: true, Proposals: []*Proposal{
			{Type: ProposalTypeRemove, Remove: &Remove{Removed: uint32(5 + i)}},
			{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}},
		}}, false)
		process("process-add-remove", msg, true)
	}
	for _, c := range out {
		for k := range c {
			c[k] /= rounds
		}
	}
	return out
}
