package longtest

import "testing"

func TestEnabled(t *testing.T) {
	for _, c := range []struct {
		v    string
		set  bool
		want bool
	}{
		{"", false, false},
		{"", true, false},
		{"0", true, false},
		{"false", true, false},
		{"1", true, true},
		{"true", true, true},
		{"yes", true, true}, // not a boolean: long, never silently short
	} {
		if c.set {
			t.Setenv(EnvVar, c.v)
		} else {
			t.Setenv(EnvVar, "")
		}
		if got := Enabled(); got != c.want {
			t.Errorf("%s=%q (set %v): Enabled() = %v, want %v", EnvVar, c.v, c.set, got, c.want)
		}
		if got := Pick(1, 2); got != map[bool]int{false: 1, true: 2}[c.want] {
			t.Errorf("%s=%q: Pick(1, 2) = %d", EnvVar, c.v, got)
		}
	}
}
