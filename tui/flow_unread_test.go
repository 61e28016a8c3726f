package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// TestFlowReadMarker: coming back to a group with more unread messages
// than fit on the screen shows a "new messages" line above the first
// unread one, scrolled into view instead of jumping to the bottom; alt+n
// goes back to it; the next visit without unread messages has no marker.
func TestFlowReadMarker(t *testing.T) {
	f := newFake()
	var hist []chat.Message
	for i := range 60 {
		hist = append(hist, chat.Message{ID: chat.MessageID(fmt.Sprintf("r%02d", i)), Group: "g2", Kind: chat.KindText,
			Sender: "bob", SenderFP: fpBob, Body: fmt.Sprintf("line %02d", i), SentAt: at("09:00").Add(timeMinute(i)), Epoch: 3})
	}
	f.history["g2"] = hist
	f.groups[1].Unread, f.groups[1].Mentions = 40, 0 // r20 … r59 are unread
	d := newDriverWith(t, f, 100, 24)
	if d.m.title != "(40) canopy" {
		t.Errorf("title %q", d.m.title)
	}
	d.key(tea.KeyCtrlN) // general → 日本語チーム
	if d.m.s.selected != "g2" {
		t.Fatalf("selected %q", d.m.s.selected)
	}
	if d.m.title != "canopy" {
		t.Errorf("title after reading: %q", d.m.title)
	}
	v := d.view()
	lines := strings.Split(v, "\n")
	markRow := -1
	for i, l := range lines {
		if strings.Contains(l, "── new messages ──") {
			markRow = i
		}
	}
	if markRow < 0 || markRow > 3 {
		t.Fatalf("the new messages line is not at the top (row %d):\n%s", markRow, v)
	}
	if !strings.Contains(lines[markRow+1], "line 20") || !strings.Contains(lines[markRow-1], "line 19") {
		t.Errorf("the marker is not between line 19 and line 20:\n%s", v)
	}
	if !strings.Contains(v, "more lines below") {
		t.Errorf("the view jumped to the bottom:\n%s", v)
	}

	// End goes to the newest; alt+n comes back to the marker
	d.key(tea.KeyEnd)
	if d.m.s.buffer("g2").fromBottom != 0 {
		t.Fatal("End did not go to the newest")
	}
	d.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'n'}, Alt: true})
	if v := d.view(); !strings.Contains(v, "── new messages ──") || !strings.Contains(v, "line 20") {
		t.Errorf("alt+n did not go back to the marker:\n%s", v)
	}
	if d.m.composer.Value() != "" {
		t.Errorf("alt+n typed %q", d.m.composer.Value())
	}

	// away and back, nothing new: no marker
	d.key(tea.KeyCtrlP)
	d.key(tea.KeyCtrlN)
	if v := d.view(); strings.Contains(v, "new messages") {
		t.Errorf("a marker without unread messages:\n%s", v)
	}
	// a message while away: the marker sits above it, at the bottom
	d.key(tea.KeyCtrlP)
	d.events(chat.MessageEvent{Message: chat.Message{ID: "r60", Group: "g2", Kind: chat.KindText, Sender: "李小龙", SenderFP: fpLi, Body: "one more", SentAt: at("10:20"), Epoch: 3}})
	if d.m.title != "(1) canopy" {
		t.Errorf("title with one unread: %q", d.m.title)
	}
	d.key(tea.KeyCtrlN)
	v = d.view()
	lines = strings.Split(v, "\n")
	for i, l := range lines {
		if strings.Contains(l, "── new messages ──") {
			if !strings.Contains(lines[i+1], "one more") {
				t.Errorf("the marker is not above the new message:\n%s", v)
			}
		}
	}
	if !strings.Contains(v, "new messages") || d.m.s.buffer("g2").fromBottom != 0 {
		t.Errorf("one unread message: want the marker and the bottom, fromBottom %d:\n%s", d.m.s.buffer("g2").fromBottom, v)
	}
}

func timeMinute(n int) time.Duration { return time.Duration(n) * time.Minute }
