// Package longtest is the one switch between canopy's two test runs.
//
// The default `go test ./...` is a complete but quick check: every vector
// file, interop script, simulator scenario and end-to-end journey runs,
// with fewer seeds, a deterministic subset of the cases of the slowest
// vector suites and shortened long scripts. Setting CANOPY_LONG=1 runs
// everything in full: every seed, every case of every suite, the whole
// deep_random script. .ci/run runs both.
//
//	CANOPY_LONG=1 go test -timeout 60m ./...
package longtest

import (
	"os"
	"strconv"
)

// EnvVar is the environment variable that selects the long run.
const EnvVar = "CANOPY_LONG"

// Enabled reports whether the long run was asked for: CANOPY_LONG is set
// to a true value ("1", "true", …; see strconv.ParseBool). A value that is
// not a boolean counts as set, so a typo never silently shortens a run
// that was meant to be long.
func Enabled() bool {
	v, ok := os.LookupEnv(EnvVar)
	if !ok || v == "" {
		return false
	}
	on, err := strconv.ParseBool(v)
	return on || err != nil
}

// Pick returns long in the long run and short otherwise.
func Pick[T any](short, long T) T {
	if Enabled() {
		return long
	}
	return short
}
