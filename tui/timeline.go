package tui

import (
	"sort"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// timeline is the middle pane: a title row and the selected buffer's
// entries, scrollable. The scroll position is kept per buffer, counted in
// lines from the newest line, so a timeline at the bottom follows new
// messages and one scrolled up stays where it is (older pages loaded on top
// do not move it either).
type timeline struct {
	s    *session
	w, h int

	// render cache: all lines of one buffer at one width
	cache struct {
		b       *buffer
		version int
		w       int
		extra   string // what else the lines depend on (home intro)
		lines   []string
		mark    int // index of the "new messages" line, or -1
		focus   int // index of the first line of the shown search result, or -1
	}
}

func newTimeline(s *session) *timeline { return &timeline{s: s} }

func (t *timeline) Init() tea.Cmd { return nil }

func (t *timeline) SetSize(w, h int) { t.w, t.h = w, h }

// rows is the number of lines for entries (the title takes one).
func (t *timeline) rows() int { return max(0, t.h-1) }

func (t *timeline) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return t, nil
	}
	k := t.s.keys
	page := max(1, t.rows()-1)
	switch {
	case matches(km, k.Up):
		return t, t.scroll(1)
	case matches(km, k.Down):
		return t, t.scroll(-1)
	case matches(km, k.PageUp):
		return t, t.scroll(page)
	case matches(km, k.PageDown):
		return t, t.scroll(-page)
	case matches(km, k.Top):
		return t, t.scroll(1 << 30)
	case matches(km, k.Bottom):
		t.s.buffer(t.s.selected).fromBottom = 0
	}
	return t, nil
}

// page scrolls by a screenful; up is positive.
func (t *timeline) page(dir int) tea.Cmd { return t.scroll(dir * max(1, t.rows()-1)) }

// scroll moves the view by delta lines (positive: towards older lines). At
// the top it asks for the previous page of history.
func (t *timeline) scroll(delta int) tea.Cmd {
	b := t.s.buffer(t.s.selected)
	top := max(0, len(t.lines(b))-t.rows())
	b.fromBottom = max(0, min(b.fromBottom+delta, top))
	if delta > 0 && b.fromBottom == top && b.loaded && !b.noMore && !b.loadingOlder {
		return cmdOf(loadOlderMsg{group: b.id})
	}
	return nil
}

// lineCount is the number of rendered lines of a buffer at the current width.
func (t *timeline) lineCount(b *buffer) int { return len(t.lines(b)) }

func (t *timeline) View() string {
	if t.w <= 0 || t.h <= 0 {
		return ""
	}
	b := t.s.buffer(t.s.selected)
	lines := t.lines(b)
	rows := t.rows()
	top := max(0, len(lines)-rows)
	b.fromBottom = max(0, min(b.fromBottom, top))
	start := max(0, len(lines)-rows-b.fromBottom)
	end := min(len(lines), start+rows)
	out := []string{t.title(b)}
	// the newest line sits at the bottom, next to the composer
	for i := end - start; i < rows; i++ {
		out = append(out, "")
	}
	shownEnd := end
	if b.fromBottom > 0 && rows > 1 {
		shownEnd-- // the indicator below covers the last row
	}
	out = append(out, wholeSixels(lines, start, end, shownEnd)...)
	if b.fromBottom > 0 && rows > 1 {
		// replace the last row by an indicator of what is below
		more := "── " + plural(b.fromBottom+1, "more line", "more lines") + " below · End ──"
		for len(out) < t.h {
			out = append(out, "")
		}
		out[len(out)-1] = t.s.st.dim.Render(fitCenter(more, t.w))
	}
	return joinLines(block(out, t.w, t.h))
}

// wholeSixels returns lines[start:end] without the sixel markers of
// images whose box is not wholly within lines[start:shown], the lines left
// visible: the image would be drawn over the title, the composer or the
// "more lines below" indicator.
func wholeSixels(lines []string, start, end, shown int) []string {
	out := lines[start:end]
	copied := false
	for i := range out {
		k, rows, ok := sixelMarkerRow(out[i])
		if !ok {
			continue
		}
		if top := start + i - k; top >= start && top+rows <= shown {
			continue
		}
		if !copied {
			out = append([]string(nil), out...)
			copied = true
		}
		out[i] = stripSixelMarkers(out[i])
	}
	return out
}

