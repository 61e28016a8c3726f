//go:build devtools

package ordering

import (
	"bytes"
	"testing"

	"github.com/canopy-chat/canopy/mls"
)

// converged reports whether every member is at the same epoch with the
// same epoch authenticator (a joiner's root has no Commit hash with mls).
func (s *sim[S]) converged() bool {
	var ref []byte
	var epoch uint64
	first := true
	for _, p := range s.sorted() {
		if !p.m.IsMember() {
			continue
		}
		st, e, _ := p.m.Current()
		if first {
			ref, epoch, first = s.be.auth(st), e, false
		} else if e != epoch || !bytes.Equal(s.be.auth(st), ref) {
			return false
		}
	}
	return true
}

// measureParams is the heavy-concurrency load of the measurements: every
// member commits with probability 0.5/N per round (one Commit every two
// rounds in the group, each racing others in flight for up to 3 rounds of
// delay, 20% duplicates, 10% drops) and sends messages.
func measureParams(n int, seed uint64, rounds int) simParams {
	return simParams{seed: seed, members: n, pool: max(2, n/10), opRounds: rounds,
		pMsg: min(0.2, 5.0/float64(n)), pCommit: 0.5 / float64(n), pDup: 0.2, pDrop: 0.1}
}

type measurement struct {
	runs, conv, worst, sum        int
	maxB, meanB, maxStates, epoch int
	maxStateB                     int
}

func measureRun[S any](t *testing.T, s *sim[S], ms *measurement) {
	r := s.run()
	s.check()
	if s.converged() {
		ms.conv++
	}
	ms.runs++
	ms.worst, ms.sum = max(ms.worst, r), ms.sum+r
	b, mb, st := s.retained()
	ms.maxB, ms.meanB, ms.maxStates = max(ms.maxB, b), max(ms.meanB, mb), max(ms.maxStates, st)
	for _, p := range s.sorted() {
		for _, n := range p.m.nodes {
			if n.live {
				ms.maxStateB = max(ms.maxStateB, s.be.size(n.state))
			}
		}
	}
	_, e, _ := s.sorted()[0].m.Current()
	ms.epoch = max(ms.epoch, int(e))
}

func (ms *measurement) log(t *testing.T, what string, n int) {
	t.Logf("%s members %3d: converged %d/%d, convergence after last op: mean %.1f worst %d rounds; epochs %d; retained per member: max %d KB, mean %d KB, max states %d, largest state %d KB",
		what, n, ms.conv, ms.runs, float64(ms.sum)/float64(ms.runs), ms.worst, ms.epoch, ms.maxB>>10, ms.meanB>>10, ms.maxStates, ms.maxStateB>>10)
}

// TestMeasure reports convergence time (simulated rounds after the last
// operation) and retained memory per group under heavy concurrency, on
// the model and on real mls members (states measured by their
// MarshalState size). A measurement, not a check: built only with the
// devtools tag (go test -tags devtools ./ordering -run TestMeasure -v).
func TestMeasure(t *testing.T) {
	for _, n := range []int{5, 20, 100} {
		var ms measurement
		for seed := 1; seed <= 5; seed++ {
			s := newSim[*mstate](t, &modelBackend{groupID: []byte("sim-group")}, measureParams(n, uint64(seed), 100))
			measureRun(t, s, &ms)
		}
		ms.log(t, "model", n)
	}
	for _, n := range []int{5, 20, 100} {
		var ms measurement
		runs, rounds := 3, 100
		if n == 100 {
			runs, rounds = 1, 60
		}
		for seed := 1; seed <= runs; seed++ {
			s := newSim[*mls.Group](t, newMLSBackend(uint64(seed)), measureParams(n, uint64(seed), rounds))
			measureRun(t, s, &ms)
		}
		ms.log(t, "mls", n)
	}
}
