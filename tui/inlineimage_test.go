package tui

import (
	"image"
	"image/color"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/chat"
)

// imageMessage is bob's cat.png, announced as 1024×768.
func imageMessage() chat.Message {
	return chat.Message{ID: "f1a2b3c4d5", Group: "g1", Kind: chat.KindFile, Sender: "bob", SenderFP: fpBob,
		Body: "[file] cat.png (1.2 MB, 1024×768)", SentAt: at("10:20"),
		File: &chat.FileInfo{ID: "aa", Name: "cat.png", Size: 1_200_000, MediaType: "image/png", Width: 1024, Height: 768}}
}

// imageDone: cat.png was received and saved at path.
func imageDone(path string) chat.TransferEvent {
	return chat.TransferEvent{Transfer: chat.Transfer{Group: "g1", Message: "f1a2b3c4d5", Status: chat.TransferDone, Done: 1000, Total: 1000,
		File: chat.FileInfo{ID: "aa", Name: "cat.png", Size: 1_200_000, MediaType: "image/png", Width: 1024, Height: 768}, Path: path}}
}

// catPNG writes a w×h PNG and returns its path.
func catPNG(t *testing.T, w, h int) string {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), 90, 255})
		}
	}
	path := filepath.Join(t.TempDir(), "cat.png")
	writePNG(t, path, img)
	return path
}

// TestInlineImageKitty: a received PNG is sent to a kitty terminal once,
// and the timeline shows it as placeholder cells of the same box.
func TestInlineImageKitty(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.m.s.gfx, d.m.s.cellW, d.m.s.cellH = graphicsKitty, 10, 20
	var sent []string
	d.m.fx.graphics = func(seq string) { sent = append(sent, seq) }
	path := catPNG(t, 200, 100)
	d.events(chat.MessageEvent{Message: imageMessage()}, transferAt(chat.TransferFetching, 500))
	if len(sent) != 0 || strings.ContainsRune(d.view(), kittyPlaceholder) {
		t.Fatal("an image before its transfer was done")
	}
	d.events(imageDone(path))
	if len(sent) != 1 {
		t.Fatalf("%d transmissions", len(sent))
	}
	// 200×100 pixels in 10×20 cells: 20 columns, 5 rows
	if !contains("a=T", "c=20,r=5")(sent[0]) {
		t.Fatalf("transmission: %.120q", sent[0])
	}
	v := d.view()
	if n := strings.Count(v, string(kittyPlaceholder)); n != 20*5 {
		t.Fatalf("%d placeholder cells, want 100:\n%s", n, v)
	}
	if !strings.Contains(v, "📎 cat.png  1.2 MB  1024×768") {
		t.Fatalf("the file's line went away:\n%s", v)
	}
	// the same transfer reported again is not sent again
	d.events(imageDone(path))
	if len(sent) != 1 {
		t.Fatalf("%d transmissions after a repeated event", len(sent))
	}
}

// TestInlineImageNot: no image without graphics, for one's own files,
// other media types, and images too large to decode.
func TestInlineImageNot(t *testing.T) {
	path := catPNG(t, 20, 10)
	bomb := filepath.Join(t.TempDir(), "bomb.png")
	writePNG(t, bomb, image.NewGray(image.Rect(0, 0, 10, imageMaxSide+1)))
	for name, tc := range map[string]struct {
		gfx  graphics
		edit func(*chat.TransferEvent)
	}{
		"no graphics": {graphicsNone, nil},
		"own file":    {graphicsKitty, func(e *chat.TransferEvent) { e.Transfer.Own = true }},
		"svg":         {graphicsKitty, func(e *chat.TransferEvent) { e.Transfer.File.MediaType = "image/svg+xml" }},
		"bomb":        {graphicsKitty, func(e *chat.TransferEvent) { e.Transfer.Path = bomb }},
		"failed":      {graphicsSixel, func(e *chat.TransferEvent) { e.Transfer.Status = chat.TransferFailed }},
	} {
		t.Run(name, func(t *testing.T) {
			d := newDriver(t, 100, 30)
			d.m.s.gfx = tc.gfx
			sent := 0
			d.m.fx.graphics = func(string) { sent++ }
			d.m.fx.sixels = &sixelImages{}
			ev := imageDone(path)
			if tc.edit != nil {
				tc.edit(&ev)
			}
			d.events(chat.MessageEvent{Message: imageMessage()}, ev)
			v := d.view()
			if sent != 0 || strings.ContainsRune(v, kittyPlaceholder) || strings.Contains(v, sixelMarkerPrefix) {
				t.Fatalf("an image was drawn:\n%s", v)
			}
			if !strings.Contains(v, "📎 cat.png  1.2 MB  1024×768") {
				t.Fatalf("no file line:\n%s", v)
			}
		})
	}
}

