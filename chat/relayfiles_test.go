package chat

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/p2p"
)

func isKeptNotice(name string) func(Event) bool {
	return func(ev Event) bool {
		n, ok := ev.(NoticeEvent)
		return ok && strings.Contains(n.Text, name+" is kept on 1 of 1 relays")
	}
}

// TestFileKeptOnRelay: alice sends a file and closes at once, likely
// before her upload to the relay is through; at her next start it goes
// on from the note. Then, with alice gone, bob fetches the file from the
// relay, and it is the file.
func TestFileKeptOnRelay(t *testing.T) {
	relay, err := p2p.NewRelay(context.Background(), nil,
		p2p.RelayConfig{BlobDir: t.TempDir(), Circuit: p2p.CircuitLimits{AllowPrivateAddrs: true}},
		p2p.WithListenAddrs("/ip4/127.0.0.1/tcp/0"), p2p.WithMDNS(false), p2p.WithAutoNAT(false), p2p.WithHolePunching(false),
		p2p.WithLogger(testLogger(t, "relay")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	boot := relay.Node().Addrs()[0].String() + "/p2p/" + relay.Node().ID().String()
	ad, bd := t.TempDir(), t.TempDir()
	aliceOpts := func(c *Config) { c.Store, c.ProfileDir, c.Bootstrap = nil, ad, []string{boot} }
	alice := newPeer(t, "alice", aliceOpts)
	bob := newPeer(t, "bob", func(c *Config) { c.Store, c.ProfileDir, c.Bootstrap = nil, bd, []string{boot} })
	connect(t, alice, bob)
	g := alice.run("", "/create files "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(g)) == 2 && len(bob.e.Members(g)) == 2 })
	bob.run(g, "/transfers limit off")

	path, data := writeRandomFile(t, "kept.bin", 48<<20)
	alice.run(g, "/send "+path)
	if err := alice.e.Close(); err != nil {
		t.Fatal(err)
	}
	if alice.rec.has(isKeptNotice("kept.bin")) {
		t.Log("the upload was through before alice closed: the restart finds nothing to do")
	}
	alice2 := newPeer(t, "alice", aliceOpts)
	// The message may have left only with alice's restart (her outbox).
	bob.rec.wait(t, "offered", isTransfer(TransferOffered, "kept.bin"))
	if !alice.rec.has(isKeptNotice("kept.bin")) {
		alice2.rec.wait(t, "the upload finished after the restart", isKeptNotice("kept.bin"))
	}
	if err := alice2.e.Close(); err != nil {
		t.Fatal(err)
	}

	bob.run(g, "/transfers get 1")
	done := bob.rec.wait(t, "done", isTransfer(TransferDone, "kept.bin")).(TransferEvent).Transfer
	if got, _ := os.ReadFile(done.Path); !bytes.Equal(got, data) {
		t.Fatal("saved file differs")
	}
}
