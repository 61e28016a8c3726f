package p2p

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// /canopy/sync/1 fetches a topic's stored frames, for a peer catching up
// after being offline. Members serve it from their own history
// (Handlers.Sync); relays from their TopicLog.
//
//	request:  topic str | since_epoch uvarint | after uvarint | limit uvarint
//	response: status, then frames
//	          1 u8 | seq uvarint | epoch uvarint | data bytes    (entry)
//	          2 u8 | next uvarint | more u8                      (end of page)
//
// After is a cursor local to the server: the Next of the previous page. The
// server sends at most Limit entries (capped at MaxSyncLimit) and at most
// about maxSyncPageBytes; More says whether to ask again with After = Next.
// The client checks every entry's MLS header against the topic.

// MaxSyncLimit caps the entries of one sync page.
const MaxSyncLimit = 512

// maxSyncPageBytes caps the bytes of one page (one larger entry may pass).
const maxSyncPageBytes = 32 << 20

const (
	syncTagEntry = 1
	syncTagEnd   = 2
)

// SyncRequest asks for the frames of Topic of epochs >= SinceEpoch stored
// after cursor After.
type SyncRequest struct {
	Topic      string
	SinceEpoch uint64
	After      uint64
	// Limit caps the number of entries (0 or more than MaxSyncLimit means
	// MaxSyncLimit).
	Limit int
}

// SyncEntry is one stored frame.
type SyncEntry struct {
	// Seq is the frame's position in the server's storage order.
	Seq uint64
	// Epoch is the frame's MLS epoch; servers take it from the frame's
	// header, so handlers may leave it zero.
	Epoch uint64
	Data  []byte
}

// SyncPage is a server's answer.
type SyncPage struct {
	Entries []SyncEntry
	// Next is the cursor for the next request.
	Next uint64
	// More is true if the server has more entries after Next.
	More bool
}

// SyncHandler serves stored frames of a topic. It should return entries of
// epochs >= req.SinceEpoch stored after cursor req.After, in its own storage
// order with increasing Seq, at most req.Limit of them, with More set if it
// has more; and an error wrapping ErrNotFound for topics it does not know.
type SyncHandler func(ctx context.Context, from peer.ID, req SyncRequest) (SyncPage, error)

func encodeSyncRequest(r SyncRequest) []byte {
	var e enc
	e.str(r.Topic)
	e.uvarint(r.SinceEpoch)
	e.uvarint(r.After)
	e.uvarint(uint64(r.Limit))
	return e.body()
}

func decodeSyncRequest(b []byte) (SyncRequest, error) {
	d := newDec(b)
	r := SyncRequest{Topic: d.str(maxTopicLen), SinceEpoch: d.uvarint(), After: d.uvarint()}
	limit := d.uvarint()
	if err := d.done(); err != nil {
		return SyncRequest{}, err
	}
	if !isTopicName(r.Topic) {
		return SyncRequest{}, fmt.Errorf("%w: bad topic name", errDecode)
	}
	r.Limit = clampLimit(limit)
	return r, nil
}

func clampLimit(l uint64) int {
	if l == 0 || l > MaxSyncLimit {
		return MaxSyncLimit
	}
	return int(l)
}

func encodeSyncEntry(e SyncEntry) []byte {
	var w enc
	w.u8(syncTagEntry)
	w.uvarint(e.Seq)
	w.uvarint(e.Epoch)
	w.bytes(e.Data)
	return w.body()
}

func encodeSyncEnd(next uint64, more bool) []byte {
	var w enc
	w.u8(syncTagEnd)
	w.uvarint(next)
	w.bool(more)
	return w.body()
}

// decodeSyncFrame decodes an entry (end == false) or an end-of-page frame.
func decodeSyncFrame(b []byte, maxData int) (e SyncEntry, end bool, next uint64, more bool, err error) {
	d := newDec(b)
	switch tag := d.u8(); tag {
	case syncTagEntry:
		e = SyncEntry{Seq: d.uvarint(), Epoch: d.uvarint(), Data: d.bytes(maxData)}
	case syncTagEnd:
		end = true
		next, more = d.uvarint(), d.bool()
	default:
		if d.err == nil {
			d.fail("unknown sync frame tag %d", tag)
		}
	}
	return e, end, next, more, d.done()
}

func (n *Node) syncFrameMax() int { return n.cfg.maxMsgSize + 64 }

