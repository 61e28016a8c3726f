package mls

import "testing"

// TestReceivedGeneration: Process reports each PrivateMessage's ratchet
// generation, counting one sender's application messages from 0 in the
// epoch, also when they arrive out of order.
func TestReceivedGeneration(t *testing.T) {
	m := newTestGroup(t, CipherSuites[0], true, "alice", "bob")
	alice, bob := m[0], m[1]
	var msgs [][]byte
	for range 3 {
		msg, err := alice.g.Protect([]byte("hi"), nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, msg)
	}
	for _, i := range []int{2, 0, 1} {
		r, err := bob.g.Process(msgs[i])
		if err != nil {
			t.Fatal(err)
		}
		if r.Generation != uint32(i) || r.Epoch != bob.g.Epoch() || r.WireFormat != WireFormatPrivateMessage {
			t.Fatalf("message %d: generation %d epoch %d", i, r.Generation, r.Epoch)
		}
	}
}
