package tui

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// directEvents adds two direct conversations to the fake's groups: one
// with unread messages, one whose peer's key changed.
func directEvents(d *driver) {
	d.events(
		chat.GroupEvent{Group: chat.GroupView{ID: "d1", Name: "bob", Direct: true, Peer: "bob", Members: 2, Unread: 1, LastAt: time.Unix(1700000000, 0)}},
		chat.GroupEvent{Group: chat.GroupView{ID: "d2", Name: "mallory", Direct: true, Peer: "mallory", PeerKeyChanged: true, Members: 2}},
	)
}

// Direct conversations are listed apart, below the groups under a
// "direct" heading, named after the peer ("!" when the key changed).
func TestGoldenGroupListDirect(t *testing.T) {
	for _, tc := range []struct {
		name string
		w, h int
		sel  chat.GroupID
	}{
		{"grouplist_22x9_direct", 22, 9, "g1"},
		// Scrolled down to the first direct conversation: its heading
		// stays on screen with it.
		{"grouplist_22x4_direct_scrolled", 22, 4, "d2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, 100, 30)
			directEvents(d)
			d.send(selectGroupMsg{id: tc.sel})
			d.m.groupList.SetSize(tc.w, tc.h)
			v := d.m.groupList.View()
			checkScreen(t, v, tc.w, tc.h)
			golden(t, tc.name, v)
		})
	}
}

// Keys move through the groups into the direct section, never onto the
// heading; a click on the heading selects nothing.
func TestDirectSectionNavigation(t *testing.T) {
	d := newDriver(t, 100, 30)
	directEvents(d)
	ids := d.m.s.entries()
	want := []chat.GroupID{homeID}
	for _, g := range d.m.s.groups {
		if !g.Direct {
			want = append(want, g.ID)
		}
	}
	want = append(want, "d2", "d1")
	if strings.Join(idStrings(ids), ",") != strings.Join(idStrings(want), ",") {
		t.Fatalf("entries %q, want %q", ids, want)
	}
	d.m.setFocus(focusGroups)
	last := want[len(want)-3] // the last ordinary group
	d.send(selectGroupMsg{id: last})
	d.key(tea.KeyDown)
	if d.m.s.selected != "d2" {
		t.Fatalf("Down from the last group selected %q, want the first direct conversation", d.m.s.selected)
	}
	d.m.groupList.SetSize(22, 20)
	d.m.groupList.offset = 0
	heading := len(want) - 2 + 1 // rows: title, entries before the section, heading
	if id, ok := d.m.groupList.rowAt(heading); ok {
		t.Fatalf("a click on the heading selected %q", id)
	}
	if id, ok := d.m.groupList.rowAt(heading + 1); !ok || id != "d2" {
		t.Fatalf("the row below the heading is %q, %v", id, ok)
	}
}

// A direct request reads as one, in the flash and on home.
func TestDirectInvitationText(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.events(chat.InvitationEvent{Invitation: chat.Invitation{ID: "inv-d1", GroupName: "bob", From: "bob", Direct: true}})
	d.send(selectGroupMsg{id: homeID})
	if v := d.view(); !strings.Contains(v, "bob wants to message you directly · /accept inv-d1") {
		t.Fatalf("home does not show the direct request:\n%s", v)
	}
}

func idStrings(ids []chat.GroupID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

// Tab completes /dm from the nearby peers, as /invite.
func TestDirectCompletion(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.events(chat.PeerEvent{Peer: chat.Peer{Nick: "dave", PeerID: "P-dave"}, Online: true})
	d.send(selectGroupMsg{id: homeID})
	d.typing("/dm da")
	d.key(tea.KeyTab)
	if got := d.m.composer.Value(); got != "/dm dave " {
		t.Errorf("dm completion %q", got)
	}
}
