package tui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// Flow tests drive the root model with the messages tea.Program would send
// (keys, pastes, resizes, engine events) against the fake engine.

func wantCalls(t *testing.T, f *fakeClient, want ...execCall) {
	t.Helper()
	got := f.calls()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Execute calls = %q, want %q", got, want)
	}
}

func TestFlowStartupSelectsMostRecentGroup(t *testing.T) {
	d := newDriver(t, 100, 30)
	if d.m.s.selected != "g1" {
		t.Fatalf("selected %q, want g1", d.m.s.selected)
	}
	if got := d.fake.markedGroups(); len(got) != 1 || got[0] != "g1" {
		t.Errorf("MarkRead calls %v, want [g1]", got)
	}
	v := d.view()
	for _, want := range []string{"general", "日本語チーム", "good morning! 🌅", "你好！@alice 看看这个", "4 peers", "epoch 12"} {
		if !strings.Contains(v, want) {
			t.Errorf("screen lacks %q", want)
		}
	}
}

func TestFlowSendMessage(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.typing("hello 世界")
	if got := d.m.composer.Value(); got != "hello 世界" {
		t.Fatalf("composer holds %q", got)
	}
	d.key(tea.KeyEnter)
	wantCalls(t, d.fake, execCall{"g1", "hello 世界"})
	if got := d.m.composer.Value(); got != "" {
		t.Errorf("composer not cleared: %q", got)
	}
	// Enter on an empty composer sends nothing
	d.key(tea.KeyEnter)
	d.typing("   ")
	d.key(tea.KeyEnter)
	wantCalls(t, d.fake, execCall{"g1", "hello 世界"})
	// Up brings the sent line back
	d.m.composer.SetValue("")
	d.key(tea.KeyUp)
	if got := d.m.composer.Value(); got != "hello 世界" {
		t.Errorf("history: composer holds %q", got)
	}
	d.key(tea.KeyDown)
	if got := d.m.composer.Value(); got != "" {
		t.Errorf("history down: composer holds %q", got)
	}
}

func TestFlowMultilineAndPaste(t *testing.T) {
	d := newDriver(t, 60, 15)
	d.typing("one")
	d.altKey(tea.KeyEnter) // alt+enter: newline
	d.typing("two")
	d.key(tea.KeyCtrlJ) // ctrl+j: newline
	d.typing("three")
	if got := d.m.composer.Value(); got != "one\ntwo\nthree" {
		t.Fatalf("composer holds %q", got)
	}
	if h := d.m.geometry().composerH; h != 3 {
		t.Errorf("composer is %d rows high, want 3", h)
	}
	if got := strings.Split(d.view(), "\n")[11:14]; strings.TrimSpace(strings.Join(got, "|")) != "› one"+strings.Repeat(" ", 55)+"|  two"+strings.Repeat(" ", 55)+"|  three" {
		t.Errorf("composer rows %q", got)
	}
	d.key(tea.KeyEnter)
	wantCalls(t, d.fake, execCall{"g1", "one\ntwo\nthree"})

	// a bracketed paste with CRLF line ends: newlines, not Enter
	d.paste("line 1\r\nline 2\rline 3")
	wantCalls(t, d.fake, execCall{"g1", "one\ntwo\nthree"})
	if got := d.m.composer.Value(); got != "line 1\nline 2\nline 3" {
		t.Fatalf("pasted %q", got)
	}
	// a paste also lands in the composer when another pane has the focus
	d.m.composer.SetValue("")
	d.key(tea.KeyTab)
	if d.m.s.focus == focusComposer {
		t.Fatal("tab did not move the focus")
	}
	d.paste("x")
	if d.m.s.focus != focusComposer || d.m.composer.Value() != "x" {
		t.Errorf("paste in another pane: focus %v, composer %q", d.m.s.focus, d.m.composer.Value())
	}
}

