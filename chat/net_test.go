package chat

import "testing"

// The engine follows peers through the node's events: a peer that
// introduced itself is nearby while connected and gone, with an offline
// event, once its last connection closes; the status counts connections.
func TestNearbyPeerComesAndGoes(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	connect(t, alice, bob)
	alice.rec.wait(t, "bob online", func(ev Event) bool {
		p, ok := ev.(PeerEvent)
		return ok && p.Online && p.Peer.Nick == "bob"
	})
	if !alice.e.isConnected(bob.e.id.id) {
		t.Fatal("alice not connected to bob after his hello")
	}
	if err := bob.e.Close(); err != nil {
		t.Fatal(err)
	}
	alice.rec.wait(t, "bob offline", func(ev Event) bool {
		p, ok := ev.(PeerEvent)
		return ok && !p.Online && p.Peer.Nick == "bob" && p.Peer.PeerID == bob.e.id.id.String()
	})
	if st := alice.e.Status(); len(st.Nearby) != 0 || st.Peers != 0 || st.Reachability != "unknown" {
		t.Fatalf("status after bob left: %+v", st)
	}
	if alice.e.isConnected(bob.e.id.id) {
		t.Fatal("alice still connected to bob")
	}
}
