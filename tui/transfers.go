package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/canopy-chat/canopy/chat"
)

// File transfers: a file message shows its file's line (📎 name, size
// and, for images, dimensions; fileLine) and under it the transfer's
// state, with a bubbles progress bar while it is fetched.
//
// Received images are also drawn inline when the terminal speaks a
// graphics protocol (inlineimage.go); otherwise the file's line with its
// dimensions stands in, and /open shows the image.

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
	img := m.startInlineImage(tr)
	if !had || old.Status == tr.Status || tr.Own {
		return img
	}
	name := sanitize(tr.File.Name, false)
	switch tr.Status {
	case chat.TransferDone:
		return tea.Batch(img, m.flash("received "+name+" → "+sanitize(tr.Path, false), chat.NoticeInfo))
	case chat.TransferFailed:
		return m.flash(name+": "+sanitize(tr.Err, false), chat.NoticeWarning)
	}
	return img
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

// fileLine is a file message's line: name, size and, for images,
// dimensions (from the announcement, or measured once the file arrived).
func fileLine(s *session, m chat.Message) string {
	f := *m.File
	if tr, ok := s.transfers[m.ID]; ok && f.Width == 0 {
		f.Width, f.Height = tr.File.Width, tr.File.Height
	}
	line := "📎 " + sanitize(f.Name, false) + "  " + chat.FormatBytes(f.Size)
	if f.Width > 0 && f.Height > 0 {
		line += fmt.Sprintf("  %d×%d", f.Width, f.Height)
	}
	return line
}

// imageLines draws a message's loaded image (imagefit.go, kitty.go,
// sixelout.go), or nothing when there is none or it does not fit.
func imageLines(s *session, m chat.Message, w int) []string {
	im := s.images[m.ID]
	if im == nil || !im.ready || im.cols > w {
		return nil
	}
	switch {
	case im.kittyID != 0:
		return kittyPlaceholders(im.kittyID, im.cols, im.rows)
	case im.sixelID != 0:
		out := make([]string, im.rows)
		blank := strings.Repeat(" ", im.cols)
		for k := range out {
			out[k] = blank + sixelMarker(im.sixelID, k, im.rows)
		}
		return out
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
