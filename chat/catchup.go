package chat

import (
	"context"
	"errors"
	"maps"
	"sort"
	"time"

	"github.com/canopy-chat/canopy/p2p"
)

// Catch-up: fetching stored frames from peers after a start, a join or a
// detected gap, and releasing the live frames parked meanwhile.

// catchUp fetches stored frames of the group from peers that may have
// what we missed: every peer of the topic we have not synced from yet,
// relays, or (all) everyone when a gap was detected.
func (g *group) catchUp(all bool) { g.catchUpFrom(all, false) }

// catchUpFrom is catchUp; incremental asks each peer only for what it
// stored since the end of the last sync from it (syncCursor), as when a
// sender's gap is all that is missing.
func (g *group) catchUpFrom(all, incremental bool) {
	if g.offline || g.e.node == nil || g.m == nil {
		return
	}
	if g.sync.running {
		g.sync.again = g.sync.again || all
		return
	}
	var targets []p2p.PeerID
	cands := map[p2p.PeerID]bool{}
	if g.topic != nil {
		for _, p := range g.topic.Peers() {
			cands[p] = true
		}
	}
	for _, r := range g.e.relays {
		if g.e.isConnected(r.ID) {
			cands[r.ID] = true
		}
	}
	for p := range cands {
		if all || !g.sync.peers[p] {
			targets = append(targets, p)
		}
	}
	if len(targets) == 0 {
		return
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i] < targets[j] })
	g.sync.running = true
	// From the oldest retained state: a competing Commit of an epoch we
	// passed may be there (a healed partition).
	since := min(g.st.Epoch(), g.m.Stats().OldestEpoch)
	if g.sync.from > 0 && g.sync.from < since {
		since = g.sync.from
	}
	g.sync.from = 0
	topic := g.topicName
	node := g.e.node
	after := map[p2p.PeerID]uint64{}
	for _, p := range targets {
		if c, ok := g.sync.cursors[p]; ok && incremental && c.since <= since {
			after[p] = c.next
		}
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ok := map[p2p.PeerID]bool{}
		cursors := map[p2p.PeerID]syncCursor{}
		for _, p := range targets {
			ctx, cancel := context.WithTimeout(g.ctx, 20*time.Second)
			n := 0
			next, err := node.SyncAfter(ctx, p, topic, since, after[p], func(en p2p.SyncEntry) error {
				n++
				if !g.queueFrame(inFrame{data: en.Data, from: p, synced: true}) {
					return errGroupClosed
				}
				return nil
			})
			cancel()
			if err == nil {
				cursors[p] = syncCursor{since: since, next: next}
			}
			if err == nil || errors.Is(err, p2p.ErrNotFound) || errors.Is(err, p2p.ErrDenied) || errors.Is(err, p2p.ErrUnavailable) {
				ok[p] = true
			}
			if err != nil {
				g.e.log.Debug("sync", "group", g.gid, "peer", p, "err", err)
			} else if n > 0 {
				g.e.log.Debug("synced", "group", g.gid, "peer", p, "frames", n, "since", since)
			}
		}
		g.post(func() {
			g.sync.running = false
			for p := range ok {
				g.sync.peers[p] = true
			}
			if len(g.sync.cursors)+len(cursors) > maxSyncCursors {
				clear(g.sync.cursors) // they only save work
			}
			maps.Copy(g.sync.cursors, cursors)
			for p := range g.sync.rejoined {
				delete(g.sync.peers, p)
			}
			rejoined := len(g.sync.rejoined) > 0
			clear(g.sync.rejoined)
			if len(ok) > 0 {
				g.unpark()
			}
			if g.sync.again {
				g.sync.again = false
				g.catchUp(true)
			} else if rejoined {
				g.catchUp(false)
			}
		})
	}()
}

