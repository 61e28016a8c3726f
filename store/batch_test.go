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
