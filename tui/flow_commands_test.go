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
