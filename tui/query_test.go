package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// keyRecorder records the keys a program gets; q quits.
type keyRecorder struct{ got *[]string }

func (r keyRecorder) Init() tea.Cmd { return nil }
func (r keyRecorder) View() string  { return "" }
func (r keyRecorder) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if k, ok := msg.(tea.KeyMsg); ok {
		if k.String() == "q" {
			return r, tea.Quit
		}
		*r.got = append(*r.got, k.String())
	}
	return r, nil
}

// TestLateReplyFilter: terminal answers that arrive after the wait, read
// by Bubble Tea's own input parser, do not become keys; keys typed around
// them do, and after the window nothing is filtered.
func TestLateReplyFilter(t *testing.T) {
	const late = "\x1b_Gi=31;OK\x1b\\\x1b[6;20;10t\x1b[?62;4c"
	run := func(input string, now func() time.Time) []string {
		var got []string
		p := tea.NewProgram(keyRecorder{&got}, tea.WithInput(strings.NewReader(input)),
			tea.WithOutput(new(strings.Builder)), tea.WithFilter(lateReplyFilter(now)))
		if _, err := p.Run(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	start := time.Now()
	clock := func() time.Time { return start }
	if got := fmt.Sprint(run("a"+late+"b q", clock)); got != "[a b  ]" {
		t.Fatalf("within the window: %s", got)
	}
	// the answer split across reads is dropped too
	filter := lateReplyFilter(clock)
	var dropped int
	for _, msg := range []tea.Msg{
		tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("_"), Alt: true},
		tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("Gi=31;OK")},
	} {
		if filter(nil, msg) == nil {
			dropped++
		}
	}
	if dropped != 2 {
		t.Fatalf("dropped %d of the answer's keys", dropped)
	}
	// a minute after start the same bytes are keys again
	calls := 0
	later := func() time.Time { // the filter's start, then a minute later
		calls++
		if calls == 1 {
			return start
		}
		return start.Add(time.Minute)
	}
	if got := fmt.Sprint(run(late+"q", later)); got != "[alt+_ Gi=31;OK alt+\\]" {
		t.Fatalf("after the window: %s", got)
	}
}
