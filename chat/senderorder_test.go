package chat

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var orderT0 = time.Unix(1_700_000_000, 0)

type orderRec struct {
	sender string
	key    seqKey
	mark   orderMark
}

func recs(out []ordered[string]) []orderRec {
	var r []orderRec
	for _, o := range out {
		r = append(r, orderRec{o.Sender, o.Key, o.Mark})
		if o.Value != fmt.Sprintf("%s/%d/%d", o.Sender, o.Key.Epoch, o.Key.Gen) {
			panic("value does not travel with its key")
		}
	}
	return r
}

func val(sender string, e uint64, g uint32) string { return fmt.Sprintf("%s/%d/%d", sender, e, g) }

func addMsg(o *senderOrder[string], at time.Duration, sender string, e uint64, g uint32) []orderRec {
	return recs(o.add(orderT0.Add(at), sender, seqKey{e, g}, val(sender, e, g)))
}

func wantRecs(t *testing.T, what string, got []orderRec, want ...orderRec) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %+v, want %+v", what, got, want)
	}
}

func in(sender string, e uint64, g uint32) orderRec {
	return orderRec{sender, seqKey{e, g}, orderInPlace}
}
func gap(sender string, e uint64, g uint32) orderRec {
	return orderRec{sender, seqKey{e, g}, orderGap}
}
func late(sender string, e uint64, g uint32) orderRec {
	return orderRec{sender, seqKey{e, g}, orderLate}
}

func TestSenderOrderInOrderPassesThrough(t *testing.T) {
	o := newSenderOrder[string](time.Second, 100)
	o.begin(1)
	for g := range uint32(5) {
		wantRecs(t, "in order", addMsg(o, 0, "a", 1, g), in("a", 1, g))
	}
	if o.heldCount() != 0 {
		t.Fatalf("%d held", o.heldCount())
	}
}

func TestSenderOrderHoldsUntilGapFills(t *testing.T) {
	o := newSenderOrder[string](time.Second, 100)
	o.begin(1)
	wantRecs(t, "gen 0", addMsg(o, 0, "a", 1, 0), in("a", 1, 0))
	wantRecs(t, "gen 2 waits for 1", addMsg(o, 0, "a", 1, 2))
	wantRecs(t, "gen 3 waits too", addMsg(o, 0, "a", 1, 3))
	// Another sender is not held behind a's gap.
	wantRecs(t, "b", addMsg(o, 0, "b", 1, 0), in("b", 1, 0))
	if at, ok := o.nextExpiry(); !ok || !at.Equal(orderT0.Add(time.Second)) {
		t.Fatalf("next expiry %v %v", at, ok)
	}
	wantRecs(t, "gen 1 fills the gap", addMsg(o, 500*time.Millisecond, "a", 1, 1), in("a", 1, 1), in("a", 1, 2), in("a", 1, 3))
	if o.heldCount() != 0 {
		t.Fatalf("%d held", o.heldCount())
	}
	if _, ok := o.nextExpiry(); ok {
		t.Fatal("expiry with nothing held")
	}
}

func TestSenderOrderBoundShowsMarked(t *testing.T) {
	o := newSenderOrder[string](time.Second, 100)
	o.begin(1)
	wantRecs(t, "gen 1 waits for 0", addMsg(o, 0, "a", 1, 1))
	wantRecs(t, "gen 3 waits", addMsg(o, 200*time.Millisecond, "a", 1, 3))
	wantRecs(t, "before the bound", recs(o.expire(orderT0.Add(999*time.Millisecond))))
	// At the bound gen 1 is shown marked; gen 3 still has its own time.
	wantRecs(t, "gen 1 at the bound", recs(o.expire(orderT0.Add(time.Second))), gap("a", 1, 1))
	wantRecs(t, "gen 3 at its bound", recs(o.expire(orderT0.Add(1200*time.Millisecond))), gap("a", 1, 3))
	// The missing ones arrive after all: shown at once, marked late.
	wantRecs(t, "gen 0 late", addMsg(o, 2*time.Second, "a", 1, 0), late("a", 1, 0))
	wantRecs(t, "gen 2 late", addMsg(o, 2*time.Second, "a", 1, 2), late("a", 1, 2))
	wantRecs(t, "gen 4 in order", addMsg(o, 2*time.Second, "a", 1, 4), in("a", 1, 4))
}

func TestSenderOrderExpiryReleasesWhatFollows(t *testing.T) {
	o := newSenderOrder[string](time.Second, 100)
	o.begin(1)
	addMsg(o, 0, "a", 1, 2)
	addMsg(o, 500*time.Millisecond, "a", 1, 3)
	// Gen 2's bound: it is shown marked, and gen 3, next after it, follows
	// in place.
	wantRecs(t, "expire", recs(o.expire(orderT0.Add(time.Second))), gap("a", 1, 2), in("a", 1, 3))
}

