package chat

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Journeys 1 and 2: create a group with a pasted card, the invitee accepts,
// both see each other; messages flow both ways and own messages go
// pending → sent → delivered.
func TestCreateInviteChat(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	connect(t, alice, bob)

	res := alice.run("", "/create team "+bob.card())
	g := res.Group
	if g == "" || !strings.Contains(res.Text, "bob") {
		t.Fatalf("create: %+v", res)
	}
	inv := bob.rec.wait(t, "invitation", isInvitation).(InvitationEvent)
	if inv.Invitation.GroupName != "team" || inv.Invitation.From != "alice" {
		t.Fatalf("invitation %+v", inv.Invitation)
	}
	if got := bob.run("", "/accept").Group; got != g {
		t.Fatalf("bob joined %s, want %s", got, g)
	}
	if inv := bob.e.Invitations(); len(inv) != 0 {
		t.Fatalf("invitations after /accept: %+v", inv)
	}
	if ms := bob.e.Members(g); !hasMember(ms, "alice") || !hasMember(ms, "bob") {
		t.Fatalf("bob sees members %v", memberNames(ms))
	}
	if ms := alice.e.Members(g); !hasMember(ms, "bob") {
		t.Fatalf("alice sees members %v", memberNames(ms))
	}

	start := time.Now()
	alice.run(g, "hello bob")
	ev := bob.rec.wait(t, "alice's message", isMessage(g, "hello bob")).(MessageEvent)
	t.Logf("delivery latency %v", time.Since(start))
	if ev.Message.Sender != "alice" || ev.Message.Own || ev.Message.SentAt.IsZero() || ev.Message.SenderFP == "" {
		t.Fatalf("bob got %+v", ev.Message)
	}
	own := alice.rec.wait(t, "own message", isMessage(g, "hello bob")).(MessageEvent)
	if !own.Message.Own || own.Message.Delivery != Pending {
		t.Fatalf("own message %+v", own.Message)
	}
	alice.rec.wait(t, "sent", func(ev Event) bool {
		d, ok := ev.(DeliveryEvent)
		return ok && d.ID == own.Message.ID && d.Delivery == Sent
	})
	alice.rec.wait(t, "delivered", func(ev Event) bool {
		d, ok := ev.(DeliveryEvent)
		return ok && d.ID == own.Message.ID && d.Delivery == Delivered
	})

	bob.run(g, "hi @alice")
	m := alice.rec.wait(t, "bob's reply", isMessage(g, "hi @alice")).(MessageEvent)
	if !m.Message.Mentions {
		t.Error("mention not flagged")
	}
	hist := alice.e.History(g, "", 10)
	var bodies []string
	for _, h := range hist {
		bodies = append(bodies, h.Body)
	}
	if len(hist) < 3 || hist[len(hist)-1].Body != "hi @alice" || !hist[len(hist)-2].Own {
		t.Fatalf("history %q", bodies)
	}
	if hist[len(hist)-2].Delivery != Delivered {
		t.Errorf("history delivery state %v", hist[len(hist)-2].Delivery)
	}
	if gv := alice.e.Groups(); len(gv) != 1 || gv[0].Members != 2 || gv[0].Unread == 0 {
		t.Errorf("groups %+v", gv)
	}
	alice.e.MarkRead(g)
	if gv := alice.e.Groups(); gv[0].Unread != 0 {
		t.Errorf("unread after MarkRead: %d", gv[0].Unread)
	}
}

// Journey 3: three members; one kicks another, who can no longer read; a
// member leaves by a Remove proposal another member commits.
func TestKickAndLeave(t *testing.T) {
	alice, bob, carol := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "carol")
	connect(t, alice, bob)
	connect(t, alice, carol)
	g := alice.run("", "/create trio "+bob.card()+" "+carol.card()).Group
	bob.acceptInvitation()
	carol.acceptInvitation()
	waitFor(t, "three members everywhere", func() bool {
		return len(alice.e.Members(g)) == 3 && len(bob.e.Members(g)) == 3 && len(carol.e.Members(g)) == 3
	})
	carol.run(g, "carol here")
	bob.rec.wait(t, "carol's message", isMessage(g, "carol here"))
	alice.rec.wait(t, "carol's message", isMessage(g, "carol here"))

	alice.run(g, "/kick carol")
	carol.rec.wait(t, "carol removed", isSystem(g, "removed you"))
	bob.rec.wait(t, "bob sees the kick", isSystem(g, "alice removed carol"))
	waitFor(t, "carol's group left", func() bool { return carol.e.Groups()[0].Left })
	if by := carol.e.Groups()[0].RemovedBy; by != "alice" {
		t.Errorf("carol's group: RemovedBy %q, want alice", by)
	}
	if _, err := carol.e.Run(context.Background(), g, "still here?"); err == nil {
		t.Error("kicked member could still send")
	}
	alice.run(g, "after the kick")
	bob.rec.wait(t, "message after kick", isMessage(g, "after the kick"))
	if carol.rec.has(isMessage(g, "after the kick")) {
		t.Fatal("kicked member read a message sent after the kick")
	}

	bob.run(g, "/leave")
	alice.rec.wait(t, "alice sees bob leave", isSystem(g, "bob left"))
	bob.rec.wait(t, "bob left", isSystem(g, "you left"))
	waitFor(t, "alice alone", func() bool { return len(alice.e.Members(g)) == 1 })
	waitFor(t, "bob's group left", func() bool { return bob.e.Groups()[0].Left })
	if by := bob.e.Groups()[0].RemovedBy; by != "" {
		t.Errorf("bob left on his own, but RemovedBy is %q", by)
	}
	if carol.rec.has(isMessage(g, "after the kick")) {
		t.Fatal("kicked member read a later message")
	}
}

