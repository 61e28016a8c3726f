package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// helpView is the help overlay: every key binding (from the keymap) and
// every slash command (from chat.Commands), in a box drawn over the panes.
// The text is in a bubbles viewport, which scrolls it when the terminal is
// too small to show it whole; the keys are the TUI's own (keyMap), so the
// viewport's keymap and mouse handling are not used.
type helpView struct {
	s    *session
	w, h int // the area the box is centred in
	vp   viewport.Model
}

func newHelpView(s *session) *helpView { return &helpView{s: s, vp: viewport.New(0, 0)} }

func (v *helpView) Init() tea.Cmd { return nil }

func (v *helpView) SetSize(w, h int) { v.w, v.h = w, h; v.sync() }

func (v *helpView) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return v, nil
	}
	k := v.s.keys
	v.sync()
	// A page keeps one line of the previous page in view.
	page := max(1, v.vp.Height-1)
	switch {
	case matches(km, k.Up):
		v.vp.ScrollUp(1)
	case matches(km, k.Down):
		v.vp.ScrollDown(1)
	case matches(km, k.PageUp):
		v.vp.ScrollUp(page)
	case matches(km, k.PageDown):
		v.vp.ScrollDown(page)
	case matches(km, k.Top):
		v.vp.GotoTop()
	case matches(km, k.Bottom):
		v.vp.GotoBottom()
	}
	return v, nil
}

// scroll scrolls by delta lines (the mouse wheel; negative is up).
func (v *helpView) scroll(delta int) {
	v.sync()
	if delta < 0 {
		v.vp.ScrollUp(-delta)
	} else {
		v.vp.ScrollDown(delta)
	}
}

// top shows the beginning of the help (it opens there).
func (v *helpView) top() { v.vp.GotoTop() }

// offset is the first line shown.
func (v *helpView) offset() int { return v.vp.YOffset }

// sync lays the content out for the current size and gives it to the
// viewport, keeping the scroll position where it still fits.
func (v *helpView) sync() {
	v.vp.Width, v.vp.Height = v.innerW(), v.innerH()
	v.vp.SetContent(joinLines(v.content(v.innerW())))
	v.vp.SetYOffset(v.vp.YOffset)
}

// box geometry: border (1) and padding (1) on each side; as wide as the
// content wants, if the screen allows
func (v *helpView) boxW() int { return max(0, min(v.w, v.naturalW()+4)) }

// naturalW is the width of the content when nothing needs wrapping.
func (v *helpView) naturalW() int {
	keyW, w := 0, 0
	for _, sec := range v.s.keys.sections() {
		for _, r := range sec.rows {
			keyW = max(keyW, width(r.keys()))
		}
	}
	for _, sec := range v.s.keys.sections() {
		for _, r := range sec.rows {
			w = max(w, keyW+2+width(r.desc))
		}
	}
	cmdW := 0
	for _, c := range v.s.commands {
		cmdW = max(cmdW, width(commandSynopsis(c)))
	}
	for _, c := range v.s.commands {
		w = max(w, cmdW+2+width(c.Summary))
	}
	return w
}
func (v *helpView) innerW() int { return max(1, v.boxW()-4) }
func (v *helpView) innerH() int {
	return max(1, min(v.h-2, len(v.content(v.innerW()))))
}

// content is the help text laid out for an inner width.
func (v *helpView) content(w int) []string {
	st := v.s.st
	var out []string
	keyW := 0
	for _, sec := range v.s.keys.sections() {
		for _, r := range sec.rows {
			keyW = max(keyW, width(r.keys()))
		}
	}
	cmdW := 0
	for _, c := range v.s.commands {
		cmdW = max(cmdW, width(commandSynopsis(c)))
	}
	entry := func(k, desc string, kw int) {
		if w < kw+12 { // too narrow for two columns: description below
			out = append(out, st.helpKey.Render(truncate(k, w)))
			for _, l := range wrap(desc, w-2) {
				out = append(out, "  "+l)
			}
			return
		}
		for i, l := range wrap(desc, w-kw-2) {
			head := strings.Repeat(" ", kw+2)
			if i == 0 {
				head = st.helpKey.Render(fit(k, kw)) + "  "
			}
			out = append(out, head+l)
		}
	}
	for i, sec := range v.s.keys.sections() {
		if i > 0 {
			out = append(out, "")
		}
		out = append(out, st.helpSection.Render(sec.title))
		for _, r := range sec.rows {
			entry(r.keys(), r.desc, keyW)
		}
	}
	out = append(out, "", st.helpSection.Render("Commands"))
	for _, c := range v.s.commands {
		entry(commandSynopsis(c), c.Summary, cmdW)
	}
	return out
}

func commandSynopsis(c chat.Command) string {
	return strings.TrimSpace("/" + c.Name + " " + c.Args)
}

// View renders the box: exactly boxW × (innerH+2).
func (v *helpView) View() string {
	st := v.s.st
	v.sync()
	iw, ih := v.vp.Width, v.vp.Height
	lines := block(strings.Split(v.vp.View(), "\n"), iw, ih)
	title := " canopy help "
	scrollable := v.vp.TotalLineCount() > ih
	box := st.helpBox.Width(iw + 2).Render(joinLines(lines))
	rows := strings.Split(box, "\n")
	// put the title (and scroll hint) into the top and bottom border
	if len(rows) > 0 {
		rows[0] = overlay([]string{rows[0]}, []string{st.helpTitle.Render(truncate(title, iw))}, 2, 0)[0]
	}
	if len(rows) > 1 {
		hint := " ? or esc closes "
		if scrollable {
			hint = " ↑↓ pgup pgdn scroll · esc closes "
		}
		if width(hint) <= iw {
			rows[len(rows)-1] = overlay([]string{rows[len(rows)-1]}, []string{st.dim.Render(hint)}, 2, 0)[0]
		}
	}
	return joinLines(block(rows, v.boxW(), ih+2))
}
