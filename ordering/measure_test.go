package ordering

import (
	"flag"
	"testing"
)

var measureFlag = flag.Bool("ordering.measure", false, "print convergence and retained-memory measures for 5, 20 and 100 members")

// converged reports whether every member is at the same tip.
func (s *sim[S]) converged() bool {
	var tip Hash
	first := true
	for _, p := range s.sorted() {
		if !p.m.IsMember() {
			continue
		}
		_, _, h := p.m.Current()
		if first {
			tip, first = h, false
		} else if h != tip {
			return false
		}
	}
	return true
}

// TestMeasure reports convergence time (simulated rounds after the last
// operation) and retained memory per group under heavy concurrency: every
// member commits with probability 0.5/N per round (one Commit every two
// rounds in the group, each racing others in flight for up to 3 rounds of
// delay, 20% duplicates, 10% drops) and sends messages.
func TestMeasure(t *testing.T) {
	if !*measureFlag {
		t.Skip("run with -ordering.measure -v")
	}
	for _, n := range []int{5, 20, 100} {
		worst, sum, conv, runs := 0, 0, 0, 5
		maxB, meanB, maxStates, epochs := 0, 0, 0, 0
		for seed := 1; seed <= runs; seed++ {
			p := simParams{seed: uint64(seed), members: n, pool: max(2, n/10), opRounds: 100,
				pMsg: min(0.2, 5.0/float64(n)), pCommit: 0.5 / float64(n), pDup: 0.2, pDrop: 0.1}
			s := newSim[*mstate](t, &modelBackend{groupID: []byte("sim-group")}, p)
			r := s.run()
			if s.converged() {
				conv++
			}
			worst, sum = max(worst, r), sum+r
			b, mb, st := s.retained()
			maxB, meanB, maxStates = max(maxB, b), max(meanB, mb), max(maxStates, st)
			_, e, _ := s.sorted()[0].m.Current()
			epochs = max(epochs, int(e))
		}
		t.Logf("members %3d: converged %d/%d, convergence after last op: mean %.1f worst %d rounds; epochs %d; retained per member: max %d B, mean %d B, max states %d",
			n, conv, runs, float64(sum)/float64(runs), worst, epochs, maxB, meanB, maxStates)
	}
}
