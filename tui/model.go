package tui

import (
	"context"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// Sizes below which the screen shows a "too small" notice instead of the
// layout. 60×15 is the smallest size the layout is designed (and tested) for;
// it degrades gracefully down to these.
const (
	minWidth  = 40
	minHeight = 10
)

// How long transient things stay on screen.
const (
	flashTTL  = 8 * time.Second
	typingTTL = 6 * time.Second
	// typingEvery is the least time between two typing notices the TUI
	// sends to one group (receivers show one for typingTTL).
	typingEvery = 3 * time.Second
)

// effects are the model's ways to touch the world outside tea.Cmds that
// talk to the engine. Run wires the real ones; tests replace them.
type effects struct {
	// wait returns the command that waits for the next engine events, or
	// nil to not wait (tests deliver events as messages).
	wait func() tea.Cmd
	// tick is tea.Tick; tests return nil.
	tick func(d time.Duration, fn func(time.Time) tea.Msg) tea.Cmd
	// bell rings the terminal bell.
	bell func()
	// notify is the user's notification hook for mentions (WithNotify).
	notify func(chat.Message)
	// desktop writes a desktop-notification escape sequence (nil: off).
	desktop func(title, body string)
	// clipboard puts text on the system clipboard through the terminal
	// (OSC 52).
	clipboard func(text string)
	// graphics writes a graphics escape sequence (kitty image data) to
	// the terminal, between two frames.
	graphics func(seq string)
	// sixels are the sixel images the terminal output draws (sixelout.go).
	sixels *sixelImages
}

// model is the root model: the layout, the focus, the engine's events and
// the commands sent to it. Components render the shared session.
type model struct {
	ctx    context.Context
	client chat.Client
	opts   options
	fx     effects
	s      *session

	width, height int
	helpOpen      bool

	groupList *groupList
	timeline  *timeline
	members   *memberPanel
	composer  *composer
	statusBar *statusBar
	help      *helpView
	search    *searchView // the search results, when open

	// Execute calls run one at a time, in order, so that two messages sent
	// quickly cannot overtake each other.
	execQueue []execReq
	executing bool

	// typingSent is when a typing notice last went to each group.
	typingSent map[chat.GroupID]time.Time

	title string // the terminal title last set

	mouseOff bool // mouse capture turned off with the toggle key

	userSelected  bool // the user chose a group before the snapshot arrived
	quitting      bool
	engineStopped bool
}

type execReq struct {
	group  chat.GroupID
	line   string
	search string // set: run as a search for the search view
}

// Messages from commands.
type (
	snapshotMsg struct {
		self        chat.Self
		groups      []chat.GroupView
		invitations []chat.Invitation
		status      chat.NetStatus
	}
	groupLoadedMsg struct {
		group   chat.GroupID
		page    []chat.Message
		members []chat.Member
		limit   int
	}
	olderLoadedMsg struct {
		group chat.GroupID
		page  []chat.Message
		limit int
	}
	eventsMsg       []chat.Event
	engineClosedMsg struct{}
	execDoneMsg     struct {
		req         execReq
		out         string
		err         error
		opened      chat.GroupID // the group the command created or joined
		refreshed   bool         // the fields below are set
		self        chat.Self
		groups      []chat.GroupView
		invitations []chat.Invitation
	}
	flashExpiredMsg  struct{ seq int }
	typingExpiredMsg struct{}
)

func newModel(ctx context.Context, c chat.Client, st *styles, o options) *model {
	s := &session{
		st:       st,
		keys:     defaultKeyMap(),
		loc:      o.loc,
		now:      time.Now,
		buffers:  map[chat.GroupID]*buffer{},
		commands: append(append([]chat.Command(nil), chat.Commands...), localCommands...),
	}
	m := &model{ctx: ctx, client: c, opts: o, s: s, typingSent: map[chat.GroupID]time.Time{}}
	m.groupList = newGroupList(s)
	m.timeline = newTimeline(s)
	m.members = newMemberPanel(s)
	m.composer = newComposer(s)
	m.statusBar = newStatusBar(s)
	m.help = newHelpView(s)
	m.composer.setPlaceholder("")
	events := c.Events()
	m.fx = effects{
		wait: func() tea.Cmd { return waitForEvents(ctx, events) },
		tick: tea.Tick,
		bell: func() {},
	}
	return m
}

// waitForEvents waits for the next engine event and takes whatever else is
// queued behind it, so a burst costs one update and one render.
func waitForEvents(ctx context.Context, ch <-chan chat.Event) tea.Cmd {
	return func() tea.Msg {
		var batch eventsMsg
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return engineClosedMsg{}
			}
			batch = append(batch, ev)
		}
		for len(batch) < 256 {
			select {
			case ev, ok := <-ch:
				if !ok {
					return batch // the close is seen on the next wait
				}
				batch = append(batch, ev)
			default:
				return batch
			}
		}
		return batch
	}
}

