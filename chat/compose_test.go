package chat

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/store"
)

func isKind(g GroupID, k Kind, body string, replyTo MessageID) func(Event) bool {
	return func(ev Event) bool {
		m, ok := ev.(MessageEvent)
		return ok && m.Message.Group == g && m.Message.Kind == k && m.Message.Body == body &&
			(replyTo == "" || m.Message.ReplyTo == replyTo)
	}
}

// idOf waits for p's copy of a text message and returns its id.
func (p *testPeer) idOf(g GroupID, body string) MessageID {
	p.t.Helper()
	return p.rec.wait(p.t, body, isMessage(g, body)).(MessageEvent).Message.ID
}

// historyBody is the stored text of a message in p's history.
func (p *testPeer) historyBody(g GroupID, id MessageID) (string, bool) {
	for _, m := range p.e.History(g, "", 200) {
		if m.ID == id {
			return m.Body, true
		}
	}
	return "", false
}

func (p *testPeer) runErr(g GroupID, line string) error {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	_, err := p.e.Run(ctx, g, line)
	return err
}

func twoMembers(t *testing.T, name string, aliceOpts ...engineOpt) (alice, bob *testPeer, g GroupID) {
	t.Helper()
	alice, bob = newPeer(t, "alice", aliceOpts...), newPeer(t, "bob")
	connect(t, alice, bob)
	g = alice.run("", "/create "+name+" "+bob.card()).Group
	bob.acceptInvitation()
	return alice, bob, g
}

// /edit changes one's own messages on every member (the last one by
// default, or one picked by ^N or #ID); /react reacts to the newest message
// or a picked one; Typing reaches the other member without being stored.
func TestSendEditReactTyping(t *testing.T) {
	alice, bob, g := twoMembers(t, "fun")

	alice.run(g, "helo world")
	id := bob.idOf(g, "helo world")
	if out := alice.run(g, "/edit hello world"); out.Text != "" {
		t.Errorf("/edit printed %q", out.Text)
	}
	ev := bob.rec.wait(t, "edit", isKind(g, KindEdit, "hello world", id)).(MessageEvent)
	if ev.Message.Sender != "alice" || ev.Message.Own {
		t.Errorf("edit event %+v", ev.Message)
	}
	alice.rec.wait(t, "own edit event", isKind(g, KindEdit, "hello world", id))
	waitFor(t, "edit stored by bob", func() bool { b, _ := bob.historyBody(g, id); return b == "hello world" })
	if b, _ := alice.historyBody(g, id); b != "hello world" {
		t.Errorf("alice's copy says %q", b)
	}

	// ^N and #ID pick older messages.
	// (one at a time: "newest" is the reader's arrival order)
	alice.run(g, "first")
	first := bob.idOf(g, "first")
	alice.run(g, "second")
	second := bob.idOf(g, "second")
	alice.run(g, "/edit ^2 first!")
	bob.rec.wait(t, "edit ^2", isKind(g, KindEdit, "first!", first))
	alice.run(g, "/edit #"+string(second)[:8]+" #2 second!")
	bob.rec.wait(t, "edit #ID", isKind(g, KindEdit, "#2 second!", second))

	// Reactions: to the newest message, then to a picked one.
	bob.run(g, "/react 👍")
	alice.rec.wait(t, "reaction", isKind(g, KindReaction, "👍", second))
	// bob's own newest message is not the default target: alice's is
	bob.run(g, "nice")
	alice.idOf(g, "nice")
	bob.run(g, "/react :heart:")
	alice.rec.wait(t, "reaction to the newest of others", isKind(g, KindReaction, "❤️", second))
	bob.run(g, "/react ^2 :tada:")
	alice.rec.wait(t, "reaction ^2", isKind(g, KindReaction, "🎉", first))
	if err := bob.runErr(g, "/react ^2 🎉"); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("second identical reaction: %v", err)
	}
	for _, bad := range []string{"/react", "/react two words", "/edit", "/edit ^1   "} {
		if err := bob.runErr(g, bad); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%q: %v", bad, err)
		}
	}

	// Typing: an event on the other side, nothing in anybody's history.
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := bob.e.Typing(ctx, g); err != nil {
		t.Fatal(err)
	}
	ty := alice.rec.wait(t, "typing", func(ev Event) bool {
		m, ok := ev.(MessageEvent)
		return ok && m.Message.Group == g && m.Message.Kind == KindTyping
	}).(MessageEvent)
	if ty.Message.Sender != "bob" {
		t.Errorf("typing from %q", ty.Message.Sender)
	}
	bob.run(g, "after typing")
	alice.idOf(g, "after typing")
	for _, p := range []*testPeer{alice, bob} {
		for _, m := range p.e.History(g, "", 200) {
			if m.Kind == KindTyping || m.Kind == KindEdit {
				t.Errorf("%s's history holds a %s message: %+v", p.e.nick(), m.Kind, m)
			}
		}
	}
	if err := alice.e.Typing(ctx, ""); err == nil {
		t.Error("Typing without a group succeeded")
	}
}