func (n *Node) serveSync(ctx context.Context, f *frameStream, from peer.ID, req []byte) error {
	r, err := decodeSyncRequest(req)
	if err != nil {
		return err
	}
	var page SyncPage
	if n.relay != nil {
		page, err = n.relay.syncPage(ctx, r)
	} else if h := n.getHandlers().Sync; h != nil {
		page, err = h(ctx, from, r)
	} else {
		err = fmt.Errorf("%w: no history served", ErrUnavailable)
	}
	if err != nil {
		return err
	}
	if err := f.writeStatus(CodeOK, "", nil, 0); err != nil {
		return statusErr{CodeInternal}
	}
	next, more := page.Next, page.More
	var bytes int
	var last uint64
	truncated := false
	for i, e := range page.Entries {
		if i >= r.Limit || (i > 0 && bytes+len(e.Data) > maxSyncPageBytes) {
			truncated = true
			break
		}
		last = e.Seq
		if len(e.Data) > n.cfg.maxMsgSize {
			n.log.Warn("sync: skipping oversize stored frame", "topic", r.Topic, "seq", e.Seq)
			continue
		}
		// The epoch sent is the frame's own; frames that are not MLS
		// messages of an epoch, or are too old, are not sent.
		hdr, err := ParseMLSHeader(e.Data)
		if err != nil || !hdr.HasEpoch() {
			n.log.Warn("sync: skipping stored frame that is not an MLS message", "topic", r.Topic, "seq", e.Seq)
			continue
		}
		if e.Epoch = hdr.Epoch; e.Epoch < r.SinceEpoch {
			continue
		}
		if err := f.write(encodeSyncEntry(e), n.syncFrameMax()); err != nil {
			return statusErr{CodeInternal}
		}
		bytes += len(e.Data)
	}
	if truncated {
		next, more = last, true
	} else if next == 0 {
		next = last
	}
	if err := f.write(encodeSyncEnd(next, more), 64); err != nil {
		return statusErr{CodeInternal}
	}
	return nil
}

// Sync fetches one page of stored frames of req.Topic from peer `from`.
func (n *Node) Sync(ctx context.Context, from peer.ID, req SyncRequest) (SyncPage, error) {
	check, err := newFrameCheck(req.Topic, n.cfg.maxMsgSize)
	if err != nil {
		return SyncPage{}, err
	}
	req.Limit = clampLimit(uint64(max(req.Limit, 0)))
	var page SyncPage
	err = n.call(ctx, from, ProtocolSync, func(f *frameStream) error {
		if err := writeReq(f, encodeSyncRequest(req), smallFrame); err != nil {
			return err
		}
		if _, err := expectOK(f, 0); err != nil {
			return err
		}
		var bytes int
		for {
			b, err := f.read(n.syncFrameMax())
			if err != nil {
				return err
			}
			e, end, next, more, err := decodeSyncFrame(b, n.cfg.maxMsgSize)
			if err != nil {
				return err
			}
			if end {
				page.Next, page.More = next, more
				return nil
			}
			if len(page.Entries) >= req.Limit || bytes > maxSyncPageBytes {
				return fmt.Errorf("%w: page exceeds limits", ErrBadResponse)
			}
			hdr, _, err := check.check(e.Data)
			if err != nil {
				return fmt.Errorf("%w: entry %d: %v", ErrBadResponse, e.Seq, err)
			}
			if hdr.Epoch != e.Epoch {
				return fmt.Errorf("%w: entry %d: epoch %d, header says %d", ErrBadResponse, e.Seq, e.Epoch, hdr.Epoch)
			}
			if e.Epoch < req.SinceEpoch {
				return fmt.Errorf("%w: entry %d of epoch %d before %d", ErrBadResponse, e.Seq, e.Epoch, req.SinceEpoch)
			}
			bytes += len(e.Data)
			page.Entries = append(page.Entries, e)
		}
	})
	if err != nil {
		return SyncPage{}, err
	}
	return page, nil
}

// SyncAll fetches every stored frame of topic of epochs >= sinceEpoch from
// peer `from`, page by page, calling fn for each in the server's order.
func (n *Node) SyncAll(ctx context.Context, from peer.ID, topic string, sinceEpoch uint64, fn func(SyncEntry) error) error {
	_, err := n.SyncAfter(ctx, from, topic, sinceEpoch, 0, fn)
	return err
}

// SyncAfter is SyncAll from the server's cursor after (0: its first
// frame): the frames it stored after an earlier sync that ended at after.
// It returns the cursor to continue from next time.
func (n *Node) SyncAfter(ctx context.Context, from peer.ID, topic string, sinceEpoch, after uint64, fn func(SyncEntry) error) (uint64, error) {
	req := SyncRequest{Topic: topic, SinceEpoch: sinceEpoch, After: after}
	for {
		page, err := n.Sync(ctx, from, req)
		if err != nil {
			return req.After, err
		}
		for _, e := range page.Entries {
			if err := fn(e); err != nil {
				return req.After, err
			}
		}
		if !page.More {
			return max(page.Next, req.After), nil
		}
		if page.Next <= req.After {
			return req.After, &Error{Protocol: ProtocolSync, Peer: from, Op: "read", Err: fmt.Errorf("%w: cursor did not advance", ErrBadResponse)}
		}
		req.After = page.Next
	}
}