func TestFlowKickWithCompletion(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.typing("/ki")
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/kick " {
		t.Fatalf("completed to %q, want %q", got, "/kick ")
	}
	// nicks after /kick: never oneself; Tab cycles, Shift-Tab goes back
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/kick bob " {
		t.Fatalf("first nick %q", got)
	}
	if !strings.Contains(d.view(), "[bob] carol 李小龙") {
		t.Errorf("candidates not shown on the rule:\n%s", d.view())
	}
	d.key(tea.KeyTab)
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/kick 李小龙 " {
		t.Fatalf("third nick %q", got)
	}
	d.key(tea.KeyShiftTab)
	if got := d.m.composer.Value(); got != "/kick carol " {
		t.Fatalf("shift+tab: %q", got)
	}
	d.key(tea.KeyEnter)
	wantCalls(t, d.fake, execCall{"g1", "/kick carol"})
	// the result is shown in the timeline
	if v := d.view(); !strings.Contains(v, "ok: /kick carol") {
		t.Errorf("result missing:\n%s", v)
	}

	// a prefix narrows the candidates; @mentions complete too
	d.typing("/verify 李")
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/verify 李小龙 " {
		t.Errorf("verify completion %q", got)
	}
	d.m.composer.SetValue("thanks @ca")
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "thanks @carol " {
		t.Errorf("mention completion %q", got)
	}
	// no candidates: Tab stays in the composer inside a command …
	d.m.composer.SetValue("/zz")
	d.key(tea.KeyTab)
	if d.m.s.focus != focusComposer || !strings.Contains(d.view(), "no completions") {
		t.Errorf("tab left the composer on a command line (focus %v)", d.m.s.focus)
	}
	// … and moves the focus in plain text
	d.m.composer.SetValue("plain")
	d.key(tea.KeyTab)
	if d.m.s.focus != focusGroups {
		t.Errorf("tab on plain text: focus %v, want groups", d.m.s.focus)
	}
}

func TestFlowSwitchGroupsResetsUnread(t *testing.T) {
	d := newDriver(t, 100, 30)
	g2 := d.m.s.groups[d.m.s.group("g2")]
	if g2.Unread != 2 || g2.Mentions != 1 {
		t.Fatalf("g2 starts with %d unread, %d mentions", g2.Unread, g2.Mentions)
	}
	if !strings.Contains(d.view(), "2 @1") {
		t.Fatal("badge missing")
	}
	d.key(tea.KeyCtrlN)
	if d.m.s.selected != "g2" {
		t.Fatalf("ctrl+n selected %q", d.m.s.selected)
	}
	g2 = d.m.s.groups[d.m.s.group("g2")]
	if g2.Unread != 0 || g2.Mentions != 0 {
		t.Errorf("after switching: %d unread, %d mentions", g2.Unread, g2.Mentions)
	}
	if got := d.fake.markedGroups(); got[len(got)-1] != "g2" {
		t.Errorf("MarkRead not called for g2: %v", got)
	}
	if v := d.view(); strings.Contains(v, "2 @1") || !strings.Contains(v, "ラーメン食べに行こう") {
		t.Errorf("g2 not shown or badge not cleared:\n%s", v)
	}

	// a message in another group counts as unread; a mention rings the bell
	d.events(chat.MessageEvent{Message: chat.Message{ID: "x1", Group: "g1", Kind: chat.KindText, Sender: "bob", SenderFP: fpBob, Body: "psst", SentAt: at("10:10")}})
	d.events(chat.MessageEvent{Message: chat.Message{ID: "x2", Group: "g1", Kind: chat.KindText, Sender: "bob", SenderFP: fpBob, Body: "@alice look", SentAt: at("10:11"), Mentions: true}})
	g1 := d.m.s.groups[d.m.s.group("g1")]
	if g1.Unread != 2 || g1.Mentions != 1 || d.bells != 1 {
		t.Errorf("g1: %d unread, %d mentions, %d bells; want 2, 1, 1", g1.Unread, g1.Mentions, d.bells)
	}
	// a mention in the group on screen does not ring …
	d.events(chat.MessageEvent{Message: chat.Message{ID: "x3", Group: "g2", Kind: chat.KindText, Sender: "bob", Body: "@alice here", SentAt: at("10:12"), Mentions: true}})
	if d.bells != 1 {
		t.Errorf("bell rang for a visible mention")
	}
	// … unless the terminal window is in the background
	d.send(tea.BlurMsg{})
	d.events(chat.MessageEvent{Message: chat.Message{ID: "x4", Group: "g2", Kind: chat.KindText, Sender: "bob", Body: "@alice hello?", SentAt: at("10:13"), Mentions: true}})
	if d.bells != 2 {
		t.Errorf("bell did not ring with the window unfocused")
	}
	if g := d.m.s.groups[d.m.s.group("g2")]; g.Unread != 1 {
		t.Errorf("unfocused window: g2 unread %d, want 1", g.Unread)
	}
	d.send(tea.FocusMsg{})
	if g := d.m.s.groups[d.m.s.group("g2")]; g.Unread != 0 {
		t.Errorf("focus regained: g2 unread %d, want 0", g.Unread)
	}

	// ctrl+p, alt+up/down cycle through home as well
	d.key(tea.KeyCtrlP)
	if d.m.s.selected != "g1" {
		t.Errorf("ctrl+p selected %q", d.m.s.selected)
	}
	d.altKey(tea.KeyUp)
	if d.m.s.selected != homeID {
		t.Errorf("alt+up selected %q, want home", d.m.s.selected)
	}
	d.altKey(tea.KeyDown)
	d.altKey(tea.KeyDown)
	if d.m.s.selected != "g2" {
		t.Errorf("alt+down twice selected %q", d.m.s.selected)
	}
}

