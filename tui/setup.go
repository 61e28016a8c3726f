package tui

import (
	"context"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// ErrSetupCancelled is returned by Setup when the user leaves with Esc or
// Ctrl-C.
var ErrSetupCancelled = errors.New("tui: setup cancelled")

// maxNickLen is the longest nickname Setup accepts, in characters.
const maxNickLen = 32

// Setup is the first-run screen: it asks for a nickname (defaultNick is
// offered) and an optional passphrase that protects the profile's keys on
// disk, typed twice, masked. It draws inline (no alternate screen) on out,
// reading keys from in, and returns the answers, or ErrSetupCancelled, or
// ctx.Err() when ctx ends first.
func Setup(ctx context.Context, defaultNick string, in io.Reader, out io.Writer) (nick, passphrase string, err error) {
	r := lipgloss.NewRenderer(out)
	m := newSetupModel(newStyles(r), defaultNick)
	opts := []tea.ProgramOption{tea.WithOutput(out)}
	if in != nil {
		opts = append(opts, tea.WithInput(in))
	}
	p := tea.NewProgram(m, opts...)
	stop := context.AfterFunc(ctx, p.Quit)
	defer stop()
	final, err := p.Run()
	if ctx.Err() != nil {
		return "", "", ctx.Err()
	}
	if err != nil {
		return "", "", err
	}
	sm := final.(*setupModel)
	if !sm.done {
		return "", "", ErrSetupCancelled
	}
	return sm.nick(), sm.inputs[1].Value(), nil
}

// validateNick returns why a nickname is not acceptable, or "".
func validateNick(nick string) string {
	switch {
	case nick == "":
		return "choose a nickname"
	case utf8.RuneCountInString(nick) > maxNickLen:
		return "at most 32 characters, please"
	case strings.HasPrefix(nick, "/") || strings.HasPrefix(nick, "@"):
		return "a nickname cannot start with / or @"
	}
	for _, r := range nick {
		if unicode.IsSpace(r) || unsafeRune(r) || !unicode.IsPrint(r) {
			return "no spaces or control characters, please"
		}
	}
	return ""
}

type setupModel struct {
	st     *styles
	inputs [3]textinput.Model // nick, passphrase, confirmation
	focus  int
	err    string
	done   bool
	quit   bool
	width  int
}

func newSetupModel(st *styles, defaultNick string) *setupModel {
	m := &setupModel{st: st}
	for i := range m.inputs {
		ti := textinput.New()
		ti.PromptStyle = st.dim
		ti.Cursor.SetMode(cursor.CursorStatic)
		ti.Cursor.Style = st.r.NewStyle().Reverse(true)
		ti.CharLimit = 256
		m.inputs[i] = ti
	}
	m.inputs[0].SetValue(sanitize(defaultNick, false))
	m.inputs[0].CharLimit = maxNickLen
	m.inputs[0].Placeholder = "how others see you"
	m.inputs[1].EchoMode = textinput.EchoPassword
	m.inputs[1].EchoCharacter = '*'
	m.inputs[1].Placeholder = "optional: protects your keys on this disk"
	m.inputs[2].EchoMode = textinput.EchoPassword
	m.inputs[2].EchoCharacter = '*'
	m.inputs[2].Placeholder = "type the passphrase again"
	m.setFocus(0)
	return m
}

func (m *setupModel) nick() string { return strings.TrimSpace(m.inputs[0].Value()) }

var setupLabels = [3]string{"nickname    ", "passphrase  ", "again       "}

func (m *setupModel) setFocus(i int) {
	m.focus = i
	for j := range m.inputs {
		if j == i {
			m.inputs[j].Focus()
			m.inputs[j].Prompt = markSelected + " " + setupLabels[j]
			m.inputs[j].PromptStyle = m.st.prompt
		} else {
			m.inputs[j].Blur()
			m.inputs[j].Prompt = "  " + setupLabels[j]
			m.inputs[j].PromptStyle = m.st.dim
		}
	}
}

func (m *setupModel) Init() tea.Cmd { return nil }

func (m *setupModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width = msg.Width
		return m, nil
	case tea.KeyMsg:
		if isText(msg) {
			// typed or pasted text goes into the field as it is
			var cmd tea.Cmd
			m.inputs[m.focus], cmd = m.inputs[m.focus].Update(asText(msg))
			m.err = ""
			return m, cmd
		}
		switch msg.String() {
		case "ctrl+c", "esc":
			m.quit = true
			return m, tea.Quit
		case "shift+tab", "up":
			if m.focus > 0 {
				m.setFocus(m.focus - 1)
			}
			return m, nil
		case "tab", "down":
			return m, m.next(false)
		case "enter":
			return m, m.next(true)
		}
	}
	var cmd tea.Cmd
	m.inputs[m.focus], cmd = m.inputs[m.focus].Update(msg)
	m.err = ""
	return m, cmd
}

// next validates the focused field and moves on; on the last field (or on
// an empty passphrase) Enter finishes.
func (m *setupModel) next(finish bool) tea.Cmd {
	switch m.focus {
	case 0:
		if e := validateNick(m.nick()); e != "" {
			m.err = e
			return nil
		}
		m.setFocus(1)
	case 1:
		if m.inputs[1].Value() == "" {
			if finish {
				m.done = true
				return tea.Quit
			}
			return nil
		}
		m.setFocus(2)
	case 2:
		if !finish {
			return nil
		}
		if m.inputs[2].Value() != m.inputs[1].Value() {
			m.err = "the passphrases differ; type it again"
			m.inputs[2].SetValue("")
			return nil
		}
		m.done = true
		return tea.Quit
	}
	return nil
}

func (m *setupModel) View() string {
	st := m.st
	if m.done || m.quit {
		return ""
	}
	var b strings.Builder
	b.WriteString(st.helpTitle.Render("canopy · first run") + "\n\n")
	b.WriteString("Choose the nickname others will see, and optionally a passphrase\n")
	b.WriteString("that encrypts your keys on this disk (empty: no passphrase).\n\n")
	for i := range m.inputs {
		if i == 2 && m.inputs[1].Value() == "" {
			continue
		}
		b.WriteString(m.inputs[i].View() + "\n")
	}
	b.WriteString("\n")
	if m.err != "" {
		b.WriteString(st.notice[2].Render("  "+m.err) + "\n")
	}
	b.WriteString(st.dim.Render("  enter next · shift+tab back · esc cancel") + "\n")
	out := b.String()
	if m.width > 0 {
		lines := strings.Split(out, "\n")
		for i, l := range lines {
			lines[i] = truncate(l, m.width)
		}
		out = strings.Join(lines, "\n")
	}
	return out
}
