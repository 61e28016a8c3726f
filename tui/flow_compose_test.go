package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// Sending edits, reactions and typing notices from the composer.

func wantTyping(t *testing.T, f *fakeClient, want ...chat.GroupID) {
	t.Helper()
	if got := f.typingCalls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Typing calls = %v, want %v", got, want)
	}
}

func TestFlowEditAndReactCommands(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.m.s.commands = chat.Commands // the real table, for the hints
	d.typing("/ed")
	if v := d.view(); !strings.Contains(v, "/edit") {
		t.Errorf("no hint for /ed:\n%s", v)
	}
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/edit " {
		t.Fatalf("completed to %q", got)
	}
	if v := d.view(); !strings.Contains(v, "/edit [^N|#ID] TEXT") {
		t.Errorf("synopsis missing:\n%s", v)
	}
	// Tab after "/edit " brings back the text of one's last message.
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/edit sending…\nsecond line" {
		t.Fatalf("/edit completion %q", got)
	}
	d.m.composer.SetValue("/edit sending… done")
	d.key(tea.KeyEnter)
	// the engine echoes the edit as an event
	d.events(chat.MessageEvent{Message: chat.Message{ID: "x1", Group: "g1", Kind: chat.KindEdit, Sender: "alice", Own: true, Body: "sending… done", ReplyTo: "m7"}})
	if v := d.view(); !strings.Contains(v, "sending… done (edited)") {
		t.Errorf("own edit not shown:\n%s", v)
	}

	// A last message that looks like a selector is protected by ^1.
	d.events(chat.MessageEvent{Message: chat.Message{ID: "m8", Group: "g1", Kind: chat.KindText, Sender: "alice", Own: true, Body: "#1234 is fixed"}})
	d.m.composer.SetValue("/edit ")
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/edit ^1 #1234 is fixed" {
		t.Fatalf("/edit completion of a selector-like text: %q", got)
	}

	d.m.composer.SetValue("/react ")
	d.key(tea.KeyTab)
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/react ❤️" {
		t.Fatalf("/react completion %q", got)
	}
	d.key(tea.KeyShiftTab)
	d.key(tea.KeyEnter)
	d.events(chat.MessageEvent{Message: chat.Message{ID: "x2", Group: "g1", Kind: chat.KindReaction, Sender: "alice", Own: true, Body: "👍", ReplyTo: "m8"}})
	wantCalls(t, d.fake, execCall{"g1", "/edit sending… done"}, execCall{"g1", "/react 👍"})
	if v := d.view(); !strings.Contains(v, "#1234 is fixed") || !strings.Contains(v, "👍 1") {
		t.Errorf("own reaction not shown:\n%s", v)
	}
	// commands never count as typing
	wantTyping(t, d.fake)
}

func TestFlowTypingThrottle(t *testing.T) {
	d := newDriver(t, 100, 30)
	now := t0
	d.m.s.now = func() time.Time { return now }
	d.typing("hel")
	wantTyping(t, d.fake, "g1") // the first key sends, the next ones wait
	now = now.Add(typingEvery - time.Millisecond)
	d.typing("lo")
	wantTyping(t, d.fake, "g1")
	now = now.Add(time.Millisecond)
	d.typing(" world")
	wantTyping(t, d.fake, "g1", "g1")
	// sending clears the composer: no notice for that
	d.key(tea.KeyEnter)
	wantTyping(t, d.fake, "g1", "g1")
	wantCalls(t, d.fake, execCall{"g1", "hello world"})

	// slash commands are never announced; // lines are messages
	now = now.Add(time.Hour)
	d.typing("/members")
	wantTyping(t, d.fake, "g1", "g1")
	d.m.composer.SetValue("")
	d.typing("//not a command")
	wantTyping(t, d.fake, "g1", "g1", "g1")
	d.m.composer.SetValue("")

	// the throttle is per group; switching groups (the draft coming back)
	// is not typing
	d.key(tea.KeyCtrlN)
	d.typing("x")
	wantTyping(t, d.fake, "g1", "g1", "g1", "g2")
	d.key(tea.KeyCtrlP)
	d.key(tea.KeyCtrlN)
	wantTyping(t, d.fake, "g1", "g1", "g1", "g2")
	// cursor movement without a change is not typing either
	now = now.Add(time.Hour)
	d.key(tea.KeyLeft)
	wantTyping(t, d.fake, "g1", "g1", "g1", "g2")

	// home takes no typing notices
	d.m.composer.SetValue("")
	d.send(selectGroupMsg{id: homeID})
	d.typing("hi")
	wantTyping(t, d.fake, "g1", "g1", "g1", "g2")
}

func TestFlowNoTypingInLeftGroup(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.events(chat.GroupEvent{Group: chat.GroupView{ID: "g1", Name: "general", Members: 3, Left: true}})
	d.typing("anyone?")
	wantTyping(t, d.fake)
}
