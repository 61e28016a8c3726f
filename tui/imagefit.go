package tui

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // decoders for the media types shown inline
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
)

// The box an inline image is drawn in, in cells: small enough that a
// picture does not push the conversation off the screen.
const (
	imageMaxCols = 40
	imageMaxRows = 12
)

// Decompression bombs: a small file can claim a huge canvas, and
// image.Decode allocates it. Files and canvases past these are never
// decoded; DecodeConfig reads only the header first.
const (
	imageMaxBytes = 20 << 20
	imageMaxSide  = 8000
)

// Without a reported cell size, cells are taken to be twice as tall as
// wide, as they are in nearly every terminal font.
const (
	defaultCellW = 10
	defaultCellH = 20
)

// inlineImageTypes are the media types drawn inline.
var inlineImageTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true}

// fitCells returns the box, in cells, that an imgW×imgH pixel image takes
// when scaled down (never up beyond its own size) to fit maxCols×maxRows
// cells of cellW×cellH pixels, keeping its aspect ratio. Every side is at
// least one cell; zero for an image without dimensions.
func fitCells(imgW, imgH, cellW, cellH, maxCols, maxRows int) (cols, rows int) {
	if imgW <= 0 || imgH <= 0 || maxCols <= 0 || maxRows <= 0 {
		return 0, 0
	}
	if cellW <= 0 || cellH <= 0 {
		cellW, cellH = defaultCellW, defaultCellH
	}
	// scale = min(1, box/img) per axis, in float64: sides are ≤ 8000 px
	scale := min(1, float64(maxCols*cellW)/float64(imgW), float64(maxRows*cellH)/float64(imgH))
	w, h := float64(imgW)*scale, float64(imgH)*scale
	cols = max(1, min(maxCols, int(w/float64(cellW)+0.5)))
	rows = max(1, min(maxRows, int(h/float64(cellH)+0.5)))
	return cols, rows
}

// scaleSamples bounds the source pixels read per target pixel and axis.
const scaleSamples = 4

var errImageTooLarge = errors.New("image too large to show inline")

// loadImage decodes the image file at path, refusing files over
// imageMaxBytes and canvases over imageMaxSide before decoding them.
func loadImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > imageMaxBytes {
		return nil, errImageTooLarge
	}
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, err
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > imageMaxSide || cfg.Height > imageMaxSide {
		return nil, fmt.Errorf("%w: %d×%d", errImageTooLarge, cfg.Width, cfg.Height)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(io.LimitReader(f, imageMaxBytes))
	return img, err
}

// scaleImage resizes img to w×h pixels by averaging source pixels under
// each target pixel (a box filter: downscaling a photo by point sampling
// would alias badly). At most scaleSamples×scaleSamples of them are read
// per target pixel, so an 8000-pixel photo costs as much as a small one.
// Colours are non-premultiplied RGBA.
func scaleImage(img image.Image, w, h int) *image.NRGBA {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		y0, y1 := b.Min.Y+y*sh/h, b.Min.Y+max((y+1)*sh/h, y*sh/h+1)
		for x := 0; x < w; x++ {
			x0, x1 := b.Min.X+x*sw/w, b.Min.X+max((x+1)*sw/w, x*sw/w+1)
			var r, g, bl, a, n uint64
			sty, stx := max(1, (y1-y0)/scaleSamples), max(1, (x1-x0)/scaleSamples)
			for sy := y0; sy < y1; sy += sty {
				for sx := x0; sx < x1; sx += stx {
					c := color.NRGBAModel.Convert(img.At(sx, sy)).(color.NRGBA)
					r, g, bl, a = r+uint64(c.R), g+uint64(c.G), bl+uint64(c.B), a+uint64(c.A)
					n++
				}
			}
			dst.SetNRGBA(x, y, color.NRGBA{uint8(r / n), uint8(g / n), uint8(bl / n), uint8(a / n)})
		}
	}
	return dst
}
