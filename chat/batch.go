package chat

import "github.com/canopy-chat/canopy/p2p"

// Receiving in batches. Under load the group's frame queue holds many
// frames at once; the loop takes up to maxFrameBatch of them (bounded in
// bytes by maxFrameBatchBytes) and writes what they produced (the opened
// messages, the advanced receive ratchets) in one transaction at the end,
// instead of one per frame. A frame that moves the tip, and an own frame
// about to be published, are still written before anything acts on them
// (exec).

const (
	maxFrameBatch      = 256
	maxFrameBatchBytes = 4 << 20
)

// handleFrames handles first and whatever else is queued, then persists.
func (g *group) handleFrames(first inFrame) {
	g.stage.batching = true
	g.handleFrame(first)
	n, size := 1, len(first.data)
more:
	for n < maxFrameBatch && size < maxFrameBatchBytes {
		select {
		case fr := <-g.frames:
			g.handleFrame(fr)
			n++
			size += len(fr.data)
		default:
			break more
		}
	}
	g.stage.batching = false
	if g.stage.pending() {
		_ = g.persistTip()
	}
}

// verdictOf is the frame gate's verdict a gossip frame carries (nil when
// p2p delivered it without one).
func verdictOf(m p2p.Message) *gateVerdict {
	gv, _ := m.Verdict.(*gateVerdict)
	return gv
}