func TestFlowDraftsPerGroup(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.typing("half-written")
	d.key(tea.KeyCtrlN)
	if d.m.composer.Value() != "" {
		t.Errorf("draft leaked into g2: %q", d.m.composer.Value())
	}
	d.key(tea.KeyCtrlP)
	if d.m.composer.Value() != "half-written" {
		t.Errorf("draft lost: %q", d.m.composer.Value())
	}
}

func TestFlowDeliveryMarks(t *testing.T) {
	d := newDriver(t, 100, 30)
	line := func() string {
		for _, l := range strings.Split(d.view(), "\n") {
			if strings.Contains(l, "sending…") {
				return l
			}
		}
		t.Fatal("message not on screen")
		return ""
	}
	if l := line(); !strings.Contains(l, markPending) {
		t.Fatalf("pending mark missing: %q", l)
	}
	d.events(chat.DeliveryEvent{Group: "g1", ID: "m7", Delivery: chat.Sent})
	if l := line(); !strings.Contains(l, markSent) || strings.Contains(l, markDelivered) {
		t.Errorf("sent mark: %q", l)
	}
	d.events(chat.DeliveryEvent{Group: "g1", ID: "m7", Delivery: chat.Delivered})
	if l := line(); !strings.Contains(l, markDelivered) {
		t.Errorf("delivered mark: %q", l)
	}
	d.events(chat.DeliveryEvent{Group: "g1", ID: "m7", Delivery: chat.Failed})
	if l := line(); !strings.Contains(l, markFailed) {
		t.Errorf("failed mark: %q", l)
	}
	// our own new message arrives as an event and is marked pending
	d.events(chat.MessageEvent{Message: chat.Message{ID: "o1", Group: "g1", Kind: chat.KindText, Sender: "alice", SenderFP: fpAlice, Own: true, Body: "brand new", SentAt: at("10:20")}})
	v := d.view()
	if !strings.Contains(v, "brand new") {
		t.Fatal("own message not shown")
	}
	for _, l := range strings.Split(v, "\n") {
		if strings.Contains(l, "brand new") && !strings.Contains(l, markPending) {
			t.Errorf("own message not pending: %q", l)
		}
	}
	if g := d.m.s.groups[d.m.s.group("g1")]; g.Unread != 0 {
		t.Errorf("own message counted as unread")
	}
}