func (t *timeline) title(b *buffer) string {
	st := t.s.st
	focused := t.s.focus == focusTimeline
	if b.id == homeID {
		return paneTitle(st, "home · "+sanitize(t.s.self.Nick, false), focused, t.w)
	}
	name := "# " + sanitize(t.s.groupName(b.id), false)
	text := name
	if i := t.s.group(b.id); i >= 0 {
		if g := t.s.groups[i]; g.Left {
			text += " · " + leftReason(g)
		} else {
			text += " · " + plural(t.s.groups[i].Members, "member", "members")
		}
		if t.s.groups[i].PostQuantum() {
			text += " · PQ"
		}
	}
	kc := b.keyChanged()
	if len(kc) == 0 {
		return paneTitle(st, text, focused, t.w)
	}
	// A changed key is flagged loudly: the member count gives way to the
	// warning, and the group's name too when there is no room for both.
	warn := markKeyChange + " key changed: " + sanitize(strings.Join(kc, ", "), false)
	if 2+width(text)+2+width(warn) > t.w {
		text = name
	}
	tw := 2 + width(text)
	if t.w-tw-2 < min(width(warn), 20) {
		return st.warnBadge.Render(fit(warn, t.w))
	}
	return fit(paneTitle(st, text, focused, tw)+"  "+st.warnBadge.Render(truncate(warn, t.w-tw-2)), t.w)
}

// leftReason says why the user is no longer in a group.
func leftReason(g chat.GroupView) string {
	switch by := sanitize(g.RemovedBy, false); by {
	case "":
		return "you left"
	case "someone":
		return "you were removed"
	default:
		return "removed by " + by
	}
}

// lines renders every entry of a buffer at the pane's width, cached.
func (t *timeline) lines(b *buffer) []string {
	w := t.w
	extra := ""
	if b.id == homeID {
		extra = t.homeKey()
	}
	c := &t.cache
	if c.b == b && c.version == b.version && c.w == w && c.extra == extra && c.lines != nil {
		return c.lines
	}
	var lines []string
	if b.id == homeID {
		lines = t.homeIntro(w)
	}
	entries, mark, focus := renderEntries(t.s, b, w)
	if mark >= 0 {
		mark += len(lines)
	}
	if focus >= 0 {
		focus += len(lines)
	}
	lines = append(lines, entries...)
	c.b, c.version, c.w, c.extra, c.lines, c.mark, c.focus = b, b.version, w, extra, lines, mark, focus
	return lines
}

// markLine is the index of the read marker's line in lines(b), or -1.
func (t *timeline) markLine(b *buffer) int {
	t.lines(b)
	return t.cache.mark
}

// applyJump scrolls the selected buffer so that its read marker shows,
// when asked to (on coming back to a group with unread messages, or with
// the first-unread key): the marker goes near the top when the unread
// lines are more than a screen, otherwise the timeline stays at the bottom.
func (t *timeline) applyJump() {
	b := t.s.buffer(t.s.selected)
	if b.jumpToFocus && t.w > 0 && t.rows() > 0 && b.loaded && b.find(b.focusID) != nil {
		// a message shown from the search view: a third down the screen
		b.jumpToFocus, b.jumpToMark = false, false
		t.lines(b)
		n, rows := len(t.cache.lines), t.rows()
		b.fromBottom = max(0, min(n-rows-(t.cache.focus-rows/3), n-rows))
		return
	}
	if !b.jumpToMark || t.w <= 0 || t.rows() <= 0 || !b.loaded {
		return
	}
	b.jumpToMark = false
	mark := t.markLine(b)
	if mark < 0 {
		return
	}
	n, rows := len(t.lines(b)), t.rows()
	// one line of what was read above the marker
	b.fromBottom = max(0, min(n-rows-(mark-1), n-rows))
}

// layout of one timeline row: [time ][nick ][body][ mark]
type columns struct {
	timeW, nickW, bodyW, markW int
}

func timelineColumns(b *buffer, w int) columns {
	c := columns{timeW: 6, markW: 3}
	c.nickW = max(4, min(max(b.nickW, 4), 12, w/4))
	c.bodyW = w - c.timeW - c.nickW - 1 - c.markW
	if c.bodyW < 16 { // very narrow: drop the time column
		c.timeW = 0
		c.bodyW = w - c.nickW - 1 - c.markW
	}
	return c
}

// renderCache holds an entry's rendered lines for one layout.
type renderCache struct {
	key   renderKey
	lines []string
}

type renderKey struct {
	cols     columns
	rev      int
	replyRev int // the quoted message changes the entry's look too
	loc      *time.Location
	valid    bool
}

