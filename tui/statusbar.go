package tui

import (
	"strconv"
	"strings"

	"github.com/charmbracelet/lipgloss"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// statusBar is the bottom line: own nick, peers, relays, reachability, the
// selected group's epoch, and on the right either a transient notice or the
// help hint. On narrow terminals the least important items go first.
type statusBar struct {
	s          *session
	w          int
	flash      string
	flashLevel chat.NoticeLevel
	flashSeq   int
	helpOpen   bool
}

func newStatusBar(s *session) *statusBar { return &statusBar{s: s} }

func (b *statusBar) Init() tea.Cmd { return nil }

func (b *statusBar) Update(tea.Msg) (tea.Model, tea.Cmd) { return b, nil }

func (b *statusBar) SetSize(w, _ int) { b.w = w }

// setFlash shows a notice until the next one or until it expires; the
// returned sequence number identifies it for the expiry.
func (b *statusBar) setFlash(text string, level chat.NoticeLevel) int {
	if level < chat.NoticeInfo || level > chat.NoticeError {
		level = chat.NoticeInfo
	}
	b.flash, b.flashLevel = sanitize(text, false), level
	b.flashSeq++
	return b.flashSeq
}

func (b *statusBar) clearFlash(seq int) {
	if seq == b.flashSeq {
		b.flash = ""
	}
}

type segment struct {
	text string
	warn bool
	drop int // segments with the highest drop value go first when space runs out
}

func (b *statusBar) segments() []segment {
	ns := b.s.status
	var segs []segment
	if ns.Peers == 0 && ns.Relays == 0 {
		segs = append(segs, segment{text: "offline", warn: true, drop: 0})
	} else {
		segs = append(segs, segment{text: plural(ns.Peers, "peer", "peers"), drop: 0})
	}
	// The relay count only means something with relays configured; none
	// of them connected is worth a warning.
	if ns.RelaysConfigured > 0 || ns.Relays > 0 {
		segs = append(segs, segment{text: plural(ns.Relays, "relay", "relays"), warn: ns.Relays == 0, drop: 3})
	}
	switch strings.ToLower(ns.Reachability) {
	case "public":
		segs = append(segs, segment{text: "public", drop: 1})
	case "private":
		segs = append(segs, segment{text: "behind NAT", drop: 1})
	default:
		segs = append(segs, segment{text: "reachability unknown", drop: 4})
	}
	// Backpressure: the engine is behind sending or showing.
	if ns.Sending > 0 {
		segs = append(segs, segment{text: "sending " + thousands(ns.Sending) + "…", warn: true, drop: 1})
	}
	if ns.CatchingUp > 0 {
		segs = append(segs, segment{text: "catching up " + thousands(ns.CatchingUp), warn: true, drop: 1})
	}
	// A group the user is no longer in has no live epoch (the timeline's
	// title says why).
	if i := b.s.group(b.s.selected); i >= 0 && !b.s.groups[i].Left {
		segs = append(segs, segment{text: "epoch " + strconv.FormatUint(b.s.groups[i].Epoch, 10), drop: 2})
	}
	return segs
}

func (b *statusBar) View() string {
	if b.w <= 0 {
		return ""
	}
	st := b.s.st
	nick := " " + sanitize(b.s.self.Nick, false) + " "
	if strings.TrimSpace(nick) == "" {
		nick = " canopy "
	}
	right, rightStyle := "? help", st.statusKey
	if b.helpOpen {
		right = "esc close"
	}
	if b.flash != "" {
		right = b.flash
		rightStyle = [...]lipgloss.Style{st.statusBar, st.statusWarn, st.statusErr}[b.flashLevel]
	}
	segs := b.segments()
	leftWidth := func() int {
		w := width(nick)
		for _, sg := range segs {
			w += 3 + width(sg.text)
		}
		return w - 2 // the first separator is a single space
	}
	for leftWidth()+1+width(right)+2 > b.w && len(segs) > 1 {
		worst := 0
		for i, sg := range segs {
			if sg.drop > segs[worst].drop {
				worst = i
			}
		}
		segs = append(segs[:worst], segs[worst+1:]...)
	}
	lw := leftWidth()
	if lw+1+width(right)+2 > b.w {
		right = truncate(right, max(0, b.w-lw-3))
	}
	var line strings.Builder
	line.WriteString(st.statusNick.Render(nick))
	for i, sg := range segs {
		sep := " · "
		if i == 0 {
			sep = " "
		}
		style := st.statusBar
		if sg.warn {
			style = st.statusWarn
		}
		line.WriteString(st.statusBar.Render(sep) + style.Render(sg.text))
	}
	gap := max(1, b.w-lw-width(right)-2)
	line.WriteString(st.statusBar.Render(strings.Repeat(" ", gap)))
	if right != "" {
		line.WriteString(rightStyle.Render(" " + right + " "))
	}
	return fit(line.String(), b.w)
}

// thousands formats n with comma separators ("1,200").
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return neg + s
}