func TestFlowNotices(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.events(chat.NoticeEvent{Group: "g1", Text: "fork healed: 2 messages re-sent", Level: chat.NoticeInfo})
	if v := d.view(); !strings.Contains(v, "fork healed: 2 messages re-sent") {
		t.Errorf("group notice missing:\n%s", v)
	}
	// a notice without a group: status bar and home
	d.events(chat.NoticeEvent{Text: "relay unreachable", Level: chat.NoticeWarning})
	v := d.view()
	status := strings.Split(v, "\n")[29]
	if !strings.Contains(status, "relay unreachable") {
		t.Errorf("status bar lacks the notice: %q", status)
	}
	if d.m.s.homeUnread != 1 {
		t.Errorf("home unread %d", d.m.s.homeUnread)
	}
	d.send(flashExpiredMsg{seq: d.m.statusBar.flashSeq})
	if strings.Contains(d.view(), "relay unreachable") {
		t.Error("notice did not expire from the status bar")
	}
	d.send(selectGroupMsg{id: homeID})
	if !strings.Contains(d.view(), "relay unreachable") {
		t.Error("notice missing from home")
	}
	// a notice for another group flashes with the group's name
	d.events(chat.NoticeEvent{Group: "g2", Text: "you were added", Level: chat.NoticeInfo})
	if !strings.Contains(d.view(), "日本語チーム: you were added") {
		t.Errorf("notice for another group not flashed:\n%s", d.view())
	}
	// an invitation shows on home with the command to accept it
	d.events(chat.InvitationEvent{Invitation: chat.Invitation{ID: "inv-9", GroupName: "book club 📚", From: "erin", At: at("10:25")}})
	if v := d.view(); !strings.Contains(v, "/accept inv-9") || !strings.Contains(v, "✉2") {
		t.Errorf("invitation missing:\n%s", v)
	}
}

func TestFlowExecuteErrorAndStatus(t *testing.T) {
	f := newFake()
	f.execute = func(g chat.GroupID, line string) (string, error) {
		if line == "/kick nobody" {
			return "", errors.New("no member called nobody")
		}
		return "", nil
	}
	d := newDriverWith(t, f, 100, 30)
	d.typing("/kick nobody")
	d.key(tea.KeyEnter)
	v := d.view()
	if !strings.Contains(v, "/kick nobody: no member called nobody") {
		t.Errorf("error not shown:\n%s", v)
	}
	d.events(chat.StatusEvent{Status: chat.NetStatus{Peers: 9, Relays: 1, Reachability: "public"}})
	if v := d.view(); !strings.Contains(v, "9 peers · 1 relay · public") {
		t.Errorf("status not updated:\n%s", v)
	}
}

func TestFlowCreateOpensNewGroupAndLeaveGoesHome(t *testing.T) {
	f := newFake()
	f.execute = func(g chat.GroupID, line string) (string, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case strings.HasPrefix(line, "/create "):
			f.groups = append([]chat.GroupView{{ID: "g9", Name: "新しい", Epoch: 1, Members: 2}}, f.groups...)
			return "created 新しい", nil
		case line == "/leave":
			f.groups = f.groups[1:]
			return "left", nil
		case strings.HasPrefix(line, "/nick "):
			f.self.Nick = strings.TrimPrefix(line, "/nick ")
		}
		return "", nil
	}
	d := newDriverWith(t, f, 100, 30)
	d.typing("/create 新しい bob")
	d.key(tea.KeyEnter)
	if d.m.s.selected != "g9" {
		t.Fatalf("new group not opened: selected %q", d.m.s.selected)
	}
	if d.m.s.entries()[1] != "g9" {
		t.Errorf("new group not on top: %v", d.m.s.entries())
	}
	d.typing("/leave")
	d.key(tea.KeyEnter)
	if d.m.s.selected != homeID || d.m.s.group("g9") >= 0 {
		t.Errorf("after /leave: selected %q, groups %v", d.m.s.selected, d.m.s.entries())
	}
	d.typing("/nick 爱丽丝")
	d.key(tea.KeyEnter)
	if v := d.view(); !strings.Contains(strings.Split(v, "\n")[29], "爱丽丝") {
		t.Errorf("new nick not in the status bar:\n%s", v)
	}
}