// Only one's own messages can be edited: the command refuses, and a
// receiver ignores an edit whose sender did not write the target.
func TestEditOthersRejected(t *testing.T) {
	aliceLog := newLogWatch()
	alice, bob, g := twoMembers(t, "strict", aliceLog.option())
	alice.run(g, "alice's words")
	id := bob.idOf(g, "alice's words")

	if err := bob.runErr(g, "/edit #"+string(id)+" bob's words"); err == nil || !strings.Contains(err.Error(), "your own") {
		t.Fatalf("editing alice's message: %v", err)
	}
	if err := bob.runErr(g, "/edit bob's words"); err == nil {
		t.Fatal("/edit with no own message succeeded")
	}

	// A forged edit straight from bob's engine, past the command's check.
	raw, _ := hex.DecodeString(string(id))
	gb := bob.e.group(g)
	var serr error
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := gb.do(ctx, func() { _, serr = gb.send(appEdit, []byte("forged"), raw) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	// The barrier: alice's engine says it received the edit and ignored it.
	aliceLog.wait(t, "ignored an edit or deletion of another member's message")
	if alice.rec.has(isKind(g, KindEdit, "forged", "")) {
		t.Error("alice applied bob's edit of her message")
	}
	if b, _ := alice.historyBody(g, id); b != "alice's words" {
		t.Errorf("alice's message now says %q", b)
	}
}

func TestSelectorsAndReactions(t *testing.T) {
	for in, want := range map[string]selector{
		"^1": {nth: 1}, "^12": {nth: 12}, "#abcd": {id: "abcd"}, "#ABCDEF01": {id: "abcdef01"},
	} {
		if got, ok := parseSelector(in); !ok || got != want {
			t.Errorf("parseSelector(%q) = %+v, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "^", "^0", "^-1", "^x", "^999", "#", "#abc", "#abcg", "#1234 ", "hello", "1"} {
		if got, ok := parseSelector(in); ok {
			t.Errorf("parseSelector(%q) = %+v", in, got)
		}
	}
	if sel, rest := splitSelector("^2 fixed text"); sel.nth != 2 || rest != "fixed text" {
		t.Errorf("splitSelector: %+v %q", sel, rest)
	}
	if sel, rest := splitSelector("2 cats"); sel.nth != 1 || rest != "2 cats" {
		t.Errorf("splitSelector without selector: %+v %q", sel, rest)
	}
	for in, want := range map[string]string{"👍": "👍", ":+1:": "👍", "tada": "🎉", ":HEART:": "❤️", "ok": "ok", "👨‍👩‍👧‍👦": "👨‍👩‍👧‍👦"} {
		if got, err := normalizeReaction(in); err != nil || got != want {
			t.Errorf("normalizeReaction(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "two words", "a\x01", strings.Repeat("x", 17), "\xff"} {
		if got, err := normalizeReaction(in); err == nil {
			t.Errorf("normalizeReaction(%q) = %q", in, got)
		}
	}
}

// An edit goes through the outbox: one held while proposals wait for
// their commit is kept across a restart and sent by the restarted engine,
// and its entry is settled when the other member's receipt arrives.
func TestEditSurvivesRestart(t *testing.T) {
	alice, bob, aliceOpts, g := restartablePair(t, "keep")
	alice.run(g, "teh typo")
	id := bob.idOf(g, "teh typo")
	raw, _ := hex.DecodeString(string(id))
	ga := alice.e.group(g)
	waitFor(t, "alice's message settled", func() bool { return len(alice.outbox(t, raw)) == 0 })

	// Proposals pending (as if one had just arrived): the edit is held.
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := ga.do(ctx, func() { ga.intents.proposals = 1 }); err != nil {
		t.Fatal(err)
	}
	alice.run(g, "/edit the typo")
	if b, _ := alice.historyBody(g, id); b != "the typo" {
		t.Fatalf("alice's copy says %q", b)
	}
	held := alice.outbox(t, nil)
	if len(held) != 1 || held[0].Kind != outEdit || len(held[0].Wire) != 0 {
		t.Fatalf("outbox before quitting: %+v", held)
	}
	if err := alice.e.Close(); err != nil {
		t.Fatal(err)
	}
	if bob.rec.has(isKind(g, KindEdit, "the typo", id)) {
		t.Fatal("a held edit was sent")
	}

	alice2 := newPeer(t, "alice", aliceOpts)
	connect(t, alice2, bob)
	bob.rec.wait(t, "edit sent after the restart", isKind(g, KindEdit, "the typo", id))
	waitFor(t, "edit stored by bob", func() bool { b, _ := bob.historyBody(g, id); return b == "the typo" })
	waitFor(t, "edit settled by bob's receipt", func() bool { return len(alice2.outbox(t, nil)) == 0 })
	if b, _ := alice2.historyBody(g, id); b != "the typo" {
		t.Errorf("alice's copy after the restart says %q", b)
	}
}

// outbox lists p's outbox entries (id: only that one).
func (p *testPeer) outbox(t *testing.T, id []byte) []store.OutboxEntry {
	t.Helper()
	all, err := p.e.db.Outbox(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if id == nil {
		return all
	}
	var out []store.OutboxEntry
	for _, e := range all {
		if bytes.Equal(e.ID, id) {
			out = append(out, e)
		}
	}
	return out
}
