package tui

import (
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// Engine events and command results: how the root model keeps the session
// in step with the engine.

func (m *model) handleEvent(ev chat.Event) tea.Cmd {
	switch ev := ev.(type) {
	case chat.MessageEvent:
		return m.handleMessage(ev.Message)
	case chat.DeliveryEvent:
		m.s.buffer(ev.Group).setDelivery(ev.ID, ev.Delivery)
	case chat.GroupEvent:
		g := ev.Group
		if i := m.s.group(g.ID); i >= 0 {
			m.s.groups[i] = g
		} else {
			m.s.groups = append([]chat.GroupView{g}, m.s.groups...)
		}
		m.placeholder()
		if g.ID == m.s.selected && (g.Unread > 0 || g.Mentions > 0) {
			return m.readSelected()
		}
	case chat.MembersEvent:
		m.setMembers(ev.Group, ev.Members, true)
		if i := m.s.group(ev.Group); i >= 0 {
			m.s.groups[i].Members = len(ev.Members)
		}
	case chat.InvitationEvent:
		inv := ev.Invitation
		for _, have := range m.s.invitations {
			if have.ID == inv.ID {
				return nil
			}
		}
		m.s.invitations = append(m.s.invitations, inv)
		text := invitationText(inv)
		level := chat.NoticeInfo
		if inv.Warning != "" {
			text += " · WARNING: " + sanitize(inv.Warning, false)
			level = chat.NoticeWarning
		}
		m.homeLine(text, level)
		return m.flash(text, level)
	case chat.StatusEvent:
		m.s.status = ev.Status
	case chat.PeerEvent:
		m.peer(ev.Peer, ev.Online)
	case chat.TransferEvent:
		return m.handleTransfer(ev.Transfer)
	case chat.NoticeEvent:
		text := sanitize(ev.Text, true)
		if ev.Group != homeID && m.s.group(ev.Group) >= 0 {
			m.s.buffer(ev.Group).addLocal(m.s.now(), text, ev.Level)
			if ev.Group == m.s.selected && ev.Level == chat.NoticeInfo {
				return nil
			}
			return m.flash(m.s.groupName(ev.Group)+": "+text, ev.Level)
		}
		m.homeLine(text, ev.Level)
		return m.flash(text, ev.Level)
	}
	return nil
}

// peer keeps the list of nearby canopy peers (for /invite completion and
// the home screen) up to date.
func (m *model) peer(p chat.Peer, online bool) {
	var nearby []chat.Peer
	for _, q := range m.s.status.Nearby {
		if q.PeerID != p.PeerID {
			nearby = append(nearby, q)
		}
	}
	if online {
		nearby = append(nearby, p)
	}
	m.s.status.Nearby = nearby
}

func (m *model) handleMessage(msg chat.Message) tea.Cmd {
	b := m.s.buffer(msg.Group)
	switch msg.Kind {
	case chat.KindTyping:
		if !msg.Own {
			b.typing[sanitize(msg.Sender, false)] = m.s.now()
			return m.tick(typingTTL, typingExpiredMsg{})
		}
		return nil
	case chat.KindReceipt:
		return nil
	}
	atBottom := b.fromBottom == 0
	before := 0
	visible := msg.Group == m.s.selected
	if visible && !atBottom {
		before = m.timeline.lineCount(b)
	}
	added := b.apply(msg)
	if visible && !atBottom {
		// stay on the lines being read
		b.fromBottom += m.timeline.lineCount(b) - before
	}
	if !added || msg.Own || (msg.Kind != chat.KindText && msg.Kind != chat.KindFile) {
		return nil
	}
	delete(b.typing, sanitize(msg.Sender, false))
	var cmds []tea.Cmd
	seen := visible && !m.s.blurred
	if seen {
		cmds = append(cmds, m.markReadCmd(msg.Group))
	} else if i := m.s.group(msg.Group); i >= 0 {
		m.s.groups[i].Unread++
		if msg.Mentions {
			m.s.groups[i].Mentions++
		}
	}
	if msg.Mentions && !seen {
		cmds = append(cmds, m.bellCmd(msg, m.s.groupName(msg.Group)))
	}
	return tea.Batch(cmds...)
}

// bellCmd rings the bell (and calls the notification hook) for a mention
// the user cannot see.
func (m *model) bellCmd(msg chat.Message, group string) tea.Cmd {
	fx := m.fx
	ring := !m.opts.noBell
	return func() tea.Msg {
		if ring && fx.bell != nil {
			fx.bell()
		}
		if fx.desktop != nil {
			fx.desktop(notificationText(msg, group))
		}
		if fx.notify != nil {
			fx.notify(msg)
		}
		return nil
	}
}

// setMembers stores a group's members; a member whose key changed since the
// last list is announced loudly in the group's timeline.
func (m *model) setMembers(group chat.GroupID, members []chat.Member, announce bool) {
	b := m.s.buffer(group)
	old := map[string]bool{}
	for _, mb := range b.members {
		old[mb.Fingerprint+"\x00"+mb.Nick] = mb.KeyChanged
	}
	b.members = append([]chat.Member(nil), members...)
	if !announce {
		return
	}
	for _, mb := range members {
		if was, known := old[mb.Fingerprint+"\x00"+mb.Nick]; mb.KeyChanged && (!known || !was) {
			nick := sanitize(mb.Nick, false)
			b.addLocal(m.s.now(), "The safety number of "+nick+" changed: their signature key is not the one you verified or first saw. Compare safety numbers (/verify "+nick+") before trusting their messages.", chat.NoticeWarning)
		}
	}
	b.version++
}

func (m *model) homeLine(text string, level chat.NoticeLevel) {
	m.s.buffer(homeID).addLocal(m.s.now(), text, level)
	if m.s.selected != homeID {
		m.s.homeUnread++
	}
}

func (m *model) flash(text string, level chat.NoticeLevel) tea.Cmd {
	seq := m.statusBar.setFlash(strings.ReplaceAll(text, "\n", " "), level)
	return m.tick(flashTTL, flashExpiredMsg{seq: seq})
}

func (m *model) execDone(msg execDoneMsg) tea.Cmd {
	b := m.s.buffer(msg.req.group)
	if msg.req.group != homeID && m.s.group(msg.req.group) < 0 {
		b = m.s.buffer(homeID)
	}
	var cmds []tea.Cmd
	if msg.err != nil {
		line := msg.req.line
		if !isCommandLine(line) {
			line = "message not sent"
		} else if i := strings.IndexAny(line, " \n"); i >= 0 && len(line) > 40 {
			line = line[:i]
		}
		text := line + ": " + sanitize(msg.err.Error(), true)
		b.addLocal(m.s.now(), text, chat.NoticeError)
		cmds = append(cmds, m.flash(text, chat.NoticeError))
	} else if out := strings.TrimRight(sanitize(msg.out, true), "\n"); out != "" {
		if commandLogged(msg.req.line) {
			// the engine's own timeline line ("alice added bob") tells
			// it; the result would say it twice
			cmds = append(cmds, m.flash(out, chat.NoticeInfo))
		} else {
			b.addLocal(m.s.now(), out, chat.NoticeInfo)
		}
	}
	if msg.err == nil && commandName(msg.req.line) == "card" && msg.self.Card != "" && m.fx.clipboard != nil {
		// /card also copies the compact card, which is hard to select
		// from its box (and impossible while the mouse is captured)
		card := msg.self.Card
		fx := m.fx
		cmds = append(cmds, func() tea.Msg { fx.clipboard(card); return nil },
			m.flash("your contact card is on the clipboard (if the terminal allows OSC 52)", chat.NoticeInfo))
	}
	if msg.refreshed {
		m.s.self = sanitizeSelf(msg.self)
		m.s.invitations = msg.invitations
		known := map[chat.GroupID]bool{}
		for _, g := range m.s.groups {
			known[g.ID] = true
		}
		fresh := msg.opened
		for _, g := range msg.groups {
			if !known[g.ID] && fresh == "" && msg.err == nil {
				fresh = g.ID
			}
		}
		m.mergeGroups(msg.groups)
		switch {
		case fresh != "" && m.s.group(fresh) >= 0:
			// /create, /accept: open the new group
			cmds = append(cmds, m.selectGroup(fresh))
		case m.s.selected != homeID && m.s.group(m.s.selected) < 0:
			// the group is gone
			cmds = append(cmds, m.selectGroup(homeID))
		}
		m.placeholder() // /leave: the group is now marked left
	}
	return tea.Batch(cmds...)
}

// commandName is the lower-case name of a /command line, or "".
func commandName(line string) string {
	if !isCommandLine(line) || strings.HasPrefix(line, "//") {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimSpace(line[1:]), " ")
	return strings.ToLower(name)
}

// commandLogged reports whether a command line is one whose success the
// engine writes into the group's timeline itself, as the Commit's system
// line, seen by every member: membership changes, key updates and the
// retention setting. Their results go to the status bar only.
func commandLogged(line string) bool {
	switch commandName(line) {
	case "invite", "kick", "update":
		return true
	case "retention": // without an argument it only reports the setting
		_, args, _ := strings.Cut(strings.TrimSpace(line[1:]), " ")
		return strings.TrimSpace(args) != ""
	}
	return false
}

// mergeGroups replaces the group list by the engine's, keeping the order
// the user sees: known groups stay where they are, new ones go on top, gone
// ones disappear.
func (m *model) mergeGroups(groups []chat.GroupView) {
	byID := map[chat.GroupID]chat.GroupView{}
	for _, g := range groups {
		byID[g.ID] = g
	}
	var out []chat.GroupView
	for _, g := range groups {
		if m.s.group(g.ID) < 0 {
			out = append(out, g)
		}
	}
	for _, g := range m.s.groups {
		if ng, ok := byID[g.ID]; ok {
			out = append(out, ng)
		}
	}
	m.s.groups = out
	if i := m.s.group(m.s.selected); i >= 0 && !m.s.blurred {
		m.s.groups[i].Unread, m.s.groups[i].Mentions = 0, 0
	}
}

// invitationText describes a pending invitation in one line; a direct
// conversation request reads as such.
func invitationText(inv chat.Invitation) string {
	accept := " · /accept " + sanitize(inv.ID, false)
	if inv.Direct {
		return sanitize(inv.GroupName, false) + " wants to message you directly" + accept
	}
	return "invitation to " + sanitize(inv.GroupName, false) + " from " + sanitize(inv.From, false) + accept
}
