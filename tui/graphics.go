package tui

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Inline images need a terminal graphics protocol, and canopy never guesses
// one from $TERM or the terminal's name: a terminal that cannot draw them
// would print kilobytes of escape-sequence garbage into the timeline. At
// start the terminal is asked (query.go) and only its answer turns images
// on; CANOPY_IMAGES overrides the answer for terminals that lie.

// graphics is the protocol images are drawn with.
type graphics int

const (
	graphicsNone  graphics = iota
	graphicsKitty          // kitty graphics protocol, unicode placeholders
	graphicsSixel          // DEC sixel
)

func (g graphics) String() string {
	switch g {
	case graphicsKitty:
		return "kitty"
	case graphicsSixel:
		return "sixel"
	}
	return "off"
}

// graphicsEnv is the variable that overrides detection.
const graphicsEnv = "CANOPY_IMAGES"

// graphicsOverride reads CANOPY_IMAGES: off, kitty or sixel force a
// protocol (auto asks the terminal: ok false). Anything else is auto too,
// so a typo cannot turn on a protocol the terminal did not claim.
func graphicsOverride(v string) (g graphics, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "off", "none", "no", "0":
		return graphicsNone, true
	case "kitty":
		return graphicsKitty, true
	case "sixel":
		return graphicsSixel, true
	}
	return graphicsNone, false
}

// graphicsQuery is sent to the terminal at start: a kitty graphics query
// (a 1×1 RGB image that is only checked, never stored: a=q), the text area's
// cell size in pixels (XTWINOPS 16), and a primary device attributes
// request, which every terminal answers, last: its answer ends the wait,
// so a terminal that knows none of the rest costs one round trip.
const graphicsQuery = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\" + "\x1b[16t" + "\x1b[c"

// termReply is what the terminal said to graphicsQuery.
type termReply struct {
	kitty bool // the kitty query was answered OK
	sixel bool // DA1 lists attribute 4
	// cellW, cellH: a cell's size in pixels, 0 when not reported
	cellW, cellH int
	// done: the DA1 answer arrived; nothing more is coming
	done bool
}

// protocol is the protocol the reply allows. Kitty graphics are drawn
// with unicode placeholders, which the terminals that implement the
// protocol fully (kitty, Ghostty) support and which neither claims sixel;
// terminals that answer both (WezTerm, Konsole) implement kitty graphics
// only in part, without placeholders (at the time of writing), so sixel
// is the safer of the two there.
func (r termReply) protocol() graphics {
	switch {
	case r.sixel:
		return graphicsSixel
	case r.kitty:
		return graphicsKitty
	}
	return graphicsNone
}

// parseTermReply reads the terminal's answers to graphicsQuery out of b,
// which may hold other input too (keys typed meanwhile) and may be cut
// short. It is pure and total: any bytes give a reply, never a panic.
func parseTermReply(b []byte) termReply {
	var r termReply
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0x1b)
		if i < 0 || i+1 >= len(b) {
			break
		}
		b = b[i+1:]
		switch b[0] {
		case '_': // APC: kitty graphics answer "Gi=31;OK"
			end := bytes.Index(b, []byte("\x1b\\"))
			if end < 0 {
				return r
			}
			body := b[1:end]
			b = b[end+2:]
			if !bytes.HasPrefix(body, []byte("G")) {
				continue
			}
			ctl, msg, found := bytes.Cut(body[1:], []byte(";"))
			if found && string(msg) == "OK" && hasKey(ctl, "i=31") {
				r.kitty = true
			}
		case '[': // CSI: DA1 "?…c" or cell size "6;H;Wt"
			j := 1
			for j < len(b) && (b[j] >= 0x20 && b[j] <= 0x3f) {
				j++
			}
			if j >= len(b) {
				return r
			}
			params, final := string(b[1:j]), b[j]
			b = b[j+1:]
			switch {
			case final == 'c' && strings.HasPrefix(params, "?"):
				r.done = true
				for _, p := range strings.Split(params[1:], ";") {
					if p == "4" {
						r.sixel = true
					}
				}
				// the DA1 answer comes last: what follows is typed input
				return r
			case final == 't':
				f := strings.Split(params, ";")
				if len(f) == 3 && f[0] == "6" {
					h, err1 := strconv.Atoi(f[1])
					w, err2 := strconv.Atoi(f[2])
					if err1 == nil && err2 == nil && h > 0 && w > 0 && h <= 1000 && w <= 1000 {
						r.cellW, r.cellH = w, h
					}
				}
			}
		}
	}
	return r
}

// hasKey reports whether the comma-separated control data holds kv.
func hasKey(ctl []byte, kv string) bool {
	for _, f := range bytes.Split(ctl, []byte(",")) {
		if string(f) == kv {
			return true
		}
	}
	return false
}

// graphicsFromEnv is the override in the environment, if any.
func graphicsFromEnv() (graphics, bool) { return graphicsOverride(os.Getenv(graphicsEnv)) }
