package tui

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

// TestFlowEndInComposerJumpsToNewest: the "· End" hint of a scrolled
// timeline works with the composer focused. End first moves the cursor to
// the end of the line (editing keeps working); at the end already, it
// jumps to the newest message. Home likewise goes to the oldest;
// ctrl+end/ctrl+home go there at once.
func TestFlowEndInComposerJumpsToNewest(t *testing.T) {
	d := newDriver(t, 100, 15)
	b := d.m.s.buffer("g1")
	d.key(tea.KeyPgUp)
	if b.fromBottom == 0 {
		t.Fatal("PgUp did not scroll")
	}
	if v := d.view(); !strings.Contains(v, "more lines below · End") {
		t.Fatalf("no End hint:\n%s", v)
	}
	d.typing("draft")
	d.key(tea.KeyLeft)
	d.key(tea.KeyLeft)
	scrolled := b.fromBottom
	d.key(tea.KeyEnd) // the cursor goes to the end of the line
	if b.fromBottom != scrolled {
		t.Fatalf("End with the cursor inside the line scrolled: %d", b.fromBottom)
	}
	d.typing("!")
	if got := d.m.composer.Value(); got != "draft!" {
		t.Fatalf("End did not move the cursor to the end: %q", got)
	}
	d.key(tea.KeyEnd)
	if b.fromBottom != 0 {
		t.Errorf("End at the end of the line: fromBottom %d, want 0", b.fromBottom)
	}
	if v := d.view(); strings.Contains(v, "more lines below") {
		t.Errorf("still scrolled:\n%s", v)
	}
	d.key(tea.KeyHome) // cursor to the start
	if b.fromBottom != 0 {
		t.Fatalf("Home inside the line scrolled: %d", b.fromBottom)
	}
	d.key(tea.KeyHome)
	if b.fromBottom == 0 || !strings.Contains(d.view(), "start of history") {
		t.Errorf("Home at the start of the line did not go to the oldest: %d\n%s", b.fromBottom, d.view())
	}
	d.key(tea.KeyCtrlEnd)
	if b.fromBottom != 0 {
		t.Errorf("ctrl+end: fromBottom %d", b.fromBottom)
	}
	d.key(tea.KeyCtrlHome)
	if b.fromBottom == 0 {
		t.Error("ctrl+home did not scroll")
	}
	if got := d.m.composer.Value(); got != "draft!" {
		t.Errorf("the draft changed: %q", got)
	}
}
