//go:build !windows

package tui

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/chat"
)

// TestPTYKittyImage: a terminal that answers the kitty graphics query gets
// a received image as a kitty transmission and placeholder cells; the same
// run in a terminal that answers only DA1 (the emulator alone) gets none.
func TestPTYKittyImage(t *testing.T) {
	t.Setenv(graphicsEnv, "")
	path := catPNG(t, 200, 100)
	for _, kitty := range []bool{true, false} {
		name := "no graphics"
		if kitty {
			name = "kitty"
		}
		t.Run(name, func(t *testing.T) {
			f := newFake()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var answer func([]byte) string
			if kitty {
				answer = func(out []byte) string {
					if bytes.Contains(out, []byte("\x1b_Gi=31,s=1,v=1,a=q")) {
						return "\x1b_Gi=31;OK\x1b\\"
					}
					return ""
				}
			}
			p := startPTYAnswering(t, ctx, f, 100, 30, answer)
			p.waitFor("the first screen", contains("general", "members 4"))
			if !strings.HasPrefix(p.output(), graphicsQuery) {
				t.Fatalf("the terminal was not asked first: %.60q", p.output())
			}
			f.events <- chat.MessageEvent{Message: imageMessage()}
			f.events <- imageDone(path)
			p.waitFor("the file's line", contains("📎 cat.png  1.2 MB  1024×768", "saved:"))
			if !kitty {
				time.Sleep(300 * time.Millisecond) // an image would be on its way
				if out := p.output(); strings.Contains(out, "\x1b_Ga=T") || strings.ContainsRune(out, kittyPlaceholder) {
					t.Fatal("an image for a terminal that did not claim kitty graphics")
				}
				return
			}
			// 200×100 px, cell size unknown (the emulator does not report
			// it): 2:1 cells of 10×20, so 20×5 cells
			p.waitFor("the transmission", func(string) bool { return strings.Contains(p.output(), "\x1b_Ga=T,U=1,q=2,f=100,t=d,i=") })
			out := p.output()
			if !strings.Contains(out, ",c=20,r=5,") {
				t.Fatalf("placement size: %.100q", out[strings.Index(out, "\x1b_Ga=T"):])
			}
			waitUntil(t, "placeholder cells", func() bool {
				return strings.Count(p.output(), string(kittyPlaceholder)) >= 20*5
			})
		})
	}
}

// TestPTYSixelImage: with sixel forced (CANOPY_IMAGES), the frames the
// real renderer writes carry the image, drawn from the reserved box's
// corner with the cursor saved and restored; no marker reaches the
// terminal, and the screen around the box is intact.
func TestPTYSixelImage(t *testing.T) {
	t.Setenv(graphicsEnv, "sixel")
	path := catPNG(t, 60, 60)
	f := newFake()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startPTY(t, ctx, f, 100, 30)
	p.waitFor("the first screen", contains("general", "members 4"))
	f.events <- chat.MessageEvent{Message: imageMessage()}
	f.events <- imageDone(path)
	p.waitFor("the file's line", contains("📎 cat.png  1.2 MB  1024×768", "saved:"))
	// 60×60 px in assumed 10×20 cells: 6 columns, 3 rows; the last row
	// goes up 2 rows and left 6 columns
	p.waitFor("the image", func(string) bool { return strings.Contains(p.output(), "\x1b7\x1b[2A\x1b[6D\x1bP0;1;0q") })
	out := p.output()
	if strings.Contains(out, "canopy-sixel") {
		t.Fatal("a marker reached the terminal")
	}
	if !strings.Contains(out, "\x1b\\\x1b8") {
		t.Fatal("the cursor is not restored after the image")
	}
	screen := p.screen()
	if !strings.Contains(screen, "message general") || !strings.Contains(screen, "saved:") {
		t.Fatalf("the screen around the image:\n%s", screen)
	}
}
