package tui

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Sixel on screen: a sixel image is pixels drawn at the cursor, not text,
// so it cannot live in View's string the way kitty's placeholders do, and
// Bubble Tea's renderer paints over it whenever it rewrites a line. The
// timeline therefore reserves the image's box as blank cells and puts,
// at the right end of the box on each of its rows, a marker: an APC
// string (zero cells wide to the renderer, which measures and truncates
// lines with it intact). The terminal output expands every marker it
// writes into "save cursor, go up to the box's top-left corner, draw the
// image, restore cursor". The image is drawn again whenever any row of
// its box is rewritten, after the row's blanks, so it is never left
// half-erased, and the renderer's idea of the cursor is unchanged. View
// stays a pure string; only the output knows the pixels.

// sixelMarkerPrefix starts a marker; peers' text cannot forge one, since
// sanitize removes escape sequences from everything they send.
const sixelMarkerPrefix = "\x1b_canopy-sixel;"

// sixelMarker marks row k of image n's box of rows rows.
func sixelMarker(n, k, rows int) string {
	return sixelMarkerPrefix + strconv.Itoa(n) + ";" + strconv.Itoa(k) + ";" + strconv.Itoa(rows) + "\x1b\\"
}

// sixelMarkerRow reads the first marker of a line: its row in the box and
// the box's rows.
func sixelMarkerRow(l string) (k, rows int, ok bool) {
	i := strings.Index(l, sixelMarkerPrefix)
	if i < 0 {
		return 0, 0, false
	}
	var n int
	_, err := fmt.Sscanf(l[i+len(sixelMarkerPrefix):], "%d;%d;%d", &n, &k, &rows)
	return k, rows, err == nil
}

// sixelImages holds the encoded images the markers refer to; the model
// adds them, the output's writer reads them.
type sixelImages struct {
	mu   sync.Mutex
	imgs map[int]sixelImage
	next int
}

type sixelImage struct {
	data string
	cols int
}

func (s *sixelImages) add(data string, cols int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.imgs == nil {
		s.imgs = map[int]sixelImage{}
	}
	s.next++
	s.imgs[s.next] = sixelImage{data: data, cols: cols}
	return s.next
}

// expand replaces the markers in p by the images they mark. Unknown or
// malformed markers are dropped.
func (s *sixelImages) expand(p []byte) []byte {
	if !bytes.Contains(p, []byte(sixelMarkerPrefix)) {
		return p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out bytes.Buffer
	for {
		i := bytes.Index(p, []byte(sixelMarkerPrefix))
		if i < 0 {
			out.Write(p)
			if bytes.Contains(out.Bytes(), []byte(sixelMarkerPrefix)) {
				// pieces around a dropped marker formed a new one (never
				// in canopy's own frames)
				return []byte(stripSixelMarkers(out.String()))
			}
			return out.Bytes()
		}
		out.Write(p[:i])
		p = p[i+len(sixelMarkerPrefix):]
		end := bytes.Index(p, []byte("\x1b\\"))
		if end < 0 {
			return out.Bytes()
		}
		var n, k int
		_, err := fmt.Sscanf(string(p[:end]), "%d;%d", &n, &k)
		p = p[end+2:]
		img, ok := s.imgs[n]
		if err != nil || !ok || k < 0 {
			continue
		}
		out.WriteString("\x1b7") // DECSC
		if k > 0 {
			fmt.Fprintf(&out, "\x1b[%dA", k)
		}
		fmt.Fprintf(&out, "\x1b[%dD", img.cols)
		out.WriteString(img.data)
		out.WriteString("\x1b8") // DECRC
	}
}

// stripSixelMarkers removes the markers of a line, for a box that is not
// wholly on screen (its image would be drawn over other lines).
func stripSixelMarkers(l string) string {
	for {
		i := strings.Index(l, sixelMarkerPrefix)
		if i < 0 {
			return l
		}
		end := strings.Index(l[i:], "\x1b\\")
		if end < 0 {
			return l[:i]
		}
		l = l[:i] + l[i+end+2:]
	}
}
