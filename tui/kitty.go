package tui

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// kitty graphics: how the image stays on screen with Bubble Tea's renderer.
//
// The renderer redraws changed lines as text and erases the rest of each
// line, so an image placed at the cursor (a=T with a placement) would be
// painted over, or left behind when the timeline scrolls. Kitty's unicode
// placeholders avoid both: the image is transmitted once, out of band,
// with a virtual placement (U=1), and View draws it as ordinary text:
// U+10EEEE cells whose foreground colour names the image and whose
// combining marks name the row. The renderer diffs, wraps and scrolls them
// like any character, so View stays a pure string, and the terminal draws
// the image wherever the placeholders are. (The other way, a fixed area of
// blank lines with the image drawn over it after every frame, needs a
// hook after the renderer's flush that Bubble Tea v1 does not have; it is
// what sixel has to do, see sixel.go.)

// kittyChunk is the payload size of one escape sequence: the protocol
// requires chunks of at most 4096 bytes of base64.
const kittyChunk = 4096

// kittyTransmit returns the escape sequences that send PNG data as image
// id with a virtual placement of cols×rows cells. q=2 silences the
// terminal's answers, which Bubble Tea would read as keys.
func kittyTransmit(id uint32, png []byte, cols, rows int) string {
	data := base64.StdEncoding.EncodeToString(png)
	var b strings.Builder
	for first := true; first || len(data) > 0; first = false {
		n := min(kittyChunk, len(data))
		chunk := data[:n]
		data = data[n:]
		more := 0
		if len(data) > 0 {
			more = 1
		}
		if first {
			fmt.Fprintf(&b, "\x1b_Ga=T,U=1,q=2,f=100,t=d,i=%d,c=%d,r=%d,m=%d;%s\x1b\\", id, cols, rows, more, chunk)
		} else {
			fmt.Fprintf(&b, "\x1b_Gm=%d;%s\x1b\\", more, chunk)
		}
	}
	return b.String()
}

// kittyDelete frees an image's data in the terminal.
func kittyDelete(id uint32) string { return fmt.Sprintf("\x1b_Ga=d,d=I,q=2,i=%d\x1b\\", id) }

// kittyPlaceholder is the character that stands for an image cell.
const kittyPlaceholder = '\U0010EEEE'

// kittyRowMarks are the combining marks for rows 0, 1, …: the first
// entries of the protocol's rowcolumn-diacritics table. Only the first
// cell of a row carries marks (row and column 0); the cells after it
// inherit the row and count the column up, which the protocol allows.
var kittyRowMarks = []rune{
	0x0305, 0x030D, 0x030E, 0x0310, 0x0312, 0x033D,
	0x033E, 0x033F, 0x0346, 0x034A, 0x034B, 0x034C,
}

// kittyPlaceholders returns the rows×cols placeholder lines for image id
// (ids below 2^24, carried in a 24-bit foreground colour). Every line is
// cols cells wide and resets its colour, so it can be padded and joined
// like any other styled text.
func kittyPlaceholders(id uint32, cols, rows int) []string {
	rows = min(rows, len(kittyRowMarks))
	fg := fmt.Sprintf("\x1b[38;2;%d;%d;%dm", id>>16&0xff, id>>8&0xff, id&0xff)
	rest := strings.Repeat(string(kittyPlaceholder), max(0, cols-1))
	out := make([]string, rows)
	for r := range rows {
		out[r] = fg + string(kittyPlaceholder) + string(kittyRowMarks[r]) + string(kittyRowMarks[0]) + rest + "\x1b[39m"
	}
	return out
}