// renderEntries renders a buffer's entries; mark is the index of the read
// marker's line in them and focus that of the message shown from the
// search view (-1: none).
func renderEntries(s *session, b *buffer, w int) (out []string, mark, focus int) {
	st := s.st
	mark, focus = -1, -1
	c := timelineColumns(b, w)
	if c.bodyW < 1 {
		return nil, mark, focus
	}
	if b.noMore && b.id != homeID && len(b.entries) > 0 {
		out = append(out, st.dim.Render(fitCenter("start of history", w)))
	}
	var lastDay time.Time
	for _, e := range b.entries {
		if !e.msg.SentAt.IsZero() {
			at := e.msg.SentAt.In(s.loc)
			day := time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, s.loc)
			if !day.Equal(lastDay) {
				out = append(out, st.dateSep.Render(fitCenter("── "+at.Format("Mon 2 Jan 2006")+" ──", w)))
				lastDay = day
			}
		}
		if b.markID != "" && e.msg.ID == b.markID && !e.local {
			mark = len(out)
			out = append(out, st.unreadSep.Render(fitCenter("── new messages ──", w)))
		}
		var quoted *entry
		key := renderKey{cols: c, rev: e.rev, loc: s.loc, valid: true}
		if e.msg.ReplyTo != "" && e.msg.Kind == chat.KindText {
			if quoted = b.find(e.msg.ReplyTo); quoted != nil {
				key.replyRev = quoted.rev + 1
			}
		}
		if e.cache.key != key {
			e.cache = renderCache{key: key, lines: renderEntry(s, e, quoted, c)}
		}
		if b.focusID != "" && e.msg.ID == b.focusID && !e.local {
			// the message shown from the search view stands out
			focus = len(out)
			for _, l := range e.cache.lines {
				out = append(out, st.found.Render(l))
			}
			continue
		}
		out = append(out, e.cache.lines...)
	}
	return out, mark, focus
}

// renderEntry renders one entry in the given columns.
func renderEntry(s *session, e *entry, quoted *entry, c columns) []string {
	st := s.st
	m := e.msg
	at := m.SentAt.In(s.loc)
	indent := strings.Repeat(" ", c.timeW+c.nickW+1)
	stamp := ""
	if c.timeW > 0 {
		if m.SentAt.IsZero() {
			stamp = strings.Repeat(" ", c.timeW)
		} else {
			stamp = st.time.Render(at.Format("15:04")) + " "
		}
	}
	var out []string
	if m.Kind == chat.KindSystem {
		level := e.level
		if level < chat.NoticeInfo || level > chat.NoticeError {
			level = chat.NoticeInfo
		}
		mark, style := "*", st.system
		if e.local || level != chat.NoticeInfo {
			style = st.notice[level]
		}
		switch level {
		case chat.NoticeWarning:
			mark = markKeyChange
		case chat.NoticeError:
			mark = markFailed
		}
		bodyW := c.bodyW + c.markW
		for i, l := range wrap(sanitize(m.Body, true), bodyW) {
			head := indent
			if i == 0 {
				head = stamp + st.noticeMark[level].Render(fitRight(mark, c.nickW)) + " "
			}
			out = append(out, head+style.Render(l))
		}
		return out
	}

	// a message
	var body []string
	if quoted != nil {
		q := quoted.msg
		snippet := markReply + " " + sanitize(q.Sender, false) + ": " + sanitize(q.Body, false)
		body = append(body, st.reply.Render(truncate(snippet, c.bodyW)))
	}
	bodyStyle := st.body
	if m.Mentions && !m.Own {
		bodyStyle = st.mention
	}
	if e.deleted {
		body = append(body, st.deleted.Render("message deleted"))
	} else if m.Kind == chat.KindFile && m.File != nil {
		body = append(body, styled(bodyStyle, wrap(fileLine(s, m), c.bodyW))...)
	} else {
		text := sanitize(m.Body, true)
		wrapped := wrap(text, c.bodyW)
		shown := wrapped
		if st.links {
			shown = linkLines(wrapped, text, string(m.ID))
		}
		for _, l := range shown {
			body = append(body, bodyStyle.Render(l))
		}
		if e.edited {
			const tag = "(edited)"
			if n := len(wrapped); n > 0 && width(wrapped[n-1])+1+len(tag) <= c.bodyW {
				body[len(body)-1] += " " + st.edited.Render(tag)
			} else {
				body = append(body, st.edited.Render(tag))
			}
		}
	}
	if m.Kind == chat.KindFile && !e.deleted {
		body = append(body, transferLine(s, m, c.bodyW)...)
		body = append(body, imageLines(s, m, c.bodyW)...)
	}
	if len(e.reactions) > 0 {
		body = append(body, st.dim.Render(truncate(reactionLine(e.reactions), c.bodyW)))
	}
	if len(body) == 0 {
		body = []string{""}
	}
	nick := sanitize(m.Sender, false)
	nickStyle := st.nick(m.SenderFP, nick, m.Own)
	mark := ""
	if m.Own {
		mark = st.deliv[deliveryIndex(m.Delivery)].Render(deliveryMark(m.Delivery))
	}
	for i, l := range body {
		head := indent
		if i == 0 {
			head = stamp + nickStyle.Render(fitRight(nick, c.nickW)) + " "
		}
		line := head + fit(l, c.bodyW)
		if i == 0 && mark != "" {
			line += " " + fitRight(mark, c.markW-1)
		}
		out = append(out, line)
	}
	return out
}