func (m *model) waitCmd() tea.Cmd {
	if m.fx.wait == nil {
		return nil
	}
	return m.fx.wait()
}

func (m *model) tick(d time.Duration, msg tea.Msg) tea.Cmd {
	if m.fx.tick == nil {
		return nil
	}
	return m.fx.tick(d, func(time.Time) tea.Msg { return msg })
}

func (m *model) Init() tea.Cmd {
	c := m.client
	return tea.Batch(func() tea.Msg {
		return snapshotMsg{self: c.Self(), groups: c.Groups(), invitations: c.Invitations(), status: c.Status()}
	}, m.waitCmd())
}

// --- commands that talk to the engine ----------------------------------

func (m *model) loadGroupCmd(id chat.GroupID) tea.Cmd {
	c, limit := m.client, m.opts.historyPage
	return func() tea.Msg {
		return groupLoadedMsg{group: id, page: c.History(id, "", limit), members: c.Members(id), limit: limit}
	}
}

func (m *model) loadOlderCmd(id chat.GroupID, before chat.MessageID) tea.Cmd {
	c, limit := m.client, m.opts.historyPage
	return func() tea.Msg {
		return olderLoadedMsg{group: id, page: c.History(id, before, limit), limit: limit}
	}
}

func (m *model) markReadCmd(id chat.GroupID) tea.Cmd {
	if id == homeID {
		return nil
	}
	c := m.client
	return func() tea.Msg { c.MarkRead(id); return nil }
}

// runner is the engine's Execute with a structured result (chat.Engine
// has it): it names the group a command created or joined, which the TUI
// opens. Without it, a group that first appears in the command's refresh
// is taken for that group, which misses one whose GroupEvent came first.
type runner interface {
	Run(ctx context.Context, group chat.GroupID, line string) (chat.Result, error)
}

func (m *model) execCmd(req execReq) tea.Cmd {
	c, ctx := m.client, m.ctx
	return func() tea.Msg {
		var done execDoneMsg
		if r, ok := c.(runner); ok {
			res, err := r.Run(ctx, req.group, req.line)
			done = execDoneMsg{req: req, out: res.Text, err: err, opened: res.Group}
		} else {
			out, err := c.Execute(ctx, req.group, req.line)
			done = execDoneMsg{req: req, out: out, err: err}
		}
		if isCommandLine(req.line) {
			// A command may have changed the nick, the groups or the
			// invitations, for which chat has no events: re-read them.
			done.refreshed = true
			done.self, done.groups, done.invitations = c.Self(), c.Groups(), c.Invitations()
		}
		return done
	}
}

// typingCmd tells the selected group that the user is typing, after the
// composer's text changed: at most once every typingEvery per group, never
// for a slash command (a line starting with // is a message) and never in
// home or a group the user left.
func (m *model) typingCmd() tea.Cmd {
	id, v := m.s.selected, m.composer.Value()
	if id == homeID || m.s.group(id) < 0 || m.s.left(id) || strings.TrimSpace(v) == "" {
		return nil
	}
	if isCommandLine(v) && !strings.HasPrefix(v, "//") {
		return nil
	}
	now := m.s.now()
	if last, ok := m.typingSent[id]; ok && now.Sub(last) < typingEvery && !now.Before(last) {
		return nil
	}
	m.typingSent[id] = now
	c, ctx := m.client, m.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = c.Typing(ctx, id) // best effort
		return nil
	}
}