// peerJoined runs (on the topic's goroutine) when p announces its
// subscription to the group's topic, also again with the connection still
// up: gossipsub then re-opened its stream after the old one died (a
// relayed connection retired after hole punching), and what p sent on the
// old one may be lost. p's frames are stored at p, so catching up from it
// now recovers them; frames p sends later take the new stream. A sync
// already running may have asked p before the switch: then p is asked
// again after it.
func (g *group) peerJoined(p p2p.PeerID) {
	go g.post(func() {
		if g.sync.running {
			g.sync.rejoined[p] = true
			return
		}
		delete(g.sync.peers, p)
		g.catchUp(false)
	})
}

// unpark ends the start-up catch-up: parked live frames are processed.
func (g *group) unpark() {
	if !g.sync.parking {
		return
	}
	g.sync.parking = false
	parked := g.sync.parked
	g.sync.parked = nil
	for _, fr := range parked {
		g.handleFrame(fr)
	}
}

// syncState is the catch-up's bookkeeping. Owned by the loop.
type syncState struct {
	peers map[p2p.PeerID]bool // peers synced from since the start
	// rejoined are peers that announced themselves again during a
	// catch-up: they are asked again after it (peerJoined).
	rejoined map[p2p.PeerID]bool
	running  bool
	again    bool   // another catch-up (from everyone) was asked for meanwhile
	from     uint64 // the earliest epoch the machine asked to catch up from
	// parking holds live frames back until the first catch-up after a
	// start or join has run, so that what was missed is processed (and
	// shown) before what gossip delivers meanwhile.
	parking bool
	parked  []inFrame
	// sessionSeq is the frame log's cursor at the first frame logged since
	// the group started: frames logged before it were handled by an
	// earlier run.
	sessionSeq int64
	// gapAt is when a sender's missing message last started a catch-up
	// (catchUpForGap).
	gapAt time.Time
	// fullGapAt is when a gap last started a full catch-up.
	fullGapAt time.Time
	// cursors are where the last complete sync from each peer ended.
	cursors map[p2p.PeerID]syncCursor
}

// syncCursor is where a sync from a peer ended: its cursor (p2p
// SyncPage.Next) after the frames of epochs since and later. A later
// sync of epochs since or later may start there; one of earlier epochs
// may not (the peer may have stored frames of them before the cursor).
type syncCursor struct{ since, next uint64 }

// maxSyncCursors bounds the remembered cursors (peers of the topic).
const maxSyncCursors = 1024

// gapCatchUpEvery spaces the catch-ups that missing messages start.
// When gapCatchUpHeld messages wait for missing ones, a catch-up starts
// at once, at most every gapCatchUpHeldEvery: the missing messages must
// come back before their senders' ratchets drop the keys to open them
// (maxSkippedKeys later generations).
const (
	gapCatchUpEvery     = 5 * time.Second
	gapCatchUpHeld      = 32
	gapCatchUpHeldEvery = time.Second
	gapFullEvery        = 30 * time.Second
)

// catchUpForGap fetches what a sender's order proves missing: a message
// of a later generation was held for the whole hold time and the earlier
// one never came, or many messages wait for earlier ones. Gossip loses
// frames now and then (a stream that died under a frame, a queue that
// overflowed, a neighbour over its flood limit), and when the sender
// sends nothing more nothing else would bring the frame back; the frame
// logs of the topic's peers hold it. every spaces these catch-ups.
//
// incremental asks only for what the peers stored since the last sync
// from them: a frame just lost in gossip was stored by its sender (and
// whoever received it) after that. It is for gaps opening while many
// messages arrive: a full catch-up of every retained epoch would then
// fetch thousands of frames this member has, on the busy loop. A gap
// that outlasted the hold time gets a full one, at most every
// gapFullEvery (in between, an incremental one): a frame can also be
// missing from before the cursor (it came in a sync but could not be
// judged then), and a busy group loses a frame to gossip now and then.
func (g *group) catchUpForGap(every time.Duration, incremental bool) {
	now := g.e.now()
	if now.Sub(g.sync.gapAt) < every {
		return
	}
	g.sync.gapAt = now
	if !incremental {
		if now.Sub(g.sync.fullGapAt) < gapFullEvery {
			incremental = true
		} else {
			g.sync.fullGapAt = now
		}
	}
	g.catchUpFrom(true, incremental)
}