func reactionLine(rs []reaction) string {
	counts := map[string]int{}
	var order []string
	for _, r := range rs {
		e := sanitize(r.emoji, false)
		if counts[e] == 0 {
			order = append(order, e)
		}
		counts[e]++
	}
	parts := make([]string, len(order))
	for i, e := range order {
		parts[i] = e + " " + count(counts[e])
	}
	return strings.Join(parts, "  ")
}

func deliveryIndex(d chat.Delivery) int {
	if d < chat.Pending || d > chat.Failed {
		return int(chat.Pending)
	}
	return int(d)
}

func deliveryMark(d chat.Delivery) string {
	switch d {
	case chat.Sent:
		return markSent
	case chat.Delivered:
		return markDelivered
	case chat.Failed:
		return markFailed
	}
	return markPending
}

// homeKey is what the home intro depends on besides the buffer.
func (t *timeline) homeKey() string {
	var b strings.Builder
	self := t.s.self
	b.WriteString(self.Nick + "\x00" + self.Fingerprint + "\x00" + self.Card)
	for _, inv := range t.s.invitations {
		b.WriteString("\x00" + inv.ID)
	}
	for _, p := range t.s.status.Nearby {
		b.WriteString("\x01" + p.PeerID + "\x00" + p.Nick)
	}
	return b.String()
}

// homeIntro is the top of the home buffer: who you are and what is waiting.
func (t *timeline) homeIntro(w int) []string {
	st := t.s.st
	self := t.s.self
	var out []string
	add := func(style func(...string) string, text string, indent int) {
		pad := strings.Repeat(" ", indent)
		for _, l := range wrap(text, w-indent) {
			out = append(out, pad+style(l))
		}
	}
	plain := st.body.Render
	add(st.helpTitle.Render, "canopy · end-to-end encrypted group chat without servers", 1)
	if self.Nick != "" {
		add(plain, "You are "+sanitize(self.Nick, false)+".", 1)
	}
	if self.Fingerprint != "" {
		add(plain, "Safety fingerprint: "+sanitize(self.Fingerprint, false), 1)
	}
	if self.Card != "" {
		add(st.dim.Render, "Your contact card (others /invite you with it):", 1)
		add(plain, sanitize(self.Card, false), 3)
	}
	if nearby := t.s.status.Nearby; len(nearby) > 0 {
		add(st.helpTitle.Render, "Nearby", 1)
		for _, p := range nearby {
			add(plain, sanitize(p.Nick, false)+" · /invite "+sanitize(p.Nick, false), 3)
		}
	}
	if len(t.s.invitations) > 0 {
		add(st.helpTitle.Render, "Invitations", 1)
		invs := append([]chat.Invitation(nil), t.s.invitations...)
		sort.SliceStable(invs, func(i, j int) bool { return invs[i].At.Before(invs[j].At) })
		for _, inv := range invs {
			line := "✉ " + sanitize(inv.GroupName, false) + " from " + sanitize(inv.From, false) + " · /accept " + sanitize(inv.ID, false)
			if inv.Direct {
				line = "✉ " + invitationText(inv)
			}
			if inv.Warning != "" {
				line += " · WARNING: " + sanitize(inv.Warning, false)
			}
			add(plain, line, 3)
		}
	}
	add(st.dim.Render, "Start a group with /create NAME [CONTACT…]. /help lists the commands, ? the keys.", 1)
	out = append(out, "")
	return out
}

// fitCenter centres s in w cells.
func fitCenter(s string, w int) string {
	s = truncate(s, w)
	left := (w - width(s)) / 2
	return fit(strings.Repeat(" ", max(0, left))+s, w)
}
