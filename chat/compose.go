package chat

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sending edits, reactions and typing notices (the receive side is in
// decisions.go, deliver). They use the application payload of appmsg.go:
//
//	edit      reply_to: the edited message; body: the new text
//	reaction  reply_to: the message;        body: the reaction
//	typing    no reply_to, empty body
//
// Commands pick their target message with an optional selector as the
// first argument:
//
//	^N   the Nth newest candidate (^1, the default, is the newest)
//	#ID  a message id (hex, as headless mode prints it) or a unique prefix
//	     of at least 4 hex digits among the recent messages
//
// For /edit the candidates are your own text messages, for /react every
// text message. Receivers apply an edit only when its sender wrote the
// message it targets, so /edit refuses anything else up front.

// targetWindow is how many recent messages selectors look at.
const targetWindow = 200

// maxReactionLen bounds a reaction (bytes of UTF-8).
const maxReactionLen = 64

// reactionAliases are the shortcodes /react understands.
var reactionAliases = map[string]string{
	"+1": "👍", "thumbsup": "👍", "-1": "👎", "thumbsdown": "👎",
	"heart": "❤️", "tada": "🎉", "joy": "😂", "laugh": "😂", "smile": "🙂",
	"eyes": "👀", "fire": "🔥", "100": "💯", "check": "✅", "x": "❌",
	"thinking": "🤔", "pray": "🙏", "rocket": "🚀", "wave": "👋",
}

// selector is a parsed target selector.
type selector struct {
	nth int    // ^N (1-based); 0 when id is set
	id  string // #ID, lower-case hex
}

// parseSelector reads a selector word; ok is false when s is not one.
func parseSelector(s string) (selector, bool) {
	switch {
	case strings.HasPrefix(s, "^"):
		n, err := strconv.Atoi(s[1:])
		if err != nil || n < 1 || n > targetWindow {
			return selector{}, false
		}
		return selector{nth: n}, true
	case strings.HasPrefix(s, "#"):
		h := strings.ToLower(s[1:])
		if len(h) < 4 || len(h) > 2*maxAppIDLen {
			return selector{}, false
		}
		for _, c := range h {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return selector{}, false
			}
		}
		return selector{id: h}, true
	}
	return selector{}, false
}

// splitSelector splits an optional leading selector off a command's
// argument text.
func splitSelector(rest string) (selector, string) {
	word, after, _ := strings.Cut(rest, " ")
	if sel, ok := parseSelector(word); ok {
		return sel, strings.TrimSpace(after)
	}
	return selector{nth: 1}, rest
}

// findTarget resolves a selector: ^N counts among the group's recent
// messages that pass keep (what names them in errors, plural); #ID finds
// any message, also one that keep rejects or one older than the window,
// so that callers can say why it does not qualify.
func (e *Engine) findTarget(g *group, sel selector, what string, keep func(Message) bool) (Message, error) {
	recent := e.History(g.gid, "", targetWindow)
	if sel.id == "" {
		n := sel.nth
		for i := len(recent) - 1; i >= 0; i-- {
			if !keep(recent[i]) {
				continue
			}
			if n--; n == 0 {
				return recent[i], nil
			}
		}
		if sel.nth == 1 {
			return Message{}, fmt.Errorf("no %s to pick", what)
		}
		return Message{}, fmt.Errorf("there are fewer than %d recent %s", sel.nth, what)
	}
	var match []Message
	for _, m := range recent {
		if m.Kind != KindSystem && strings.HasPrefix(string(m.ID), sel.id) {
			match = append(match, m)
		}
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(match) > 1:
		return Message{}, fmt.Errorf("#%s matches %d messages; give more of the id", sel.id, len(match))
	}
	if raw, err := hex.DecodeString(sel.id); err == nil && len(raw) > 0 {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		if r, err := e.db.Message(ctx, g.id, raw); err == nil {
			return e.messageFromRow(g, r), nil
		}
	}
	return Message{}, fmt.Errorf("no message #%s in this group", sel.id)
}

