package tui

import (
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// helpView is the help overlay: every key binding (from the keymap) and
// every slash command (from chat.Commands), in a box drawn over the panes.
// It scrolls when the terminal is too small to show it whole.
type helpView struct {
	s      *session
	w, h   int // the area the box is centred in
	offset int
}

func newHelpView(s *session) *helpView { return &helpView{s: s} }

func (v *helpView) Init() tea.Cmd { return nil }

func (v *helpView) SetSize(w, h int) { v.w, v.h = w, h }

func (v *helpView) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return v, nil
	}
	k := v.s.keys
	page := max(1, v.innerH()-1)
	switch {
	case matches(km, k.Up):
		v.offset--
	case matches(km, k.Down):
		v.offset++
	case matches(km, k.PageUp):
		v.offset -= page
	case matches(km, k.PageDown):
		v.offset += page
	case matches(km, k.Top):
		v.offset = 0
	case matches(km, k.Bottom):
		v.offset = 1 << 30
	}
	v.clamp()
	return v, nil
}

func (v *helpView) scroll(delta int) { v.offset += delta; v.clamp() }

func (v *helpView) clamp() {
	v.offset = max(0, min(v.offset, len(v.content(v.innerW()))-v.innerH()))
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
	iw, ih := v.innerW(), v.innerH()
	content := v.content(iw)
	v.clamp()
	end := min(len(content), v.offset+ih)
	lines := block(content[v.offset:end], iw, ih)
	title := " canopy help "
	scrollable := len(content) > ih
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
