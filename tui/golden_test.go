package tui

import (
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// Golden-file tests: each component, and the whole screen, rendered at fixed
// sizes from the fake engine's data (which has CJK and emoji in group names,
// nicks and messages). Regenerate with: go test ./tui -update

func TestGoldenRoot(t *testing.T) {
	for _, tc := range []struct {
		name string
		w, h int
		prep func(d *driver)
	}{
		{"root_100x30", 100, 30, nil},
		{"root_60x15", 60, 15, nil},
		{"root_80x24", 80, 24, nil},
		{"root_120x40", 120, 40, nil},
		{"root_100x30_help", 100, 30, func(d *driver) { d.typing("?") }},
		{"root_60x15_help", 60, 15, func(d *driver) { d.typing("?") }},
		{"root_100x30_home", 100, 30, func(d *driver) { d.send(selectGroupMsg{id: homeID}) }},
		{"root_60x15_home", 60, 15, func(d *driver) { d.send(selectGroupMsg{id: homeID}) }},
		{"root_45x12_narrow", 45, 12, nil},
		{"root_30x8_too_small", 30, 8, nil},
		{"root_100x30_completion", 100, 30, func(d *driver) { d.typing("/kick "); d.key(tea.KeyTab) }},
		{"root_60x15_multiline", 60, 15, func(d *driver) {
			d.paste("first line\nsecond line, 二行目\nthird line that is long enough to wrap at sixty columns")
		}},
		{"root_100x30_unread", 100, 30, func(d *driver) { d.send(selectGroupMsg{id: "g2"}) }},
		{"root_100x30_removed", 100, 30, func(d *driver) {
			d.events(chat.GroupEvent{Group: chat.GroupView{ID: "g1", Name: "general", Epoch: 13, Members: 3, Left: true, RemovedBy: "bob"}})
		}},
		{"root_100x30_keychanged", 100, 30, func(d *driver) {
			ms := d.fake.Members("g1")
			ms[2].KeyChanged = true
			d.events(chat.MembersEvent{Group: "g1", Members: ms})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, tc.w, tc.h)
			if tc.prep != nil {
				tc.prep(d)
			}
			golden(t, tc.name, d.view())
		})
	}
}

func TestGoldenGroupList(t *testing.T) {
	for _, tc := range []struct {
		name  string
		w, h  int
		focus bool
	}{
		{"grouplist_22x8", 22, 8, false},
		{"grouplist_22x8_focused", 22, 8, true},
		{"grouplist_14x4_scrolled", 14, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, 100, 30)
			if tc.focus {
				d.m.setFocus(focusGroups)
				d.send(selectGroupMsg{id: "g3"})
			}
			d.m.groupList.SetSize(tc.w, tc.h)
			v := d.m.groupList.View()
			checkScreen(t, v, tc.w, tc.h)
			golden(t, tc.name, v)
		})
	}
}

func TestGoldenTimeline(t *testing.T) {
	for _, tc := range []struct {
		name string
		w, h int
		prep func(d *driver)
	}{
		{"timeline_56x20", 56, 20, nil},
		{"timeline_44x12_scrolled", 44, 12, func(d *driver) { d.m.s.buffer("g1").fromBottom = 4 }},
		{"timeline_30x10_no_time_column", 30, 10, nil},
		{"timeline_home_56x14", 56, 14, func(d *driver) { d.send(selectGroupMsg{id: homeID}) }},
		// an image file without graphics: its line with name, size and
		// dimensions, then where it was saved
		{"timeline_56x8_image_file", 56, 8, func(d *driver) {
			d.events(chat.MessageEvent{Message: imageMessage()}, imageDone("/home/alice/dl/cat.png"))
		}},
		// dimensions the announcement lacked, measured on arrival
		{"timeline_56x8_image_measured", 56, 8, func(d *driver) {
			m := imageMessage()
			m.File.Width, m.File.Height = 0, 0
			done := imageDone("/home/alice/dl/cat.png")
			d.events(chat.MessageEvent{Message: m}, transferAt(chat.TransferFetching, 10), done)
		}},
		{"timeline_56x8_notices", 56, 8, func(d *driver) {
			d.events(
				chat.NoticeEvent{Group: "g1", Text: "fork healed: epoch 12 rolled back to the canonical branch", Level: chat.NoticeInfo},
				chat.NoticeEvent{Group: "g1", Text: "carol's key changed", Level: chat.NoticeWarning},
				chat.NoticeEvent{Group: "g1", Text: "could not reach the relay", Level: chat.NoticeError},
			)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, 100, 30)
			if tc.prep != nil {
				tc.prep(d)
			}
			d.m.timeline.SetSize(tc.w, tc.h)
			v := d.m.timeline.View()
			checkScreen(t, v, tc.w, tc.h)
			golden(t, tc.name, v)
		})
	}
}

