package tui

import (
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textarea"
	tea "github.com/charmbracelet/bubbletea"
)

// isText reports whether a key message carries typed or pasted text rather
// than one key press. Bubble Tea v1 hands runes that arrive in one read (SSH
// lag, a busy machine, a paste without bracketed paste) to the program as a
// single KeyRunes message whose String() is the text itself, and bindings
// compare String(): typed quickly, the word "enter" would be the Enter key,
// "up" the Up arrow and "ctrl+c" would quit. A real key press is never more
// than one rune, so several runes, like a bracketed paste, are always text.
func isText(msg tea.KeyMsg) bool {
	return msg.Paste || (msg.Type == tea.KeyRunes && len(msg.Runes) > 1)
}

// matches is key.Matches for real key presses only: text never matches a
// binding. Every binding in the TUI is checked through it.
func matches(msg tea.KeyMsg, bindings ...key.Binding) bool {
	return !isText(msg) && key.Matches(msg, bindings...)
}

// asText turns a text message into a bracketed paste, whose String() is
// "[text]": the bubbles text inputs then insert it as it is instead of
// matching it against their own editing bindings.
func asText(msg tea.KeyMsg) tea.KeyMsg {
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: msg.Runes, Paste: true}
}

// keyMap holds every key binding of the TUI. The help overlay and the package
// documentation are generated from / checked against it (see doc_test).
type keyMap struct {
	// everywhere
	Quit        key.Binding
	Help        key.Binding
	Back        key.Binding
	FocusNext   key.Binding
	FocusPrev   key.Binding
	NextGroup   key.Binding
	PrevGroup   key.Binding
	PageUp      key.Binding
	PageDown    key.Binding
	Oldest      key.Binding
	Newest      key.Binding
	FirstUnread key.Binding
	Mouse       key.Binding
	Wheel       key.Binding // documentation only: mouse wheel scrolling

	// composer
	Send        key.Binding
	Newline     key.Binding
	Complete    key.Binding
	HistoryPrev key.Binding
	HistoryNext key.Binding
	LineStart   key.Binding
	LineEnd     key.Binding

	// group list, timeline, member panel
	Up     key.Binding
	Down   key.Binding
	Top    key.Binding
	Bottom key.Binding
	Select key.Binding
	Verify key.Binding
}

func defaultKeyMap() keyMap {
	b := func(keys []string, helpKey, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(helpKey, desc))
	}
	return keyMap{
		Quit:        b([]string{"ctrl+c"}, "ctrl+c", "quit (or /quit)"),
		Help:        b([]string{"?"}, "?", "toggle this help (composer empty or not focused)"),
		Back:        b([]string{"esc"}, "esc", "close help, cancel completion, back to composer"),
		FocusNext:   b([]string{"tab"}, "tab", "focus next pane: composer, groups, timeline, members"),
		FocusPrev:   b([]string{"shift+tab"}, "shift+tab", "focus previous pane"),
		NextGroup:   b([]string{"ctrl+n", "alt+down"}, "ctrl+n", "next group"),
		PrevGroup:   b([]string{"ctrl+p", "alt+up"}, "ctrl+p", "previous group"),
		PageUp:      b([]string{"pgup"}, "pgup", "scroll the timeline up (loads older messages)"),
		PageDown:    b([]string{"pgdown"}, "pgdn", "scroll the timeline down"),
		Oldest:      b([]string{"ctrl+home"}, "ctrl+home", "the oldest message of the timeline"),
		Newest:      b([]string{"ctrl+end"}, "ctrl+end", "the newest message of the timeline"),
		Mouse:       b([]string{"alt+m"}, "alt+m", "mouse capture on/off (off: the terminal selects text)"),
		FirstUnread: b([]string{"alt+n"}, "alt+n", "back to the first unread message (the new messages line)"),
		Wheel:       b(nil, "mouse wheel", "scroll the pane under the mouse; click selects a group"),

		Send:        b([]string{"enter"}, "enter", "send the message or run the /command"),
		Newline:     b([]string{"alt+enter", "ctrl+j"}, "alt+enter, ctrl+j", "new line in the message"),
		Complete:    b([]string{"tab"}, "tab", "complete /command, nick after /kick /verify, @nick"),
		HistoryPrev: b([]string{"up"}, "up", "previous sent line (single-line composer)"),
		HistoryNext: b([]string{"down"}, "down", "next sent line"),
		LineStart:   b([]string{"home"}, "home", "start of the line; there already: the oldest message"),
		LineEnd:     b([]string{"end"}, "end", "end of the line; there already: the newest message"),

		Up:     b([]string{"up", "k"}, "up/k", "move up / scroll up"),
		Down:   b([]string{"down", "j"}, "down/j", "move down / scroll down"),
		Top:    b([]string{"home", "g"}, "home/g", "first / oldest"),
		Bottom: b([]string{"end", "G"}, "end/G", "last / newest"),
		Select: b([]string{"enter"}, "enter", "open group; on a member: write @nick"),
		Verify: b([]string{"v"}, "v", "on a member: /verify NICK"),
	}
}

