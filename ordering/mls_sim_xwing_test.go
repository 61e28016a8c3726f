package ordering

import (
	"testing"

	"github.com/canopy-chat/canopy/internal/longtest"
	"github.com/canopy-chat/canopy/mls"
)

// TestMLSSimXWing runs the concurrent scenario of TestMLSSim with real mls
// members on the draft X-Wing suite 0x004D, one seed (CANOPY_LONG=1: the
// scenario's seeds; -ordering.seeds for more): fork choice must not depend
// on the suite, and X-Wing's larger Commits and Welcomes must go through
// the same paths.
func TestMLSSimXWing(t *testing.T) {
	const suite = mls.MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519
	for _, name := range []string{"mls-concurrent"} {
		t.Run(name, func(t *testing.T) {
			p, ok := mlsScenario(name)
			if !ok {
				t.Fatalf("no scenario %q", name)
			}
			n := 1
			if longtest.Enabled() {
				for _, sc := range mlsScenarios {
					if sc.name == name {
						n = sc.n
					}
				}
			}
			if *seedsFlag > 0 {
				n = *seedsFlag
			}
			for seed := 1; seed <= n; seed++ {
				p.seed = uint64(seed)
				b := newMLSBackend(uint64(seed))
				b.suite = suite
				s := newSim[*mls.Group](t, b, p)
				s.run()
				s.check()
				if t.Failed() {
					t.Fatalf("seed %d failed", seed)
				}
				for _, c := range b.clients {
					for _, kp := range c.bundles {
						if kp.KeyPackage.CipherSuite != suite {
							t.Fatalf("KeyPackage of suite %v", kp.KeyPackage.CipherSuite)
						}
					}
				}
			}
		})
	}
}