// Journeys 7 and 8: safety numbers, verification marks, key rotation,
// search.
func TestVerifyUpdateSearch(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	connect(t, alice, bob)
	g := alice.run("", "/create pair "+bob.card()).Group
	bob.acceptInvitation()

	an := alice.run(g, "/verify bob").Text
	bn := bob.run(g, "/verify alice").Text
	num := SafetyNumber(alice.e.id.fp, bob.e.id.fp)
	if !strings.Contains(an, num) || !strings.Contains(bn, num) {
		t.Fatalf("safety numbers differ:\n%s\n%s", an, bn)
	}
	alice.run(g, "/verify bob confirm")
	for _, m := range alice.e.Members(g) {
		if m.Nick == "bob" && !m.Verified {
			t.Fatal("bob not marked verified")
		}
	}
	if !strings.Contains(alice.run(g, "/members").Text, "verified") {
		t.Error("/members lacks the verified mark")
	}

	before := alice.e.Groups()[0].Epoch
	bob.run(g, "/update")
	waitFor(t, "alice follows bob's update", func() bool { return alice.e.Groups()[0].Epoch == before+1 })
	alice.rec.wait(t, "rotation line", isSystem(g, "bob rotated their keys"))
	alice.run(g, "the quick brown fox")
	bob.rec.wait(t, "message after update", isMessage(g, "the quick brown fox"))
	if out := bob.run(g, "/search brown"); !strings.Contains(out.Text, "quick brown fox") {
		t.Fatalf("search: %q", out.Text)
	}
	if out := bob.run(g, "/search zebra"); !strings.Contains(out.Text, "no messages") {
		t.Fatalf("search: %q", out.Text)
	}
	// Search, for front ends: structured hits that History can locate
	hits, err := bob.e.Search(context.Background(), g, "bro", 10)
	if err != nil || len(hits) != 1 || hits[0].Message.Body != "the quick brown fox" || hits[0].Message.Group != g ||
		hits[0].Message.Sender != "alice" || hits[0].GroupName != "pair" || hits[0].Message.ID == "" {
		t.Fatalf("Search: %+v, %v", hits, err)
	}
	if hits, err := bob.e.Search(context.Background(), "", "quick", 10); err != nil || len(hits) != 1 {
		t.Fatalf("Search in every group: %+v, %v", hits, err)
	}
	if _, err := bob.e.Search(context.Background(), "nope", "quick", 10); err == nil {
		t.Error("Search in an unknown group succeeded")
	}
}

// Journey 5: a member quits, the others chat, it restarts and gets what it
// missed from a peer (sync), in order, without duplicates.
func TestOfflineCatchUp(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	dir := t.TempDir()
	carolOpts := func(c *Config) { c.Store, c.ProfileDir = nil, dir }
	carol := newPeer(t, "carol", carolOpts)
	connect(t, alice, bob)
	connect(t, alice, carol)
	g := alice.run("", "/create trio "+bob.card()+" "+carol.card()).Group
	bob.acceptInvitation()
	carol.acceptInvitation()
	waitFor(t, "three members", func() bool { return len(carol.e.Members(g)) == 3 && len(alice.e.Members(g)) == 3 })
	alice.run(g, "before")
	carol.rec.wait(t, "message before quitting", isMessage(g, "before"))
	// Carol must know how to reach alice after a restart (her card).
	waitFor(t, "carol knows alice's address", func() bool {
		carol.e.mu.Lock()
		defer carol.e.mu.Unlock()
		ci := carol.e.contacts[alice.e.id.id]
		return ci != nil && len(ci.addrs) > 0
	})
	if err := carol.e.Close(); err != nil {
		t.Fatal(err)
	}

	var sent []string
	for i := range 5 {
		body := "missed " + string(rune('a'+i))
		if i%2 == 0 {
			alice.run(g, body)
		} else {
			bob.run(g, body)
		}
		sent = append(sent, body)
		// One conversation: each message is seen before the next is sent.
		bob.rec.wait(t, body, isMessage(g, body))
		alice.rec.wait(t, body, isMessage(g, body))
	}

	carol2 := newPeer(t, "carol", carolOpts)
	for _, body := range sent {
		carol2.rec.wait(t, "missed message "+body, isMessage(g, body))
	}
	hist := carol2.e.History(g, "", 50)
	var got []string
	seen := map[string]bool{}
	for _, m := range hist {
		if m.Kind != KindText {
			continue
		}
		if seen[m.Body] {
			t.Fatalf("duplicate %q in history", m.Body)
		}
		seen[m.Body] = true
		got = append(got, m.Body)
	}
	want := append([]string{"before"}, sent...)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("history %q, want %q", got, want)
	}
	// And carol is a full member again.
	carol2.run(g, "back")
	alice.rec.wait(t, "carol back", isMessage(g, "back"))
	bob.rec.wait(t, "carol back", isMessage(g, "back"))
}
