package tui

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/canopy-chat/canopy/chat"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// asciiStyles renders without any escape sequences, so golden files hold
// just the characters on the screen.
func asciiStyles() *styles {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return newStyles(r)
}

// testCommands pins the command list the goldens and completion tests see,
// so that commands added to chat.Commands do not change them.
var testCommands = []chat.Command{
	{Name: "create", Args: "NAME [CONTACT…]", Summary: "create a group and add contacts in one commit"},
	{Name: "invite", Args: "CONTACT|CARD", Summary: "invite a contact (petname, nearby peer or pasted card)"},
	{Name: "accept", Args: "[INVITATION]", Summary: "accept an invitation"},
	{Name: "decline", Args: "[INVITATION]", Summary: "decline an invitation"},
	{Name: "kick", Args: "NICK", Summary: "remove a member from the group"},
	{Name: "leave", Summary: "leave the group (a member commits your removal)"},
	{Name: "members", Summary: "list members with verification marks"},
	{Name: "verify", Args: "NICK [confirm]", Summary: "show the safety number; confirm after comparing"},
	{Name: "nick", Args: "NAME", Summary: "set your nickname"},
	{Name: "update", Summary: "rotate your own leaf key (post-compromise security)"},
	{Name: "search", Args: "WORDS…", Summary: "search message history"},
	{Name: "help", Summary: "list commands"},
	{Name: "quit", Summary: "quit canopy"},
}

// driver runs the root model the way tea.Program does, but synchronously
// and deterministically: every message goes through Update, every command
// it returns is run at once and its message fed back. The engine's event
// stream is not waited on (events are sent as messages), ticks are dropped
// and the bell is counted.
type driver struct {
	t     testing.TB
	m     *model
	fake  *fakeClient
	quit  bool
	bells int
	ticks int
}

func newDriver(t testing.TB, w, h int) *driver {
	t.Helper()
	return newDriverWith(t, newFake(), w, h)
}

func newDriverWith(t testing.TB, f *fakeClient, w, h int) *driver {
	t.Helper()
	o := defaultOptions()
	o.loc = time.UTC
	o.historyPage = 50
	m := newModel(context.Background(), f, asciiStyles(), o)
	m.s.now = func() time.Time { return t0 }
	m.s.commands = testCommands
	d := &driver{t: t, m: m, fake: f}
	m.fx = effects{
		wait: nil,
		tick: func(time.Duration, func(time.Time) tea.Msg) tea.Cmd { d.ticks++; return nil },
		bell: func() { d.bells++ },
	}
	d.send(tea.WindowSizeMsg{Width: w, Height: h})
	d.run(m.Init())
	return d
}

func (d *driver) send(msg tea.Msg) {
	d.t.Helper()
	_, cmd := d.m.Update(msg)
	d.run(cmd)
}

func (d *driver) run(cmd tea.Cmd) {
	d.t.Helper()
	if cmd == nil {
		return
	}
	switch msg := cmd().(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			d.run(c)
		}
	case tea.QuitMsg:
		d.quit = true
	default:
		d.send(msg)
	}
}

// events delivers engine events as the event loop would.
func (d *driver) events(evs ...chat.Event) {
	d.t.Helper()
	d.send(eventsMsg(evs))
}

// typing sends text as typed keys (one KeyRunes message per rune, like a
// terminal without paste).
func (d *driver) typing(s string) {
	d.t.Helper()
	for _, r := range s {
		d.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

func (d *driver) key(k tea.KeyType) {
	d.t.Helper()
	d.send(tea.KeyMsg{Type: k})
}

func (d *driver) altKey(k tea.KeyType) {
	d.t.Helper()
	d.send(tea.KeyMsg{Type: k, Alt: true})
}

func (d *driver) paste(s string) {
	d.t.Helper()
	d.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s), Paste: true})
}

func (d *driver) view() string {
	d.t.Helper()
	v := d.m.View()
	checkScreen(d.t, v, d.m.width, d.m.height)
	return v
}

// checkScreen asserts that a view fills the screen exactly: h lines, none
// wider than w cells (narrower only when a wide character could not fit).
func checkScreen(t testing.TB, v string, w, h int) {
	t.Helper()
	lines := strings.Split(v, "\n")
	if len(lines) != h {
		t.Errorf("view has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if lw := width(l); lw > w {
			t.Errorf("line %d is %d cells wide, more than %d: %q", i, lw, w, l)
		}
	}
}

// golden compares got with testdata/NAME.golden; -update rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./tui -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./tui -run %s -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, t.Name(), got, want)
	}
}
