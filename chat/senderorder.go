package chat

import (
	"math"
	"slices"
	"time"
)

// Per-sender order: a member shows each sender's messages in the order
// that sender sent them, whatever order gossip, sync and the validation
// pipeline delivered them in.
//
// A sender's order is its (epoch, MLS generation): within an epoch the
// application ratchet numbers the sender's messages 0, 1, 2, … (RFC 9420
// §9), so a message of generation g proves that generations 0…g-1 of
// that epoch exist. When a later one arrives first, it is held until the
// earlier ones arrive or until the hold bound passes; then it is shown
// anyway, marked orderGap (an earlier message of its sender is missing).
// An earlier message that arrives after a later one was shown is shown at
// once, marked orderLate.
//
// Generations prove nothing across epochs (a sender may have sent nothing
// more in the old epoch) and nothing before this member knew an epoch's
// start (it joined or restarted in the middle of it): a sender's first
// message in an epoch whose start this member did not see sets the
// baseline instead of being held. The hold is also bounded in count
// (maxHeld, across senders): beyond it the oldest held message is shown
// at once, marked.
//
// senderOrder is owned by the group's loop (not safe for concurrent use).

// orderMark says how a message was placed in its sender's order.
type orderMark uint8

const (
	orderInPlace orderMark = iota // in its sender's order
	orderGap                      // shown while an earlier message of its sender is missing
	orderLate                     // arrived after a later message of its sender was shown
)

func (m orderMark) String() string {
	switch m {
	case orderGap:
		return "gap"
	case orderLate:
		return "late"
	}
	return "in-order"
}

// seqKey is a message's place in its sender's order.
type seqKey struct {
	Epoch uint64
	Gen   uint32
}

func (a seqKey) less(b seqKey) bool {
	return a.Epoch < b.Epoch || a.Epoch == b.Epoch && a.Gen < b.Gen
}

// ordered is a message released by senderOrder, in the order to show it.
type ordered[T any] struct {
	Sender string
	Key    seqKey
	Value  T
	Mark   orderMark
}

type heldItem[T any] struct {
	key   seqKey
	value T
	until time.Time
}

type senderSeq[T any] struct {
	epoch uint64
	next  uint32 // the next generation expected in epoch
	held  []heldItem[T]
}

// maxBegun bounds the remembered epoch starts.
const maxBegun = 64

type senderOrder[T any] struct {
	hold    time.Duration
	maxHeld int
	senders map[string]*senderSeq[T]
	begun   []uint64 // epochs whose start this member saw (newest last)
	nheld   int
}

// Defaults of the engine's per-sender order: how long a later message
// waits for an earlier one, and how many messages a group holds at most.
const (
	senderHoldTime = 2 * time.Second
	senderMaxHeld  = 4096
)

func newSenderOrder[T any](hold time.Duration, maxHeld int) *senderOrder[T] {
	return &senderOrder[T]{hold: hold, maxHeld: max(maxHeld, 1), senders: map[string]*senderSeq[T]{}}
}

// begin records that this member saw epoch start (it processed the Commit
// into it, created the group or joined at it): every sender's generations
// in it start at 0.
func (o *senderOrder[T]) begin(epoch uint64) {
	if slices.Contains(o.begun, epoch) {
		return
	}
	o.begun = append(o.begun, epoch)
	if len(o.begun) > maxBegun {
		o.begun = o.begun[1:]
	}
}

func (o *senderOrder[T]) sawStart(epoch uint64) bool { return slices.Contains(o.begun, epoch) }

// heldCount is how many messages wait.
func (o *senderOrder[T]) heldCount() int { return o.nheld }

// add takes a message of sender at key and returns the messages that may
// be shown now, in order (possibly none: it is held; possibly several:
// it filled a gap).
func (o *senderOrder[T]) add(now time.Time, sender string, key seqKey, v T) []ordered[T] {
	s := o.senders[sender]
	if s == nil {
		s = &senderSeq[T]{epoch: key.Epoch, next: key.Gen}
		if o.sawStart(key.Epoch) {
			// From the earliest epoch that started here: the sender's
			// messages of those epochs may still be on their way.
			s.next = 0
			for _, e := range o.begun {
				s.epoch = min(s.epoch, e)
			}
		}
		o.senders[sender] = s
	}
	if key.less(seqKey{s.epoch, s.next}) {
		return []ordered[T]{{Sender: sender, Key: key, Value: v, Mark: orderLate}}
	}
	i, found := slices.BinarySearchFunc(s.held, key, func(h heldItem[T], k seqKey) int {
		switch {
		case h.key.less(k):
			return -1
		case k.less(h.key):
			return 1
		}
		return 0
	})
	if found {
		// A second message with a held one's key: no honest sender
		// reuses a generation; it is shown, marked, and holds nothing.
		return []ordered[T]{{Sender: sender, Key: key, Value: v, Mark: orderLate}}
	}
	s.held = slices.Insert(s.held, i, heldItem[T]{key: key, value: v, until: now.Add(o.hold)})
	o.nheld++
	out := o.drain(sender, s, nil)
	for o.nheld > o.maxHeld {
		out = o.releaseOldest(out)
	}
	return out
}

