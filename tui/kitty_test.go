package tui

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
)

// TestKittyTransmitChunks: the image goes in base64 chunks of at most
// 4096 bytes, m=1 on all but the last; put together they are the PNG.
func TestKittyTransmitChunks(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 60, 60))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.IntN(256)) // noise: does not compress
	}
	var pngData bytes.Buffer
	if err := png.Encode(&pngData, img); err != nil {
		t.Fatal(err)
	}
	seq := kittyTransmit(0xCA0001, pngData.Bytes(), 12, 6)
	var payload strings.Builder
	parts := strings.Split(seq, "\x1b\\")
	if parts[len(parts)-1] != "" {
		t.Fatalf("trailing bytes after the last sequence: %q", parts[len(parts)-1])
	}
	parts = parts[:len(parts)-1]
	if len(parts) < 3 {
		t.Fatalf("%d bytes of PNG in %d sequences", pngData.Len(), len(parts))
	}
	for i, p := range parts {
		ctl, data, ok := strings.Cut(strings.TrimPrefix(p, "\x1b_G"), ";")
		if !ok || !strings.HasPrefix(p, "\x1b_G") {
			t.Fatalf("sequence %d is not a graphics command: %.40q", i, p)
		}
		if len(data) > kittyChunk || (i < len(parts)-1 && len(data) != kittyChunk) {
			t.Fatalf("chunk %d has %d bytes", i, len(data))
		}
		keys := strings.Split(ctl, ",")
		wantM := "m=1"
		if i == len(parts)-1 {
			wantM = "m=0"
		}
		if !contains(wantM)(ctl) {
			t.Fatalf("chunk %d of %d: %q, want %s", i, len(parts), ctl, wantM)
		}
		if i == 0 {
			for _, k := range []string{"a=T", "f=100", "U=1", "q=2", fmt.Sprintf("i=%d", 0xCA0001), "c=12", "r=6"} {
				if !strings.Contains(","+ctl+",", ","+k+",") {
					t.Fatalf("first chunk %q lacks %s", ctl, k)
				}
			}
		} else if len(keys) != 1 {
			t.Fatalf("chunk %d repeats keys: %q", i, ctl)
		}
		payload.WriteString(data)
	}
	got, err := base64.StdEncoding.DecodeString(payload.String())
	if err != nil || !bytes.Equal(got, pngData.Bytes()) {
		t.Fatalf("reassembled payload is not the PNG (%v)", err)
	}
	// a tiny image is one sequence, m=0
	if one := kittyTransmit(1, []byte("x"), 1, 1); strings.Count(one, "\x1b_G") != 1 || !strings.Contains(one, "m=0;eA==") {
		t.Fatalf("one chunk: %q", one)
	}
}

// TestKittyPlaceholders: rows×cols cells of U+10EEEE, coloured with the
// image id, the first cell of each row marked with its row.
func TestKittyPlaceholders(t *testing.T) {
	const id = 0xCA0102
	lines := kittyPlaceholders(id, 5, 3)
	if len(lines) != 3 {
		t.Fatalf("%d rows", len(lines))
	}
	for r, l := range lines {
		if w := ansi.StringWidth(l); w != 5 {
			t.Fatalf("row %d is %d cells wide", r, w)
		}
		if !strings.HasPrefix(l, "\x1b[38;2;202;1;2m") {
			t.Fatalf("row %d does not carry the id in its colour: %q", r, l)
		}
		text := []rune(ansi.Strip(l))
		if text[0] != kittyPlaceholder || text[1] != kittyRowMarks[r] || text[2] != kittyRowMarks[0] {
			t.Fatalf("row %d starts %U", r, text[:3])
		}
		if strings.Count(string(text), string(kittyPlaceholder)) != 5 {
			t.Fatalf("row %d: %U", r, text)
		}
	}
	if n := len(kittyPlaceholders(id, 3, 40)); n != len(kittyRowMarks) {
		t.Fatalf("rows beyond the marks table: %d", n)
	}
}
