package tui

import (
	"slices"
	"time"

	"github.com/canopy-chat/canopy/chat"
)

// homeID is the buffer of the home entry at the top of the group list: the
// profile, pending invitations, notices not tied to a group and the output of
// commands typed outside a group. It is chat's "no group selected".
const homeID chat.GroupID = ""

// maxEntries caps a buffer; older entries are dropped from memory and come
// back from History when the user scrolls up to them.
const maxEntries = 5000

// focus is which pane receives keys.
type focus int

const (
	focusComposer focus = iota
	focusGroups
	focusTimeline
	focusMembers
	numFocus
)

// session is the state the root model owns and the components read while
// rendering (soft-serve's "common"). Only the root model's Update mutates it;
// like all Bubble Tea models it is not safe for concurrent use.
type session struct {
	st   *styles
	keys keyMap
	loc  *time.Location
	now  func() time.Time

	self         chat.Self
	status       chat.NetStatus
	groups       []chat.GroupView // order as the engine first listed them; new groups on top
	invitations  []chat.Invitation
	selected     chat.GroupID
	buffers      map[chat.GroupID]*buffer
	focus        focus
	blurred      bool // the terminal window lost focus (focus reporting)
	homeUnread   int  // notices and invitations that arrived while home was not shown
	membersShown bool
	commands     []chat.Command // chat.Commands; tests pin their own list
	transfers    map[chat.MessageID]chat.Transfer

	// inline images: the terminal's protocol (none: the file's line
	// only), its cell size in pixels (0: unknown) and the images shown
	gfx          graphics
	cellW, cellH int
	images       map[chat.MessageID]*inlineImage
	nextImage    int
}

func (s *session) buffer(id chat.GroupID) *buffer {
	b := s.buffers[id]
	if b == nil {
		b = &buffer{id: id, typing: map[string]time.Time{}}
		if id == homeID {
			b.loaded, b.noMore = true, true
		}
		s.buffers[id] = b
	}
	return b
}

// group returns the index of a group in s.groups, or -1.
func (s *session) group(id chat.GroupID) int {
	for i := range s.groups {
		if s.groups[i].ID == id {
			return i
		}
	}
	return -1
}

// entries lists what the group list shows, in order: home, the groups,
// then the direct conversations (their own section, grouplist.go).
func (s *session) entries() []chat.GroupID {
	ids := make([]chat.GroupID, 0, len(s.groups)+1)
	ids = append(ids, homeID)
	for _, direct := range []bool{false, true} {
		for _, g := range s.groups {
			if g.Direct == direct {
				ids = append(ids, g.ID)
			}
		}
	}
	return ids
}

func (s *session) selectedIndex() int {
	return max(0, slices.Index(s.entries(), s.selected))
}

// left reports whether the user is no longer a member of a group.
func (s *session) left(id chat.GroupID) bool {
	i := s.group(id)
	return i >= 0 && s.groups[i].Left
}

// nearbyNicks are the nicks of connected canopy peers (for /invite).
func (s *session) nearbyNicks() []string {
	var nicks []string
	for _, p := range s.status.Nearby {
		nicks = append(nicks, sanitize(p.Nick, false))
	}
	return nicks
}

// groupName is the display name of a buffer.
func (s *session) groupName(id chat.GroupID) string {
	if id == homeID {
		return "home"
	}
	if i := s.group(id); i >= 0 && s.groups[i].Name != "" {
		return s.groups[i].Name
	}
	return string(id)
}

// entry is one timeline entry: a message, a system line from the engine, or
// a line the TUI wrote itself (notices, command results).
type entry struct {
	msg       chat.Message // Kind is KindText or KindSystem
	level     chat.NoticeLevel
	local     bool // written by the TUI; never deduplicated, never in History
	edited    bool
	deleted   bool
	reactions []reaction

	rev   int // bumped on every change, for the render cache
	cache renderCache
}

type reaction struct{ emoji, from string }

// buffer is the timeline of one group (or home) as far as it is loaded.
type buffer struct {
	id           chat.GroupID
	entries      []*entry
	byID         map[chat.MessageID]*entry // messages (not local lines) by id
	nickW        int                       // widest sender nick, for the nick column
	version      int                       // bumped on every change; the timeline caches by it
	loaded       bool                      // the newest history page arrived
	loading      bool
	loadingOlder bool
	noMore       bool // History has nothing older
	members      []chat.Member
	fromBottom   int // scroll position in lines from the newest line
	draft        string
	typing       map[string]time.Time // nick → when they last typed

	// The read marker: the "new messages" line above the first message
	// that was unread when the user came back to the group.
	unreadCount int            // unread messages not yet placed (waits for the history)
	markID      chat.MessageID // the first unread message; "" for no marker
	jumpToMark  bool           // scroll the marker into view at the next layout

	// A message shown from the search view: highlighted and scrolled to.
	focusID     chat.MessageID
	jumpToFocus bool
}

// setMark puts the read marker above the newest n messages of others
// (the ones the unread counter counted), or removes it when n is 0. It is
// placed when the history is loaded.
func (b *buffer) setMark(n int) {
	b.unreadCount, b.markID, b.jumpToMark = n, "", n > 0
	b.placeMark()
	b.version++
}

