package tui

import (
	"fmt"

	"github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/canopy-chat/canopy/chat"
)

// File transfers: a file message shows its file's line (name, size and,
// for images, dimensions: the engine's message text) and under it the
// transfer's state, with a bubbles progress bar while it is fetched.
//
// Images are not drawn inline: that needs the terminal's answer to a
// kitty-graphics or sixel query (never a guess from $TERM), and the query
// and its answer would have to pass through Bubble Tea's input reader; the
// file's line with its dimensions stands in, and /open shows it.

// handleTransfer keeps the session's view of a transfer and redraws the
// message that announced it; a transfer seen running that ends is
// flashed.
func (m *model) handleTransfer(tr chat.Transfer) tea.Cmd {
	if m.s.transfers == nil {
		m.s.transfers = map[chat.MessageID]chat.Transfer{}
	}
	old, had := m.s.transfers[tr.Message]
	m.s.transfers[tr.Message] = tr
	b := m.s.buffer(tr.Group)
	if e := b.find(tr.Message); e != nil {
		b.changed(e)
	}
	if !had || old.Status == tr.Status || tr.Own {
		return nil
	}
	name := sanitize(tr.File.Name, false)
	switch tr.Status {
	case chat.TransferDone:
		return m.flash("received "+name+" → "+sanitize(tr.Path, false), chat.NoticeInfo)
	case chat.TransferFailed:
		return m.flash(name+": "+sanitize(tr.Err, false), chat.NoticeWarning)
	}
	return nil
}

// transferLine renders the state line under a file message (nil: none).
func transferLine(s *session, msg chat.Message, w int) []string {
	tr, ok := s.transfers[msg.ID]
	if !ok || w < 8 {
		return nil
	}
	st := s.st
	pct := 0.0
	if tr.Total > 0 {
		pct = float64(tr.Done) / float64(tr.Total)
	}
	switch tr.Status {
	case chat.TransferQueued, chat.TransferFetching, chat.TransferPaused:
		label := fmt.Sprintf(" %3d%% %s", int(pct*100), tr.Status)
		barW := w - len(label)
		if barW < 5 {
			return []string{st.dim.Render(truncate(label[1:], w))}
		}
		bar := progress.New(progress.WithSolidFill("6"), progress.WithoutPercentage(),
			progress.WithWidth(barW), progress.WithColorProfile(st.r.ColorProfile()))
		return []string{bar.ViewAs(pct) + st.dim.Render(label)}
	case chat.TransferOffered:
		return styled(st.dim, wrap("over the group's limit, not fetched · /transfers get #"+shortMsgID(tr.Message), w))
	case chat.TransferDone:
		if tr.Own {
			return nil
		}
		return styled(st.dim, wrap("saved: "+sanitize(tr.Path, false)+" · /open #"+shortMsgID(tr.Message), w))
	case chat.TransferFailed:
		return styled(st.notice[chat.NoticeWarning], wrap("not received: "+sanitize(tr.Err, false), w))
	case chat.TransferCanceled:
		return styled(st.dim, []string{"canceled"})
	}
	return nil
}

func styled(style lipgloss.Style, lines []string) []string {
	for i, l := range lines {
		lines[i] = style.Render(l)
	}
	return lines
}

func shortMsgID(id chat.MessageID) string {
	s := string(id)
	if len(s) > 8 {
		s = s[:8]
	}
	return sanitize(s, false)
}
