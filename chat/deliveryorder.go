package chat

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/store"
)

// The loop's side of per-sender order (senderorder.go): every application
// message the fork choice delivers passes through the group's senderOrder
// keyed by (epoch, MLS generation), so that the timeline, the store (rows
// are written in the order they are released) and the events show each
// sender's messages in the order it sent them. Receipts, typing and
// profile messages go through it too: they use the same ratchet, and a
// gap in it would otherwise hold the next text message for nothing.
//
// A held message's key is consumed and its frame logged with the state
// that opened it, so it is stored in that same transaction
// (store.HeldMessage) and deleted with the one after it is shown. A
// restarted engine shows what it finds there (restoreHeld), marked as
// after a gap; the missing earlier messages, when they come, are marked
// late. A crash during the hold loses nothing.

// maxOpenedGens bounds the generations remembered between opening a
// message and its delivery (they are normally the same call).
const maxOpenedGens = 4096

type deliveryOrder struct {
	q     *senderOrder[ordering.Deliver]
	gens  map[string]uint32 // message id → generation, from Open
	timer *time.Timer
	armed time.Time // when the timer fires (zero: not armed)
	mark  orderMark // the mark of the message being delivered
	// stored: held messages in the store (written with the state that
	// opened them); showing one deletes it with the next state.
	stored map[ordering.MessageID]bool
}

func newDeliveryOrder() deliveryOrder {
	return deliveryOrder{q: newSenderOrder[ordering.Deliver](senderHoldTime, senderMaxHeld), gens: map[string]uint32{},
		stored: map[ordering.MessageID]bool{}}
}

// opened notes the generation of an application message just opened.
func (o *deliveryOrder) opened(id []byte, gen uint32) {
	if len(o.gens) >= maxOpenedGens {
		clear(o.gens) // losing them costs order marks, not messages
	}
	o.gens[string(id)] = gen
}

// deliverInOrder delivers d when its sender's order allows, with whatever
// it releases.
func (g *group) deliverInOrder(d ordering.Deliver) {
	gen, ok := g.order.gens[string(d.ID)]
	delete(g.order.gens, string(d.ID))
	if !ok || d.Sender == "" {
		g.deliver(d)
		return
	}
	now := g.e.now()
	out := g.order.q.add(now, d.Sender, seqKey{Epoch: d.Epoch, Gen: gen}, d)
	if !slices.ContainsFunc(out, func(o ordered[ordering.Deliver]) bool { return o.Value.ID == d.ID }) {
		g.stage.hold(store.HeldMessage{ID: []byte(d.ID), Sender: d.Sender, Epoch: d.Epoch, Gen: gen, Payload: d.Payload, At: now})
	}
	g.showOrdered(out)
	g.armOrder()
	if g.order.q.heldCount() >= gapCatchUpHeld {
		// Many later messages wait: their senders are moving on from
		// the missing ones faster than the hold time passes.
		g.catchUpForGap(gapCatchUpHeldEvery, true)
	}
}

func (g *group) showOrdered(out []ordered[ordering.Deliver]) {
	for _, o := range out {
		if !g.stage.unhold(o.Value.ID) && g.order.stored[o.Value.ID] {
			delete(g.order.stored, o.Value.ID)
			g.stage.heldDone = append(g.stage.heldDone, []byte(o.Value.ID))
		}
		g.order.mark = o.Mark
		g.deliver(o.Value)
	}
	g.order.mark = orderInPlace
}

// armOrder sets the timer for the earliest held message's bound.
func (g *group) armOrder() {
	at, ok := g.order.q.nextExpiry()
	if !ok || (!g.order.armed.IsZero() && !g.order.armed.After(at)) {
		return
	}
	if g.order.timer != nil {
		g.order.timer.Stop()
	}
	g.order.armed = at
	g.order.timer = g.after(time.Until(at), func() {
		g.order.armed = time.Time{}
		out := g.order.q.expire(g.e.now())
		g.showOrdered(out)
		for _, o := range out {
			if o.Mark == orderGap {
				g.catchUpForGap(gapCatchUpEvery, false)
				break
			}
		}
		if g.stage.pending() && !g.stage.batching {
			_ = g.persistTip()
		}
		g.armOrder()
	})
}

// releaseHeldOrder shows every held message now, marked as after a gap,
// and stores them (the group is stopping): front ends see them in this
// run rather than after the restart (restoreHeld).
func (g *group) releaseHeldOrder() {
	if g.order.q.heldCount() == 0 {
		return
	}
	g.showOrdered(g.order.q.expire(g.e.now().Add(senderHoldTime)))
	if g.stage.pending() && !g.stage.batching {
		// The engine cancels the groups' context before stopping them.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(g.ctx), stopFlushWait)
		_ = g.persistTipCtx(ctx)
		cancel()
	}
}

// heldForOrder is how many received messages wait for an earlier one of
// their sender (status).
func (g *group) heldForOrder() int { return g.order.q.heldCount() }

// restoreHeld shows the messages an earlier run held and did not show
// (it stopped without the chance: a crash, a failed write), marked as
// after a gap, and moves each sender's order past them.
func (g *group) restoreHeld() {
	if g.m == nil {
		return
	}
	held, err := g.e.db.HeldMessages(g.ctx, g.id)
	if err != nil {
		if g.ctx.Err() == nil {
			g.e.log.Error("reading held messages", "group", g.gid, "err", err)
		}
		return
	}
	if len(held) == 0 {
		return
	}
	slices.SortFunc(held, func(a, b store.HeldMessage) int {
		return cmp.Or(cmp.Compare(a.Sender, b.Sender), cmp.Compare(a.Epoch, b.Epoch), cmp.Compare(a.Gen, b.Gen))
	})
	out := make([]ordered[ordering.Deliver], 0, len(held))
	for _, h := range held {
		key := seqKey{Epoch: h.Epoch, Gen: h.Gen}
		g.order.q.shown(h.Sender, key)
		// Deleted with the next state: shown now, or a typing notice long
		// stale and not shown at all.
		g.stage.heldDone = append(g.stage.heldDone, h.ID)
		if am, err := parseAppMessage(h.Payload); err == nil && am.Kind == appTyping {
			continue
		}
		out = append(out, ordered[ordering.Deliver]{Sender: h.Sender, Key: key, Mark: orderGap,
			Value: ordering.Deliver{ID: ordering.MessageID(h.ID), Sender: h.Sender, Epoch: h.Epoch, Payload: h.Payload}})
	}
	g.showOrdered(out)
	g.e.log.Info("showed messages held when the group last stopped", "group", g.gid, "messages", len(held))
	_ = g.persistTip()
}