// placeMark resolves a pending unread count into the marker's message.
func (b *buffer) placeMark() {
	if b.unreadCount == 0 || !b.loaded {
		return
	}
	n := b.unreadCount
	b.unreadCount = 0
	for i := len(b.entries) - 1; i >= 0; i-- {
		e := b.entries[i]
		if e.local || e.msg.Own || e.msg.Kind != chat.KindText || e.msg.ID == "" {
			continue
		}
		b.markID = e.msg.ID
		if n--; n == 0 {
			break
		}
	}
	b.version++
}

func (b *buffer) find(id chat.MessageID) *entry {
	if id == "" {
		return nil
	}
	return b.byID[id]
}

func (b *buffer) changed(e *entry) {
	e.rev++
	b.version++
}

// add appends an entry and indexes it.
func (b *buffer) add(e *entry) {
	b.entries = append(b.entries, e)
	b.index(e)
	b.trim()
	b.version++
}

func (b *buffer) index(e *entry) {
	if e.local {
		return
	}
	if b.byID == nil {
		b.byID = map[chat.MessageID]*entry{}
	}
	if e.msg.ID != "" {
		b.byID[e.msg.ID] = e
	}
	if e.msg.Kind == chat.KindText || e.msg.Kind == chat.KindFile {
		b.nickW = max(b.nickW, width(sanitize(e.msg.Sender, false)))
	}
}

// reindex rebuilds the index after entries were replaced wholesale.
func (b *buffer) reindex() {
	b.byID, b.nickW = nil, 0
	for _, e := range b.entries {
		b.index(e)
	}
}

// apply adds a message to the buffer or applies it to the message it refers
// to. It reports whether a new timeline entry was appended.
//
// Edits, deletions and reactions name their target in ReplyTo (chat/api.go
// has no separate field); one whose target is not loaded is dropped, the
// engine's History returns the result once it is. Receipts and typing
// notifications are not timeline entries (the model handles typing), and
// unknown kinds are ignored, never fatal.
func (b *buffer) apply(m chat.Message) bool {
	switch m.Kind {
	case chat.KindText, chat.KindSystem, chat.KindFile, "":
		if m.Kind == "" {
			m.Kind = chat.KindText
		}
		if e := b.find(m.ID); e != nil {
			e.msg = m
			b.changed(e)
			return false
		}
		b.add(&entry{msg: m})
		return true
	case chat.KindEdit:
		if e := b.find(m.ReplyTo); e != nil {
			e.msg.Body = m.Body
			e.edited = true
			b.changed(e)
		}
	case chat.KindDelete:
		if e := b.find(m.ReplyTo); e != nil {
			e.msg.Body = ""
			e.deleted = true
			b.changed(e)
		}
	case chat.KindReaction:
		if e := b.find(m.ReplyTo); e != nil && m.Body != "" {
			for _, r := range e.reactions {
				if r.emoji == m.Body && r.from == m.Sender {
					return false
				}
			}
			e.reactions = append(e.reactions, reaction{m.Body, m.Sender})
			b.changed(e)
		}
	}
	return false
}

// addLocal appends a line written by the TUI.
func (b *buffer) addLocal(at time.Time, text string, level chat.NoticeLevel) {
	b.add(&entry{
		msg:   chat.Message{Group: b.id, Kind: chat.KindSystem, Body: text, SentAt: at},
		level: level,
		local: true,
	})
}

func (b *buffer) setDelivery(id chat.MessageID, d chat.Delivery) bool {
	if e := b.find(id); e != nil {
		e.msg.Delivery = d
		b.changed(e)
		return true
	}
	return false
}

// merge folds a page of History into the buffer. The newest page (older is
// false) goes under whatever arrived as events before it (deduplicated by
// message id); an older page goes on top.
func (b *buffer) merge(page []chat.Message, older bool) {
	tmp := &buffer{id: b.id}
	for _, m := range page {
		tmp.apply(m)
	}
	if older {
		var fresh []*entry
		for _, e := range tmp.entries {
			if e.msg.ID == "" || b.find(e.msg.ID) == nil {
				fresh = append(fresh, e)
			}
		}
		b.entries = append(fresh, b.entries...)
	} else {
		// Events that raced the load keep their place after the page.
		var rest []*entry
		for _, e := range b.entries {
			if e.local || tmp.find(e.msg.ID) == nil {
				rest = append(rest, e)
			}
		}
		b.entries = append(tmp.entries, rest...)
	}
	b.reindex()
	b.version++
}

// oldestID is the id of the oldest message, the cursor for the next page.
func (b *buffer) oldestID() chat.MessageID {
	for _, e := range b.entries {
		if !e.local && e.msg.ID != "" {
			return e.msg.ID
		}
	}
	return ""
}

func (b *buffer) trim() {
	if over := len(b.entries) - maxEntries; over > 0 {
		b.entries = append(b.entries[:0:0], b.entries[over:]...)
		b.reindex()
		if b.id != homeID {
			b.noMore = false
		}
	}
}

// keyChanged lists the members whose key changed.
func (b *buffer) keyChanged() []string {
	var nicks []string
	for _, m := range b.members {
		if m.KeyChanged {
			nicks = append(nicks, m.Nick)
		}
	}
	return nicks
}
