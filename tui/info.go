package tui

import (
	"strconv"
	"strings"

	"github.com/canopy-chat/canopy/chat"
)

// localCommands are the commands the TUI runs itself, listed with the
// engine's in the help and completion.
var localCommands = []chat.Command{
	{Name: "info", Args: "[^N|#ID]", Summary: "details of the newest (or Nth newest, or #ID) message: id, sender key, epoch, delivery"},
}

// messageInfo runs /info in the selected group: the details of one loaded
// message, as a local line in the timeline.
func (m *model) messageInfo(args string) {
	b := m.s.buffer(m.s.selected)
	if m.s.selected == homeID {
		b.addLocal(m.s.now(), "/info: open a group first", chat.NoticeError)
		return
	}
	e, err := pickEntry(b, strings.TrimSpace(args))
	if err != "" {
		b.addLocal(m.s.now(), "/info: "+err, chat.NoticeError)
		return
	}
	msg := e.msg
	var sb strings.Builder
	sb.WriteString("message #" + sanitize(string(msg.ID), false))
	if msg.Kind == chat.KindSystem {
		sb.WriteString("\nwritten by canopy (a membership or key change)")
	} else {
		who := sanitize(msg.Sender, false)
		if msg.Own {
			who += " (you)"
		}
		sb.WriteString("\nfrom " + who)
		if fp := sanitize(msg.SenderFP, false); fp != "" {
			sb.WriteString(", key fingerprint " + fp)
		}
	}
	if !msg.SentAt.IsZero() {
		sb.WriteString("\nsent " + msg.SentAt.In(m.s.loc).Format("Mon 2 Jan 2006 15:04:05 MST") + " (the sender's clock)")
	}
	sb.WriteString("\nepoch " + strconv.FormatUint(msg.Epoch, 10))
	if msg.ReplyTo != "" && msg.Kind == chat.KindText {
		sb.WriteString(", in reply to #" + sanitize(string(msg.ReplyTo), false))
	}
	switch {
	case e.deleted:
		sb.WriteString(", deleted")
	case e.edited:
		sb.WriteString(", edited")
	}
	if msg.Own && msg.Kind == chat.KindText {
		// The engine reports one state for the whole group, not one per
		// member.
		sb.WriteString("\ndelivery: " + msg.Delivery.String() + " (to the group as a whole)")
	}
	b.addLocal(m.s.now(), sb.String(), chat.NoticeInfo)
}

// pickEntry finds the message an /info argument names: "" or ^1 the
// newest, ^N the Nth newest, #ID (or a prefix of it) any loaded message.
func pickEntry(b *buffer, arg string) (*entry, string) {
	switch {
	case strings.HasPrefix(arg, "#"):
		prefix := strings.ToLower(arg[1:])
		if prefix == "" {
			return nil, "give a message id after #"
		}
		var found *entry
		for _, e := range b.entries {
			if !e.local && e.msg.ID != "" && strings.HasPrefix(strings.ToLower(string(e.msg.ID)), prefix) {
				if found != nil && found.msg.ID != e.msg.ID {
					return nil, "#" + sanitize(prefix, false) + " matches several messages; give more of the id"
				}
				found = e
			}
		}
		if found == nil {
			return nil, "no loaded message #" + sanitize(prefix, false) + " (scroll up to load older ones)"
		}
		return found, ""
	case arg == "" || strings.HasPrefix(arg, "^"):
		n := 1
		if arg != "" {
			v, err := strconv.Atoi(arg[1:])
			if err != nil || v < 1 {
				return nil, "usage: /info [^N|#ID]"
			}
			n = v
		}
		for i := len(b.entries) - 1; i >= 0; i-- {
			if e := b.entries[i]; !e.local && e.msg.ID != "" {
				if n--; n == 0 {
					return e, ""
				}
			}
		}
		return nil, "there is no such message loaded"
	}
	return nil, "usage: /info [^N|#ID]"
}
