package tui

import (
	"strings"
	"testing"
)

// FuzzPickEntry: any /info argument picks a loaded message or says why
// not, never both, never a panic; ^N and #ID agree with the buffer.
func FuzzPickEntry(f *testing.F) {
	for _, s := range []string{"", "^1", "^2", "^0", "^-1", "^99999999999999999999", "#m", "#M5", "#", "#zz", "blah", "^", "#m6 extra"} {
		f.Add(s)
	}
	d := newDriver(f, 100, 30)
	b := d.m.s.buffer("g1")
	f.Fuzz(func(t *testing.T, arg string) {
		e, why := pickEntry(b, arg)
		if (e == nil) == (why == "") {
			t.Fatalf("%q: entry %v, reason %q", arg, e != nil, why)
		}
		if e == nil {
			return
		}
		if e.local || e.msg.ID == "" {
			t.Fatalf("%q picked a local line", arg)
		}
		if strings.HasPrefix(arg, "#") && !strings.HasPrefix(strings.ToLower(string(e.msg.ID)), strings.ToLower(arg[1:])) {
			t.Fatalf("%q picked #%s", arg, e.msg.ID)
		}
	})
}
