package main

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/canopy-chat/canopy/internal/longtest"
	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/mls/interop/mlsclientpb"
)

// TestInteropScriptsXWing runs every interop script once more with the draft
// X-Wing suite 0x004D (TestInteropScripts runs them with -interop.suite,
// default 1), with encrypted handshakes and deep_random cut to its first
// 150 steps, so that the default run covers the suite cheaply (all of it
// under CANOPY_LONG=1, or the first -interop.maxsteps). The ReInit
// scripts that change the suite move the group from 0x004D to suite 1.
func TestInteropScriptsXWing(t *testing.T) {
	const cs = uint32(mls.MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519)
	configs, err := loadConfigs(filepath.Join("testdata", "configs"))
	if err != nil {
		t.Fatal(err)
	}
	clients := startServers(t, 2)
	for _, c := range clients {
		sr, err := c.SupportedCiphersuites(context.Background(), &mlsclientpb.SupportedCiphersuitesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(sr.Ciphersuites, cs) {
			t.Fatalf("SupportedCiphersuites %v lacks 0x004D", sr.Ciphersuites)
		}
	}
	for _, cf := range configs {
		for _, sc := range cf.scripts {
			t.Run(cf.name+"/"+sc.name, func(t *testing.T) {
				t.Parallel()
				run := sc
				maxSteps := 150
				if *interopMaxSteps > 0 || longtest.Enabled() {
					maxSteps = maxScriptSteps()
				}
				if maxSteps > 0 && len(run.steps) > maxSteps {
					run.steps = run.steps[:maxSteps]
				}
				step, err := runScript(t.Context(), clients, cs, true, run)
				if err != nil {
					if step >= 0 {
						t.Fatalf("step %d (%s): %v", step, run.steps[step].Action, err)
					}
					t.Fatal(err)
				}
			})
		}
	}
}