func TestFlowExecuteRunsInOrder(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.typing("first")
	_, cmd1 := d.m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	if cmd1 == nil {
		t.Fatal("no command for the first message")
	}
	d.typing("second")
	_, cmd2 := d.m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	if cmd2 != nil {
		t.Fatal("second Execute started before the first finished")
	}
	d.run(cmd1) // runs the first, then the queued second
	wantCalls(t, d.fake, execCall{"g1", "first"}, execCall{"g1", "second"})
	if d.m.executing {
		t.Error("queue not drained")
	}
}

func TestFlowResize(t *testing.T) {
	d := newDriver(t, 100, 30)
	before := d.view()
	if !strings.Contains(before, "members 4") {
		t.Fatal("member panel missing at 100×30")
	}
	d.m.setFocus(focusMembers)
	d.send(tea.WindowSizeMsg{Width: 60, Height: 15})
	small := d.view()
	if strings.Contains(small, "members 4") {
		t.Error("member panel shown at 60×15")
	}
	if d.m.s.focus != focusMembers && d.m.s.focus != focusComposer {
		t.Errorf("focus %v", d.m.s.focus)
	}
	if d.m.s.focus == focusMembers {
		t.Error("focus stayed on the hidden member panel")
	}
	for _, sz := range [][2]int{{59, 14}, {40, 10}, {20, 5}, {1, 1}, {200, 60}} {
		d.send(tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		d.view() // checks the size
	}
	d.send(tea.WindowSizeMsg{Width: 100, Height: 30})
	if after := d.view(); after != before {
		t.Errorf("the screen differs after resizing back:\n%s\n---\n%s", after, before)
	}
}

func TestFlowHelpToggle(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.typing("?")
	if !d.m.helpOpen || !strings.Contains(d.view(), "canopy help") {
		t.Fatal("? did not open the help")
	}
	d.key(tea.KeyDown) // scrolls the help, does not reach the composer
	if d.m.help.offset() != 1 {
		t.Errorf("help offset %d", d.m.help.offset())
	}
	d.typing("?")
	if d.m.helpOpen {
		t.Fatal("? did not close the help")
	}
	d.typing("?")
	d.key(tea.KeyEsc)
	if d.m.helpOpen {
		t.Fatal("esc did not close the help")
	}
	// with text in the composer, ? is just a character
	d.typing("why?")
	if d.m.helpOpen || d.m.composer.Value() != "why?" {
		t.Errorf("? with text: help %v, composer %q", d.m.helpOpen, d.m.composer.Value())
	}
	// … but in another pane it opens the help
	d.key(tea.KeyTab)
	d.typing("?")
	if !d.m.helpOpen {
		t.Error("? in the group list did not open the help")
	}
	d.key(tea.KeyEsc)
	// /help opens it too, without calling the engine
	d.key(tea.KeyEsc)
	d.m.composer.SetValue("/help")
	d.key(tea.KeyEnter)
	if !d.m.helpOpen {
		t.Error("/help did not open the help")
	}
	wantCalls(t, d.fake)
}

func TestFlowQuit(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.key(tea.KeyCtrlC)
	if !d.quit {
		t.Error("ctrl+c did not quit")
	}
	d = newDriver(t, 100, 30)
	d.typing("/quit")
	d.key(tea.KeyEnter)
	if !d.quit {
		t.Error("/quit did not quit")
	}
	wantCalls(t, d.fake)
	d = newDriver(t, 100, 30)
	d.send(engineClosedMsg{})
	if !d.quit || !d.m.engineStopped {
		t.Error("a stopped engine did not end the program")
	}
}

func TestFlowScrollbackLoadsOlderHistory(t *testing.T) {
	f := newFake()
	var msgs []chat.Message
	for i := range 120 {
		msgs = append(msgs, chat.Message{
			ID: chat.MessageID(fmt.Sprintf("h%03d", i)), Group: "g3", Kind: chat.KindText,
			Sender: "carol", SenderFP: fpCarol, Body: fmt.Sprintf("message %03d", i),
			SentAt: t0.Add(time.Duration(i-120) * time.Minute),
		})
	}
	f.history["g3"] = msgs
	d := newDriverWith(t, f, 100, 30)
	d.send(selectGroupMsg{id: "g3"})
	if v := d.view(); !strings.Contains(v, "message 119") || strings.Contains(v, "message 069") {
		t.Fatalf("newest page not shown:\n%s", v)
	}
	for range 40 {
		d.key(tea.KeyPgUp)
	}
	if v := d.view(); !strings.Contains(v, "message 000") || !strings.Contains(v, "start of history") {
		t.Fatalf("did not reach the start of history:\n%s", v)
	}
	var befores []chat.MessageID
	for _, r := range f.historyReqs {
		if r.Group == "g3" {
			befores = append(befores, r.Before)
		}
	}
	if fmt.Sprint(befores) != "[ h070 h020]" {
		t.Errorf("History cursors %v", befores)
	}
	// a new message while scrolled up does not move the view …
	// (the last timeline row counts the lines below, so leave it out)
	top := strings.Split(d.view(), "\n")[:26]
	d.events(chat.MessageEvent{Message: chat.Message{ID: "new", Group: "g3", Kind: chat.KindText, Sender: "carol", Body: "fresh", SentAt: t0}})
	if got := strings.Split(d.view(), "\n")[:26]; strings.Join(got, "\n") != strings.Join(top, "\n") {
		t.Errorf("view moved on a new message:\n%s", strings.Join(got, "\n"))
	}
	if !strings.Contains(d.view(), "98 more lines below") {
		t.Errorf("indicator not updated:\n%s", d.view())
	}
	// … End goes back to the newest, and follows from there
	d.key(tea.KeyTab)
	d.key(tea.KeyTab) // timeline
	if d.m.s.focus != focusTimeline {
		t.Fatalf("focus %v", d.m.s.focus)
	}
	d.key(tea.KeyEnd)
	if v := d.view(); !strings.Contains(v, "fresh") {
		t.Errorf("end did not go to the newest:\n%s", v)
	}
	d.send(tea.MouseMsg{X: 50, Y: 10, Button: tea.MouseButtonWheelUp, Action: tea.MouseActionPress})
	if b := d.m.s.buffer("g3"); b.fromBottom != 3 {
		t.Errorf("wheel scrolled %d lines, want 3", b.fromBottom)
	}
	d.send(tea.MouseMsg{X: 50, Y: 10, Button: tea.MouseButtonWheelDown, Action: tea.MouseActionPress})
	if b := d.m.s.buffer("g3"); b.fromBottom != 0 {
		t.Errorf("wheel down: %d", b.fromBottom)
	}
}

func TestFlowMouseSelectsGroup(t *testing.T) {
	d := newDriver(t, 100, 30)
	// rows: 0 title, 1 home, 2 general, 3 日本語チーム
	d.send(tea.MouseMsg{X: 3, Y: 3, Button: tea.MouseButtonLeft, Action: tea.MouseActionPress})
	if d.m.s.selected != "g2" {
		t.Errorf("click selected %q", d.m.s.selected)
	}
	d.send(tea.MouseMsg{X: 3, Y: 28, Button: tea.MouseButtonLeft, Action: tea.MouseActionPress})
	if d.m.s.focus != focusComposer {
		t.Errorf("click on the composer: focus %v", d.m.s.focus)
	}
}

func TestFlowFocusCycleAndPanes(t *testing.T) {
	d := newDriver(t, 100, 30)
	order := []focus{focusGroups, focusTimeline, focusMembers, focusComposer}
	for _, want := range order {
		d.key(tea.KeyTab)
		if d.m.s.focus != want {
			t.Fatalf("tab: focus %v, want %v", d.m.s.focus, want)
		}
	}
	d.key(tea.KeyShiftTab)
	if d.m.s.focus != focusMembers {
		t.Fatalf("shift+tab: focus %v", d.m.s.focus)
	}
	// in the member panel: j moves, v prepares /verify, enter writes @nick
	d.typing("j")
	d.typing("v")
	if got := d.m.composer.Value(); got != "/verify bob" || d.m.s.focus != focusComposer {
		t.Errorf("v on a member: composer %q focus %v", got, d.m.s.focus)
	}
	d.m.composer.SetValue("")
	d.key(tea.KeyShiftTab)
	d.typing("j")
	d.key(tea.KeyEnter)
	if got := d.m.composer.Value(); got != "@carol " {
		t.Errorf("enter on a member: composer %q", got)
	}
	// at 60 columns the member panel is skipped
	d.send(tea.WindowSizeMsg{Width: 60, Height: 15})
	d.m.setFocus(focusComposer)
	for _, want := range []focus{focusGroups, focusTimeline, focusComposer} {
		d.key(tea.KeyTab)
		if d.m.s.focus != want {
			t.Fatalf("60 cols, tab: focus %v, want %v", d.m.s.focus, want)
		}
	}
	// in the group list, j opens the next group; typing goes to the composer
	d.key(tea.KeyTab)
	d.typing("j")
	if d.m.s.selected != "g2" {
		t.Errorf("j in the group list selected %q", d.m.s.selected)
	}
	d.typing("hi")
	if d.m.s.focus != focusComposer || d.m.composer.Value() != "hi" {
		t.Errorf("typing in the group list: focus %v composer %q", d.m.s.focus, d.m.composer.Value())
	}
}

func TestFlowKeyChangeIsLoud(t *testing.T) {
	d := newDriver(t, 100, 30)
	ms := d.fake.Members("g1")
	ms[2].KeyChanged = true // carol
	d.events(chat.MembersEvent{Group: "g1", Members: ms})
	v := d.view()
	for _, want := range []string{"! key changed: carol", "! carol key changed", "The safety number of carol changed"} {
		if !strings.Contains(v, want) {
			t.Errorf("screen lacks %q:\n%s", want, v)
		}
	}
	// the same list again does not repeat the warning
	d.events(chat.MembersEvent{Group: "g1", Members: ms})
	if n := strings.Count(d.view(), "The safety number of carol"); n != 1 {
		t.Errorf("warning shown %d times", n)
	}
}

func TestFlowEditsReactionsTyping(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.events(
		chat.MessageEvent{Message: chat.Message{ID: "e1", Group: "g1", Kind: chat.KindTyping, Sender: "bob"}},
	)
	if !strings.Contains(d.view(), "bob is typing") {
		t.Error("typing indicator missing")
	}
	d.m.s.now = func() time.Time { return t0.Add(time.Minute) }
	d.send(typingExpiredMsg{})
	if strings.Contains(d.view(), "bob is typing") {
		t.Error("typing indicator did not expire")
	}
	d.events(
		chat.MessageEvent{Message: chat.Message{ID: "e2", Group: "g1", Kind: chat.KindDelete, Sender: "bob", ReplyTo: "m1"}},
		chat.MessageEvent{Message: chat.Message{ID: "e3", Group: "g1", Kind: chat.KindReaction, Sender: "bob", Body: "🎉", ReplyTo: "m4"}},
		chat.MessageEvent{Message: chat.Message{ID: "e4", Group: "g1", Kind: "future-kind", Body: "???"}},
		chat.MessageEvent{Message: chat.Message{ID: "e5", Group: "g1", Kind: chat.KindReceipt, ReplyTo: "m4"}},
	)
	v := d.view()
	if strings.Contains(v, "good morning") || !strings.Contains(v, "message deleted") {
		t.Error("deletion not shown")
	}
	if !strings.Contains(v, "👍 1  🎉 1") {
		t.Errorf("reactions not shown:\n%s", v)
	}
	if strings.Contains(v, "???") {
		t.Error("unknown kind shown")
	}
	if g := d.m.s.groups[d.m.s.group("g1")]; g.Unread != 0 {
		t.Error("non-text kinds counted as unread")
	}
}

func TestFlowHostileText(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.events(chat.MessageEvent{Message: chat.Message{
		ID: "evil", Group: "g1", Kind: chat.KindText,
		Sender: "mal\x1b[31mlory", SenderFP: "x",
		Body:   "clear\x1b[2J\x1b]0;pwned\a screen\u202e and\x07 bell\r\x9b1m",
		SentAt: at("10:15"),
	}})
	v := d.view()
	for _, bad := range []string{"\x1b", "\a", "\u202e", "\r", "\x9b"} {
		if strings.Contains(v, bad) {
			t.Errorf("screen contains %q", bad)
		}
	}
	if !strings.Contains(v, "clear screen and bell") || !strings.Contains(v, "mallory") {
		t.Errorf("text mangled:\n%s", v)
	}
}

func TestFlowEventsArriveBeforeHistory(t *testing.T) {
	f := newFake()
	o := defaultOptions()
	o.loc = time.UTC
	m := newModel(t.Context(), f, asciiStyles(), o)
	m.fx = effects{}
	m.s.now = func() time.Time { return t0 }
	m.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	// the message event overtakes the snapshot and the history page
	m.Update(eventsMsg{chat.MessageEvent{Message: chat.Message{ID: "m5", Group: "g1", Kind: chat.KindText, Sender: "李小龙", Body: "你好！@alice 看看这个", SentAt: at("10:02")}}})
	m.Update(eventsMsg{chat.MessageEvent{Message: chat.Message{ID: "late", Group: "g1", Kind: chat.KindText, Sender: "bob", Body: "late one", SentAt: at("10:29")}}})
	_, cmd := m.Update(snapshotMsg{self: f.Self(), groups: f.Groups(), invitations: f.Invitations(), status: f.Status()})
	d := &driver{t: t, m: m, fake: f}
	d.run(cmd)
	b := m.s.buffer("g1")
	var ids []string
	for _, e := range b.entries {
		ids = append(ids, string(e.msg.ID))
	}
	if got := strings.Join(ids, " "); got != "m0 m1 m2 m3 m4 m5 m6 m7 late" {
		t.Errorf("entries %s", got)
	}
}

func TestFlowLeftGroupStays(t *testing.T) {
	d := newDriver(t, 100, 30)
	g := d.fake.Groups()[0]
	g.Left = true
	d.events(chat.GroupEvent{Group: g})
	v := d.view()
	for _, want := range []string{"# general · you left", "›general          left│", "you are no longer a member of general", "good morning"} {
		if !strings.Contains(v, want) {
			t.Errorf("screen lacks %q:\n%s", want, v)
		}
	}
	if d.m.s.selected != "g1" {
		t.Errorf("selection moved to %q", d.m.s.selected)
	}
}

func TestFlowNearbyPeersAndInviteCompletion(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.events(
		chat.PeerEvent{Peer: chat.Peer{Nick: "dave", PeerID: "P-dave"}, Online: true},
		chat.PeerEvent{Peer: chat.Peer{Nick: "dora", PeerID: "P-dora"}, Online: true},
		chat.PeerEvent{Peer: chat.Peer{Nick: "erin", PeerID: "P-erin"}, Online: true},
		chat.PeerEvent{Peer: chat.Peer{Nick: "erin", PeerID: "P-erin"}, Online: false},
	)
	d.typing("/invite d")
	d.key(tea.KeyTab)
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/invite dora " {
		t.Errorf("invite completion %q", got)
	}
	d.m.composer.SetValue("/invite e")
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/invite e" {
		t.Errorf("a peer that left is still completed: %q", got)
	}
	d.send(selectGroupMsg{id: homeID})
	if v := d.view(); !strings.Contains(v, "dave · /invite dave") {
		t.Errorf("home does not list nearby peers:\n%s", v)
	}
}
