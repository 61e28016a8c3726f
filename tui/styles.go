package tui

import (
	"hash/fnv"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/canopy-chat/canopy/chat"
)

// All styles of the TUI live here. Colours are the 16 ANSI colours, which
// follow the user's terminal theme, plus a palette of 256-colour mid tones for
// nicks that read on dark and light backgrounds alike. No adaptive colours are
// used, so the program never has to query the terminal for its background.
//
// Nothing in the layout depends on colour: focus, selection and marks are
// also drawn as characters, so the screen reads the same with NO_COLOR and in
// the golden tests (which render with the Ascii profile).

// Marks drawn in the UI. All are single-cell characters whose East Asian
// width is neutral, so they stay one cell wide in CJK locales too.
const (
	markPending   = "◌"
	markSent      = "✓"
	markDelivered = "✓✓"
	markFailed    = "✗"
	markVerified  = "✓"
	markKeyChange = "!"
	markSelected  = "›"
	markFocused   = "▸"
	markReply     = "↪"
)

// styles is the single place where the TUI's look is defined.
type styles struct {
	r *lipgloss.Renderer

	title, titleFocused lipgloss.Style // pane titles
	separator           lipgloss.Style // vertical and horizontal rules
	hint                lipgloss.Style // hint text on the rule above the composer
	hintActive          lipgloss.Style // the current completion candidate
	dim                 lipgloss.Style

	groupItem, groupSelected lipgloss.Style
	groupUnread              lipgloss.Style // group name with unread messages
	badge, mentionBadge      lipgloss.Style

	time, dateSep   lipgloss.Style
	unreadSep       lipgloss.Style // the "new messages" line
	found           lipgloss.Style // the message shown from the search view
	body, mention   lipgloss.Style
	system          lipgloss.Style // engine-written lines: joins, leaves, forks healed
	notice          [3]lipgloss.Style
	noticeMark      [3]lipgloss.Style
	deliv           [4]lipgloss.Style // delivery marks by chat.Delivery
	edited, deleted lipgloss.Style
	reply           lipgloss.Style

	memberVerified, memberKeyChanged, memberSelf, memberCursor lipgloss.Style
	warnBadge                                                  lipgloss.Style

	statusBar, statusNick, statusWarn, statusErr, statusKey lipgloss.Style

	helpBox, helpTitle, helpKey, helpSection lipgloss.Style

	prompt, placeholder lipgloss.Style

	// links: URLs in messages become OSC 8 hyperlinks (not with the
	// Ascii profile: NO_COLOR, dumb terminals, the golden tests)
	links bool

	nickPalette []lipgloss.Style
	ownNick     lipgloss.Style
}

// nickColours are 256-colour mid tones, chosen to be legible on both dark
// and light backgrounds and distinct from each other.
var nickColours = []string{"33", "37", "71", "106", "136", "166", "168", "134", "98", "67", "173", "30", "130", "161"}

func newStyles(r *lipgloss.Renderer) *styles {
	n := r.NewStyle
	s := &styles{r: r, links: r.ColorProfile() != termenv.Ascii}
	s.title = n().Bold(true).Foreground(lipgloss.Color("8"))
	s.titleFocused = n().Bold(true).Foreground(lipgloss.Color("6"))
	s.separator = n().Foreground(lipgloss.Color("8"))
	s.hint = n().Foreground(lipgloss.Color("8"))
	s.hintActive = n().Bold(true).Foreground(lipgloss.Color("6"))
	s.dim = n().Foreground(lipgloss.Color("8"))

	s.groupItem = n()
	s.groupSelected = n().Bold(true).Reverse(true)
	s.groupUnread = n().Bold(true)
	s.badge = n().Foreground(lipgloss.Color("6"))
	s.mentionBadge = n().Bold(true).Foreground(lipgloss.Color("3"))

	s.time = n().Foreground(lipgloss.Color("8"))
	s.dateSep = n().Foreground(lipgloss.Color("8"))
	s.unreadSep = n().Foreground(lipgloss.Color("1"))
	s.found = n().Reverse(true)
	s.body = n()
	s.mention = n().Bold(true).Foreground(lipgloss.Color("3"))
	s.system = n().Foreground(lipgloss.Color("8"))
	s.notice[chat.NoticeInfo] = n().Foreground(lipgloss.Color("8"))
	s.notice[chat.NoticeWarning] = n().Bold(true).Foreground(lipgloss.Color("3"))
	s.notice[chat.NoticeError] = n().Bold(true).Foreground(lipgloss.Color("1"))
	s.noticeMark = s.notice
	s.deliv[chat.Pending] = n().Foreground(lipgloss.Color("8"))
	s.deliv[chat.Sent] = n().Foreground(lipgloss.Color("8"))
	s.deliv[chat.Delivered] = n().Foreground(lipgloss.Color("2"))
	s.deliv[chat.Failed] = n().Bold(true).Foreground(lipgloss.Color("1"))
	s.edited = n().Foreground(lipgloss.Color("8"))
	s.deleted = n().Italic(true).Foreground(lipgloss.Color("8"))
	s.reply = n().Foreground(lipgloss.Color("8"))

	s.memberVerified = n().Foreground(lipgloss.Color("2"))
	s.memberKeyChanged = n().Bold(true).Foreground(lipgloss.Color("1"))
	s.memberSelf = n().Bold(true)
	s.memberCursor = n().Reverse(true)
	s.warnBadge = n().Bold(true).Foreground(lipgloss.Color("1"))

	s.statusBar = n().Foreground(lipgloss.Color("7")).Background(lipgloss.Color("0"))
	s.statusNick = n().Bold(true).Foreground(lipgloss.Color("0")).Background(lipgloss.Color("6"))
	s.statusWarn = n().Bold(true).Foreground(lipgloss.Color("3")).Background(lipgloss.Color("0"))
	s.statusErr = n().Bold(true).Foreground(lipgloss.Color("1")).Background(lipgloss.Color("0"))
	s.statusKey = n().Bold(true).Foreground(lipgloss.Color("6")).Background(lipgloss.Color("0"))

	s.helpBox = n().Border(lipgloss.RoundedBorder()).BorderForeground(lipgloss.Color("6")).Padding(0, 1)
	s.helpTitle = n().Bold(true)
	s.helpKey = n().Bold(true).Foreground(lipgloss.Color("6"))
	s.helpSection = n().Bold(true).Underline(true)

	s.prompt = n().Bold(true).Foreground(lipgloss.Color("6"))
	s.placeholder = n().Foreground(lipgloss.Color("8"))

	for _, c := range nickColours {
		s.nickPalette = append(s.nickPalette, n().Foreground(lipgloss.Color(c)))
	}
	s.ownNick = n().Bold(true)
	return s
}

// nick returns the style of a sender's name. The colour is derived from the
// signature-key fingerprint, so it is the same on every screen and survives
// nick changes; it falls back to the nick when no fingerprint is known.
func (s *styles) nick(fp, nick string, own bool) lipgloss.Style {
	if own {
		return s.ownNick
	}
	key := fp
	if key == "" {
		key = nick
	}
	return s.nickPalette[nickColourIndex(key)]
}

// nickColourIndex maps a key to a palette index with FNV-1a.
func nickColourIndex(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(nickColours)))
}
