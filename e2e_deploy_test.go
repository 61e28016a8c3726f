package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/chat"
	ma "github.com/multiformats/go-multiaddr"
)

// End-to-end tests of deployment: the real binary, on 127.0.0.1.

// TestE2ERelayAddressInUse: a second `canopy relay` given the port of a
// running one exits with "address in use" instead of sharing the port
// (SO_REUSEPORT) and splitting the connections with it.
func TestE2ERelayAddressInUse(t *testing.T) {
	bin := canopyBinary(t)
	data := t.TempDir()
	first := startRelay(t, bin, filepath.Join(data, "relay1"))
	addr, _ := ma.SplitFunc(ma.StringCast(first), func(c ma.Component) bool { return c.Protocol().Code == ma.P_P2P })
	cmd := exec.Command(bin, "relay", "--listen", addr.String(), "--data", filepath.Join(data, "relay2"), "--metrics", "")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(e2eWait):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the second relay on %s kept running:\n%s", addr, out)
	}
	if err == nil || !strings.Contains(string(out), "address in use") || !strings.Contains(string(out), addr.String()) {
		t.Fatalf("second relay on %s: err %v, output:\n%s", addr, err, out)
	}
}

// TestE2ERestartKeepsPortsAndCard: a profile listens on the same ports
// after a restart, so the card bob handed out before the restart still
// reaches him: alice, who knows nothing but that old card (no relay, no
// mDNS), invites him and they chat. The card also carries the circuit
// address through bob's relay, which does not depend on his ports at all.
func TestE2ERestartKeepsPortsAndCard(t *testing.T) {
	bin := canopyBinary(t)
	data := t.TempDir()
	relay := startRelay(t, bin, filepath.Join(data, "relay"))
	relayID := relay[strings.LastIndex(relay, "/")+1:]

	bob := startPeer(t, bin, data, "bob", "--bootstrap", relay)
	oldCard := bob.card()
	before, err := chat.ParseCard(oldCard)
	if err != nil {
		t.Fatal(err)
	}
	var direct, circuit []string
	for _, a := range before.Addrs {
		if strings.Contains(a.String(), "/p2p-circuit") {
			circuit = append(circuit, a.String())
		} else {
			direct = append(direct, a.String())
		}
	}
	if len(direct) == 0 || len(circuit) == 0 || !strings.Contains(circuit[0], "/p2p/"+relayID+"/p2p-circuit") {
		t.Fatalf("card addresses %v: want direct ones and a circuit through the relay %s", before.Addrs, relayID)
	}
	bob.quit()

	bob = startPeer(t, bin, data, "bob", "--bootstrap", relay)
	after, err := chat.ParseCard(bob.card())
	if err != nil {
		t.Fatal(err)
	}
	var again []string
	for _, a := range after.Addrs {
		if !strings.Contains(a.String(), "/p2p-circuit") {
			again = append(again, a.String())
		}
	}
	if strings.Join(again, " ") != strings.Join(direct, " ") {
		t.Fatalf("after a restart bob listens on %v, before on %v", again, direct)
	}

	alice := startPeer(t, bin, data, "alice")
	g := alice.must("/create oldcard " + oldCard).group()
	bob.wait("invitation through the old card", func(e *jev) bool { return e.Type == "invitation" })
	if got := bob.must("/accept").group(); got != g {
		t.Fatalf("joined %q, want %q", got, g)
	}
	bob.must("hello from the restarted bob")
	alice.wait("bob's message", isMsg(g, "hello from the restarted bob"))
	alice.quit()
	bob.quit()
}

// TestE2EOfflineInviteeNamedByNick: inviting from the card of a peer that
// is offline (and has no relay) fails with an error naming the nick on the
// card, not a short peer id.
func TestE2EOfflineInviteeNamedByNick(t *testing.T) {
	bin := canopyBinary(t)
	data := t.TempDir()
	out, err := exec.Command(bin, "id", "--data", data, "--profile", "bob", "--nick", "bobby", "--compact").Output()
	if err != nil {
		t.Fatal(err)
	}
	card := strings.TrimSpace(string(out))
	alice := startPeer(t, bin, data, "alice")
	r := alice.do("/create nobody " + card)
	if r.OK || !strings.Contains(r.Error, "KeyPackage of bobby") {
		t.Fatalf("inviting an offline peer: %s", r.raw)
	}
	alice.quit()
}

// TestE2EKeptPortTaken: when another program holds a port the profile
// keeps, canopy does not start on other ports (its card would be stale): it
// exits with a message that says what to do, and the listen file is left
// as it was.
func TestE2EKeptPortTaken(t *testing.T) {
	bin := canopyBinary(t)
	data := t.TempDir()
	bob := startPeer(t, bin, data, "bob")
	c, err := chat.ParseCard(bob.card())
	if err != nil {
		t.Fatal(err)
	}
	bob.quit()
	listenFile := filepath.Join(data, "canopy", "bob", chat.ListenFileName)
	before, err := os.ReadFile(listenFile)
	if err != nil {
		t.Fatal(err)
	}
	var tcpAddr string
	for _, a := range c.Addrs {
		if v, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			ip, _ := a.ValueForProtocol(ma.P_IP4)
			tcpAddr = net.JoinHostPort(ip, v)
			break
		}
	}
	other, err := net.Listen("tcp4", tcpAddr)
	if err != nil {
		t.Fatalf("taking bob's port %s: %v", tcpAddr, err)
	}
	defer other.Close()
	out, err := exec.Command(bin, "headless", "--data", data, "--profile", "bob", "--listen", e2eListen, "--no-mdns").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "address in use") || !strings.Contains(string(out), "keeps its listen ports") || !strings.Contains(string(out), listenFile) {
		t.Fatalf("bob on a taken kept port: err %v, output:\n%s", err, out)
	}
	if after, _ := os.ReadFile(listenFile); string(after) != string(before) {
		t.Fatalf("listen file changed from %q to %q", before, after)
	}
}