// TestInlineImageSixel: the timeline reserves the image's box with a
// marker on each row; the output turns markers into the image drawn from
// the box's top-left corner; a box not wholly on screen has no markers.
func TestInlineImageSixel(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.m.s.gfx, d.m.s.cellW, d.m.s.cellH = graphicsSixel, 10, 20
	d.m.fx.sixels = &sixelImages{}
	d.events(chat.MessageEvent{Message: imageMessage()}, imageDone(catPNG(t, 60, 60)))
	v := d.view()
	// 60×60 pixels: 6 columns, 3 rows
	var rows []int
	for i, l := range strings.Split(v, "\n") {
		if k, n, ok := sixelMarkerRow(l); ok {
			if n != 3 || k != len(rows) {
				t.Fatalf("line %d: row %d of %d", i, k, n)
			}
			rows = append(rows, i)
		}
	}
	if len(rows) != 3 || rows[2]-rows[0] != 2 {
		t.Fatalf("marker lines %v:\n%s", rows, v)
	}
	out := string(d.m.fx.sixels.expand([]byte(v)))
	if strings.Contains(out, sixelMarkerPrefix) || strings.Count(out, "\x1bP0;1;0q") != 3 {
		t.Fatalf("expanded: %d images", strings.Count(out, "\x1bP0;1;0q"))
	}
	// row 2 goes up 2 rows and left 6 columns, draws, and restores the cursor
	if !strings.Contains(out, "\x1b7\x1b[2A\x1b[6D\x1bP0;1;0q") || !strings.Contains(out, "\x1b\\\x1b8") {
		t.Fatal("the image is not drawn from the box's corner with the cursor saved")
	}
}

// TestWholeSixels: markers stay only for boxes wholly among the lines
// shown; the cached lines are not changed.
func TestWholeSixels(t *testing.T) {
	lines := []string{"a", "b" + sixelMarker(1, 0, 3), "c" + sixelMarker(1, 1, 3), "d" + sixelMarker(1, 2, 3), "e"}
	kept := func(out []string) int {
		n := 0
		for _, l := range out {
			if strings.Contains(l, sixelMarkerPrefix) {
				n++
			}
		}
		return n
	}
	if n := kept(wholeSixels(lines, 0, 5, 5)); n != 3 {
		t.Fatalf("whole box: %d markers", n)
	}
	if out := wholeSixels(lines, 2, 5, 5); kept(out) != 0 || out[0] != "c" || len(out) != 3 {
		t.Fatalf("top row above the view: %q", out)
	}
	if n := kept(wholeSixels(lines, 0, 4, 3)); n != 0 {
		t.Fatalf("last row covered: %d markers", n)
	}
	if kept(lines) != 3 {
		t.Fatal("the cached lines lost their markers")
	}
}

func TestSixelExpandIgnoresJunk(t *testing.T) {
	s := &sixelImages{}
	id := s.add("IMG", 4)
	for in, want := range map[string]string{
		"plain":                                "plain",
		"a" + sixelMarker(id, 0, 1) + "b":      "a\x1b7\x1b[4DIMG\x1b8b",
		"a" + sixelMarker(id+1, 0, 1) + "b":    "ab",
		"cut " + sixelMarkerPrefix + "1;0":     "cut ",
		"x" + sixelMarkerPrefix + "z;q\x1b\\y": "xy",
	} {
		if got := string(s.expand([]byte(in))); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSixelMarkers: whatever a frame holds, expanding or stripping its
// markers never panics and leaves no marker for the terminal.
func FuzzSixelMarkers(f *testing.F) {
	for _, s := range []string{
		"a" + sixelMarker(1, 0, 3) + "b" + sixelMarker(1, 2, 3),
		sixelMarkerPrefix + "1;0",
		sixelMarkerPrefix + "99999999999999999999;-1;2\x1b\\",
		sixelMarkerPrefix + sixelMarkerPrefix + "\x1b\\",
		"\x1b_canopy-" + sixelMarker(9, 0, 1) + "sixel;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame string) {
		imgs := &sixelImages{}
		imgs.add("IMG", 3)
		if out := string(imgs.expand([]byte(frame))); strings.Contains(out, sixelMarkerPrefix) {
			t.Fatalf("expand(%q) = %q", frame, out)
		}
		if out := stripSixelMarkers(frame); strings.Contains(out, sixelMarkerPrefix) {
			t.Fatalf("strip(%q) = %q", frame, out)
		}
		sixelMarkerRow(frame)
	})
}
