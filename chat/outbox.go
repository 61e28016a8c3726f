package chat

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Sending own messages: the outbox holds what awaits a receipt (or is held
// while proposals are pending in the epoch), tracks delivery states, and the
// own log re-sends messages whose epoch lost the fork choice.

// outboxState is the bookkeeping of own messages in flight. Owned by the
// loop.
type outboxState struct {
	held      []heldMsg // waiting for the epoch's proposals to be committed
	receipts  [][]byte  // receipts to send with the next flush
	rcptArmed bool
	rcptLast  time.Time // when the last receipt message went out
	delivery  map[string]Delivery
	edits     map[string]bool // own edits awaiting a receipt (outEdit entries)
	log       *ownLog
}

func newOutboxState() outboxState {
	return outboxState{
		delivery: make(map[string]Delivery),
		edits:    make(map[string]bool),
		log:      newOwnLog(),
	}
}

// ownLog keeps recent own messages for re-sending (ordering.Resend).
type ownLog struct {
	byID  map[string]*ownMsg
	order []string
}

type ownMsg struct {
	payload []byte
	epoch   uint64
	at      time.Time
}

const maxOwnLog = 2048

func newOwnLog() *ownLog { return &ownLog{byID: map[string]*ownMsg{}} }

func (l *ownLog) add(id string, payload []byte, epoch uint64, at time.Time) {
	if o, ok := l.byID[id]; ok {
		o.epoch, o.at = epoch, at
		return
	}
	l.byID[id] = &ownMsg{payload: payload, epoch: epoch, at: at}
	l.order = append(l.order, id)
	for len(l.order) > maxOwnLog {
		delete(l.byID, l.order[0])
		l.order = l.order[1:]
	}
}

// resendState is the state a re-send goes into: the retained canonical
// state at (ordering.Resend.At, ResendSince.At), or the tip when at is zero;
// ok is false when that state is no longer retained.
func (g *group) resendState(at ordering.Hash) (*mls.Group, uint64, bool) {
	if at == (ordering.Hash{}) {
		return g.st, g.st.Epoch(), true
	}
	return g.m.StateAt(at)
}

func (g *group) resend(d ordering.Resend) {
	st, epoch, ok := g.resendState(d.At)
	if !ok {
		return
	}
	for _, id := range d.IDs {
		o := g.out.log.byID[string(id)]
		if o == nil {
			continue
		}
		g.resendOne(st, epoch, []byte(id), o)
	}
}

func (g *group) resendSince(d ordering.ResendSince) {
	st, epoch, ok := g.resendState(d.At)
	if !ok {
		return
	}
	for _, id := range g.out.log.order {
		o := g.out.log.byID[id]
		if o.epoch > d.Epoch && !o.at.After(d.Until) {
			g.resendOne(st, epoch, []byte(id), o)
		}
	}
}

func (g *group) resendOne(st *mls.Group, epoch uint64, id []byte, o *ownMsg) {
	if g.closed {
		return
	}
	wire, err := st.Protect(o.payload, nil)
	if err != nil {
		g.e.log.Debug("re-send", "err", err)
		return
	}
	g.stage.dirty, g.stage.ownSent = true, true
	g.stageFrame(wire, epoch, g.e.id.id)
	o.epoch, o.at = epoch, g.e.now()
	g.exec(g.m.Sent(ordering.MessageID(id), wire, g.e.now()))
	if g.stage.err != nil {
		g.e.log.Warn("re-send not sent: the state is not stored", "group", g.gid, "err", g.stage.err)
		return // as in protectOwn: its generation is not on disk
	}
	g.publishLogged(wire, nil)
}

// Outbox entry kinds.
const (
	outApp     uint16 = 1 // an own application message awaiting its receipt
	outWelcome uint16 = 2 // a Welcome not yet delivered (Payload: peer id)
	outEdit    uint16 = 3 // an own edit awaiting its receipt (no timeline row; see compose.go)
)

type heldMsg struct {
	id      []byte
	payload []byte
	kind    uint16 // outbox kind: outApp or outEdit
}

func (g *group) canSendNow() bool { return g.intents.proposals == 0 }

// send encrypts and publishes an application message (loop only). Visible
// kinds are stored and tracked until a receipt arrives.
func (g *group) send(kind appKind, body, replyTo []byte) (Message, error) {
	if g.closed || g.m == nil {
		return Message{}, errNotMember
	}
	if g.meta.Leaving {
		return Message{}, errors.New("you are leaving this group")
	}
	am := appMessage{Kind: kind, ID: newID(), SentAt: g.e.now().Truncate(time.Millisecond), ReplyTo: replyTo, Body: body}
	payload, err := am.Marshal()
	if err != nil {
		return Message{}, err
	}
	visible := kind == appText || kind == appReaction || kind == appFile
	var okind uint16 // outbox kind; 0: not kept in the outbox
	switch {
	case visible:
		okind = outApp
	case kind == appEdit:
		okind = outEdit
	}
	row := store.Message{
		GroupID: g.id, ID: am.ID, Sender: []byte(g.e.id.id), Epoch: g.st.Epoch(), Kind: uint16(kind),
		Text: string(body), ReplyTo: replyTo, SentAt: am.SentAt, State: store.Pending,
	}
	if kind == appFile {
		setFileRow(&row, body)
	}
	if !g.canSendNow() {
		return g.hold(okind, row, payload)
	}
	if visible {
		g.stageRow(row)
		g.out.delivery[string(am.ID)] = Pending
	}
	wire, err := g.protectOwn(am.ID, payload, okind)
	if errors.Is(err, mls.ErrInvalidProposal) {
		// Proposals arrived that the loop had not counted yet.
		g.intents.proposals = max(g.intents.proposals, 1)
		g.scheduleCommit()
		return g.hold(okind, row, payload)
	}
	if err != nil {
		return Message{}, err
	}
	id := am.ID
	g.publishLogged(wire, func(res p2p.PublishResult, err error) {
		if !visible {
			return
		}
		if err != nil {
			g.e.log.Warn("publish failed", "group", g.gid, "err", err)
			return
		}
		g.setDelivery(id, Sent)
	})
	if kind == appText {
		g.countForRotation()
	}
	return g.e.messageFromRow(g, row), nil
}

// hold keeps an own message (okind: its outbox kind) until the pending
// proposals are committed (RFC 9420 §12.4: a member that saw proposals
// commits before sending).
func (g *group) hold(okind uint16, row store.Message, payload []byte) (Message, error) {
	if okind == 0 {
		return Message{}, errors.New("group has pending proposals")
	}
	g.stage.outbox = append(g.stage.outbox, store.OutboxEntry{GroupID: g.id, ID: row.ID, Kind: okind, Epoch: g.st.Epoch(), Payload: payload})
	g.out.held = append(g.out.held, heldMsg{id: row.ID, payload: payload, kind: okind})
	if okind == outEdit {
		g.out.edits[string(row.ID)] = true // no timeline row of its own
	} else {
		g.stageRow(row)
		g.out.delivery[string(row.ID)] = Pending
	}
	if err := g.persistTip(); err != nil {
		return Message{}, err
	}
	return g.e.messageFromRow(g, row), nil
}

// protectOwn encrypts an own message with the canonical tip, tells the
// fork choice (so that it is re-sent if its epoch loses) and persists the
// state with the staged rows and the frame itself, which the caller then
// publishes (publishLogged). Messages with an outbox kind (okind != 0)
// get an outbox entry.
func (g *group) protectOwn(id, payload []byte, okind uint16) ([]byte, error) {
	wire, err := g.st.Protect(payload, nil)
	if err != nil {
		return nil, err
	}
	g.stage.dirty, g.stage.ownSent = true, true
	g.stageFrame(wire, g.st.Epoch(), g.e.id.id)
	g.out.log.add(string(id), payload, g.st.Epoch(), g.e.now())
	if okind != 0 {
		g.stage.outbox = append(g.stage.outbox, store.OutboxEntry{GroupID: g.id, ID: id, Kind: okind, Epoch: g.st.Epoch(), Payload: payload, Wire: wire, Attempts: 1, LastAttemptAt: g.e.now()})
		if okind == outEdit {
			g.out.edits[string(id)] = true
		}
	}
	g.exec(g.m.Sent(ordering.MessageID(id), wire, g.e.now()))
	if err := g.stage.err; err != nil {
		// The ratchet generation that protected wire is not on disk: a
		// restart would use it again, so wire must never go out.
		return nil, fmt.Errorf("storing the group state before sending: %w", err)
	}
	return wire, nil
}

// flushHeld sends messages held while proposals were pending.
func (g *group) flushHeld() {
	if !g.canSendNow() || len(g.out.held) == 0 || g.closed || g.m == nil {
		return
	}
	held := g.out.held
	g.out.held = nil
	for _, h := range held {
		wire, err := g.protectOwn(h.id, h.payload, h.kind)
		if err != nil {
			g.e.log.Warn("sending held message", "err", err)
			continue
		}
		id := h.id
		g.publishLogged(wire, func(_ p2p.PublishResult, err error) {
			if err == nil {
				g.setDelivery(id, Sent)
			}
		})
	}
}

// setDelivery moves an own message forward (never back) and tells the
// front ends.
func (g *group) setDelivery(id []byte, d Delivery) {
	cur, tracked := g.out.delivery[string(id)]
	if !tracked || cur >= d && cur != Failed {
		return
	}
	var st store.DeliveryState
	switch d {
	case Sent:
		st = store.Sent
	case Delivered:
		st = store.Delivered
		delete(g.out.delivery, string(id))
		_ = g.e.db.Settle(g.ctx, g.id, id)
	case Failed:
		st = store.Failed
	}
	if d != Delivered {
		g.out.delivery[string(id)] = d
	}
	if err := g.e.db.SetDeliveryState(g.ctx, g.id, id, st); err != nil {
		g.e.log.Debug("delivery state", "err", err)
	}
	g.e.emit(DeliveryEvent{Group: g.gid, ID: MessageID(hex.EncodeToString(id)), Delivery: d})
}

func (g *group) onReceipt(ids [][]byte) {
	for _, id := range ids {
		if _, ok := g.out.delivery[string(id)]; ok {
			g.setDelivery(id, Delivered)
		}
		if g.out.edits[string(id)] {
			// An edit has no timeline row or delivery state: settle it.
			delete(g.out.edits, string(id))
			_ = g.e.db.Settle(g.ctx, g.id, id)
		}
	}
}

// receiptInterval is the least time between two receipt messages of a
// member in a group. Every member's receipts reach every other member, so
// under load (n members each receiving r messages/s) receipts would
// otherwise add up to n·4 messages/s to everyone's work; with the
// interval they add at most n per second, each naming up to 200 ids.
const receiptInterval = time.Second

func (g *group) queueReceipt(id []byte) {
	g.out.receipts = append(g.out.receipts, slices.Clone(id))
	if !g.out.rcptArmed {
		g.out.rcptArmed = true
		delay := max(g.e.cfg.ReceiptDelay, time.Until(g.out.rcptLast.Add(receiptInterval)))
		g.after(delay, func() {
			g.out.rcptArmed = false
			g.flushReceipts()
		})
	}
}

func (g *group) flushReceipts() {
	if len(g.out.receipts) == 0 || g.closed || !g.canSendNow() || g.out.rcptArmed {
		return
	}
	g.out.rcptLast = g.e.now()
	for len(g.out.receipts) > 0 {
		n := min(len(g.out.receipts), 200)
		if _, err := g.send(appReceipt, encodeIDList(g.out.receipts[:n]), nil); err != nil {
			return
		}
		g.out.receipts = g.out.receipts[n:]
	}
	g.out.receipts = nil
}

// loadOutbox restores own messages still awaiting a receipt or a send.
func (g *group) loadOutbox() {
	entries, err := g.e.db.Outbox(g.ctx, g.id)
	if err != nil {
		return
	}
	for _, en := range entries {
		switch en.Kind {
		case outApp:
			if len(en.Wire) == 0 {
				g.out.held = append(g.out.held, heldMsg{id: en.ID, payload: en.Payload, kind: outApp})
				g.out.delivery[string(en.ID)] = Pending
			} else {
				g.out.delivery[string(en.ID)] = Sent
			}
		case outEdit:
			if len(en.Wire) == 0 {
				g.out.held = append(g.out.held, heldMsg{id: en.ID, payload: en.Payload, kind: outEdit})
			}
			g.out.edits[string(en.ID)] = true
		case outWelcome:
			g.e.queueWelcome(p2p.PeerID(en.Payload), g, en.ID, en.Wire, false)
		}
	}
}
