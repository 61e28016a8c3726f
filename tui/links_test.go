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
	// a URL with non-ASCII characters links to its percent-encoded form
	idn := linkLines([]string{"http://日本.jp/"}, "http://日本.jp/", "m3")[0]
	if !strings.Contains(idn, "http://%E6%97%A5%E6%9C%AC.jp/") || width(idn) != width("http://日本.jp/") {
		t.Errorf("non-ASCII URL: %q", idn)
	}
	// text without URLs is left alone; a javascript: URL is not linked
	plain := []string{"javascript:alert(1) ftp://x"}
	if got := linkLines(plain, plain[0], "m2"); got[0] != plain[0] {
		t.Errorf("linked %q", got)
	}
}

// FuzzLinkLines: whatever a peer sends, linking its wrapped text changes
// no character and no width, and every link targets an http(s) URL that is
// part of the text.
func FuzzLinkLines(f *testing.F) {
	for _, s := range []string{
		"see https://example.org/x?y=1, ok",
		"https://a.b/" + strings.Repeat("x", 80),
		"http://日本語.jp/パス and https://例え.テスト/",
		"https://\u202eevil.example/\u202c",
		"text https://a.example/\x1b]8;;http://evil\x07 tail",
		"no url here at all",
		"https://",
	} {
		f.Add(s, 12)
	}
	f.Fuzz(func(t *testing.T, raw string, w int) {
		w = 1 + (w%60+60)%60
		text := sanitize(raw, true)
		lines := wrap(text, w)
		linked := linkLines(lines, text, "id")
		if len(linked) != len(lines) {
			t.Fatalf("%d lines became %d", len(lines), len(linked))
		}
		for i, l := range linked {
			if ansi.Strip(l) != lines[i] || width(l) != width(lines[i]) {
				t.Fatalf("line %q became %q", lines[i], l)
			}
			for _, part := range strings.Split(l, "\x1b]8;")[1:] {
				_, rest, _ := strings.Cut(part, ";")
				target, _, _ := strings.Cut(rest, "\x07")
				if target == "" {
					continue
				}
				if !strings.HasPrefix(target, "http://") && !strings.HasPrefix(target, "https://") || !strings.Contains(asciiURI(text), target) {
					t.Fatalf("link to %q from %q", target, text)
				}
				if strings.ContainsAny(target, "\x1b\x07\x9c") {
					t.Fatalf("control characters in the link %q", target)
				}
			}
		}
	})
}
