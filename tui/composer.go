package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textarea"
	tea "github.com/charmbracelet/bubbletea"
)

// maxHistory is how many sent lines the composer remembers for Up/Down.
const maxHistory = 100

// composer is the multi-line input at the bottom: a textarea whose Enter is
// taken by the root model (send), with Alt-Enter / Ctrl-J for new lines,
// bracketed paste (pasted newlines stay newlines), Tab completion and a
// history of sent lines.
type composer struct {
	s    *session
	ta   textarea.Model
	w    int
	maxH int

	history []string
	histPos int    // len(history) when not browsing
	draft   string // what was typed before browsing the history

	comp *completion
}

func newComposer(s *session) *composer {
	ta := textarea.New()
	ta.KeyMap = textareaKeyMap()
	ta.ShowLineNumbers = false
	ta.CharLimit = 0
	ta.MaxHeight = 500
	ta.EndOfBufferCharacter = ' '
	ta.Cursor.SetMode(cursor.CursorStatic)
	ta.SetPromptFunc(2, func(line int) string {
		if line == 0 {
			return "› "
		}
		return "  "
	})
	fs, bs := textarea.DefaultStyles()
	for _, st := range []*textarea.Style{&fs, &bs} {
		st.Base = s.st.r.NewStyle()
		st.CursorLine = s.st.r.NewStyle()
		st.CursorLineNumber = s.st.r.NewStyle()
		st.EndOfBuffer = s.st.r.NewStyle()
		st.LineNumber = s.st.r.NewStyle()
		st.Text = s.st.r.NewStyle()
		st.Placeholder = s.st.placeholder
		st.Prompt = s.st.prompt
	}
	bs.Prompt = s.st.dim
	ta.FocusedStyle, ta.BlurredStyle = fs, bs
	ta.Cursor.Style = s.st.r.NewStyle().Reverse(true)
	ta.Cursor.TextStyle = s.st.r.NewStyle()
	c := &composer{s: s, ta: ta, maxH: 1}
	c.ta.Focus()
	c.setHeight()
	return c
}

func (c *composer) Init() tea.Cmd { return nil }

// SetSize sets the width and the largest height the composer may grow to.
func (c *composer) SetSize(w, maxH int) {
	c.w, c.maxH = w, max(1, maxH)
	c.ta.SetWidth(max(3, w))
	c.setHeight()
}

// visualLines estimates the rows the text takes at the composer's width.
func (c *composer) visualLines() int { return c.visualLinesAt(c.w) }

// visualLinesAt estimates the rows the text takes at width w.
func (c *composer) visualLinesAt(w int) int {
	tw := max(1, w-2) // text width without the prompt
	n := 0
	for _, l := range strings.Split(c.ta.Value(), "\n") {
		n += max(1, (width(l)+tw)/tw) // a full line leaves room for the cursor
	}
	return n
}

// height is the number of rows the composer wants: its visual lines, within
// 1 … maxH.
func (c *composer) height() int { return max(1, min(c.visualLines(), c.maxH)) }

func (c *composer) setHeight() {
	h := c.height()
	c.ta.SetHeight(h)
	if !c.ta.Focused() || c.visualLines() > h {
		return
	}
	// While the composer was lower, the textarea scrolled its viewport to
	// keep the cursor in sight; now that all the text fits, the lines must
	// show from the top again. The textarea has no API for
	// its scroll offset, but its viewport scrolls on the mouse wheel, and
	// its Update puts the cursor back in sight afterwards.
	for range (2*max(h, c.maxH))/3 + 1 {
		c.ta, _ = c.ta.Update(tea.MouseMsg{Button: tea.MouseButtonWheelUp, Action: tea.MouseActionPress})
	}
}

func (c *composer) Value() string { return c.ta.Value() }

func (c *composer) SetValue(s string) {
	c.ta.SetValue(s)
	c.comp = nil
	c.setHeight()
}

func (c *composer) Focus() { c.ta.Focus() }
func (c *composer) Blur()  { c.ta.Blur() }

func (c *composer) setPlaceholder(group string) {
	if group == "" {
		c.ta.Placeholder = "type /help, or /create NAME to start a group"
		return
	}
	c.ta.Placeholder = "message " + group
}

// remember adds a sent line to the history.
func (c *composer) remember(line string) {
	if n := len(c.history); n == 0 || c.history[n-1] != line {
		c.history = append(c.history, line)
		if len(c.history) > maxHistory {
			c.history = c.history[1:]
		}
	}
	c.histPos = len(c.history)
	c.draft = ""
}

