package tui

import (
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// Keys and mouse: the root model routes input to the focused component,
// after the bindings that work everywhere.

func (m *model) setFocus(f focus) {
	if f == focusMembers && !m.s.membersShown {
		f = focusComposer
	}
	m.s.focus = f
	if f == focusComposer {
		m.composer.Focus()
	} else {
		m.composer.Blur()
	}
}

func (m *model) cycleFocus(dir int) {
	f := m.s.focus
	for range numFocus {
		f = (f + focus(dir) + numFocus) % numFocus
		if f == focusMembers && !m.s.membersShown {
			continue
		}
		if f == focusGroups && m.groupList.w == 0 {
			continue
		}
		break
	}
	m.setFocus(f)
}

func (m *model) handleKey(msg tea.KeyMsg) tea.Cmd {
	k := m.s.keys
	if matches(msg, k.Quit) {
		m.quitting = true
		return tea.Quit
	}
	if m.search != nil {
		if isText(msg) {
			return nil
		}
		hit, closed := m.search.update(msg)
		if closed {
			m.search = nil
		}
		if hit != nil {
			return m.showMessage(*hit)
		}
		return nil
	}
	if m.helpOpen {
		switch {
		case matches(msg, k.Back, k.Help) || (!isText(msg) && msg.String() == "q"):
			m.helpOpen = false
		default:
			m.help.Update(msg)
		}
		return nil
	}
	if isText(msg) {
		// typed or pasted text, never a key, whichever pane has the focus
		m.setFocus(focusComposer)
		_, cmd := m.composer.Update(msg)
		return cmd
	}
	if cmd, ok := m.globalKey(msg); ok {
		return cmd
	}
	return m.paneKey(msg)
}

// globalKey handles the keys that work whichever pane has the focus;
// handled is false for the others.
func (m *model) globalKey(msg tea.KeyMsg) (cmd tea.Cmd, handled bool) {
	k := m.s.keys
	switch {
	case matches(msg, k.NextGroup):
		m.userSelected = true
		return m.cycleGroup(1), true
	case matches(msg, k.PrevGroup):
		m.userSelected = true
		return m.cycleGroup(-1), true
	case matches(msg, k.PageUp):
		return m.timeline.page(1), true
	case matches(msg, k.PageDown):
		return m.timeline.page(-1), true
	case matches(msg, k.Mouse):
		m.mouseOff = !m.mouseOff
		if m.mouseOff {
			return tea.Batch(tea.DisableMouse, m.flash("mouse off: the terminal selects text; alt+m turns it back on", chat.NoticeInfo)), true
		}
		return tea.Batch(tea.EnableMouseCellMotion, m.flash("mouse on: wheel scrolls, click opens a group", chat.NoticeInfo)), true
	case matches(msg, k.FirstUnread):
		b := m.s.buffer(m.s.selected)
		if b.markID == "" {
			return m.flash("no new messages line in "+sanitize(m.s.groupName(m.s.selected), false), chat.NoticeInfo), true
		}
		b.jumpToMark = true
		return nil, true
	case matches(msg, k.Oldest):
		return m.timeline.scroll(1 << 30), true
	case matches(msg, k.Newest):
		m.s.buffer(m.s.selected).fromBottom = 0
		return nil, true
	case matches(msg, k.FocusNext, k.FocusPrev):
		dir := 1
		if matches(msg, k.FocusPrev) {
			dir = -1
		}
		if m.s.focus == focusComposer && m.composer.complete(dir, m.s) {
			return nil, true
		}
		m.composer.comp = nil
		m.cycleFocus(dir)
		return nil, true
	case matches(msg, k.Back):
		if m.composer.comp != nil {
			m.composer.comp = nil
			return nil, true
		}
		m.setFocus(focusComposer)
		return nil, true
	case matches(msg, k.Help) && (m.s.focus != focusComposer || m.composer.Value() == ""):
		m.helpOpen = true
		m.help.top()
		return nil, true
	}
	return nil, false
}

// paneKey handles a key in the focused pane; runes typed in another pane
// go to the composer.
func (m *model) paneKey(msg tea.KeyMsg) tea.Cmd {
	k := m.s.keys
	switch m.s.focus {
	case focusComposer:
		if matches(msg, k.Send) {
			return m.send()
		}
		// Home and End move the cursor in the line; pressed with the
		// cursor already there they scroll the timeline to its oldest or
		// newest message, which is what the "· End" hint of a scrolled
		// timeline offers.
		if matches(msg, k.LineStart, k.LineEnd) && !m.composer.cursorMoves(msg) {
			if matches(msg, k.LineStart) {
				return m.timeline.scroll(1 << 30)
			}
			m.s.buffer(m.s.selected).fromBottom = 0
			return nil
		}
		_, cmd := m.composer.Update(msg)
		return cmd
	case focusGroups:
		if matches(msg, k.Up, k.Down, k.Top, k.Bottom, k.Select) {
			_, cmd := m.groupList.Update(msg)
			return cmd
		}
	case focusTimeline:
		if matches(msg, k.Up, k.Down, k.Top, k.Bottom) {
			_, cmd := m.timeline.Update(msg)
			return cmd
		}
	case focusMembers:
		if matches(msg, k.Up, k.Down, k.Top, k.Bottom, k.Select, k.Verify) {
			_, cmd := m.members.Update(msg)
			return cmd
		}
	}
	// Typing in another pane goes to the composer.
	if msg.Type == tea.KeyRunes && !msg.Alt {
		m.setFocus(focusComposer)
		_, cmd := m.composer.Update(msg)
		return cmd
	}
	return nil
}

// send handles Enter in the composer.
func (m *model) send() tea.Cmd {
	line := strings.TrimRight(m.composer.Value(), " \n")
	if strings.TrimSpace(line) == "" {
		return nil
	}
	m.composer.remember(line)
	m.composer.SetValue("")
	m.s.buffer(m.s.selected).fromBottom = 0
	if isCommandLine(line) {
		name, _, _ := strings.Cut(strings.TrimSpace(line[1:]), " ")
		switch strings.ToLower(name) {
		case "quit", "exit":
			m.quitting = true
			return tea.Quit
		case "help":
			m.helpOpen = true
			m.help.top()
			return nil
		case "info":
			_, args, _ := strings.Cut(strings.TrimSpace(line[1:]), " ")
			m.messageInfo(args)
			return nil
		case "search":
			// results in a view of their own, when the engine offers them
			if _, ok := m.client.(searcher); ok {
				if _, query, _ := strings.Cut(strings.TrimSpace(line[1:]), " "); strings.TrimSpace(query) != "" {
					return m.enqueue(execReq{group: m.s.selected, line: line, search: strings.TrimSpace(query)})
				}
			}
		}
	}
	return m.enqueue(execReq{group: m.s.selected, line: line})
}

func (m *model) handleMouse(msg tea.MouseMsg) tea.Cmd {
	if msg.Action != tea.MouseActionPress {
		return nil
	}
	l := m.geometry()
	wheel := 0
	switch msg.Button {
	case tea.MouseButtonWheelUp:
		wheel = 3
	case tea.MouseButtonWheelDown:
		wheel = -3
	case tea.MouseButtonLeft:
	default:
		return nil
	}
	if m.helpOpen {
		m.help.scroll(-wheel)
		return nil
	}
	if m.search != nil {
		m.search.move(-wheel / 3)
		return nil
	}
	inBody := msg.Y < l.bodyH
	switch {
	case inBody && msg.X < l.listW:
		if wheel != 0 {
			m.groupList.scroll(-wheel)
			return nil
		}
		if id, ok := m.groupList.rowAt(msg.Y); ok {
			m.userSelected = true
			m.setFocus(focusGroups)
			return m.selectGroup(id)
		}
	case inBody && l.membersW > 0 && msg.X >= l.width-l.membersW:
		if wheel != 0 {
			m.members.scroll(-wheel)
			return nil
		}
		m.setFocus(focusMembers)
	case wheel != 0:
		return m.timeline.scroll(wheel)
	case inBody:
		m.setFocus(focusTimeline)
	case msg.Y > l.bodyH && msg.Y <= l.bodyH+l.composerH:
		m.setFocus(focusComposer)
	}
	return nil
}
