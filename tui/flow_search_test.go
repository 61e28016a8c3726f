package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// searchFake is the fake engine with chat.Engine's Search: substring
// matches over its history, newest first.
type searchFake struct{ *fakeClient }

func (s searchFake) Search(_ context.Context, group chat.GroupID, text string, limit int) ([]chat.SearchHit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hits []chat.SearchHit
	for _, g := range s.groups {
		if group != "" && g.ID != group {
			continue
		}
		for _, m := range s.history[g.ID] {
			if m.Kind == chat.KindText && strings.Contains(strings.ToLower(m.Body), strings.ToLower(text)) {
				hits = append([]chat.SearchHit{{Message: m, GroupName: g.Name}}, hits...)
			}
		}
	}
	return hits[:min(len(hits), limit)], nil
}

func searchDriver(t *testing.T, f *fakeClient, w, h int) *driver {
	d := newDriverWith(t, f, w, h)
	d.m.client = searchFake{f}
	return d
}

// TestFlowSearchView: /search opens its results in a view of their own
// (not in the timeline), Enter shows the chosen message highlighted in its
// group's timeline, loading older history until it is there; Esc closes.
func TestFlowSearchView(t *testing.T) {
	f := newFake()
	var long []chat.Message
	for i := range 300 {
		long = append(long, chat.Message{ID: chat.MessageID(fmt.Sprintf("r%03d", i)), Group: "g2", Kind: chat.KindText,
			Sender: "bob", SenderFP: fpBob, Body: fmt.Sprintf("ramen line %03d", i), SentAt: at("08:00"), Epoch: 3})
	}
	f.history["g2"] = long
	d := searchDriver(t, f, 100, 30)
	before := len(d.m.s.buffer("g1").entries)
	d.typing("/search good")
	d.key(tea.KeyEnter)
	if d.m.search == nil {
		t.Fatal("the search view did not open")
	}
	if len(d.fake.calls()) != 0 || len(d.m.s.buffer("g1").entries) != before {
		t.Errorf("the search ran as a command or wrote into the timeline: %q", d.fake.calls())
	}
	golden(t, "root_100x30_search", d.view())
	d.key(tea.KeyEsc)
	if d.m.search != nil || d.m.s.selected != "g1" {
		t.Fatal("esc did not close the search view")
	}

	// from home: every group; the hit deep in 日本語チーム's history
	d.send(selectGroupMsg{id: homeID})
	d.typing("/search line 005")
	d.key(tea.KeyEnter)
	if d.m.search == nil || len(d.m.search.hits) != 1 || !strings.Contains(d.view(), "all groups") {
		t.Fatalf("search from home:\n%s", d.view())
	}
	d.key(tea.KeyEnter)
	if d.m.search != nil || d.m.s.selected != "g2" {
		t.Fatalf("enter did not show the message: selected %q", d.m.s.selected)
	}
	v := d.view()
	if !strings.Contains(v, "ramen line 005") || !strings.Contains(v, "more lines below") {
		t.Errorf("the message is not shown in context:\n%s", v)
	}
	if b := d.m.s.buffer("g2"); b.find("r005") == nil || b.focusID != "r005" {
		t.Error("the older history was not loaded")
	}
}

// TestFlowSearchMovesAndFallsBack: the cursor moves through the results;
// an engine without Search runs /search as a command.
func TestFlowSearchMovesAndFallsBack(t *testing.T) {
	d := searchDriver(t, newFake(), 100, 30)
	d.typing("/search a")
	d.key(tea.KeyEnter)
	if d.m.search == nil || len(d.m.search.hits) < 3 {
		t.Fatalf("results: %+v", d.m.search)
	}
	d.key(tea.KeyDown)
	d.key(tea.KeyDown)
	d.typing("k")
	want := d.m.search.hits[1].Message.ID
	d.key(tea.KeyEnter)
	if b := d.m.s.buffer(d.m.s.selected); b.focusID != want {
		t.Errorf("shown %q, want %q", b.focusID, want)
	}

	plain := newDriver(t, 100, 30)
	plain.typing("/search good")
	plain.key(tea.KeyEnter)
	if plain.m.search != nil {
		t.Error("a search view without the engine's Search")
	}
	wantCalls(t, plain.fake, execCall{"g1", "/search good"})
}
