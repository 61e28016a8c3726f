package chat

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Persistence of the canonical tip and the timeline rows staged with it,
// and the conversion of stored rows into API messages.

func (g *group) saveMetaInto(row *store.Group) {
	if b, err := json.Marshal(g.meta); err == nil {
		row.Meta = b
	}
}

// stageRow adds a message to the next persisted transition; it reports
// false for a message staged already. One the store has (a re-send, a
// duplicate) is left out when the transition is written
// (TransitionResult.Inserted), without a lookup per message.
func (g *group) stageRow(r store.Message) bool {
	if r.GroupID == nil {
		r.GroupID = g.id
	}
	k := string(r.ID)
	if g.stage.rowIDs[k] {
		return false
	}
	g.stage.rowIDs[k] = true
	g.stage.rows = append(g.stage.rows, r)
	return true
}

// persistTip writes the canonical tip's state with the staged messages,
// outbox entries and frames in one transaction (store.CommitEpoch), then
// tells the front ends about the messages. Persisting comes before acting
// on a new state: callers publish only after it.
func (g *group) persistTip() error { return g.persistTipCtx(g.ctx) }

// persistTipCtx is persistTip under ctx (the group's own may be cancelled
// already when it stops). Its result is also kept in g.stage.err for
// callers that persist through exec (protectOwn).
func (g *group) persistTipCtx(ctx context.Context) error {
	err := g.writeTip(ctx)
	g.stage.err = err
	return err
}

func (g *group) writeTip(ctx context.Context) error {
	if g.m == nil {
		return nil
	}
	st, epoch, _ := g.m.Current()
	marks := g.stage.marks
	g.stage.marks = nil
	rows, outbox, frames := g.stage.take()
	heldAdd, heldDone := g.stage.takeHeld()
	state, err := st.MarshalState()
	if err != nil {
		g.e.log.Error("marshal state", "group", g.gid, "err", err)
		return err
	}
	row := g.row
	row.Name = g.settings.Name
	row.Retention = g.settings.Retention
	row.Left = g.closed
	g.saveMetaInto(&row)
	var prune uint64
	if epoch > ordering.DefaultWindowEpochs {
		prune = epoch - ordering.DefaultWindowEpochs
	}
	res, err := g.e.db.CommitEpoch(ctx, store.EpochTransition{
		GroupID: g.id, Epoch: epoch, CommitHash: g.commitRef, State: state, CommitInfo: g.tipCommitInfo(), Group: &row,
		Messages: rows, OutboxAdd: outbox, PruneBelow: prune,
		Frames: frames, FrameQuota: frameLogQuota,
		HeldAdd: heldAdd, HeldDone: heldDone,
	})
	if err != nil {
		if ctx.Err() == nil {
			g.e.log.Error("persisting group state", "group", g.gid, "epoch", epoch, "err", err)
		}
		return err
	}
	g.row = row
	for _, h := range heldAdd {
		g.order.stored[ordering.MessageID(h.ID)] = true
	}
	for _, r := range res.Frames {
		g.noteLogged(r)
	}
	if len(res.Inserted) == len(rows) {
		fresh := rows[:0]
		for i, r := range rows {
			if res.Inserted[i] {
				fresh = append(fresh, r)
			}
		}
		rows = fresh
	}
	g.emitRows(rows, marks)
	return nil
}

func (g *group) systemLine(format string, args ...any) store.Message {
	return store.Message{
		GroupID: g.id, ID: newID(), Kind: uint16(appSystem), Text: fmt.Sprintf(format, args...),
		SentAt: g.e.now(), State: store.Received, Epoch: g.epoch(),
	}
}

func (g *group) epoch() uint64 {
	if g.st == nil {
		return 0
	}
	return g.st.Epoch()
}

// emitRows emits MessageEvents for stored rows and updates the view.
func (g *group) emitRows(rows []store.Message, marks map[string]orderMark) {
	if len(rows) == 0 {
		return
	}
	for _, r := range rows {
		m := g.e.messageFromRow(g, r)
		switch marks[string(r.ID)] {
		case orderGap:
			m.Placement = AfterGap
		case orderLate:
			m.Placement = Late
		}
		g.view.mu.Lock()
		if !m.Own && m.Kind != KindSystem {
			g.view.snap.Unread++
			if m.Mentions {
				g.view.snap.Mentions++
			}
		}
		if r.SentAt.After(g.view.snap.LastAt) || m.Own {
			g.view.snap.LastAt = g.e.now()
		}
		g.view.mu.Unlock()
		g.e.emit(MessageEvent{Message: m})
	}
	g.emitGroup()
}

