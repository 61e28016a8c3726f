package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// groupPQ reads the suite fields of a headless group event.
func (e *jev) groupPQ() (pq bool, suite uint16, name string) {
	var g struct {
		PQ    bool   `json:"pq"`
		Suite uint16 `json:"cipher_suite"`
		Name  string `json:"name"`
	}
	_ = json.Unmarshal(e.RawGroup, &g)
	return g.PQ, g.Suite, g.Name
}

func isPQGroup(id string) func(*jev) bool {
	return func(e *jev) bool {
		if e.Type != "group" || e.group() != id {
			return false
		}
		pq, suite, _ := e.groupPQ()
		return pq && suite == 0x004D
	}
}

// TestE2EPostQuantum runs the real binary in headless mode: a --pq group of
// three is created and its members chat; then a suite-1 group of the same
// three is moved to the X-Wing suite with /reinit --pq, the others join the
// successor without /accept, and the three chat there.
func TestE2EPostQuantum(t *testing.T) {
	bin := canopyBinary(t)
	data := t.TempDir()
	alice := startPeer(t, bin, data, "alice")
	bob := startPeer(t, bin, data, "bob")
	carol := startPeer(t, bin, data, "carol")

	res := alice.must("/create vault --pq " + bob.card() + " " + carol.card())
	vault := res.group()
	if vault == "" || !strings.Contains(res.Text, "post-quantum") {
		t.Fatalf("create --pq: %s", res.raw)
	}
	for _, p := range []*peerProc{bob, carol} {
		p.wait("invitation", func(e *jev) bool { return e.Type == "invitation" })
		if got := p.must("/accept").group(); got != vault {
			t.Fatalf("%s joined %q, want %q", p.name, got, vault)
		}
	}
	for _, p := range []*peerProc{alice, bob, carol} {
		p.wait("three members", membersAre(vault, 3))
		p.wait("the group shown as post-quantum", isPQGroup(vault))
	}
	for _, p := range []*peerProc{alice, bob, carol} {
		p.must("pq hello from " + p.name)
	}
	for _, p := range []*peerProc{alice, bob, carol} {
		for _, from := range []string{"alice", "bob", "carol"} {
			p.wait("message from "+from, isMsg(vault, "pq hello from "+from))
		}
	}

	// ReInit of a suite-1 group.
	team := alice.must("/create team " + bob.card() + " " + carol.card()).group()
	for _, p := range []*peerProc{bob, carol} {
		p.wait("invitation to team", func(e *jev) bool { return e.Type == "invitation" && e.Invitation.GroupName == "team" })
		p.must("/accept team")
	}
	for _, p := range []*peerProc{alice, bob, carol} {
		p.wait("three members in team", membersAre(team, 3))
		if p.has(isPQGroup(team)) {
			t.Fatalf("%s: a plain group shown as post-quantum", p.name)
		}
	}
	res = alice.must("/reinit --pq")
	moved := res.group()
	if moved == "" || moved == team || !strings.Contains(res.Text, "post-quantum") {
		t.Fatalf("reinit: %s", res.raw)
	}
	for _, p := range []*peerProc{alice, bob, carol} {
		p.wait("the successor, post-quantum", isPQGroup(moved))
		p.wait("three members in the successor", membersAre(moved, 3))
		p.wait("the old group closed", func(e *jev) bool {
			if e.Type != "group" || e.group() != team {
				return false
			}
			_, _, _, left := e.groupView()
			return left
		})
	}
	for _, p := range []*peerProc{bob, carol} {
		if got := p.must("/switch " + moved).group(); got != moved {
			t.Fatalf("%s switched to %q", p.name, got)
		}
	}
	for _, p := range []*peerProc{alice, bob, carol} {
		p.must("moved hello from " + p.name)
	}
	for _, p := range []*peerProc{alice, bob, carol} {
		for _, from := range []string{"alice", "bob", "carol"} {
			p.wait("message from "+from+" after the move", isMsg(moved, "moved hello from "+from))
		}
	}
	for _, p := range []*peerProc{alice, bob, carol} {
		p.quit()
	}
}
