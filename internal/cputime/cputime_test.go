package cputime

import (
	"crypto/sha256"
	"testing"
)

// TestProcessMoves: CPU work shows in Process, and it never goes back.
func TestProcessMoves(t *testing.T) {
	before := Process(t)
	sum := sha256.Sum256(nil)
	for Process(t)-before < 10e6 { // 10 ms of CPU
		sum = sha256.Sum256(sum[:])
	}
	if after := Process(t); after < before {
		t.Fatalf("CPU time went back: %v after %v", after, before)
	}
}
