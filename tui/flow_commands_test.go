package tui

import (
	"context"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// runnerFake is the fake engine with chat.Engine's Run: a structured result
// that names the group a command created or joined.
type runnerFake struct {
	*fakeClient
	group func(line string) chat.GroupID
}

func (r runnerFake) Run(ctx context.Context, g chat.GroupID, line string) (chat.Result, error) {
	out, err := r.Execute(ctx, g, line)
	return chat.Result{Text: out, Group: r.group(line)}, err
}

// TestFlowCreateWithContactOpensTheGroup: /create NAME CARD takes longer
// than /create NAME (the Commit adding the contact), so the engine's
// GroupEvent for the new group arrives before the command's result. The
// group must open all the same, from home too.
func TestFlowCreateWithContactOpensTheGroup(t *testing.T) {
	f := newFake()
	var d *driver
	f.execute = func(g chat.GroupID, line string) (string, error) {
		if !strings.HasPrefix(line, "/create ") {
			return "", nil
		}
		gv := chat.GroupView{ID: "g9", Name: "team", Epoch: 2, Members: 2}
		f.mu.Lock()
		f.groups = append([]chat.GroupView{gv}, f.groups...)
		f.mu.Unlock()
		d.events(chat.GroupEvent{Group: gv}) // the event wins the race
		return "created team with bob", nil
	}
	d = newDriverWith(t, f, 100, 30)
	d.m.client = runnerFake{f, func(line string) chat.GroupID {
		if strings.HasPrefix(line, "/create ") {
			return "g9"
		}
		return ""
	}}
	d.send(selectGroupMsg{id: homeID})
	d.typing("/create team canopy1qbob")
	d.key(tea.KeyEnter)
	if d.m.s.selected != "g9" {
		t.Fatalf("the new group is not open: selected %q", d.m.s.selected)
	}
	if v := d.view(); !strings.Contains(v, "# team") {
		t.Errorf("the timeline does not show the new group:\n%s", v)
	}
}

// TestFlowInviteShowsOneLine: the inviter's timeline tells an invitation
// once, by the engine's system line; the command's own result goes to the
// status bar.
func TestFlowInviteShowsOneLine(t *testing.T) {
	f := newFake()
	f.execute = func(g chat.GroupID, line string) (string, error) {
		switch {
		case strings.HasPrefix(line, "/invite "):
			return "invited dave to general", nil
		case line == "/retention":
			return "messages in general do not disappear", nil
		}
		return "", nil
	}
	d := newDriverWith(t, f, 100, 30)
	d.typing("/invite dave")
	d.key(tea.KeyEnter)
	d.events(chat.MessageEvent{Message: chat.Message{ID: "s1", Group: "g1", Kind: chat.KindSystem, Body: "alice added dave", SentAt: at("10:20")}})
	v := d.view()
	if n := strings.Count(v, "dave"); n != 2 { // the timeline line and the status bar
		t.Errorf("dave appears %d times, want the system line and the status bar:\n%s", n, v)
	}
	lines := strings.Split(v, "\n")
	if !strings.Contains(lines[len(lines)-1], "invited dave to general") {
		t.Errorf("the result is not in the status bar:\n%s", v)
	}
	if strings.Contains(strings.Join(lines[:len(lines)-1], "\n"), "invited dave") {
		t.Errorf("the result is in the timeline too:\n%s", v)
	}
	// a command that only reports stays in the timeline
	d.typing("/retention")
	d.key(tea.KeyEnter)
	if v := d.view(); strings.Count(v, "do not disappear") != 1 || !strings.Contains(strings.Join(strings.Split(v, "\n")[:28], "\n"), "do not disappear") {
		t.Errorf("/retention's report is not in the timeline:\n%s", v)
	}
}

// TestFlowInfo: /info shows a message's details in the timeline, picked
// by ^N or #ID, without asking the engine.
func TestFlowInfo(t *testing.T) {
	d := newDriver(t, 100, 30)
	run := func(line string) string {
		t.Helper()
		d.typing(line)
		d.key(tea.KeyEnter)
		es := d.m.s.buffer(d.m.s.selected).entries
		return es[len(es)-1].msg.Body
	}
	if got := run("/info"); !strings.Contains(got, "message #m7") || !strings.Contains(got, "from alice (you), key fingerprint "+fpAlice) ||
		!strings.Contains(got, "epoch 12") || !strings.Contains(got, "delivery: pending") {
		t.Errorf("/info:\n%s", got)
	}
	if got := run("/info ^2"); !strings.Contains(got, "#m6") || !strings.Contains(got, "from bob, key fingerprint "+fpBob) ||
		!strings.Contains(got, "in reply to #m4, edited") || strings.Contains(got, "delivery") {
		t.Errorf("/info ^2:\n%s", got)
	}
	if got := run("/info #M5"); !strings.Contains(got, "from 李小龙") {
		t.Errorf("/info #M5:\n%s", got)
	}
	if got := run("/info #m3"); !strings.Contains(got, "written by canopy") {
		t.Errorf("/info #m3:\n%s", got)
	}
	for line, want := range map[string]string{
		"/info #m":   "matches several messages",
		"/info #zz":  "no loaded message #zz",
		"/info ^99":  "no such message",
		"/info blah": "usage",
	} {
		if got := run(line); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", line, got, want)
		}
	}
	if len(d.fake.calls()) != 0 {
		t.Errorf("/info reached the engine: %q", d.fake.calls())
	}
	golden(t, "root_100x30_info", func() string {
		d := newDriver(t, 100, 30)
		d.typing("/info ^2")
		d.key(tea.KeyEnter)
		return d.view()
	}())
	d.send(selectGroupMsg{id: homeID})
	if got := run("/info"); !strings.Contains(got, "open a group first") {
		t.Errorf("/info at home: %q", got)
	}
}

// The engine offers what the TUI looks for: a changed signature would
// silently turn these features off.
var (
	_ runner   = (*chat.Engine)(nil)
	_ searcher = (*chat.Engine)(nil)
)