func TestSenderOrderEpochs(t *testing.T) {
	o := newSenderOrder[string](time.Second, 100)
	// The member restarted in the middle of epoch 4: a's first message
	// there sets the baseline.
	wantRecs(t, "baseline", addMsg(o, 0, "a", 4, 7), in("a", 4, 7))
	wantRecs(t, "next", addMsg(o, 0, "a", 4, 8), in("a", 4, 8))
	// Epoch 5 began here: generations start at 0 and gaps are provable.
	o.begin(5)
	wantRecs(t, "epoch 5 gen 1 waits for 0", addMsg(o, 0, "a", 5, 1))
	wantRecs(t, "epoch 5 gen 0", addMsg(o, 0, "a", 5, 0), in("a", 5, 0), in("a", 5, 1))
	// A message of the old epoch after the new one's: late.
	wantRecs(t, "old epoch", addMsg(o, 0, "a", 4, 9), late("a", 4, 9))
	// An epoch whose start was not seen: no hold.
	wantRecs(t, "epoch 7 unseen start", addMsg(o, 0, "a", 7, 3), in("a", 7, 3))
	// A sender first seen in an epoch that began here waits for gen 0.
	wantRecs(t, "b waits", addMsg(o, 0, "b", 5, 1))
	wantRecs(t, "b gen 0", addMsg(o, 0, "b", 5, 0), in("b", 5, 0), in("b", 5, 1))
	// Held later-epoch messages wait behind an earlier epoch's gap.
	o.begin(8)
	o.begin(9)
	addMsg(o, 0, "c", 8, 0)
	wantRecs(t, "c epoch 8 gap", addMsg(o, 0, "c", 8, 2))
	wantRecs(t, "c epoch 9 behind it", addMsg(o, 0, "c", 9, 0))
	wantRecs(t, "c fills", addMsg(o, 0, "c", 8, 1), in("c", 8, 1), in("c", 8, 2), in("c", 9, 0))
}

func TestSenderOrderCountBound(t *testing.T) {
	o := newSenderOrder[string](time.Hour, 3)
	o.begin(1)
	var got []orderRec
	for g := uint32(1); g <= 5; g++ {
		got = append(got, addMsg(o, time.Duration(g)*time.Millisecond, "a", 1, g)...)
		if o.heldCount() > 3 {
			t.Fatalf("%d held, bound 3", o.heldCount())
		}
	}
	// Gen 0 never came: at the 4th held message the oldest is shown
	// (marked), and with it what follows it in order.
	wantRecs(t, "count bound", got, gap("a", 1, 1), in("a", 1, 2), in("a", 1, 3), in("a", 1, 4), in("a", 1, 5))
	if o.heldCount() != 0 {
		t.Fatalf("%d held", o.heldCount())
	}
}

func TestSenderOrderDuplicateKeyHoldsNothing(t *testing.T) {
	o := newSenderOrder[string](time.Second, 100)
	o.begin(1)
	addMsg(o, 0, "a", 1, 2)
	wantRecs(t, "same key again", addMsg(o, 0, "a", 1, 2), late("a", 1, 2))
	if o.heldCount() != 1 {
		t.Fatalf("%d held", o.heldCount())
	}
}

func TestSenderOrderFlush(t *testing.T) {
	o := newSenderOrder[string](time.Hour, 100)
	o.begin(1)
	addMsg(o, 0, "a", 1, 1)
	addMsg(o, 0, "a", 1, 2)
	wantRecs(t, "flush", recs(o.flush("a")), gap("a", 1, 1), in("a", 1, 2))
	if o.heldCount() != 0 || len(o.senders) != 0 {
		t.Fatalf("after flush: %d held, %d senders", o.heldCount(), len(o.senders))
	}
}

// TestSenderOrderShuffled: whatever the arrival order, when nothing is lost
// and everything arrives within the bound, every sender's messages come out
// in its order, none marked, none twice, none lost.
func TestSenderOrderShuffled(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 14))
	for round := range 200 {
		o := newSenderOrder[string](time.Minute, 1<<20)
		type msg struct {
			sender string
			key    seqKey
		}
		var all []msg
		for _, s := range []string{"a", "b", "c"} {
			for e := uint64(1); e <= 3; e++ {
				for g := range uint32(rng.IntN(6)) {
					all = append(all, msg{s, seqKey{e, g}})
				}
			}
		}
		for e := uint64(1); e <= 3; e++ {
			o.begin(e)
		}
		// Arrival: a bounded shuffle (each message at most 8 places
		// from where it was sent), like queues on different paths.
		for i := range all {
			j := min(len(all)-1, i+rng.IntN(8))
			all[i], all[j] = all[j], all[i]
		}
		var out []orderRec
		for i, m := range all {
			out = append(out, addMsg(o, time.Duration(i)*time.Millisecond, m.sender, m.key.Epoch, m.key.Gen)...)
		}
		if o.heldCount() != 0 {
			// Trailing gaps can only be epochs' last messages arriving
			// after the next epoch's: never, since all arrived.
			t.Fatalf("round %d: %d still held", round, o.heldCount())
		}
		if len(out) != len(all) {
			t.Fatalf("round %d: %d out, %d in", round, len(out), len(all))
		}
		last := map[string]seqKey{}
		seen := map[string]bool{}
		for _, r := range out {
			if r.mark == orderGap {
				t.Fatalf("round %d: %+v marked as skipping a gap", round, r)
			}
			k := fmt.Sprint(r.sender, r.key)
			if seen[k] {
				t.Fatalf("round %d: %+v twice", round, r)
			}
			seen[k] = true
			p, ok := last[r.sender]
			switch {
			case !ok || p.less(r.key):
				if r.mark != orderInPlace {
					t.Fatalf("round %d: %+v in order but marked %v", round, r.key, r.mark)
				}
				last[r.sender] = r.key
			case r.mark != orderLate || r.key.Epoch == p.Epoch:
				// Late only across epochs (nothing proves the sender
				// had more in the old one), and marked.
				t.Fatalf("round %d: %+v (%v) after %+v; arrivals %v; out %v", round, r.key, r.mark, p, all, out)
			}
		}
	}
}
