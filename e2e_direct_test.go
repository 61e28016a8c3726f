package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// directOf reads the direct-conversation fields of a group event.
func (e *jev) directOf() (id string, direct bool, peer, name string) {
	var g struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Direct bool   `json:"direct"`
		Peer   string `json:"peer"`
	}
	_ = json.Unmarshal(e.RawGroup, &g)
	return g.ID, g.Direct, g.Peer, g.Name
}

// /dm with the real binary, headless: bob gets a direct request, both
// streams mark the group direct and name the other, messages flow, and an
// /invite into it fails with the plain message.
func TestE2EHeadlessDirect(t *testing.T) {
	bin := canopyBinary(t)
	data := t.TempDir()
	alice := startPeer(t, bin, data, "alice")
	bob := startPeer(t, bin, data, "bob")
	carol := startPeer(t, bin, data, "carol")

	g := alice.must("/dm " + bob.card()).group()
	if g == "" {
		t.Fatal("/dm named no group")
	}
	inv := bob.wait("direct request", func(e *jev) bool { return e.Type == "invitation" })
	if !strings.Contains(inv.raw, `"direct":true`) || inv.Invitation.GroupName != "alice" {
		t.Fatalf("bob's invitation: %s", inv.raw)
	}
	if got := bob.must("/accept").group(); got != g {
		t.Fatalf("bob joined %q, want %q", got, g)
	}
	for _, c := range []struct {
		p    *peerProc
		peer string
	}{{alice, "bob"}, {bob, "alice"}} {
		c.p.wait("the direct group named after "+c.peer, func(e *jev) bool {
			if e.Type != "group" {
				return false
			}
			id, direct, peer, name := e.directOf()
			return id == g && direct && peer == c.peer && name == c.peer
		})
	}
	alice.must("hello bob")
	bob.wait("alice's message", isMsg(g, "hello bob"))
	if got := alice.must("/dm bob").group(); got != g {
		t.Fatalf("a second /dm opened %q, want %q", got, g)
	}
	r := alice.do("/invite " + carol.card())
	if r.OK || !strings.Contains(r.Error, "this is a direct conversation; /create a group to add people") {
		t.Fatalf("/invite into a direct conversation: %s", r.raw)
	}
}