// keyMap is a help.KeyMap, as bubbles components expect: ShortHelp is the
// hint under the empty composer, FullHelp the help overlay's sections.
var _ help.KeyMap = keyMap{}

// ShortHelp returns the keys a newcomer needs first, with the short
// descriptions of the composer hint.
func (k keyMap) ShortHelp() []key.Binding {
	short := func(b key.Binding, helpKey, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(b.Keys()...), key.WithHelp(helpKey, desc))
	}
	return []key.Binding{
		short(k.Send, "enter", "send"),
		short(k.Newline, "alt+enter", "newline"),
		short(k.FocusNext, "tab", "complete/focus"),
		short(k.Help, "?", "help"),
	}
}

// FullHelp returns the bindings of the help overlay, a column per section.
func (k keyMap) FullHelp() [][]key.Binding {
	var cols [][]key.Binding
	for _, sec := range k.sections() {
		var col []key.Binding
		for _, r := range sec.rows {
			col = append(col, r.bindings...)
		}
		cols = append(cols, col)
	}
	return cols
}

// composerHint is ShortHelp as one line of plain text (the caller styles
// it), rendered by a bubbles help.Model. Below 80 columns it leaves out
// tab, which the composer's own completion hint shows when it applies.
func (k keyMap) composerHint(screenW int) string {
	bs := k.ShortHelp()
	if screenW < 80 {
		bs = slices.DeleteFunc(bs, func(b key.Binding) bool { return b.Help().Key == "tab" })
	}
	return help.Model{ShortSeparator: " · "}.ShortHelpView(bs)
}

// helpSection is one titled block of the help overlay.
type helpSection struct {
	title string
	rows  []helpRow
}

// helpRow is one line of the help: one or more bindings and what they do.
type helpRow struct {
	bindings []key.Binding
	desc     string
}

// keys is the row's key column: the bindings' keys joined by ", ".
func (r helpRow) keys() string {
	parts := make([]string, len(r.bindings))
	for i, b := range r.bindings {
		parts[i] = b.Help().Key
	}
	return strings.Join(parts, ", ")
}

func (k keyMap) sections() []helpSection {
	row := func(desc string, b ...key.Binding) helpRow { return helpRow{b, desc} }
	return []helpSection{
		{"Everywhere", []helpRow{
			row("quit (or /quit)", k.Quit),
			row("this help (when the composer is empty or not focused)", k.Help),
			row("close help, cancel completion, back to the composer", k.Back),
			row("focus the next / previous pane", k.FocusNext, k.FocusPrev),
			row("next / previous group (also alt+down / alt+up)", k.NextGroup, k.PrevGroup),
			row("scroll the timeline; older messages load at the top", k.PageUp, k.PageDown),
			row("the oldest / newest message of the timeline", k.Oldest, k.Newest),
			row("back to the \"new messages\" line", k.FirstUnread),
			row("scroll the pane under the pointer; click a group to open it", k.Wheel),
			row("mouse on / off (off: select and copy text with the mouse)", k.Mouse),
		}},
		{"Composer", []helpRow{
			row("send the message or run the /command", k.Send),
			row("new line", k.Newline),
			row("complete /command, the nick after /kick and /verify, @nick", k.Complete),
			row("previous / next sent line", k.HistoryPrev, k.HistoryNext),
			row("start / end of the line; again: the oldest / newest message", k.LineStart, k.LineEnd),
		}},
		{"Groups, timeline, members", []helpRow{
			row("move / scroll", k.Up, k.Down),
			row("first / last", k.Top, k.Bottom),
			row("open the group; on a member: write @nick", k.Select),
			row("on a member: /verify NICK", k.Verify),
		}},
	}
}

// textareaKeyMap adapts the textarea's bindings to the composer: Enter is
// taken by the root model (send), Alt-Enter and Ctrl-J insert a newline,
// Ctrl-N/Ctrl-P belong to group switching, and Ctrl-V clipboard paste is off
// (bracketed paste is the way text arrives; it avoids running clipboard
// helpers behind the user's back).
func textareaKeyMap() textarea.KeyMap {
	km := textarea.DefaultKeyMap
	km.InsertNewline = key.NewBinding(key.WithKeys("alt+enter", "ctrl+j"))
	km.LineNext = key.NewBinding(key.WithKeys("down"))
	km.LinePrevious = key.NewBinding(key.WithKeys("up"))
	km.Paste = key.NewBinding(key.WithDisabled())
	return km
}