// shown moves sender's order past key for a message shown without add
// (one restored after a restart): an earlier message that comes later is
// marked late.
func (o *senderOrder[T]) shown(sender string, key seqKey) {
	next := key.Gen
	if next < math.MaxUint32 {
		next++
	}
	s := o.senders[sender]
	if s == nil {
		o.senders[sender] = &senderSeq[T]{epoch: key.Epoch, next: next}
		return
	}
	if !key.less(seqKey{s.epoch, s.next}) {
		s.epoch, s.next = key.Epoch, next
	}
}

// drain releases the sender's held messages that are next in order.
func (o *senderOrder[T]) drain(sender string, s *senderSeq[T], out []ordered[T]) []ordered[T] {
	for len(s.held) > 0 {
		h := s.held[0]
		switch {
		case h.key.Epoch == s.epoch && h.key.Gen == s.next:
		case h.key.Epoch > s.epoch && (!o.sawStart(h.key.Epoch) || h.key.Gen == 0):
			// The sender moved on to a later epoch: nothing proves it
			// sent more in the old one.
		default:
			return out
		}
		out = append(out, ordered[T]{Sender: sender, Key: h.key, Value: h.value})
		o.pop(s, h.key)
	}
	return out
}

func (o *senderOrder[T]) pop(s *senderSeq[T], k seqKey) {
	s.held = s.held[1:]
	o.nheld--
	s.epoch, s.next = k.Epoch, k.Gen+1
}

// releaseUpTo shows the sender's held messages up to and including the
// one at index i, marking those that skip a gap, then what follows them
// in order.
func (o *senderOrder[T]) releaseUpTo(sender string, s *senderSeq[T], i int, out []ordered[T]) []ordered[T] {
	for range i + 1 {
		h := s.held[0]
		mark := orderInPlace
		if h.key.Epoch == s.epoch && h.key.Gen != s.next ||
			h.key.Epoch > s.epoch && o.sawStart(h.key.Epoch) && h.key.Gen != 0 {
			mark = orderGap
		}
		out = append(out, ordered[T]{Sender: sender, Key: h.key, Value: h.value, Mark: mark})
		o.pop(s, h.key)
	}
	return o.drain(sender, s, out)
}

// releaseOldest shows the message held longest (the count bound).
func (o *senderOrder[T]) releaseOldest(out []ordered[T]) []ordered[T] {
	var (
		who   string
		ws    *senderSeq[T]
		wi    int
		until time.Time
	)
	for name, s := range o.senders {
		for i, h := range s.held {
			if ws == nil || h.until.Before(until) || h.until.Equal(until) && name < who {
				who, ws, wi, until = name, s, i, h.until
			}
		}
	}
	if ws == nil {
		return out
	}
	return o.releaseUpTo(who, ws, wi, out)
}

// expire shows the messages whose hold ended by now (with everything
// before them in their sender's order), marked.
func (o *senderOrder[T]) expire(now time.Time) []ordered[T] {
	var out []ordered[T]
	names := make([]string, 0, len(o.senders))
	for name := range o.senders {
		names = append(names, name)
	}
	slices.Sort(names) // a deterministic order across senders
	for _, name := range names {
		s := o.senders[name]
		last := -1
		for i, h := range s.held {
			if !h.until.After(now) {
				last = i
			}
		}
		if last >= 0 {
			out = o.releaseUpTo(name, s, last, out)
		}
	}
	return out
}

// nextExpiry reports when the earliest hold ends.
func (o *senderOrder[T]) nextExpiry() (time.Time, bool) {
	var t time.Time
	ok := false
	for _, s := range o.senders {
		for _, h := range s.held {
			if !ok || h.until.Before(t) {
				t, ok = h.until, true
			}
		}
	}
	return t, ok
}

// flush shows a sender's held messages at once (marked where they skip a
// gap) and forgets the sender: it left the group, or the group stops.
func (o *senderOrder[T]) flush(sender string) []ordered[T] {
	s := o.senders[sender]
	if s == nil {
		return nil
	}
	var out []ordered[T]
	if len(s.held) > 0 {
		out = o.releaseUpTo(sender, s, len(s.held)-1, nil)
	}
	delete(o.senders, sender)
	return out
}
