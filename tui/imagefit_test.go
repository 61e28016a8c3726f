package tui

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestFitCells(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		w, h, cw, ch, mc, mr int
		wantCols, wantRows   int
	}{
		{"small image keeps its size", 100, 40, 10, 20, 40, 12, 10, 2},
		{"wide image bound by columns", 4000, 1000, 10, 20, 40, 12, 40, 5},
		{"tall image bound by rows", 1000, 4000, 10, 20, 40, 12, 6, 12},
		{"square photo, 2:1 cells assumed", 1024, 1024, 0, 0, 40, 12, 24, 12},
		{"square photo, square cells", 1024, 1024, 16, 16, 40, 12, 12, 12},
		{"real cell size changes columns", 1024, 768, 8, 16, 40, 12, 32, 12},
		{"a 1×1 pixel is one cell", 1, 1, 10, 20, 40, 12, 1, 1},
		{"a thin line is one row", 8000, 1, 10, 20, 40, 12, 40, 1},
		{"no dimensions", 0, 10, 10, 20, 40, 12, 0, 0},
		{"no box", 10, 10, 10, 20, 0, 12, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, r := fitCells(tc.w, tc.h, tc.cw, tc.ch, tc.mc, tc.mr)
			if c != tc.wantCols || r != tc.wantRows {
				t.Fatalf("fitCells(%d×%d, cell %d×%d, box %d×%d) = %d×%d, want %d×%d",
					tc.w, tc.h, tc.cw, tc.ch, tc.mc, tc.mr, c, r, tc.wantCols, tc.wantRows)
			}
		})
	}
}

// TestFitCellsBounds: whatever the image, the box is respected and the
// aspect ratio kept within a cell's rounding.
func TestFitCellsBounds(t *testing.T) {
	for w := 1; w <= 8000; w = w*3 + 7 {
		for h := 1; h <= 8000; h = h*5 + 3 {
			c, r := fitCells(w, h, 10, 20, 40, 12)
			if c < 1 || c > 40 || r < 1 || r > 12 {
				t.Fatalf("%d×%d: box %d×%d", w, h, c, r)
			}
			if c > 1 && r > 1 && c < 40 && r < 12 {
				got, want := float64(c*10)/float64(r*20), float64(w)/float64(h)
				if got/want > 1.5 || want/got > 1.5 {
					t.Fatalf("%d×%d: box %d×%d changes the aspect %.2f → %.2f", w, h, c, r, want, got)
				}
			}
		}
	}
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLoadImageRefusesBombs: a canvas over the limit is refused from its
// header, before anything is allocated for its pixels.
func TestLoadImageRefusesBombs(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.png")
	writePNG(t, ok, image.NewNRGBA(image.Rect(0, 0, 30, 20)))
	img, err := loadImage(ok)
	if err != nil || img.Bounds().Dx() != 30 {
		t.Fatalf("a small image: %v", err)
	}
	// A PNG header claiming 9000×10 (all-zero rows compress to nothing).
	bomb := filepath.Join(dir, "bomb.png")
	writePNG(t, bomb, image.NewGray(image.Rect(0, 0, imageMaxSide+1, 10)))
	if _, err := loadImage(bomb); !errors.Is(err, errImageTooLarge) {
		t.Fatalf("a %d-pixel-wide canvas: %v", imageMaxSide+1, err)
	}
	big := filepath.Join(dir, "big.png")
	if err := os.WriteFile(big, make([]byte, imageMaxBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadImage(big); !errors.Is(err, errImageTooLarge) {
		t.Fatalf("a file over %d bytes: %v", imageMaxBytes, err)
	}
}

func TestScaleImageAverages(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 4, 2))
	for x := range 4 {
		for y := range 2 {
			c := color.NRGBA{0, 0, 0, 255}
			if x%2 == 0 {
				c = color.NRGBA{200, 100, 0, 255}
			}
			src.SetNRGBA(x, y, c)
		}
	}
	dst := scaleImage(src, 2, 1)
	if dst.Bounds().Dx() != 2 || dst.Bounds().Dy() != 1 {
		t.Fatalf("size %v", dst.Bounds())
	}
	if got := dst.NRGBAAt(1, 0); got != (color.NRGBA{100, 50, 0, 255}) {
		t.Fatalf("averaged pixel %v", got)
	}
}
