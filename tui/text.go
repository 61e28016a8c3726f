package tui

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/charmbracelet/x/ansi"
)

// Text helpers. Every width in the TUI is measured in terminal cells with
// ansi.StringWidth (grapheme clusters, East Asian wide characters and emoji
// count two), the same measure lipgloss and Bubble Tea's renderer use.

// sanitize makes text that came from other peers safe to print: escape
// sequences and control characters are removed (a message must not be able
// to move the cursor, set the window title or ring the bell), tabs become
// spaces, bidirectional overrides that could disguise text are dropped and
// invalid UTF-8 is replaced. Newlines survive only when multiline is set.
func sanitize(s string, multiline bool) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.ContainsRune(s, '\x1b') || strings.ContainsRune(s, '\u009b') {
		s = ansi.Strip(s)
	}
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n':
			if multiline {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		case r == '\t':
			b.WriteString("    ")
		case unsafeRune(r):
			// dropped
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	if unicode.IsControl(r) { // C0, DEL, C1 (includes \n and \t: handled by the caller)
		return true
	}
	switch {
	case r >= 0x202A && r <= 0x202E: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	}
	return false
}

// width is the number of terminal cells s occupies.
func width(s string) int { return ansi.StringWidth(s) }

// truncate cuts s to at most w cells, ending in "…" when something was cut.
func truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if width(s) <= w {
		return s
	}
	if w == 1 {
		return ansi.Truncate(s, 1, "")
	}
	return ansi.Truncate(s, w, "…")
}

// fit makes s exactly w cells wide: truncated, then padded with spaces. A
// wide character that does not fit at the edge is replaced by padding.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	s = truncate(s, w)
	if pad := w - width(s); pad > 0 {
		s += strings.Repeat(" ", pad)
	}
	return s
}

// fitRight is fit with the text aligned to the right edge.
func fitRight(s string, w int) string {
	if w <= 0 {
		return ""
	}
	s = truncate(s, w)
	if pad := w - width(s); pad > 0 {
		s = strings.Repeat(" ", pad) + s
	}
	return s
}

// wrap breaks plain text into lines of at most w cells, at spaces where
// possible and inside words (between grapheme clusters) where not, which is
// what CJK text without spaces needs.
func wrap(s string, w int) []string {
	if w <= 0 {
		return nil
	}
	var out []string
	for _, para := range strings.Split(s, "\n") {
		if width(para) <= w {
			out = append(out, para)
			continue
		}
		for _, l := range strings.Split(ansi.Wrap(para, w, ""), "\n") {
			// ansi.Wrap keeps a trailing space at a word break; drop it,
			// and make sure nothing is wider than w whatever happens.
			l = strings.TrimRight(l, " ")
			if width(l) > w {
				l = ansi.Truncate(l, w, "")
			}
			out = append(out, l)
		}
	}
	return out
}

// block returns exactly h lines, each exactly w cells wide, taken from lines
// (truncated or padded as needed). Components render through it so the root
// can join them side by side without any chance of overflow.
func block(lines []string, w, h int) []string {
	out := make([]string, h)
	for i := range out {
		if i < len(lines) {
			out[i] = fit(lines[i], w)
		} else {
			out[i] = strings.Repeat(" ", max(w, 0))
		}
	}
	return out
}

// overlay draws fg (a block of lines) over bg at column x, row y. Cells of bg
// cut in half by the edges of fg (a wide character) become spaces.
func overlay(bg, fg []string, x, y int) []string {
	out := append([]string(nil), bg...)
	for i, l := range fg {
		row := y + i
		if row < 0 || row >= len(out) {
			continue
		}
		base := out[row]
		left := ansi.Truncate(base, x, "")
		if pad := x - width(left); pad > 0 {
			left += strings.Repeat(" ", pad)
		}
		end := x + width(l)
		right := ansi.TruncateLeft(base, end, "")
		total := width(base)
		if want := total - end; want > 0 && width(right) < want {
			right = strings.Repeat(" ", want-width(right)) + right
		}
		out[row] = left + l + right
	}
	return out
}

// plural returns "1 peer", "2 peers".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// count formats a badge number, capping it at 999+.
func count(n int) string {
	if n > 999 {
		return "999+"
	}
	return strconv.Itoa(n)
}