// messageFromRow converts a stored message to the API's Message.
func (e *Engine) messageFromRow(g *group, r store.Message) Message {
	m := Message{
		ID: MessageID(hex.EncodeToString(r.ID)), Group: g.gid, Body: r.Text,
		SentAt: r.SentAt, Epoch: r.Epoch, ReplyTo: MessageID(hex.EncodeToString(r.ReplyTo)),
	}
	k := appKind(r.Kind)
	if k == appSystem {
		m.Kind = KindSystem
		return m
	}
	m.Kind = k.apiKind()
	m.File = fileOfRow(r)
	sender := p2p.PeerID(r.Sender)
	m.Own = sender == e.id.id
	hint := ""
	if in, ok := g.infoByPeer(sender); ok {
		hint = in.hint
		m.SenderFP = FormatFingerprint(in.fp)
	} else {
		e.mu.Lock()
		if ci := e.contacts[sender]; ci != nil {
			m.SenderFP = FormatFingerprint(ci.fp)
		}
		e.mu.Unlock()
	}
	if m.Own {
		m.SenderFP = FormatFingerprint(e.id.fp)
	}
	m.Sender = e.displayName(sender, hint)
	switch r.State {
	case store.Pending:
		m.Delivery = Pending
	case store.Sent:
		m.Delivery = Sent
	case store.Delivered, store.Read:
		m.Delivery = Delivered
	case store.Failed:
		m.Delivery = Failed
	}
	if !m.Own {
		m.Mentions = mentions(r.Text, e.nick())
	}
	return m
}

// mentions reports whether text contains @nick as a word.
func mentions(text, nick string) bool {
	if nick == "" {
		return false
	}
	lt, ln := strings.ToLower(text), "@"+strings.ToLower(nick)
	for i := 0; ; {
		j := strings.Index(lt[i:], ln)
		if j < 0 {
			return false
		}
		end := i + j + len(ln)
		if end == len(lt) || !isWordByte(lt[end]) {
			return true
		}
		i = end
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 0x80
}

// stagedWrites is what the loop writes with the next persisted state.
type stagedWrites struct {
	dirty bool // a retained state changed (opened message, proposal)
	// ownSent: an own frame was protected (a ratchet key used): it must
	// be written before the frame is published, also within a batch.
	ownSent bool
	// batching: the loop is handling a batch of received frames; what
	// they stage is written once at its end (handleFrames).
	batching bool
	// lastBatch is when the last batch of received frames ended (a batch
	// lingers for more while frames keep coming).
	lastBatch time.Time
	// linger is how long a batch waits for more frames while they keep
	// coming (batchLinger; tests change it).
	linger time.Duration
	// req is a command that came while a batch lingered: it runs as soon
	// as the batch is written.
	req    func()
	rows   []store.Message // rows to write with the next persisted state
	rowIDs map[string]bool
	marks  map[string]orderMark // rows shown out of their sender's order
	outbox []store.OutboxEntry
	// frames to log with the state they produced (received) or that
	// protected them (own); see batch.go on why that is safe.
	frames []store.Frame
	// held: messages opened and held for their sender's order, to store
	// with the state (deliveryorder.go); heldDone: stored ones shown since.
	held     map[ordering.MessageID]store.HeldMessage
	heldDone [][]byte
	// err is the last write's result (nil: written).
	err error
}

// pending reports whether anything waits to be written.
func (w *stagedWrites) pending() bool {
	return w.dirty || len(w.rows) > 0 || len(w.outbox) > 0 || len(w.frames) > 0 || len(w.held) > 0 || len(w.heldDone) > 0
}

// hold stages a held message for the next persisted state.
func (w *stagedWrites) hold(h store.HeldMessage) {
	if w.held == nil {
		w.held = map[ordering.MessageID]store.HeldMessage{}
	}
	w.held[ordering.MessageID(h.ID)] = h
}

// unhold drops a held message shown before it was written; it reports
// whether there was one.
func (w *stagedWrites) unhold(id ordering.MessageID) bool {
	if _, ok := w.held[id]; !ok {
		return false
	}
	delete(w.held, id)
	return true
}

// takeHeld returns the staged held messages and releases, and empties
// them. The order does not matter: the store lists held messages by when
// they were held (HeldMessage.At) and restoreHeld sorts them by sender.
func (w *stagedWrites) takeHeld() ([]store.HeldMessage, [][]byte) {
	add := slices.Collect(maps.Values(w.held))
	done := w.heldDone
	clear(w.held)
	w.heldDone = nil
	return add, done
}

// take returns the staged rows, outbox entries and frames and empties the
// stage.
func (w *stagedWrites) take() ([]store.Message, []store.OutboxEntry, []store.Frame) {
	rows, outbox, frames := w.rows, w.outbox, w.frames
	w.rows, w.outbox, w.frames, w.dirty, w.ownSent = nil, nil, nil, false, false
	clear(w.rowIDs)
	return rows, outbox, frames
}
