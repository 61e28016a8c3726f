package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// testAppendFrames: a batch stores what the same frames appended one by
// one would store, with the same per-frame outcomes, in one transaction.
func testAppendFrames(t *testing.T, open func(testing.TB, ...Option) full) {
	q := FrameQuota{MaxFrameBytes: 100, PerTopic: Limit{Bytes: 250}, PerPeer: Limit{Bytes: 200}}
	frame := func(topic, peer string, b byte, n int) Frame {
		ep := uint64(b)
		return Frame{Topic: topic, Peer: peer, Data: bytes.Repeat([]byte{b}, n), Epoch: &ep}
	}
	batch := []Frame{
		frame("t", "p", 1, 100),
		frame("t", "p", 2, 10),
		frame("t", "p", 1, 100), // repeated within the batch
		frame("t", "p", 3, 101), // over MaxFrameBytes
		frame("", "p", 4, 10),   // invalid topic
		frame("t", "p", 5, 100), // p is over its 200 bytes
		frame("t", "q", 6, 100), // the topic evicts its oldest frame
		frame("u", "q", 1, 50),  // same bytes, another topic
	}
	single, batched := open(t), open(t)
	var want []AppendResult
	for _, f := range batch {
		seq, ins, err := single.AppendFrame(ctx, f, q)
		want = append(want, AppendResult{Seq: seq, Inserted: ins, Err: err})
	}
	got, err := batched.AppendFrames(ctx, batch, q)
	ok(t, err)
	if len(got) != len(want) {
		t.Fatalf("%d results for %d frames", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.Inserted != w.Inserted || (g.Err == nil) != (w.Err == nil) ||
			(w.Err != nil && !errors.Is(g.Err, errors.Unwrap(w.Err))) {
			t.Errorf("frame %d: batch %+v, one by one %+v", i, g, w)
		}
	}
	for _, c := range []struct {
		err  error
		i    int
		what string
	}{{ErrQuotaExceeded, 3, "frame size"}, {ErrInvalid, 4, "topic"}, {ErrQuotaExceeded, 5, "peer quota"}} {
		if !errors.Is(got[c.i].Err, c.err) {
			t.Errorf("%s: %v, want %v", c.what, got[c.i].Err, c.err)
		}
	}
	if got[2].Inserted || got[2].Seq != got[0].Seq {
		t.Errorf("repeat in batch: %+v (first %+v)", got[2], got[0])
	}
	for _, topic := range []string{"t", "u"} {
		a := must[[]Frame](t)(single.Frames(ctx, topic, FrameQuery{}))
		b := must[[]Frame](t)(batched.Frames(ctx, topic, FrameQuery{}))
		if len(a) != len(b) {
			t.Fatalf("topic %s: %d frames one by one, %d batched", topic, len(a), len(b))
		}
		for i := range a {
			if a[i].Seq != b[i].Seq || !bytes.Equal(a[i].Data, b[i].Data) || a[i].Peer != b[i].Peer || *a[i].Epoch != *b[i].Epoch {
				t.Errorf("topic %s frame %d: %+v vs %+v", topic, i, a[i], b[i])
			}
		}
	}
	for _, p := range []string{"p", "q"} {
		if a, b := must[Usage](t)(single.PeerUsage(ctx, p)), must[Usage](t)(batched.PeerUsage(ctx, p)); a != b {
			t.Errorf("peer %s usage %+v one by one, %+v batched", p, a, b)
		}
	}
	// Bounded: a batch over MaxAppendBatch is refused as a whole.
	big := make([]Frame, MaxAppendBatch+1)
	for i := range big {
		big[i] = Frame{Topic: "big", Data: fmt.Appendf(nil, "%d", i)}
	}
	_, err = batched.AppendFrames(ctx, big, q)
	wantErr(t, err, ErrInvalid)
	if fs := must[[]Frame](t)(batched.Frames(ctx, "big", FrameQuery{})); len(fs) != 0 {
		t.Fatalf("refused batch stored %d frames", len(fs))
	}
	// Nothing valid: no transaction, every error reported.
	res, err := batched.AppendFrames(ctx, []Frame{{Topic: "t"}}, q)
	ok(t, err)
	if len(res) != 1 || !errors.Is(res[0].Err, ErrInvalid) {
		t.Fatalf("empty frame: %+v", res)
	}
}

// A database error fails the whole batch: nothing of it is stored.
func TestAppendFramesAtomic(t *testing.T) {
	db := openTest(t, t.TempDir())
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.AppendFrames(cctx, []Frame{{Topic: "t", Data: []byte("a")}, {Topic: "t", Data: []byte("b")}}, FrameQuota{}); err == nil {
		t.Fatal("batch with a cancelled context succeeded")
	}
	if fs := must[[]Frame](t)(db.Frames(ctx, "t", FrameQuery{})); len(fs) != 0 {
		t.Fatalf("failed batch stored %d frames", len(fs))
	}
}

// testTransitionFrames: frames appended by CommitEpoch are written with
// the state in one transaction (both or neither), within the quota, with
// the per-frame outcomes AppendFrames gives, and LoggedFrames finds them.
func testTransitionFrames(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	createGroup(t, s, gid)
	q := FrameQuota{MaxFrameBytes: 10}
	a, b, big := []byte("frame a"), []byte("frame b"), []byte("frame too big")
	frame := func(d []byte) Frame { return Frame{Topic: "t", Peer: "p", Data: d} }
	logged := func(data ...[]byte) []int64 {
		t.Helper()
		return must[[]int64](t)(s.LoggedFrames(ctx, "t", data))
	}

	// An invalid part of the transition: neither state nor frames stay.
	_, err := s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, State: []byte("s1"),
		Frames: []Frame{frame(a)}, FrameQuota: q, OutboxAdd: []OutboxEntry{{ID: nil}}})
	wantErr(t, err, ErrInvalid)
	if got := logged(a); got[0] != 0 {
		t.Fatalf("frame of a failed transition logged at %d", got[0])
	}
	// A database error (a cancelled context): neither either.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.CommitEpoch(cctx, EpochTransition{GroupID: gid, Epoch: 1, State: []byte("s1"),
		Frames: []Frame{frame(a)}, FrameQuota: q}); err == nil {
		t.Fatal("transition with a cancelled context succeeded")
	}
	if got := logged(a); got[0] != 0 {
		t.Fatalf("frame of a cancelled transition logged at %d", got[0])
	}
	if g := must[Group](t)(s.Group(ctx, gid)); g.Epoch != 0 {
		t.Fatalf("epoch moved to %d", g.Epoch)
	}

	// Both: the state, a new frame, a repeat of it and one over the quota
	// (refused on its own; the rest is written).
	res := must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, State: []byte("s1"),
		Frames: []Frame{frame(a), frame(a), frame(big)}, FrameQuota: q}))
	if g := must[Group](t)(s.Group(ctx, gid)); g.Epoch != 1 {
		t.Fatalf("epoch %d after the transition", g.Epoch)
	}
	if len(res.Frames) != 3 {
		t.Fatalf("%d frame results for 3 frames", len(res.Frames))
	}
	first := res.Frames[0]
	if !first.Inserted || first.Seq == 0 || first.Err != nil {
		t.Fatalf("new frame: %+v", first)
	}
	if r := res.Frames[1]; r.Inserted || r.Seq != first.Seq || r.Err != nil {
		t.Fatalf("repeat in the transition: %+v (first %+v)", r, first)
	}
	if r := res.Frames[2]; !errors.Is(r.Err, ErrQuotaExceeded) || r.Inserted {
		t.Fatalf("frame over the quota: %+v", r)
	}
	if got := logged(b, a, big, a); got[0] != 0 || got[1] != first.Seq || got[2] != 0 || got[3] != first.Seq {
		t.Fatalf("logged frames %v, want [0 %d 0 %d]", got, first.Seq, first.Seq)
	}
	// A frame logged already (by an earlier transition) is reported, not
	// inserted again.
	res = must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, State: []byte("s1b"),
		Frames: []Frame{frame(b), frame(a)}, FrameQuota: q}))
	if r := res.Frames[1]; r.Inserted || r.Seq != first.Seq {
		t.Fatalf("frame logged before: %+v (first %+v)", r, first)
	}
	if r := res.Frames[0]; !r.Inserted || r.Seq <= first.Seq {
		t.Fatalf("second new frame: %+v", r)
	}
	if fs := must[[]Frame](t)(s.Frames(ctx, "t", FrameQuery{})); len(fs) != 2 {
		t.Fatalf("%d frames logged, want 2", len(fs))
	}
	// Bounded like AppendFrames.
	_, err = s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, State: []byte("s1"),
		Frames: make([]Frame, MaxAppendBatch+1)})
	wantErr(t, err, ErrInvalid)
	_, err = s.LoggedFrames(ctx, "t", make([][]byte, MaxAppendBatch+1))
	wantErr(t, err, ErrInvalid)
}
