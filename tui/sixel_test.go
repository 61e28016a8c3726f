package tui

import (
	"fmt"
	"image"
	"image/color"
	"strconv"
	"strings"
	"testing"
)

// decodeSixel is a minimal sixel reader for the tests: the raster size,
// the colour registers defined, and the register each pixel was painted
// with (-1: none).
func decodeSixel(t *testing.T, s string) (w, h int, palette map[int][3]int, pix []int, bands int) {
	t.Helper()
	const head = "\x1bP0;1;0q\""
	if !strings.HasPrefix(s, head) || !strings.HasSuffix(s, "\x1b\\") {
		t.Fatalf("not a sixel DCS with raster attributes: %.30q", s)
	}
	s = strings.TrimSuffix(s[len(head):], "\x1b\\")
	num := func() int {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			t.Fatalf("number expected at %.20q", s)
		}
		s = s[i:]
		return n
	}
	want := func(c byte) {
		if len(s) == 0 || s[0] != c {
			t.Fatalf("%q expected at %.20q", c, s)
		}
		s = s[1:]
	}
	num() // pixel aspect, numerator and denominator
	want(';')
	num()
	want(';')
	w = num()
	want(';')
	h = num()
	pix = make([]int, w*h)
	for i := range pix {
		pix[i] = -1
	}
	palette = map[int][3]int{}
	cur, x, y := -1, 0, 0
	paint := func(c byte, n int) {
		bits := c - '?'
		for i := 0; i < n; i++ {
			for dy := 0; dy < 6; dy++ {
				if bits&(1<<dy) == 0 {
					continue
				}
				if x >= w || y+dy >= h || cur < 0 {
					t.Fatalf("pixel %d,%d outside %d×%d or without a colour", x, y+dy, w, h)
				}
				if pix[(y+dy)*w+x] != -1 {
					t.Fatalf("pixel %d,%d painted twice", x, y+dy)
				}
				pix[(y+dy)*w+x] = cur
			}
			x++
		}
	}
	for len(s) > 0 {
		c := s[0]
		switch {
		case c == '#':
			s = s[1:]
			n := num()
			if len(s) > 0 && s[0] == ';' {
				s = s[1:]
				if num() != 2 {
					t.Fatal("colour not in RGB")
				}
				var rgb [3]int
				for i := range rgb {
					want(';')
					rgb[i] = num()
				}
				palette[n] = rgb
			} else {
				if _, ok := palette[n]; !ok {
					t.Fatalf("register %d used before it is defined", n)
				}
				cur = n
			}
		case c == '!':
			s = s[1:]
			n := num()
			ch := s[0]
			s = s[1:]
			paint(ch, n)
		case c == '$':
			s, x = s[1:], 0
		case c == '-':
			s, x, y = s[1:], 0, y+6
			bands++
		case c >= '?' && c <= '~':
			s = s[1:]
			paint(c, 1)
		default:
			t.Fatalf("unexpected %q", c)
		}
	}
	return w, h, palette, pix, bands
}

// TestEncodeSixel: a known image decodes back to the palette colour
// nearest to each of its pixels; transparent pixels stay unpainted.
func TestEncodeSixel(t *testing.T) {
	const w, h = 13, 14 // three bands, the last one partial
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{uint8(x * 19), uint8(y * 17), uint8((x + y) * 9), 255}
			switch {
			case x == y:
				c = color.NRGBA{128, 128, 128, 255} // a grey: the grey ramp
			case x == 0 && y == 5:
				c.A = 0
			case x < 4 && y == 0:
				c = color.NRGBA{255, 0, 0, 255} // a run for RLE
			}
			img.SetNRGBA(x, y, c)
		}
	}
	out := encodeSixel(img)
	gw, gh, palette, pix, bands := decodeSixel(t, out)
	if gw != w || gh != h || bands != 3 {
		t.Fatalf("decoded %d×%d in %d bands", gw, gh, bands)
	}
	if len(palette) > 256 {
		t.Fatalf("%d colour registers", len(palette))
	}
	for i, rgb := range palette {
		r, g, b := sixelPalette(i)
		if rgb != [3]int{pct(r), pct(g), pct(b)} {
			t.Fatalf("register %d is %v", i, rgb)
		}
	}
	for y := range h {
		for x := range w {
			c := img.NRGBAAt(x, y)
			want := -1
			if c.A >= 128 {
				want = sixelIndex(c.R, c.G, c.B)
			}
			if got := pix[y*w+x]; got != want {
				t.Fatalf("pixel %d,%d: register %d, want %d", x, y, got, want)
			}
		}
	}
	if !strings.Contains(out, "!4") {
		t.Fatalf("the red run is not run-length encoded")
	}
}

// TestSixelIndexNearest: the chosen register is the nearest of the whole
// palette within the cube's step (the cube and the grey ramp are each
// searched by rounding, not exhaustively).
func TestSixelIndexNearest(t *testing.T) {
	for r := 0; r < 256; r += 15 {
		for g := 0; g < 256; g += 15 {
			for b := 0; b < 256; b += 15 {
				i := sixelIndex(uint8(r), uint8(g), uint8(b))
				best := 1 << 30
				for j := range sixelPaletteLen {
					best = min(best, dist(uint8(r), uint8(g), uint8(b), j))
				}
				if d := dist(uint8(r), uint8(g), uint8(b), i); d > best+3*26*26 {
					t.Fatalf("%d,%d,%d → %d (distance %d, best %d)", r, g, b, i, d, best)
				}
			}
		}
	}
	if i := sixelIndex(128, 128, 128); i < sixelPaletteLen-sixelGreys {
		r, g, b := sixelPalette(i)
		t.Fatalf("mid grey went to the cube: %s", fmt.Sprint(r, g, b))
	}
}