func (m *model) enqueue(req execReq) tea.Cmd {
	m.execQueue = append(m.execQueue, req)
	if m.executing {
		return nil
	}
	return m.nextExec()
}

func (m *model) nextExec() tea.Cmd {
	if len(m.execQueue) == 0 {
		m.executing = false
		return nil
	}
	req := m.execQueue[0]
	m.execQueue = m.execQueue[1:]
	m.executing = true
	if req.search != "" {
		return m.searchCmd(req, req.search)
	}
	return m.execCmd(req)
}

// --- update -------------------------------------------------------------

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	m.layout()
	m.timeline.applyJump()
	if t := m.windowTitle(); t != m.title && !m.quitting {
		m.title = t
		cmd = tea.Batch(cmd, tea.SetWindowTitle(t))
	}
	return m, cmd
}

func (m *model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return nil
	case tea.KeyMsg:
		group, before := m.s.selected, m.composer.Value()
		cmd := m.handleKey(msg)
		if m.s.selected == group && m.composer.Value() != before {
			return tea.Batch(cmd, m.typingCmd())
		}
		return cmd
	case tea.MouseMsg:
		return m.handleMouse(msg)
	case imageLoadedMsg:
		m.imageLoaded(msg)
		return nil
	case tea.FocusMsg:
		m.s.blurred = false
		if i := m.s.group(m.s.selected); i >= 0 && m.s.groups[i].Unread > 0 {
			m.markUnread() // messages arrived while the window was away
		}
		return m.readSelected()
	case tea.BlurMsg:
		m.s.blurred = true
		return nil

	case snapshotMsg:
		return m.applySnapshot(msg)
	case groupLoadedMsg:
		b := m.s.buffer(msg.group)
		b.loading = false
		b.loaded = true
		b.merge(msg.page, false)
		b.noMore = len(msg.page) < msg.limit
		b.placeMark()
		m.setMembers(msg.group, msg.members, false)
		return m.seek(msg.group)
	case seekLoadedMsg:
		b := m.s.buffer(msg.group)
		b.loadingOlder = false
		b.merge(msg.page, true)
		if msg.noMore {
			b.noMore = true
		}
		if b.find(msg.target) == nil && b.focusID == msg.target {
			b.focusID, b.jumpToFocus = "", false
			return m.flash("that message is no longer in the history", chat.NoticeWarning)
		}
		return nil
	case searchDoneMsg:
		return tea.Batch(m.searchDone(msg), m.nextExec())
	case olderLoadedMsg:
		b := m.s.buffer(msg.group)
		b.loadingOlder = false
		b.merge(msg.page, true)
		if len(msg.page) < msg.limit {
			b.noMore = true
			b.version++
		}
		return m.seek(msg.group) // a search result asked for while this page loaded
	case eventsMsg:
		var cmds []tea.Cmd
		for _, ev := range msg {
			cmds = append(cmds, m.handleEvent(ev))
		}
		cmds = append(cmds, m.waitCmd())
		return tea.Batch(cmds...)
	case engineClosedMsg:
		m.engineStopped = true
		m.quitting = true
		return tea.Quit
	case execDoneMsg:
		return tea.Batch(m.execDone(msg), m.nextExec())

	case selectGroupMsg:
		m.userSelected = true
		cmd := m.selectGroup(msg.id)
		if msg.focus {
			m.setFocus(focusComposer)
		}
		return cmd
	case composeMsg:
		v := msg.text
		if !msg.replace {
			v = m.composer.Value() + msg.text
		}
		m.composer.SetValue(v)
		m.setFocus(focusComposer)
		return nil
	case loadOlderMsg:
		b := m.s.buffer(msg.group)
		if b.loadingOlder || b.noMore {
			return nil
		}
		b.loadingOlder = true
		return m.loadOlderCmd(msg.group, b.oldestID())
	case flashExpiredMsg:
		m.statusBar.clearFlash(msg.seq)
		return nil
	case typingExpiredMsg:
		now := m.s.now()
		for _, b := range m.s.buffers {
			for n, at := range b.typing {
				if now.Sub(at) >= typingTTL {
					delete(b.typing, n)
				}
			}
		}
		return nil
	}
	return nil
}