func TestGoldenMembers(t *testing.T) {
	for _, tc := range []struct {
		name string
		w, h int
		prep func(d *driver)
	}{
		{"members_20x8", 20, 8, nil},
		{"members_24x6_focused_keychanged", 24, 6, func(d *driver) {
			ms := d.fake.Members("g1")
			ms[3].KeyChanged = true
			d.events(chat.MembersEvent{Group: "g1", Members: ms})
			d.m.setFocus(focusMembers)
			d.typing("j")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, 100, 30)
			if tc.prep != nil {
				tc.prep(d)
			}
			d.m.members.SetSize(tc.w, tc.h)
			v := d.m.members.View()
			checkScreen(t, v, tc.w, tc.h)
			golden(t, tc.name, v)
		})
	}
}

func TestGoldenComposer(t *testing.T) {
	d := newDriver(t, 100, 30)
	d.paste("first line\nsecond line, 二行目 🙂\nthird")
	d.m.composer.SetSize(40, 4)
	v := d.m.composer.View()
	checkScreen(t, v, 40, 3)
	golden(t, "composer_40x3", v)

	d.m.composer.SetValue("")
	d.m.composer.SetSize(40, 4)
	v = d.m.composer.View()
	checkScreen(t, v, 40, 1)
	golden(t, "composer_40x1_placeholder", v)
}

func TestGoldenStatusBar(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    int
		prep func(d *driver)
	}{
		{"statusbar_100", 100, nil},
		{"statusbar_60", 60, nil},
		{"statusbar_44", 44, nil},
		{"statusbar_60_flash", 60, func(d *driver) {
			d.events(chat.NoticeEvent{Text: "relay 12D3KooWRelay unreachable, retrying", Level: chat.NoticeWarning})
		}},
		{"statusbar_60_offline_public", 60, func(d *driver) {
			d.events(chat.StatusEvent{Status: chat.NetStatus{Reachability: "public"}})
		}},
		{"statusbar_80_no_relays_unknown", 80, func(d *driver) {
			d.events(chat.StatusEvent{Status: chat.NetStatus{Peers: 1, Reachability: "unknown"}})
		}},
		{"statusbar_80_relays_down", 80, func(d *driver) {
			d.events(chat.StatusEvent{Status: chat.NetStatus{Peers: 1, RelaysConfigured: 2, Reachability: "private"}})
		}},
		{"statusbar_100_backlog", 100, func(d *driver) {
			d.events(chat.StatusEvent{Status: chat.NetStatus{Peers: 9, Reachability: "private", Sending: 40, CatchingUp: 1200}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, 100, 30)
			if tc.prep != nil {
				tc.prep(d)
			}
			d.m.statusBar.SetSize(tc.w, 1)
			v := d.m.statusBar.View()
			checkScreen(t, v, tc.w, 1)
			golden(t, tc.name, v)
		})
	}
}

func TestGoldenHelp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		w, h   int
		scroll int
	}{
		{"help_98x27", 98, 27, 0},
		{"help_58x12", 58, 12, 0},
		{"help_58x12_scrolled", 58, 12, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, 100, 30)
			d.m.help.SetSize(tc.w, tc.h)
			d.m.help.scroll(tc.scroll)
			v := d.m.help.View()
			checkScreen(t, v, tc.w, min(tc.h, len(d.m.help.content(d.m.help.innerW()))+2))
			golden(t, tc.name, v)
		})
	}
}
