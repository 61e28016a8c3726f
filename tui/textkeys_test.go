package tui

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

// TestTextNeverMatchesABinding sends the name of every key of every binding
// as one multi-rune KeyRunes message (how Bubble Tea v1 delivers a word
// typed faster than it reads), and as a bracketed paste, to every pane: it
// must land in the composer as text and do nothing else.
func TestTextNeverMatchesABinding(t *testing.T) {
	var names []string
	for _, sec := range defaultKeyMap().sections() {
		for _, r := range sec.rows {
			for _, b := range r.bindings {
				for _, k := range b.Keys() {
					if len([]rune(k)) > 1 {
						names = append(names, k)
					}
				}
			}
		}
	}
	for _, k := range textareaKeyMap().DeleteBeforeCursor.Keys() {
		names = append(names, k) // and the text area's own bindings
	}
	names = append(names, "q", "?", "left", "alt+f", "ctrl+w", "backspace")
	if len(names) < 15 {
		t.Fatalf("only %d key names: %q", len(names), names)
	}
	for _, f := range []focus{focusComposer, focusGroups, focusTimeline, focusMembers} {
		for _, name := range names {
			for _, paste := range []bool{false, true} {
				if !paste && len([]rune(name)) == 1 {
					continue // one rune is a real key press
				}
				d := newDriver(t, 100, 30)
				d.typing("hi ")
				d.key(tea.KeyEnter) // a history line for Up to recall
				d.typing("x")
				d.m.setFocus(f)
				d.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(name), Paste: paste})
				if got, want := d.m.composer.Value(), "x"+name; got != want {
					t.Errorf("focus %d, %q (paste %v): composer %q, want %q", f, name, paste, got, want)
				}
				if d.quit || d.m.helpOpen || d.m.s.selected != "g1" || len(d.fake.calls()) != 1 {
					t.Errorf("focus %d, %q (paste %v): quit %v, help %v, group %q, calls %q",
						f, name, paste, d.quit, d.m.helpOpen, d.m.s.selected, d.fake.calls())
				}
				if d.m.s.buffer("g1").fromBottom != 0 || d.m.s.focus != focusComposer {
					t.Errorf("focus %d, %q: scrolled %d, focus %d", f, name, d.m.s.buffer("g1").fromBottom, d.m.s.focus)
				}
			}
		}
	}
}

// TestSetupWordsAreText: on the first-run screen, a nickname typed faster
// than the program reads ("enter", "up", "esc") is text in the field.
func TestSetupWordsAreText(t *testing.T) {
	m := newSetupModel(asciiStyles(), "")
	words := []string{"up", "enter", "esc", "tab", "ctrl+c", "left"}
	for _, w := range words {
		m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(w)})
	}
	if m.quit || m.done || m.focus != 0 || m.inputs[0].Value() != strings.Join(words, "") {
		t.Errorf("quit %v, done %v, focus %d, nick %q", m.quit, m.done, m.focus, m.inputs[0].Value())
	}
}
