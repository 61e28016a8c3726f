package tui

import (
	"sort"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// memberPanel is the right pane: the selected group's members with their
// verification marks — ✓ verified, ! key changed (loud), blank otherwise.
// It is hidden on narrow terminals (/members shows the same list then).
type memberPanel struct {
	s      *session
	w, h   int
	cursor int
	listWindow
}

func newMemberPanel(s *session) *memberPanel { return &memberPanel{s: s} }

func (p *memberPanel) Init() tea.Cmd { return nil }

func (p *memberPanel) SetSize(w, h int) { p.w, p.h = w, h }

// list is the selected group's members in display order: the ones whose key
// changed first, then by nick.
func (p *memberPanel) list() []chat.Member {
	if p.s.selected == homeID {
		return nil
	}
	ms := append([]chat.Member(nil), p.s.buffer(p.s.selected).members...)
	sort.SliceStable(ms, func(i, j int) bool {
		if ms[i].KeyChanged != ms[j].KeyChanged {
			return ms[i].KeyChanged
		}
		return strings.ToLower(ms[i].Nick) < strings.ToLower(ms[j].Nick)
	})
	return ms
}

func (p *memberPanel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return p, nil
	}
	ms := p.list()
	k := p.s.keys
	switch {
	case matches(km, k.Up):
		p.cursor--
	case matches(km, k.Down):
		p.cursor++
	case matches(km, k.Top):
		p.cursor = 0
	case matches(km, k.Bottom):
		p.cursor = len(ms) - 1
	case matches(km, k.Select):
		if p.cursor < len(ms) {
			return p, cmdOf(composeMsg{text: "@" + sanitize(ms[p.cursor].Nick, false) + " "})
		}
	case matches(km, k.Verify):
		if p.cursor < len(ms) {
			return p, cmdOf(composeMsg{text: "/verify " + sanitize(ms[p.cursor].Nick, false), replace: true})
		}
	}
	p.cursor = max(0, min(p.cursor, len(ms)-1))
	return p, nil
}

func (p *memberPanel) scroll(delta int) {
	p.scrollBy(delta, p.h-1, len(p.list()))
}

func (p *memberPanel) View() string {
	if p.w <= 0 || p.h <= 0 {
		return ""
	}
	st := p.s.st
	ms := p.list()
	title := "members"
	if len(ms) > 0 {
		title += " " + count(len(ms))
	}
	focused := p.s.focus == focusMembers
	lines := []string{paneTitle(st, title, focused, p.w)}
	p.cursor = max(0, min(p.cursor, len(ms)-1))
	rows := p.h - 1
	if focused {
		p.reveal(p.cursor, p.cursor, rows)
	}
	p.clamp(rows, len(ms))
	for i := p.offset; i < len(ms) && len(lines) < p.h; i++ {
		lines = append(lines, p.row(ms[i], focused && i == p.cursor))
	}
	return joinLines(block(lines, p.w, p.h))
}

func (p *memberPanel) row(m chat.Member, cursor bool) string {
	st := p.s.st
	mark, markStyle := " ", st.dim
	switch {
	case m.KeyChanged:
		mark, markStyle = markKeyChange, st.memberKeyChanged
	case m.Verified:
		mark, markStyle = markVerified, st.memberVerified
	}
	name := sanitize(m.Nick, false)
	nameStyle := st.body
	suffix := ""
	switch {
	case m.KeyChanged:
		nameStyle = st.memberKeyChanged
		suffix = " key changed"
	case m.Self:
		nameStyle = st.memberSelf
		suffix = " (you)"
	}
	nameW := p.w - 3
	if width(name)+width(suffix) <= nameW {
		name += suffix
	}
	text := nameStyle.Render(fit(name, nameW))
	cur := " "
	if cursor {
		cur = markSelected
		text = st.memberCursor.Render(fit(name, nameW))
	}
	return cur + markStyle.Render(mark) + " " + text
}
