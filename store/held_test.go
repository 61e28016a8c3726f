package store

import (
	"bytes"
	"testing"
)

// testHeldMessages: held messages are written and released only with a
// state, survive a reopen sealed, and go with their group.
func testHeldMessages(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	createGroup(t, s, gid)
	held := func() []HeldMessage {
		t.Helper()
		return must[[]HeldMessage](t)(s.HeldMessages(ctx, gid))
	}
	h1 := HeldMessage{ID: []byte("m1"), Sender: "leaf-7", Epoch: 3, Gen: 1<<32 - 1, Payload: []byte("later message"), At: t0}
	h2 := HeldMessage{ID: []byte("m2"), Sender: "leaf-7", Epoch: 3, Gen: 9, Payload: []byte("another"), At: t0.Add(1)}

	// An invalid transition keeps nothing of them.
	_, err := s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, State: []byte("s1"),
		HeldAdd: []HeldMessage{h1, {Payload: []byte("no id")}}})
	wantErr(t, err, ErrInvalid)
	_, err = s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, State: []byte("s1"),
		HeldAdd: []HeldMessage{{GroupID: []byte("other group"), ID: []byte("x"), Payload: []byte("p")}}})
	wantErr(t, err, ErrInvalid)
	if got := held(); len(got) != 0 {
		t.Fatalf("held messages of failed transitions: %+v", got)
	}

	ok2 := func(tr EpochTransition) {
		t.Helper()
		tr.GroupID, tr.Epoch, tr.State = gid, 1, []byte("s")
		must[TransitionResult](t)(s.CommitEpoch(ctx, tr))
	}
	ok2(EpochTransition{HeldAdd: []HeldMessage{h1, h2}})
	got := held()
	if len(got) != 2 {
		t.Fatalf("%d held messages, want 2", len(got))
	}
	for i, want := range []HeldMessage{h1, h2} {
		g := got[i]
		if !bytes.Equal(g.GroupID, gid) || !bytes.Equal(g.ID, want.ID) || g.Sender != want.Sender || g.Epoch != want.Epoch ||
			g.Gen != want.Gen || !bytes.Equal(g.Payload, want.Payload) || !g.At.Equal(want.At) {
			t.Fatalf("held message %d: %+v, want %+v", i, g, want)
		}
	}
	// Holding an id again keeps the first row; releasing deletes it; an
	// id held and released in one transition is not kept.
	h3 := HeldMessage{ID: []byte("m3"), Sender: "leaf-2", Payload: []byte("brief")}
	ok2(EpochTransition{HeldAdd: []HeldMessage{{ID: h1.ID, Payload: []byte("replaced?")}, h3}, HeldDone: [][]byte{h2.ID, h3.ID}})
	got = held()
	if len(got) != 1 || string(got[0].Payload) != "later message" {
		t.Fatalf("after re-holding m1 and releasing m2 and m3: %+v", got)
	}
	ok2(EpochTransition{HeldDone: [][]byte{[]byte("never held")}})
	if len(held()) != 1 {
		t.Fatal("releasing an unknown id changed the held messages")
	}

	_, err = s.HeldMessages(ctx, nil)
	wantErr(t, err, ErrInvalid)
	ok(t, s.DeleteGroup(ctx, gid))
	if got := held(); len(got) != 0 {
		t.Fatalf("held messages of a deleted group: %+v", got)
	}
}
