package tui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
)

// TestLinkLinesMakesEveryPieceOfAWrappedURLALink: a URL cut by the
// timeline's wrapping opens whole from any of its pieces.
func TestLinkLinesMakesEveryPieceOfAWrappedURLALink(t *testing.T) {
	url := "https://example.org/a/very/long/path/that/wraps?q=1;x=2"
	text := "see " + url + ", and http://b.example too."
	lines := wrap(text, 20)
	if len(lines) < 3 {
		t.Fatalf("not wrapped: %q", lines)
	}
	linked := linkLines(lines, text, "m1")
	var pieces []string
	for i, l := range linked {
		if got := ansi.Strip(l); got != lines[i] {
			t.Errorf("line %d text changed: %q → %q", i, lines[i], got)
		}
		if width(l) != width(lines[i]) {
			t.Errorf("line %d width changed", i)
		}
		for _, part := range strings.Split(l, "\x1b]8;")[1:] {
			params, rest, _ := strings.Cut(part, ";")
			target, _, _ := strings.Cut(rest, "\x07")
			if target == "" {
				continue // the reset
			}
			pieces = append(pieces, target+" "+params)
		}
	}
	full, b := 0, 0
	for _, p := range pieces {
		switch {
		case strings.HasPrefix(p, url+" "):
			full++
		case strings.HasPrefix(p, "http://b.example "):
			b++
		default:
			t.Errorf("a link to %q", p)
		}
	}
	if full < 3 || b != 1 {
		t.Errorf("%d links to the long URL (want one per piece, ≥3), %d to the short one: %q", full, b, pieces)
	}
	// the sentence's comma and full stop are not part of the links
	if strings.Contains(strings.Join(pieces, "|"), "too.") {
		t.Errorf("punctuation linked: %q", pieces)
	}
	// text without URLs is left alone; a javascript: URL is not linked
	plain := []string{"javascript:alert(1) ftp://x"}
	if got := linkLines(plain, plain[0], "m2"); got[0] != plain[0] {
		t.Errorf("linked %q", got)
	}
}
