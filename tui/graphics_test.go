package tui

import (
	"testing"
)

// TestParseTermReply: the answers to graphicsQuery, alone, mixed with
// typed keys, cut short, or lying in small ways.
func TestParseTermReply(t *testing.T) {
	const (
		kittyOK = "\x1b_Gi=31;OK\x1b\\"
		cell    = "\x1b[6;20;10t"
	)
	for _, tc := range []struct {
		name string
		in   string
		want termReply
	}{
		{"nothing", "", termReply{}},
		{"DA1 only (no graphics)", "\x1b[?62;22c", termReply{done: true}},
		{"DA1 with sixel", "\x1b[?62;4;22c", termReply{sixel: true, done: true}},
		{"DA1 sixel first", "\x1b[?4;6c", termReply{sixel: true, done: true}},
		{"DA1 attribute 42 is not 4", "\x1b[?62;42;14c", termReply{done: true}},
		{"kitty", kittyOK + "\x1b[?62;c", termReply{kitty: true, done: true}},
		{"kitty and sixel", kittyOK + "\x1b[?62;4c", termReply{kitty: true, sixel: true, done: true}},
		{"kitty, cell size", kittyOK + cell + "\x1b[?62c", termReply{kitty: true, cellW: 10, cellH: 20, done: true}},
		{"kitty error", "\x1b_Gi=31;ENOTSUPPORTED:no\x1b\\\x1b[?62c", termReply{done: true}},
		{"kitty OK for another id", "\x1b_Gi=7;OK\x1b\\\x1b[?62c", termReply{done: true}},
		{"kitty, DA1 not yet", kittyOK, termReply{kitty: true}},
		{"cut in the APC", "\x1b_Gi=31;O", termReply{}},
		{"cut in the CSI", kittyOK + "\x1b[?62;4", termReply{kitty: true}},
		{"typed keys around", "ab\x1b[A" + kittyOK + "x\x1b[?1;2;4cmore", termReply{kitty: true, sixel: true, done: true}},
		{"after DA1 is typed input", "\x1b[?62c" + kittyOK, termReply{done: true}},
		{"DA1 without ? is a request, not an answer", "\x1b[c", termReply{}},
		{"absurd cell size", "\x1b[6;0;9999t\x1b[?1c", termReply{done: true}},
		{"other window report", "\x1b[4;600;800t\x1b[?1c", termReply{done: true}},
		{"lone escape", "\x1b", termReply{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseTermReply([]byte(tc.in)); got != tc.want {
				t.Fatalf("parseTermReply(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzParseTermReply: any bytes give an answer without panicking, and a
// reply only claims what its bytes contain.
func FuzzParseTermReply(f *testing.F) {
	for _, s := range []string{
		"\x1b_Gi=31;OK\x1b\\\x1b[6;20;10t\x1b[?62;4;22c",
		"\x1b[?62c", "\x1b_G", "\x1b[6;;t", "\x1b[?;;;c",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := parseTermReply(b)
		s := string(b)
		if r.kitty && !contains("OK")(s) {
			t.Fatalf("kitty without an OK in %q", s)
		}
		if (r.sixel || r.done) && !contains("\x1b[?", "c")(s) {
			t.Fatalf("DA1 claimed without one in %q", s)
		}
		if (r.cellW == 0) != (r.cellH == 0) || r.cellW < 0 || r.cellW > 1000 || r.cellH > 1000 {
			t.Fatalf("cell %d×%d from %q", r.cellW, r.cellH, s)
		}
	})
}

// TestReplyProtocol: kitty only when it is all the terminal claims.
func TestReplyProtocol(t *testing.T) {
	for _, tc := range []struct {
		r    termReply
		want graphics
	}{
		{termReply{done: true}, graphicsNone},
		{termReply{kitty: true, done: true}, graphicsKitty},
		{termReply{sixel: true, done: true}, graphicsSixel},
		{termReply{kitty: true, sixel: true, done: true}, graphicsSixel},
	} {
		if got := tc.r.protocol(); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestGraphicsOverride(t *testing.T) {
	for in, want := range map[string]struct {
		g  graphics
		ok bool
	}{
		"":       {graphicsNone, false},
		"auto":   {graphicsNone, false},
		"off":    {graphicsNone, true},
		"Kitty":  {graphicsKitty, true},
		" sixel": {graphicsSixel, true},
		"iterm":  {graphicsNone, false},
	} {
		if g, ok := graphicsOverride(in); g != want.g || ok != want.ok {
			t.Errorf("graphicsOverride(%q) = %v, %v; want %v, %v", in, g, ok, want.g, want.ok)
		}
	}
}
