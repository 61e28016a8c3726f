package tui

import (
	"strconv"
	"strings"
)

type geometry struct {
	width, height int
	listW         int // group list (0: hidden)
	membersW      int // member panel (0: hidden)
	timelineW     int
	bodyH         int // rows above the rule
	composerH     int
	composerMax   int
}

// geometry lays the screen out:
//
//	groups │ timeline │ members     bodyH rows
//	───────┴──────────┴────────     the rule, with hints
//	› composer                      1 … composerMax rows
//	 status bar                     1 row
//
// The member panel is hidden below 80 columns and the group list below 50;
// both stay reachable (/members, Ctrl-N/Ctrl-P).
func (m *model) geometry() geometry {
	g := geometry{width: m.width, height: m.height}
	w := m.width
	switch {
	case w >= 120:
		g.listW, g.membersW = 24, 24
	case w >= 100:
		g.listW, g.membersW = 22, 20
	case w >= 80:
		g.listW, g.membersW = 18, 18
	case w >= 50:
		g.listW = max(12, min(16, w/4))
	}
	g.timelineW = w - g.listW - g.membersW
	if g.listW > 0 {
		g.timelineW--
	}
	if g.membersW > 0 {
		g.timelineW--
	}
	g.composerMax = max(1, min(8, (m.height-6)/3))
	g.composerH = max(1, min(m.composer.visualLinesAt(w), g.composerMax))
	g.bodyH = max(0, m.height-g.composerH-2)
	return g
}

// layout passes the geometry to the components.
func (m *model) layout() {
	if m.width == 0 || m.height == 0 {
		return
	}
	g := m.geometry()
	m.s.membersShown = g.membersW > 0
	if m.s.focus == focusMembers && !m.s.membersShown || m.s.focus == focusGroups && g.listW == 0 {
		m.setFocus(focusComposer)
	}
	m.composer.SetSize(g.width, g.composerMax)
	m.groupList.SetSize(g.listW, g.bodyH)
	m.timeline.SetSize(g.timelineW, g.bodyH)
	m.members.SetSize(g.membersW, g.bodyH)
	m.statusBar.SetSize(g.width, 1)
	m.statusBar.helpOpen = m.helpOpen
	m.help.SetSize(g.width, g.bodyH)
}

func (m *model) View() string {
	if m.quitting {
		return ""
	}
	if m.width == 0 || m.height == 0 {
		return "canopy: starting…"
	}
	if m.width < minWidth || m.height < minHeight {
		msg := []string{"canopy needs at least", itoaSize(minWidth, minHeight), "this window is " + itoaSize(m.width, m.height)}
		lines := make([]string, m.height)
		top := max(0, (m.height-len(msg))/2)
		for i, l := range msg {
			if top+i < m.height {
				lines[top+i] = fitCenter(l, m.width)
			}
		}
		return joinLines(block(lines, m.width, m.height))
	}
	g := m.geometry()
	st := m.s.st
	var cols [][]string
	var seps []int // x of the vertical rules
	x := 0
	if g.listW > 0 {
		cols = append(cols, strings.Split(m.groupList.View(), "\n"))
		x += g.listW
		seps = append(seps, x)
		x++
	}
	cols = append(cols, strings.Split(m.timeline.View(), "\n"))
	x += g.timelineW
	if g.membersW > 0 {
		seps = append(seps, x)
		cols = append(cols, strings.Split(m.members.View(), "\n"))
	}
	sep := st.separator.Render("│")
	body := make([]string, g.bodyH)
	for i := range body {
		var b strings.Builder
		for j, c := range cols {
			if j > 0 {
				b.WriteString(sep)
			}
			if i < len(c) {
				b.WriteString(c[i])
			}
		}
		body[i] = b.String()
	}
	if m.search != nil && !m.helpOpen {
		// the search results replace the panes
		m.search.SetSize(g.width, g.bodyH)
		body = strings.Split(m.search.View(), "\n")
		seps = nil
	}
	if m.helpOpen {
		// the help replaces the panes (composer and status bar stay)
		for i := range body {
			body[i] = ""
		}
		box := strings.Split(m.help.View(), "\n")
		bw := width(box[0])
		body = overlay(body, box, max(0, (g.width-bw)/2), max(0, (g.bodyH-len(box))/2))
	}
	out := make([]string, 0, m.height)
	out = append(out, body...)
	out = append(out, m.rule(g, seps))
	out = append(out, strings.Split(m.composer.View(), "\n")...)
	out = append(out, m.statusBar.View())
	return joinLines(block(out, m.width, m.height))
}

// rule is the line between the panes and the composer, carrying hints:
// completion candidates, the synopsis of the command being typed, who is
// typing, or the basic keys.
func (m *model) rule(g geometry, seps []int) string {
	st := m.s.st
	line := []rune(strings.Repeat("─", g.width))
	for _, x := range seps {
		if x < len(line) {
			line[x] = '┴'
		}
	}
	rule := st.separator.Render(string(line))
	var parts []hintPart
	if m.s.focus == focusComposer {
		parts = m.composer.hint()
	}
	if parts == nil {
		if t := m.typingLine(); t != "" {
			parts = []hintPart{{text: t}}
		} else if m.s.focus == focusComposer && m.composer.Value() == "" {
			parts = []hintPart{{text: m.s.keys.composerHint(g.width)}}
		}
	}
	if len(parts) == 0 {
		return rule
	}
	var b strings.Builder
	b.WriteString(" ")
	for i, p := range parts {
		if i > 0 {
			b.WriteString(st.hint.Render(" "))
		}
		if p.active {
			b.WriteString(st.hintActive.Render("[" + p.text + "]"))
		} else {
			b.WriteString(st.hint.Render(p.text))
		}
	}
	b.WriteString(" ")
	text := truncate(b.String(), g.width-4)
	return overlay([]string{rule}, []string{text}, 2, 0)[0]
}

func (m *model) typingLine() string {
	b := m.s.buffer(m.s.selected)
	now := m.s.now()
	var nicks []string
	for n, at := range b.typing {
		if now.Sub(at) < typingTTL {
			nicks = append(nicks, n)
		}
	}
	switch len(nicks) {
	case 0:
		return ""
	case 1:
		return nicks[0] + " is typing"
	case 2:
		if nicks[1] < nicks[0] {
			nicks[0], nicks[1] = nicks[1], nicks[0]
		}
		return nicks[0] + " and " + nicks[1] + " are typing"
	}
	return "several people are typing"
}

func itoaSize(w, h int) string { return strconv.Itoa(w) + "×" + strconv.Itoa(h) }

func joinLines(lines []string) string { return strings.Join(lines, "\n") }
