// Package cputime is how canopy's benchmarks read CPU time: the process's
// user and system time so far. On a shared machine it moves less than the
// wall clock, so benchmarks report work per CPU-second beside ns/op.
//
//	cpu0 := cputime.Process(b)
//	// … the measured work …
//	b.ReportMetric(float64(cputime.Process(b)-cpu0)/float64(b.N), "cpu-ns/op")
//
// Only test files import it.
package cputime

import (
	"syscall"
	"testing"
	"time"
)

// Process returns the user and system CPU time this process has used,
// and fails tb when the system cannot say.
func Process(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
