package tui

import (
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/charmbracelet/x/ansi"
)

// URLs in messages are wrapped like any text to fit the timeline, which
// cuts a long one over several lines. Each piece is made a hyperlink to the
// whole URL (OSC 8, with one id per URL so that terminals underline all of
// it on hover): clicking any piece opens the full address, as a soft
// wrapped URL would. Terminals without OSC 8 show the text unchanged.
// Only http and https addresses are linked, and the link's target is the
// very text shown, so a message cannot make a link point somewhere else.

var urlPattern = regexp.MustCompile(`https?://[^\s<>"'` + "`" + `]+`)

// asciiURI percent-encodes the bytes of u outside printable ASCII: OSC 8
// wants an ASCII URI, and terminals (and the width measurement) read
// other bytes inside an escape sequence in different ways.
func asciiURI(u string) string {
	var b strings.Builder
	for i := 0; i < len(u); i++ {
		if c := u[i]; c > 0x20 && c < 0x7f {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
		}
	}
	return b.String()
}

// linkID turns a message id into characters safe in OSC 8 parameters.
func linkID(key string) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	return strconv.FormatUint(h.Sum64(), 36)
}

// urlSpans finds the URLs of a text, as rune ranges, without trailing
// punctuation that usually ends the sentence around them.
func urlSpans(rs []rune) (spans [][2]int, urls []string) {
	text := string(rs)
	for _, loc := range urlPattern.FindAllStringIndex(text, -1) {
		u := strings.TrimRightFunc(text[loc[0]:loc[1]], func(r rune) bool { return strings.ContainsRune(".,;:!?)]}", r) })
		if len(u) <= len("https://") {
			continue
		}
		start := len([]rune(text[:loc[0]]))
		spans = append(spans, [2]int{start, start + len([]rune(u))})
		urls = append(urls, asciiURI(u))
	}
	return spans, urls
}

// linkLines makes the URL pieces in lines (text wrapped by wrap) hyperlinks
// to the URLs of text; key makes the link ids unique per message.
func linkLines(lines []string, text, key string) []string {
	orig := []rune(text)
	spans, urls := urlSpans(orig)
	if len(spans) == 0 {
		return lines
	}
	urlAt := make([]int, len(orig))
	for i := range urlAt {
		urlAt[i] = -1
	}
	for k, sp := range spans {
		for i := sp[0]; i < sp[1]; i++ {
			urlAt[i] = k
		}
	}
	out := make([]string, len(lines))
	pos := 0 // in orig: wrap drops spaces at breaks, never other runes
	for li, line := range lines {
		var b strings.Builder
		cur := -1
		for _, r := range line {
			for pos < len(orig) && orig[pos] != r && unicode.IsSpace(orig[pos]) {
				pos++
			}
			k := -1
			if pos < len(orig) && orig[pos] == r {
				k = urlAt[pos]
				pos++
			}
			if k != cur {
				if cur >= 0 {
					b.WriteString(ansi.ResetHyperlink())
				}
				if k >= 0 {
					b.WriteString(ansi.SetHyperlink(urls[k], "id=canopy-"+linkID(key)+"-"+strconv.Itoa(k)))
				}
				cur = k
			}
			b.WriteRune(r)
		}
		if cur >= 0 {
			b.WriteString(ansi.ResetHyperlink())
		}
		out[li] = b.String()
	}
	return out
}