func (m *model) applySnapshot(msg snapshotMsg) tea.Cmd {
	m.s.self = sanitizeSelf(msg.self)
	m.s.status = msg.status
	m.s.invitations = msg.invitations
	m.s.groups = msg.groups
	if m.userSelected || len(m.s.groups) == 0 {
		if m.s.selected != homeID && m.s.group(m.s.selected) < 0 {
			return m.selectGroup(homeID)
		}
		return m.selectGroup(m.s.selected)
	}
	return m.selectGroup(m.s.groups[0].ID)
}

func sanitizeSelf(s chat.Self) chat.Self {
	s.Nick = sanitize(s.Nick, false)
	s.Fingerprint = sanitize(s.Fingerprint, false)
	s.Card = sanitize(s.Card, false)
	return s
}

// selectGroup shows a group: its unread counters reset, its history loads
// the first time, and its draft comes back into the composer.
func (m *model) selectGroup(id chat.GroupID) tea.Cmd {
	if id != homeID && m.s.group(id) < 0 {
		id = homeID
	}
	prev := m.s.buffer(m.s.selected)
	if id != m.s.selected {
		prev.draft = m.composer.Value()
		m.s.selected = id
		m.composer.SetValue(m.s.buffer(id).draft)
		m.members.cursor, m.members.offset = 0, 0
		prev.focusID = "" // the highlight of a search result ends with the visit
		prev.version++
		m.markUnread()
	}
	m.placeholder()
	var cmds []tea.Cmd
	cmds = append(cmds, m.readSelected())
	b := m.s.buffer(id)
	if !b.loaded && !b.loading {
		b.loading = true
		cmds = append(cmds, m.loadGroupCmd(id))
	}
	return tea.Batch(cmds...)
}

// placeholder sets the composer's placeholder for the selected buffer.
func (m *model) placeholder() {
	id := m.s.selected
	switch {
	case id == homeID:
		m.composer.setPlaceholder("")
	case m.s.left(id):
		m.composer.ta.Placeholder = "you are no longer a member of " + sanitize(m.s.groupName(id), false)
	default:
		m.composer.setPlaceholder(sanitize(m.s.groupName(id), false))
	}
}

// windowTitle is the terminal's title: the unread and mention counts of
// all groups in front (so that a narrow tab shows them), no group names
// (the title is visible outside the window).
func (m *model) windowTitle() string {
	unread, mentions := 0, 0
	for _, g := range m.s.groups {
		unread += g.Unread
		mentions += g.Mentions
	}
	switch {
	case mentions > 0:
		return "(" + strconv.Itoa(unread) + " @" + strconv.Itoa(mentions) + ") canopy"
	case unread > 0:
		return "(" + strconv.Itoa(unread) + ") canopy"
	}
	return "canopy"
}

// markUnread puts the read marker of the selected group above its unread
// messages (or removes it when there are none): done when the user comes
// back to the group, before its counters are cleared.
func (m *model) markUnread() {
	if m.s.blurred {
		return // the counters stay until the user can see the group
	}
	if i := m.s.group(m.s.selected); i >= 0 {
		m.s.buffer(m.s.selected).setMark(m.s.groups[i].Unread)
	}
}

// readSelected clears the selected group's counters (when the user can see
// it).
func (m *model) readSelected() tea.Cmd {
	if m.s.blurred {
		return nil
	}
	if m.s.selected == homeID {
		m.s.homeUnread = 0
		return nil
	}
	i := m.s.group(m.s.selected)
	if i < 0 {
		return nil
	}
	m.s.groups[i].Unread, m.s.groups[i].Mentions = 0, 0
	return m.markReadCmd(m.s.selected)
}

func (m *model) cycleGroup(dir int) tea.Cmd {
	ids := m.s.entries()
	i := m.s.selectedIndex()
	n := len(ids)
	return m.selectGroup(ids[((i+dir)%n+n)%n])
}
