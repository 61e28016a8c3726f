package tui

import (
	"slices"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// groupList is the left pane: home, then the groups with unread and mention
// counts, then the direct conversations under a "direct" heading, each
// named after the other person. Moving the selection opens the group at
// once.
type groupList struct {
	s    *session
	w, h int
	listWindow
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

// directHeading stands for the "direct" section heading among the rows
// (never a group id: those are hex).
const directHeading chat.GroupID = "\x00direct"

// rows are the entries as shown: the direct conversations follow a
// heading row.
func (g *groupList) rows() []chat.GroupID {
	ids := g.s.entries()
	out := make([]chat.GroupID, 0, len(ids)+1)
	heading := false
	for _, id := range ids {
		if i := g.s.group(id); i >= 0 && g.s.groups[i].Direct && !heading {
			out = append(out, directHeading)
			heading = true
		}
		out = append(out, id)
	}
	return out
}

// scroll moves the visible window (mouse wheel) without changing the
// selection.
func (g *groupList) scroll(delta int) {
	g.scrollBy(delta, g.h-1, len(g.rows()))
}

// rowAt maps a y coordinate inside the pane to a group, for mouse clicks.
func (g *groupList) rowAt(y int) (chat.GroupID, bool) {
	i := g.offset + y - 1
	ids := g.rows()
	if y < 1 || i < 0 || i >= len(ids) || ids[i] == directHeading {
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
	all := g.rows()
	sel := max(0, slices.Index(all, g.s.selected))
	top := sel
	if sel > 0 && all[sel-1] == directHeading {
		top-- // scrolling up, show the heading with the first direct conversation
	}
	g.reveal(top, sel, rows)
	g.clamp(rows, len(all))
}

func (g *groupList) View() string {
	if g.w <= 0 || g.h <= 0 {
		return ""
	}
	st := g.s.st
	lines := []string{paneTitle(st, "groups", g.s.focus == focusGroups, g.w)}
	g.keepSelectionVisible()
	ids := g.rows()
	for i := g.offset; i < len(ids) && len(lines) < g.h; i++ {
		if ids[i] == directHeading {
			lines = append(lines, st.dim.Render(fit("  direct", g.w)))
			continue
		}
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
		if gv.Direct && gv.PeerKeyChanged {
			// The key is not the one known for that name: flagged as
			// in the member list.
			name = "! " + name
		}
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
