package chat

import (
	"context"
	"time"

	"github.com/canopy-chat/canopy/ordering"
)

// The loop's side of per-sender order (senderorder.go): every application
// message the fork choice delivers passes through the group's senderOrder
// keyed by (epoch, MLS generation), so that the timeline, the store (rows
// are written in the order they are released) and the events show each
// sender's messages in the order it sent them. Receipts, typing and
// profile messages go through it too: they use the same ratchet, and a
// gap in it would otherwise hold the next text message for nothing.

// maxOpenedGens bounds the generations remembered between opening a
// message and its delivery (they are normally the same call).
const maxOpenedGens = 4096

type deliveryOrder struct {
	q     *senderOrder[ordering.Deliver]
	gens  map[string]uint32 // message id → generation, from Open
	timer *time.Timer
	armed time.Time // when the timer fires (zero: not armed)
	mark  orderMark // the mark of the message being delivered
}

func newDeliveryOrder() deliveryOrder {
	return deliveryOrder{q: newSenderOrder[ordering.Deliver](senderHoldTime, senderMaxHeld), gens: map[string]uint32{}}
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
	g.showOrdered(g.order.q.add(g.e.now(), d.Sender, seqKey{Epoch: d.Epoch, Gen: gen}, d))
	g.armOrder()
	if g.order.q.heldCount() >= gapCatchUpHeld {
		// Many later messages wait: their senders are moving on from
		// the missing ones faster than the hold time passes.
		g.catchUpForGap(gapCatchUpHeldEvery, true)
	}
}

func (g *group) showOrdered(out []ordered[ordering.Deliver]) {
	for _, o := range out {
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
// and stores them (the group is stopping).
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
