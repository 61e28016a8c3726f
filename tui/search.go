package tui

import (
	"context"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// searcher is the engine's structured search (chat.Engine has it). With
// it, /search WORDS opens the results in a view of their own; without it,
// /search runs in the engine like any command and prints its results.
type searcher interface {
	Search(ctx context.Context, group chat.GroupID, text string, limit int) ([]chat.SearchHit, error)
}

// searchLimit is how many results the search view asks for.
const searchLimit = 200

// maxSeekPages bounds how many pages of history a jump to a search result
// loads to find the message.
const maxSeekPages = 50

type (
	searchDoneMsg struct {
		req   execReq
		query string
		hits  []chat.SearchHit
		err   error
	}
	// seekLoadedMsg carries the older history loaded to reach a message.
	seekLoadedMsg struct {
		group  chat.GroupID
		target chat.MessageID
		page   []chat.Message // oldest first
		noMore bool
	}
)

// searchView lists search results over the panes: the newest first, one
// line each; Enter shows the message in its group's timeline.
type searchView struct {
	s      *session
	w, h   int
	query  string
	scope  string // "all groups" or the group's name
	hits   []chat.SearchHit
	cursor int
	listWindow
}

func (v *searchView) SetSize(w, h int) { v.w, v.h = w, h }

func (v *searchView) rows() int { return max(1, v.h-2) }

func (v *searchView) move(delta int) {
	v.cursor = max(0, min(v.cursor+delta, len(v.hits)-1))
	v.reveal(v.cursor, v.cursor, v.rows())
}

// update handles a key; it reports the hit to show (or nil) and whether
// the view closes.
func (v *searchView) update(km tea.KeyMsg) (jump *chat.SearchHit, closed bool) {
	k := v.s.keys
	switch {
	case matches(km, k.Back):
		return nil, true
	case matches(km, k.Up):
		v.move(-1)
	case matches(km, k.Down):
		v.move(1)
	case matches(km, k.PageUp):
		v.move(-v.rows())
	case matches(km, k.PageDown):
		v.move(v.rows())
	case matches(km, k.Top, k.Oldest):
		v.move(-len(v.hits))
	case matches(km, k.Bottom, k.Newest):
		v.move(len(v.hits))
	case matches(km, k.Select):
		if len(v.hits) > 0 {
			h := v.hits[v.cursor]
			return &h, true
		}
		return nil, true
	}
	return nil, false
}

// View renders the results in w × h: a title, the hits, a key hint.
func (v *searchView) View() string {
	st := v.s.st
	title := "search " + strings.TrimSpace(sanitize(v.query, false)) + " · " + v.scope + " · " + plural(len(v.hits), "result", "results")
	out := []string{paneTitle(st, title, true, v.w)}
	if len(v.hits) == 0 {
		out = append(out, st.dim.Render(fitCenter("no messages match", v.w)))
	}
	end := min(len(v.hits), v.offset+v.rows())
	for i := v.offset; i < end; i++ {
		out = append(out, v.row(i))
	}
	for len(out) < v.h-1 {
		out = append(out, "")
	}
	out = append(out, st.dim.Render(fit("  ↑↓ choose · enter show in the timeline · esc close", v.w)))
	return joinLines(block(out, v.w, v.h))
}

func (v *searchView) row(i int) string {
	st := v.s.st
	h := v.hits[i]
	m := h.Message
	mark := "  "
	if i == v.cursor {
		mark = markSelected + " "
	}
	when := m.SentAt.In(v.s.loc).Format("02 Jan 15:04")
	sender := sanitize(m.Sender, false)
	if m.Kind == chat.KindSystem {
		sender = "*"
	}
	body := strings.Join(strings.Fields(sanitize(m.Body, true)), " ")
	text := mark + when + "  #" + truncate(sanitize(h.GroupName, false), 16) + "  " + sender + ": " + body
	if i == v.cursor {
		return st.hintActive.Render(fit(text, v.w))
	}
	return fit(text, v.w)
}

// --- the root model's side ---------------------------------------------

// searchCmd runs a search for the search view.
func (m *model) searchCmd(req execReq, query string) tea.Cmd {
	s, ctx := m.client.(searcher), m.ctx
	return func() tea.Msg {
		hits, err := s.Search(ctx, req.group, query, searchLimit)
		return searchDoneMsg{req: req, query: query, hits: hits, err: err}
	}
}

func (m *model) searchDone(msg searchDoneMsg) tea.Cmd {
	if msg.err != nil {
		return m.execDone(execDoneMsg{req: msg.req, err: msg.err})
	}
	scope := "all groups"
	if msg.req.group != homeID {
		scope = "#" + sanitize(m.s.groupName(msg.req.group), false)
	}
	m.search = &searchView{s: m.s, query: msg.query, scope: scope, hits: msg.hits}
	return nil
}

// showMessage opens a message's group with the message in view, loading
// older history until it is there.
func (m *model) showMessage(h chat.SearchHit) tea.Cmd {
	id, gid := h.Message.ID, h.Message.Group
	if m.s.group(gid) < 0 {
		return m.flash("that group is gone", chat.NoticeWarning)
	}
	m.userSelected = true
	cmd := m.selectGroup(gid)
	m.setFocus(focusComposer)
	b := m.s.buffer(gid)
	b.focusID, b.jumpToFocus = id, true
	b.version++
	return tea.Batch(cmd, m.seek(gid))
}

// seek loads older history of a loaded group until the message the
// timeline should show is there.
func (m *model) seek(gid chat.GroupID) tea.Cmd {
	b := m.s.buffer(gid)
	if b.focusID == "" || !b.loaded || b.find(b.focusID) != nil || b.noMore || b.loadingOlder {
		return nil
	}
	b.loadingOlder = true
	c, limit, target, before := m.client, m.opts.historyPage, b.focusID, b.oldestID()
	return func() tea.Msg {
		var all []chat.Message
		noMore := false
		for range maxSeekPages {
			page := c.History(gid, before, limit)
			all = append(page, all...)
			if len(page) < limit {
				noMore = true
				break
			}
			found := false
			for _, p := range page {
				if p.ID == target {
					found = true
				}
			}
			if found {
				break
			}
			before = page[0].ID
		}
		return seekLoadedMsg{group: gid, target: target, page: all, noMore: noMore}
	}
}