// Update handles a key (or paste) while the composer has the focus. The root
// model has already taken Enter, Tab and the global keys.
func (c *composer) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return c, nil
	}
	c.comp = nil
	k := c.s.keys
	single := !strings.Contains(c.ta.Value(), "\n")
	switch {
	case matches(km, k.HistoryPrev) && single:
		if c.histPos > 0 {
			if c.histPos == len(c.history) {
				c.draft = c.ta.Value()
			}
			c.histPos--
			c.ta.SetValue(c.history[c.histPos])
			c.setHeight()
		}
		return c, nil
	case matches(km, k.HistoryNext) && single && c.histPos < len(c.history):
		c.histPos++
		if c.histPos == len(c.history) {
			c.ta.SetValue(c.draft)
		} else {
			c.ta.SetValue(c.history[c.histPos])
		}
		c.setHeight()
		return c, nil
	}
	if km.Paste && c.ta.Value() == "" && c.s.selected != homeID {
		if p := droppedFile(string(km.Runes)); p != "" {
			// a file dropped on the terminal arrives as its pasted path:
			// offer to send it (Enter sends, editing the line does not)
			c.ta.SetValue("/send " + p)
			c.setHeight()
			return c, nil
		}
	}
	if isText(km) {
		km = asText(km)
		km.Runes = normalizeNewlines(km.Runes)
	}
	var cmd tea.Cmd
	c.ta, cmd = c.ta.Update(km)
	c.setHeight()
	return c, cmd
}

// cursorMoves reports whether a key would move the text cursor.
func (c *composer) cursorMoves(km tea.KeyMsg) bool {
	ta, _ := c.ta.Update(km) // a copy: only the cursor position of the copy changes
	return ta.Line() != c.ta.Line() || ta.LineInfo() != c.ta.LineInfo()
}

// complete runs one completion step (dir is +1 for Tab, -1 for Shift-Tab).
// It reports false when the text offers nothing to complete.
func (c *composer) complete(dir int, s *session) bool {
	value := c.ta.Value()
	if c.comp == nil || c.comp.after != value {
		head, cands, ok := completeCandidates(value, completionSource{
			commands: s.commands,
			members:  groupNicks(s),
			nearby:   s.nearbyNicks(),
			self:     s.self.Nick,
			lastOwn:  lastOwnText(s),
		})
		if !ok {
			return false
		}
		c.comp = &completion{head: head, cands: cands, idx: -1}
		if dir < 0 {
			c.comp.idx = 0
		}
	}
	if len(c.comp.cands) == 0 {
		c.comp.after = value
		return true
	}
	n := len(c.comp.cands)
	c.comp.idx = ((c.comp.idx+dir)%n + n) % n
	v := c.comp.head + c.comp.cands[c.comp.idx]
	c.ta.SetValue(v)
	c.setHeight()
	c.comp.after = v
	if n == 1 {
		// unique: accepted at once, the next Tab starts afresh
		c.comp = nil
	}
	return true
}

// hint is the text for the rule above the composer.
func (c *composer) hint() []hintPart {
	if c.comp != nil {
		if len(c.comp.cands) == 0 {
			return []hintPart{{text: "no completions"}}
		}
		parts := make([]hintPart, len(c.comp.cands))
		for i, cand := range c.comp.cands {
			parts[i] = hintPart{text: strings.TrimSpace(cand), active: i == c.comp.idx}
		}
		return parts
	}
	if h := commandHint(c.ta.Value(), c.s.commands); h != "" {
		return []hintPart{{text: h}}
	}
	return nil
}

type hintPart struct {
	text   string
	active bool
}

func (c *composer) View() string {
	lines := strings.Split(c.ta.View(), "\n")
	return joinLines(block(lines, c.w, c.height()))
}

// normalizeNewlines turns the CR and CRLF line ends of pasted text into LF,
// so that a paste from any terminal yields the same lines.
func normalizeNewlines(rs []rune) []rune {
	out := rs[:0:0]
	for i := 0; i < len(rs); i++ {
		if rs[i] == '\r' {
			if i+1 < len(rs) && rs[i+1] == '\n' {
				continue
			}
			out = append(out, '\n')
			continue
		}
		out = append(out, rs[i])
	}
	return out
}

// groupNicks is the nicks available for completion in the selected group.
func groupNicks(s *session) []string {
	if s.selected == homeID {
		return nil
	}
	var nicks []string
	for _, m := range s.buffer(s.selected).members {
		nicks = append(nicks, sanitize(m.Nick, false))
	}
	return nicks
}
