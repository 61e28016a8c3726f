package tui

import (
	"fmt"
	"image"
	"strings"
)

// A small DEC sixel encoder. Sixel images are paletted (terminals allow
// 256 colours at most, some fewer), so colours are quantised to a fixed
// palette: a 6×6×6 colour cube plus 24 greys, 240 entries. A fixed palette
// is worse than a fitted one (median cut) for photos, but it needs no
// pass over the image, is the same for every image, and is enough for a
// thumbnail in a chat. No library: none in reach does sixel, and the
// format is small.

const (
	sixelCube  = 6
	sixelGreys = 24
	// sixelPaletteLen: cube entries first, then the greys
	sixelPaletteLen = sixelCube*sixelCube*sixelCube + sixelGreys
)

// sixelPalette returns palette entry i as 8-bit RGB.
func sixelPalette(i int) (r, g, b uint8) {
	if i < sixelCube*sixelCube*sixelCube {
		step := func(v int) uint8 { return uint8(v * 255 / (sixelCube - 1)) }
		return step(i / 36), step(i / 6 % 6), step(i % 6)
	}
	// greys between the cube's black and white, excluding both
	v := uint8((i - sixelCube*sixelCube*sixelCube + 1) * 255 / (sixelGreys + 1))
	return v, v, v
}

// sixelIndex maps a colour to the nearest of the cube's colour and the
// nearest grey.
func sixelIndex(r, g, b uint8) int {
	q := func(v uint8) int { return (int(v)*(sixelCube-1) + 127) / 255 }
	ci := q(r)*36 + q(g)*6 + q(b)
	avg := (int(r) + int(g) + int(b)) / 3
	gi := (avg*(sixelGreys+1)+127)/255 - 1
	gi = max(0, min(sixelGreys-1, gi))
	gi += sixelCube * sixelCube * sixelCube
	if dist(r, g, b, gi) < dist(r, g, b, ci) {
		return gi
	}
	return ci
}

func dist(r, g, b uint8, i int) int {
	pr, pg, pb := sixelPalette(i)
	dr, dg, db := int(r)-int(pr), int(g)-int(pg), int(b)-int(pb)
	return dr*dr + dg*dg + db*db
}

// encodeSixel encodes img as a sixel DCS string. Pixels less than half
// opaque are left out (transparent: P2=1 keeps the background there).
func encodeSixel(img *image.NRGBA) string {
	bnd := img.Bounds()
	w, h := bnd.Dx(), bnd.Dy()
	// palette index per pixel, -1 transparent
	idx := make([]int, w*h)
	used := make([]bool, sixelPaletteLen)
	for y := range h {
		for x := range w {
			c := img.NRGBAAt(bnd.Min.X+x, bnd.Min.Y+y)
			i := -1
			if c.A >= 128 {
				i = sixelIndex(c.R, c.G, c.B)
				used[i] = true
			}
			idx[y*w+x] = i
		}
	}
	var s strings.Builder
	// P1=0 (aspect 2:1 by default, overridden by the raster attributes),
	// P2=1 (unset pixels stay transparent); "1;1;W;H: square pixels.
	fmt.Fprintf(&s, "\x1bP0;1;0q\"1;1;%d;%d", w, h)
	for i, u := range used {
		if u {
			r, g, b := sixelPalette(i)
			// colour registers take RGB in percent
			fmt.Fprintf(&s, "#%d;2;%d;%d;%d", i, pct(r), pct(g), pct(b))
		}
	}
	row := make([]byte, w)
	for band := 0; band < h; band += 6 {
		first := true
		for ci, u := range used {
			if !u {
				continue
			}
			some := false
			for x := range w {
				var bits byte
				for dy := 0; dy < 6 && band+dy < h; dy++ {
					if idx[(band+dy)*w+x] == ci {
						bits |= 1 << dy
					}
				}
				row[x] = '?' + bits
				some = some || bits != 0
			}
			if !some {
				continue
			}
			if !first {
				s.WriteByte('$') // back to the band's start for the next colour
			}
			first = false
			fmt.Fprintf(&s, "#%d", ci)
			writeRLE(&s, row)
		}
		s.WriteByte('-') // next band
	}
	s.WriteString("\x1b\\")
	return s.String()
}

func pct(v uint8) int { return (int(v)*100 + 127) / 255 }

// writeRLE writes sixel characters with runs of four or more as !N<c>.
func writeRLE(s *strings.Builder, row []byte) {
	// trailing empty sixels draw nothing
	end := len(row)
	for end > 0 && row[end-1] == '?' {
		end--
	}
	for i := 0; i < end; {
		j := i
		for j < end && row[j] == row[i] {
			j++
		}
		if n := j - i; n >= 4 {
			fmt.Fprintf(s, "!%d%c", n, row[i])
		} else {
			s.Write(row[i:j])
		}
		i = j
	}
}
