package tui

import (
	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// Component is one pane of the screen (soft-serve's common.Component): a
// tea.Model that renders into exactly the width and height it was given.
// Components read the shared session and report what they want changed
// through messages, which the root model acts on.
type Component interface {
	tea.Model
	SetSize(width, height int)
}

var (
	_ Component = (*groupList)(nil)
	_ Component = (*timeline)(nil)
	_ Component = (*memberPanel)(nil)
	_ Component = (*composer)(nil)
	_ Component = (*statusBar)(nil)
	_ Component = (*helpView)(nil)
)

// Messages from components to the root model.
type (
	// selectGroupMsg asks the root to show a group.
	selectGroupMsg struct {
		id    chat.GroupID
		focus bool // and move the focus to the composer
	}
	// composeMsg puts text into the composer and focuses it.
	composeMsg struct {
		text    string
		replace bool // replace the composer's content instead of inserting
	}
	// loadOlderMsg asks for the previous page of a group's history.
	loadOlderMsg struct{ group chat.GroupID }
)

func cmdOf(msg tea.Msg) tea.Cmd { return func() tea.Msg { return msg } }
