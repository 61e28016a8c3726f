package chat

import (
	"time"

	"github.com/canopy-chat/canopy/p2p"
)

// Receiving in batches. Under load the group's frame queue holds many
// frames at once; the loop takes up to maxFrameBatch of them (bounded in
// bytes by maxFrameBatchBytes), asks the frame log which of the
// application messages among them it holds already (a read), and writes
// the new frames with what they produced (the opened messages, the
// advanced receive ratchets) in one transaction at the end
// (store.EpochTransition.Frames), instead of two per frame. Frames are
// still handed to the fork choice in arrival order; a frame that moves the
// tip, and an own frame about to be published, are still written before
// anything acts on them (exec).
//
// Why one transaction is safe: the frame log holds a frame only together
// with the state whose ratchet opened (or, for an own frame, protected)
// it and with the message it carried. A restart that skips frames an
// earlier run logged (receiveLogged) therefore skips only messages that
// are stored and keys that are consumed (with a separate frame-log write
// first, a crash between the two lost them). A crash before the commit
// loses frames, state and messages together: none was shown (emitRows
// runs after the commit), no own frame of that state was published (it
// goes to the network only after the commit: a key generation not on disk
// is never on the wire), and a received frame comes again from gossip or
// a peer's frame log.
//
// While frames keep coming (the previous batch ended less than
// batchLinger before this one began), a batch also waits up to
// batchLinger from its first frame for more: at tens of messages a second
// each frame would otherwise be a batch of its own, with its own fsynced
// transaction, and that transaction costs a receiver four times the CPU
// of the rest of a message's write (BenchmarkCommitEpochFrame/disk:
// about 400 µs per message one at a time, 100 µs eight at a time). A
// quiet group pays no wait; a busy one shows messages at most
// batchLinger later. A command ends the wait (nextFrame). At 50 messages
// a second into each member (TestE2ELoad), 100 ms instead of 20 ms took
// 12% off a receiver's CPU per message and added 60 ms to the median
// latency; 50 ms is between the two.

const (
	maxFrameBatch      = 256
	maxFrameBatchBytes = 4 << 20
	batchLinger        = 50 * time.Millisecond
)

// logged is an admitted application message waiting for the batch's
// frame-log lookup.
type logged struct {
	fr  inFrame
	hdr p2p.MLSHeader
}

// handleFrames handles first and whatever else is queued, then persists.
func (g *group) handleFrames(first inFrame) {
	g.stage.batching = true
	defer func() { g.stage.batching = false }()
	var pending []logged
	take := func(fr inFrame) {
		hdr, ok := g.frameHeader(fr)
		if !ok {
			return
		}
		// Application messages the validator authenticated against a
		// state still retained go into the batch; anything else (Commits,
		// proposals, frames to judge) is handled in order on its own.
		if !g.sync.parking && hdr.WireFormat == p2p.WirePrivateMessage && hdr.ContentType == p2p.ContentApplication &&
			frameSizeOK(hdr, len(fr.data)) && g.stillLive(fr.verdict) {
			pending = append(pending, logged{fr, hdr})
			return
		}
		pending = g.receiveBatch(pending)
		g.handleFrame(fr)
	}
	start := time.Now()
	linger := start.Sub(g.stage.lastBatch) < g.stage.linger
	defer func() { g.stage.lastBatch = time.Now() }()
	g.dequeued(first)
	take(first)
	n, size := 1, len(first.data)
	for n < maxFrameBatch && size < maxFrameBatchBytes {
		fr, ok := g.nextFrame(start, linger)
		if !ok {
			break
		}
		g.dequeued(fr)
		take(fr)
		n++
		size += len(fr.data)
	}
	g.receiveBatch(pending)
	g.stage.batching = false
	if g.stage.pending() {
		_ = g.persistTip()
	}
	g.noteBacklog()
	if f := g.stage.req; f != nil {
		g.stage.req = nil
		f()
		g.noteBacklog()
	}
}

// nextFrame takes the next queued frame; with linger it waits for one
// until g.stage.linger after start. A command that comes meanwhile ends the
// batch (it runs right after it, at the end of handleFrames): the linger
// delays what is shown, never what a user asked for.
func (g *group) nextFrame(start time.Time, linger bool) (inFrame, bool) {
	select {
	case fr := <-g.frames:
		return fr, true
	default:
	}
	wait := g.stage.linger - time.Since(start)
	if !linger || wait <= 0 || g.stage.req != nil {
		return inFrame{}, false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case fr := <-g.frames:
		return fr, true
	case f := <-g.reqs:
		g.stage.req = f
	case <-t.C:
	case <-g.quit:
	}
	return inFrame{}, false
}

// receiveBatch looks the pending frames up in the frame log in one read
// and hands them to the fork choice in order (the new ones staged for the
// next persisted state); it returns the emptied slice.
func (g *group) receiveBatch(pending []logged) []logged {
	if len(pending) == 0 {
		return pending
	}
	data := make([][]byte, len(pending))
	for i, p := range pending {
		data[i] = p.fr.data
	}
	seqs := g.loggedSeqs(data)
	for i, p := range pending {
		g.receiveLogged(p.fr, p.hdr, seqs[i])
	}
	return pending[:0]
}

// verdictOf is the frame gate's verdict a gossip frame carries (nil when
// p2p delivered it without one).
func verdictOf(m p2p.Message) *gateVerdict {
	gv, _ := m.Verdict.(*gateVerdict)
	return gv
}
