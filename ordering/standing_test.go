package ordering

import "testing"

// TestStandingTransitions pins the standing state machine: every
// transition from every standing, the stronger standing kept where a
// transition says less.
func TestStandingTransitions(t *testing.T) {
	all := []standing{standingIn, standingOut, standingLost, standingOutLost, standingDetached}
	want := map[transition][5]standing{
		confirmOut:     {standingOut, standingOut, standingOutLost, standingOutLost, standingDetached},
		loseFork:       {standingLost, standingOutLost, standingLost, standingOutLost, standingDetached},
		refusedLagging: {standingLost, standingOutLost, standingLost, standingOutLost, standingDetached},
		refused:        {standingDetached, standingDetached, standingDetached, standingDetached, standingDetached},
		rejoin:         {standingIn, standingIn, standingIn, standingIn, standingIn},
		withdraw:       {standingIn, standingOut, standingIn, standingOut, standingDetached},
	}
	for tr, to := range want {
		for i, from := range all {
			if got := from.next(tr); got != to[i] {
				t.Errorf("%v --%d--> %v, want %v", from, tr, got, to[i])
			}
		}
	}
	for _, s := range all {
		if s.mayWelcome() != (s == standingLost || s == standingOutLost || s == standingDetached) {
			t.Errorf("%v: mayWelcome %v", s, s.mayWelcome())
		}
		if s.quiet() != (s == standingOut || s == standingOutLost || s == standingDetached) {
			t.Errorf("%v: quiet %v", s, s.quiet())
		}
	}
}