// edit runs /edit [^N|#ID] TEXT.
func (e *Engine) edit(ctx context.Context, g *group, rest string) (Result, error) {
	const usage = "usage: /edit [^N|#ID] TEXT (^1, the default, is your last message)"
	sel, text := splitSelector(rest)
	if strings.TrimSpace(text) == "" {
		return Result{}, errors.New(usage)
	}
	if len(text) > maxTextLen {
		return Result{}, fmt.Errorf("message too long (%d bytes, at most %d)", len(text), maxTextLen)
	}
	target, err := e.findTarget(g, sel, "messages of yours", func(m Message) bool { return m.Own && m.Kind == KindText })
	if err != nil {
		return Result{}, err
	}
	switch {
	case !target.Own:
		return Result{}, errors.New("you can only edit your own messages")
	case target.Kind != KindText:
		return Result{}, errors.New("only text messages can be edited")
	case target.Body == text:
		return Result{}, errors.New("the message already says that")
	}
	tid, err := hex.DecodeString(string(target.ID))
	if err != nil {
		return Result{}, err
	}
	// An edit goes through the outbox like messages and reactions (kind
	// outEdit, without a timeline row of its own): held while proposals
	// wait for their commit (RFC 9420 §12.4) and sent after it, kept
	// across a restart, and settled when a member's receipt arrives.
	var ferr error
	derr := g.do(ctx, func() {
		// Check again on the loop: the message may be gone (deleted,
		// expired) since the history was read.
		row, err := e.db.Message(g.ctx, g.id, tid)
		if err != nil || !(appKind(row.Kind) == appText && len(row.Sender) > 0 && string(row.Sender) == string(e.id.id)) {
			ferr = errors.New("that message is gone")
			return
		}
		sent, err := g.send(appEdit, []byte(text), tid)
		if err != nil {
			ferr = err
			return
		}
		// Receivers apply the edit to their copy; apply it to ours.
		if ferr = e.db.EditMessage(g.ctx, g.id, tid, text, nil); ferr != nil {
			return
		}
		e.emit(MessageEvent{Message: sent})
	})
	if derr != nil {
		return Result{}, derr
	}
	return Result{}, ferr
}

// react runs /react [^N|#ID] EMOJI.
func (e *Engine) react(ctx context.Context, g *group, rest string) (Result, error) {
	const usage = "usage: /react [^N|#ID] EMOJI (^1, the default, is the newest message of someone else)"
	sel, emoji := splitSelector(rest)
	emoji, err := normalizeReaction(emoji)
	if err != nil {
		return Result{}, fmt.Errorf("%v; %s", err, usage)
	}
	// ^N counts the messages of others: a reaction answers someone, and
	// the newest message is often one's own. #ID can pick any message.
	target, err := e.findTarget(g, sel, "messages of others", func(m Message) bool { return m.Kind == KindText && !m.Own })
	if err != nil {
		return Result{}, err
	}
	if target.Kind != KindText {
		return Result{}, errors.New("only text messages take reactions")
	}
	for _, m := range e.History(g.gid, "", targetWindow) {
		if m.Kind == KindReaction && m.Own && m.ReplyTo == target.ID && m.Body == emoji {
			return Result{}, fmt.Errorf("you already reacted %s to that message", emoji)
		}
	}
	tid, err := hex.DecodeString(string(target.ID))
	if err != nil {
		return Result{}, err
	}
	var ferr error
	if derr := g.do(ctx, func() { _, ferr = g.send(appReaction, []byte(emoji), tid) }); derr != nil {
		return Result{}, derr
	}
	return Result{}, ferr
}

// normalizeReaction checks a reaction and expands :shortcodes:.
func normalizeReaction(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("no reaction given")
	}
	if alias, ok := reactionAliases[strings.ToLower(strings.Trim(s, ":"))]; ok {
		return alias, nil
	}
	if len(s) > maxReactionLen || utf8.RuneCountInString(s) > 16 {
		return "", errors.New("a reaction is one short emoji or word")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return "", errors.New("a reaction is one short emoji or word")
		}
	}
	return s, nil
}

// Typing implements Client: it tells the group's members that the user is
// typing. The notice is not stored (neither here nor by the receivers) and
// not retried; front ends throttle how often they call it.
func (e *Engine) Typing(ctx context.Context, gid GroupID) error {
	g, err := e.needGroup(gid)
	if err != nil {
		return err
	}
	var ferr error
	if derr := g.do(ctx, func() {
		if g.closed || g.m == nil || g.meta.Leaving || !g.canSendNow() {
			return // nobody to tell, or not now: a typing notice is best effort
		}
		_, ferr = g.send(appTyping, nil, nil)
	}); derr != nil {
		return derr
	}
	return ferr
}
