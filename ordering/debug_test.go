//go:build devtools

package ordering

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/mls"
)

// Debugging tools, not checks: built only with the devtools tag, e.g.
//
//	SC=mls-deep SEED=3 TRACE=1 go test -tags devtools ./ordering -run TestDebugSeed -v
//	SURVEY=200 SCS=deep go test -tags devtools ./ordering -run TestSurvey -v

// TestDebugSeed replays one seed of one scenario with a trace: env SC
// (scenario name, or "mls" for TestMLSSim's parameters), SEED, TRACE=1,
// WATCH (an identity whose discards are traced too).
func TestDebugSeed(t *testing.T) {
	sc, seedS := os.Getenv("SC"), os.Getenv("SEED")
	if sc == "" || seedS == "" {
		t.Fatal("set SC (scenario) and SEED")
	}
	seed, _ := strconv.Atoi(seedS)
	trace := os.Getenv("TRACE") != ""
	if trace {
		debugf = t.Logf
		defer func() { debugf = nil }()
	}
	if p, ok := mlsScenario(sc); ok {
		p.seed = uint64(seed)
		s := newSim[*mls.Group](t, newMLSBackend(uint64(seed)), p)
		s.trace, s.traceWho = trace, os.Getenv("WATCH")
		r := s.run()
		s.check()
		t.Logf("rounds %d", r)
		s.dump()
		logHistories(t, s)
		if os.Getenv("AUTH") != "" {
			for _, p := range s.sorted() {
				for h, n := range p.m.nodes {
					if n.live {
						t.Logf("auth %s %s epoch %d: %x", p.id, h, n.epoch, s.be.auth(n.state)[:6])
					}
				}
			}
		}
		return
	}
	for _, m := range modelScenarios {
		if m.name == sc {
			p := m.p
			p.seed = uint64(seed)
			s := newSim[*mstate](t, &modelBackend{groupID: []byte("sim-group")}, p)
			s.trace, s.traceWho = trace, os.Getenv("WATCH")
			r := s.run()
			s.check()
			t.Logf("rounds %d", r)
			s.dump()
			logHistories(t, s)
			if os.Getenv("ROSTER") != "" {
				for _, p := range s.sorted() {
					st, _, _ := p.m.Current()
					t.Logf("roster %s: machine %v state %v standing %v", p.id, p.m.Roster(), s.be.roster(st), p.m.standing)
				}
			}
			return
		}
	}
	t.Fatalf("unknown scenario %q", sc)
}

// logHistories logs every peer's history with env HIST set.
func logHistories[S any](t *testing.T, s *sim[S]) {
	if os.Getenv("HIST") == "" {
		return
	}
	for _, p := range s.sorted() {
		var es []string
		for _, e := range p.m.History() {
			es = append(es, fmt.Sprintf("%d:%s", e.Epoch, e.Hash))
		}
		t.Logf("hist %s: %s", p.id, strings.Join(es, " "))
	}
}

// quietTB records failures instead of reporting them (TestSurvey).
type quietTB struct {
	testing.TB
	failed bool
	first  string
}

type fatalStop struct{}

func (q *quietTB) Errorf(f string, a ...any) {
	if !q.failed {
		q.first = fmt.Sprintf(f, a...)
	}
	q.failed = true
}
func (q *quietTB) Fatalf(f string, a ...any) { q.Errorf(f, a...); panic(fatalStop{}) }
func (q *quietTB) Logf(string, ...any)       {}
func (q *quietTB) Failed() bool              { return q.failed }

// TestSurvey counts failing seeds per scenario without stopping (env
// SURVEY=N seeds, SCS=comma-separated scenario names, "mls*" for real mls).
func TestSurvey(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SURVEY"))
	if n == 0 {
		t.Fatal("set SURVEY (number of seeds per scenario)")
	}
	want := strings.Split(os.Getenv("SCS"), ",")
	runOne := func(name string, f func(tb testing.TB, seed int)) {
		if os.Getenv("SCS") != "" && !slices.Contains(want, name) {
			return
		}
		var bad []string
		for seed := 1; seed <= n; seed++ {
			q := &quietTB{TB: t}
			func() {
				defer func() {
					if r := recover(); r != nil {
						if _, ok := r.(fatalStop); !ok {
							q.failed, q.first = true, fmt.Sprint("panic: ", r)
						}
					}
				}()
				f(q, seed)
			}()
			if q.failed {
				bad = append(bad, fmt.Sprintf("%d", seed))
				if len(bad) <= 3 || os.Getenv("SURVEYALL") != "" {
					t.Logf("%s seed %d: %s", name, seed, q.first)
				}
			}
		}
		t.Logf("%s: %d/%d fail: %v", name, len(bad), n, bad)
	}
	for _, sc := range modelScenarios {
		p := sc.p
		runOne(sc.name, func(tb testing.TB, seed int) {
			p.seed = uint64(seed)
			s := newSim[*mstate](tb, &modelBackend{groupID: []byte("sim-group")}, p)
			s.run()
			s.check()
		})
	}
	for _, sc := range mlsScenarios {
		p := sc.p
		runOne(sc.name, func(tb testing.TB, seed int) {
			p.seed = uint64(seed)
			s := newSim[*mls.Group](tb, newMLSBackend(uint64(seed)), p)
			s.run()
			s.check()
		})
	}
}
