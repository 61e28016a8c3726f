package tui

import (
	"strings"
	"unicode/utf8"

	"github.com/canopy-chat/canopy/chat"
)

// DesktopNotify is the terminal escape sequence used for desktop
// notifications (WithDesktopNotify).
type DesktopNotify int

const (
	// NotifyOff sends no desktop notifications (the default).
	NotifyOff DesktopNotify = iota
	// NotifyOSC9 sends OSC 9 (iTerm2, Windows Terminal, WezTerm, kitty,
	// Ghostty, foot).
	NotifyOSC9
	// NotifyOSC777 sends OSC 777 ;notify (urxvt, foot, VTE terminals with
	// the notification patch, WezTerm).
	NotifyOSC777
)

// ParseDesktopNotify reads a --notify value: off, osc9 or osc777.
func ParseDesktopNotify(s string) (DesktopNotify, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "off", "none":
		return NotifyOff, true
	case "osc9", "9":
		return NotifyOSC9, true
	case "osc777", "777":
		return NotifyOSC777, true
	}
	return NotifyOff, false
}

// maxNotifyLen bounds a notification's text, in runes.
const maxNotifyLen = 120

// notificationText is what a desktop notification says about a mention:
// who and where, not the message itself, which a notification would show
// outside the terminal (on a locked screen, in a notification history).
func notificationText(m chat.Message, group string) (title, body string) {
	return "canopy", notifySafe(sanitize(m.Sender, false)) + " mentioned you in " + notifySafe(sanitize(group, false))
}

// notifySafe makes peer-chosen text safe inside an OSC string: no control
// characters (sanitize removed escape sequences; this also drops any that
// are left, and BEL/ST would end the sequence), no ';' (OSC 777 separates
// its fields with it, and ConEmu reads "OSC 9;<digit>;" as a command), and
// bounded.
func notifySafe(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == ';' || r == utf8.RuneError {
			continue
		}
		if n == maxNotifyLen {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// osc encodes a notification as the escape sequence of kind k ("" for
// NotifyOff). The text must have gone through notifySafe.
func (k DesktopNotify) osc(title, body string) string {
	switch k {
	case NotifyOSC9:
		// "OSC 9 ; text": text starting with a digit and ';' would be a
		// ConEmu command; notifySafe removed every ';'.
		return "\x1b]9;" + title + ": " + body + "\x1b\\"
	case NotifyOSC777:
		return "\x1b]777;notify;" + title + ";" + body + "\x1b\\"
	}
	return ""
}
