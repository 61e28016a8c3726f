package tui

import (
	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// groupList is the left pane: home, then the groups with unread and mention
// counts. Moving the selection opens the group at once.
type groupList struct {
	s      *session
	w, h   int
	offset int // first row shown
}

func newGroupList(s *session) *groupList { return &groupList{s: s} }

func (g *groupList) Init() tea.Cmd { return nil }

func (g *groupList) SetSize(w, h int) { g.w, g.h = w, h }

func (g *groupList) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return g, nil
	}
	ids := g.s.entries()
	i := g.s.selectedIndex()
	k := g.s.keys
	switch {
	case matches(km, k.Up):
		i--
	case matches(km, k.Down):
		i++
	case matches(km, k.Top):
		i = 0
	case matches(km, k.Bottom):
		i = len(ids) - 1
	case matches(km, k.Select):
		return g, cmdOf(selectGroupMsg{id: g.s.selected, focus: true})
	default:
		return g, nil
	}
	i = max(0, min(i, len(ids)-1))
	if ids[i] == g.s.selected {
		return g, nil
	}
	return g, cmdOf(selectGroupMsg{id: ids[i]})
}

// scroll moves the visible window (mouse wheel) without changing the
// selection.
func (g *groupList) scroll(delta int) {
	rows := g.h - 1
	g.offset = max(0, min(g.offset+delta, len(g.s.entries())-rows))
}

// rowAt maps a y coordinate inside the pane to a group, for mouse clicks.
func (g *groupList) rowAt(y int) (chat.GroupID, bool) {
	i := g.offset + y - 1
	ids := g.s.entries()
	if y < 1 || i < 0 || i >= len(ids) {
		return "", false
	}
	return ids[i], true
}

// keepSelectionVisible scrolls so that the selected row is on screen.
func (g *groupList) keepSelectionVisible() {
	rows := g.h - 1
	if rows <= 0 {
		return
	}
	sel := g.s.selectedIndex()
	if sel < g.offset {
		g.offset = sel
	}
	if sel >= g.offset+rows {
		g.offset = sel - rows + 1
	}
	g.offset = max(0, min(g.offset, len(g.s.entries())-rows))
}

func (g *groupList) View() string {
	if g.w <= 0 || g.h <= 0 {
		return ""
	}
	st := g.s.st
	lines := []string{paneTitle(st, "groups", g.s.focus == focusGroups, g.w)}
	g.keepSelectionVisible()
	ids := g.s.entries()
	for i := g.offset; i < len(ids) && len(lines) < g.h; i++ {
		lines = append(lines, g.row(ids[i]))
	}
	return joinLines(block(lines, g.w, g.h))
}

func (g *groupList) row(id chat.GroupID) string {
	st := g.s.st
	var name, badge string
	unread, mentions := 0, 0
	if id == homeID {
		name = "home"
		unread = g.s.homeUnread
		if n := len(g.s.invitations); n > 0 {
			badge = "✉" + count(n)
		}
	} else if i := g.s.group(id); i >= 0 {
		gv := g.s.groups[i]
		name = sanitize(gv.Name, false)
		if name == "" {
			name = string(id)
		}
		unread, mentions = gv.Unread, gv.Mentions
		if gv.Left {
			badge = "left"
		}
	}
	var parts []string
	if unread > 0 {
		parts = append(parts, st.badge.Render(count(unread)))
	}
	if mentions > 0 {
		parts = append(parts, st.mentionBadge.Render("@"+count(mentions)))
	}
	if badge != "" {
		parts = append(parts, st.dim.Render(badge))
	}
	b := ""
	for i, p := range parts {
		if i > 0 {
			b += " "
		}
		b += p
	}
	selected := id == g.s.selected
	marker := " "
	if selected {
		marker = markSelected
	}
	bw := width(b)
	nameW := g.w - 1
	if bw > 0 {
		nameW = g.w - 1 - bw - 1
		if nameW < 3 { // too narrow for badges: keep the name readable
			b, bw, nameW = "", 0, g.w-1
		}
	}
	nameStyle := st.groupItem
	if unread > 0 || mentions > 0 {
		nameStyle = st.groupUnread
	}
	if g.s.left(id) {
		nameStyle = st.dim
	}
	if selected {
		nameStyle = st.groupSelected
	}
	out := marker + nameStyle.Render(fit(name, nameW))
	if bw > 0 {
		out += " " + b
	}
	return out
}

// paneTitle renders a pane's title row; the focused pane is marked with ▸
// (and colour), so focus is visible without colour too.
func paneTitle(st *styles, text string, focused bool, w int) string {
	if focused {
		return st.titleFocused.Render(fit(markFocused+" "+text, w))
	}
	return st.title.Render(fit("  "+text, w))
}
