package p2p

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// /canopy/relay/1 carries the requests members make of it:
//
//	request: op u8, then
//	  1 keep topic:    topic str | lease_seconds uvarint   (0: release)
//	                   -> status | granted_seconds uvarint
//	  2 deposit mail:  recipient bytes | ttl_seconds uvarint | message bytes
//	                   -> status
//	  3 fetch mail:    limit uvarint
//	                   -> status, item frames (1 u8 | id [32] | from bytes |
//	                      deposited_unix uvarint | message bytes), end frame
//	                      (2 u8); client: ack frame (count uvarint | ids);
//	                   -> status (items acknowledged are deleted)
//	  4 put keypkgs:   count uvarint | count × (last_resort u8 | suite uvarint |
//	                   data bytes)
//	                   -> status | available uvarint
//
// Mail and KeyPackages belong to the authenticated remote peer: only a peer
// can fetch its own mail and upload its own KeyPackages. Anyone can deposit
// mail for anyone, within the recipient's quota, a per-sender share of it
// (items and bytes), a maximum item size, a per-address deposit rate and
// a cap on all mailboxes together (Quotas).

// Relay request ops.
const (
	relayOpKeep    = 1
	relayOpDeposit = 2
	relayOpFetch   = 3
	relayOpPutKPs  = 4
)

const (
	mailTagItem = 1
	mailTagEnd  = 2
	// maxMailFetch caps the items of one fetch.
	maxMailFetch = 64
	// maxKPsPerPut caps the packages of one upload.
	maxKPsPerPut = 256
)

func (n *Node) relayFrameMax() int { return n.inboxFrameMax() + 1024 }

// relayRequest is a decoded /canopy/relay/1 request.
type relayRequest struct {
	op uint8
	// keep
	topic     string
	leaseSecs uint64
	// deposit
	recipient peer.ID
	ttlSecs   uint64
	message   []byte // encoded InboxMessage
	// fetch
	limit uint64
	// put key packages
	kps []KeyPackage
}

func (q relayRequest) encode() []byte {
	var e enc
	e.u8(q.op)
	switch q.op {
	case relayOpKeep:
		e.str(q.topic)
		e.uvarint(q.leaseSecs)
	case relayOpDeposit:
		e.bytes([]byte(q.recipient))
		e.uvarint(q.ttlSecs)
		e.bytes(q.message)
	case relayOpFetch:
		e.uvarint(q.limit)
	case relayOpPutKPs:
		e.uvarint(uint64(len(q.kps)))
		for _, kp := range q.kps {
			e.bool(kp.LastResort)
			e.uvarint(uint64(kp.CipherSuite))
			e.bytes(kp.Data)
		}
	}
	return e.body()
}

// decodeRelayRequest decodes and checks a request; maxMsg caps the data of
// deposited messages.
func decodeRelayRequest(b []byte, maxMsg int) (relayRequest, error) {
	d := newDec(b)
	q := relayRequest{op: d.u8()}
	switch q.op {
	case relayOpKeep:
		q.topic = d.str(maxTopicLen)
		q.leaseSecs = d.uvarint()
	case relayOpDeposit:
		rawTo := d.bytes(maxPeerIDLen)
		q.ttlSecs = d.uvarint()
		q.message = d.bytes(maxMsg + 1024)
		if d.err == nil {
			to, err := peer.IDFromBytes(rawTo)
			if err != nil {
				return q, fmt.Errorf("%w: recipient: %v", errDecode, err)
			}
			q.recipient = to
			if _, err := DecodeInboxMessage(q.message, maxMsg); err != nil {
				return q, err
			}
		}
	case relayOpFetch:
		q.limit = d.uvarint()
	case relayOpPutKPs:
		count := d.uvarint()
		if d.err == nil && count > maxKPsPerPut {
			return q, fmt.Errorf("%w: more than %d key packages", errDecode, maxKPsPerPut)
		}
		for i := uint64(0); i < count && d.err == nil; i++ {
			kp := KeyPackage{LastResort: d.bool()}
			suite := d.uvarint()
			kp.Data = d.bytes(MaxKeyPackageSize)
			if d.err == nil && (len(kp.Data) == 0 || suite > math.MaxUint16) {
				return q, fmt.Errorf("%w: empty key package or bad cipher suite", errDecode)
			}
			kp.CipherSuite = uint16(suite)
			q.kps = append(q.kps, kp)
		}
	default:
		if d.err == nil {
			return q, fmt.Errorf("%w: unknown relay op %d", errDecode, q.op)
		}
	}
	if err := d.done(); err != nil {
		return q, err
	}
	if q.op == relayOpKeep && !isTopicName(q.topic) {
		return q, fmt.Errorf("%w: bad topic name", errDecode)
	}
	return q, nil
}

// serveRelay handles /canopy/relay/1.
func (r *Relay) serveRelay(ctx context.Context, f *frameStream, from peer.ID, req []byte) error {
	q, err := decodeRelayRequest(req, r.n.cfg.maxMsgSize)
	if err != nil {
		return err
	}
	switch q.op {
	case relayOpKeep:
		lease := time.Duration(min(q.leaseSecs, uint64(r.cfg.MaxLease/time.Second))) * time.Second
		// A peer id minted a moment ago gets a short lease: sybils that
		// disconnect lose their topics soon, members renew sooner.
		if fresh := r.cfg.Quotas.NewPeerLease; r.n.connAge(from) < fresh {
			lease = min(lease, fresh)
		}
		reply := make(chan keepResp, 1)
		select {
		case r.keepCh <- keepReq{from: from, ip: sourceOf(f.s.Conn()), topic: q.topic, lease: lease, reply: reply}:
		case <-ctx.Done():
			return ctx.Err()
		}
		var resp keepResp
		select {
		case resp = <-reply:
		case <-ctx.Done():
			return ctx.Err()
		}
		if resp.err != nil {
			return resp.err
		}
		var e enc
		e.uvarint(uint64(resp.granted / time.Second))
		return f.writeStatus(CodeOK, "", e.body(), 16)

	case relayOpDeposit:
		ttl := time.Duration(min(q.ttlSecs, uint64(r.cfg.MailboxTTL/time.Second))) * time.Second
		if ttl <= 0 {
			ttl = r.cfg.MailboxTTL
		}
		qs := r.cfg.Quotas
		if len(q.message) > qs.MaxMailItem {
			r.n.metrics.quota("mail_item_size")
			return fmt.Errorf("%w: message of %d bytes, limit %d", ErrFrameTooLarge, len(q.message), qs.MaxMailItem)
		}
		if !r.depositIP.allow(sourceOf(f.s.Conn()), float64(len(q.message))) {
			r.n.metrics.quota("deposit_per_ip")
			return fmt.Errorf("%w: too much mail from this address", ErrRateLimited)
		}
		now := time.Now()
		item := MailItem{ID: IDOf(q.message), Recipient: q.recipient, From: from, Data: q.message, Deposited: now, Expires: now.Add(ttl)}
		err := r.cfg.Mailbox.Deposit(ctx, item, MailQuota{
			PerRecipient: Quota{Count: qs.MailboxItems, Bytes: qs.MailboxBytes},
			PerSender:    Quota{Count: qs.MailboxItemsPerSender, Bytes: qs.MailboxBytesPerSender},
			SenderTotal:  Quota{Count: qs.MailItemsPerSender, Bytes: qs.MailBytesPerSender},
			Total:        Quota{Count: qs.MailItems, Bytes: qs.MailBytes},
		})
		if err != nil {
			if errors.Is(err, ErrQuotaExceeded) {
				r.n.metrics.quota("mailbox")
			}
			return err
		}
		r.n.metrics.mail("deposit", 1)
		return f.writeStatus(CodeOK, "", nil, 0)

	case relayOpFetch:
		limit := q.limit
		if limit == 0 || limit > maxMailFetch {
			limit = maxMailFetch
		}
		items, err := r.cfg.Mailbox.Fetch(ctx, from, time.Now(), int(limit))
		if err != nil {
			return err
		}
		return r.sendMail(ctx, f, from, items)

	default: // relayOpPutKPs
		qs := r.cfg.Quotas
		avail, err := r.cfg.KeyPackages.Put(ctx, from, q.kps, time.Now().Add(r.cfg.KeyPackageTTL), Quota{Count: qs.KeyPackages, Bytes: qs.KeyPackageBytes})
		if err != nil {
			if errors.Is(err, ErrQuotaExceeded) {
				r.n.metrics.quota("keypackages")
			}
			return err
		}
		r.n.metrics.keyPackage("stored", len(q.kps))
		var e enc
		e.uvarint(uint64(avail))
		return f.writeStatus(CodeOK, "", e.body(), 16)
	}
}

// sendMail streams mail items, reads the recipient's acknowledgement and
// deletes what was acknowledged.
func (r *Relay) sendMail(ctx context.Context, f *frameStream, from peer.ID, items []MailItem) error {
	if err := f.writeStatus(CodeOK, "", nil, 0); err != nil {
		return statusErr{CodeInternal}
	}
	sent := make(map[MessageID]bool, len(items))
	for _, it := range items {
		if err := f.write(encodeMailItem(it), r.n.relayFrameMax()); err != nil {
			return statusErr{CodeInternal}
		}
		sent[it.ID] = true
	}
	if err := f.write([]byte{mailTagEnd}, 1); err != nil {
		return statusErr{CodeInternal}
	}
	r.n.metrics.mail("deliver", len(items))
	ack, err := f.read(smallFrame)
	if err != nil {
		return statusErr{CodeBadRequest}
	}
	ids, err := decodeMailAck(ack)
	if err != nil {
		_ = f.writeStatus(CodeBadRequest, err.Error(), nil, 0)
		return statusErr{CodeBadRequest}
	}
	ids = slices.DeleteFunc(ids, func(id MessageID) bool { return !sent[id] })
	if err := r.cfg.Mailbox.Delete(ctx, from, ids); err != nil {
		r.n.log.Warn("relay: deleting acknowledged mail failed", "err", err)
		_ = f.writeStatus(CodeInternal, "internal error", nil, 0)
		return statusErr{CodeInternal}
	}
	r.n.metrics.mail("ack", len(ids))
	if err := f.writeStatus(CodeOK, "", nil, 0); err != nil {
		return statusErr{CodeInternal}
	}
	return nil
}

func encodeMailItem(it MailItem) []byte {
	var e enc
	e.u8(mailTagItem)
	e.fixed(it.ID[:])
	e.bytes([]byte(it.From))
	e.uvarint(uint64(max(it.Deposited.Unix(), 0)))
	e.bytes(it.Data)
	return e.body()
}

// Mail is a message fetched from a relay mailbox.
type Mail struct {
	ID        MessageID
	From      peer.ID
	Deposited time.Time
	Message   InboxMessage
}

// decodeMailFrame decodes an item frame, or reports the end frame.
func decodeMailFrame(b []byte, maxData int) (Mail, bool, error) {
	d := newDec(b)
	switch tag := d.u8(); tag {
	case mailTagItem:
		var m Mail
		copy(m.ID[:], d.fixed(32))
		rawFrom := d.bytes(maxPeerIDLen)
		dep := d.uvarint()
		data := d.bytes(maxData + 1024)
		if err := d.done(); err != nil {
			return Mail{}, false, err
		}
		if dep > 1<<40 {
			return Mail{}, false, fmt.Errorf("%w: bad deposit time", errDecode)
		}
		from, err := peer.IDFromBytes(rawFrom)
		if err != nil {
			return Mail{}, false, fmt.Errorf("%w: sender: %v", errDecode, err)
		}
		if IDOf(data) != m.ID {
			return Mail{}, false, fmt.Errorf("%w: mail id does not match content", errDecode)
		}
		msg, err := DecodeInboxMessage(data, maxData)
		if err != nil {
			return Mail{}, false, err
		}
		m.From, m.Deposited, m.Message = from, time.Unix(int64(dep), 0), msg
		return m, false, nil
	case mailTagEnd:
		return Mail{}, true, d.done()
	default:
		if d.err == nil {
			d.fail("unknown mail frame tag %d", tag)
		}
		return Mail{}, false, d.err
	}
}

func encodeMailAck(ids []MessageID) []byte {
	var e enc
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		e.fixed(id[:])
	}
	return e.body()
}

func decodeMailAck(b []byte) ([]MessageID, error) {
	d := newDec(b)
	n := d.uvarint()
	if d.err == nil && n > maxMailFetch {
		return nil, fmt.Errorf("%w: ack of %d items", errDecode, n)
	}
	ids := make([]MessageID, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		var id MessageID
		copy(id[:], d.fixed(32))
		ids = append(ids, id)
	}
	return ids, d.done()
}

// decodeCount decodes a response body that is one uvarint (granted lease
// seconds, available KeyPackages).
func decodeCount(body []byte) (uint64, error) {
	d := newDec(body)
	v := d.uvarint()
	return v, d.done()
}

// Relay clients.

// KeepTopic asks relay to keep topic's frames for lease (capped by the
// relay; 0 releases the topic). It returns the lease granted. Members renew
// before it ends; topics joined with relays configured do so by themselves.
func (n *Node) KeepTopic(ctx context.Context, relay peer.ID, topic string, lease time.Duration) (time.Duration, error) {
	if !isTopicName(topic) {
		return 0, fmt.Errorf("p2p: %q is not a canopy group topic", topic)
	}
	req := relayRequest{op: relayOpKeep, topic: topic, leaseSecs: uint64(max(lease, 0) / time.Second)}.encode()
	var granted time.Duration
	err := n.call(ctx, relay, ProtocolRelay, func(f *frameStream) error {
		if err := writeReq(f, req, smallFrame); err != nil {
			return err
		}
		body, err := expectOK(f, 16)
		if err != nil {
			return err
		}
		secs, err := decodeCount(body)
		if err != nil {
			return err
		}
		granted = time.Duration(min(secs, 1<<32)) * time.Second
		return nil
	})
	return granted, err
}

// Deposit leaves msg for recipient in relay's mailbox for ttl (capped by the
// relay).
func (n *Node) Deposit(ctx context.Context, relay, recipient peer.ID, msg InboxMessage, ttl time.Duration) error {
	req := relayRequest{op: relayOpDeposit, recipient: recipient, ttlSecs: uint64(max(ttl, 0) / time.Second), message: EncodeInboxMessage(msg)}.encode()
	if len(req) > n.relayFrameMax() {
		return &Error{Protocol: ProtocolRelay, Peer: relay, Op: "write", Err: ErrFrameTooLarge}
	}
	return n.call(ctx, relay, ProtocolRelay, func(f *frameStream) error {
		if err := writeReq(f, req, n.relayFrameMax()); err != nil {
			return err
		}
		_, err := expectOK(f, 0)
		return err
	})
}

// FetchMailbox fetches this node's mail from relay. Fetched mail is
// acknowledged and deleted on the relay; fetch again until it returns
// nothing to drain a large mailbox.
func (n *Node) FetchMailbox(ctx context.Context, relay peer.ID) ([]Mail, error) {
	var mail []Mail
	err := n.call(ctx, relay, ProtocolRelay, func(f *frameStream) error {
		if err := writeReq(f, relayRequest{op: relayOpFetch, limit: maxMailFetch}.encode(), smallFrame); err != nil {
			return err
		}
		if _, err := expectOK(f, 0); err != nil {
			return err
		}
		for {
			b, err := f.read(n.relayFrameMax())
			if err != nil {
				return err
			}
			m, end, err := decodeMailFrame(b, n.cfg.maxMsgSize)
			if err != nil {
				return err
			}
			if end {
				break
			}
			if len(mail) >= maxMailFetch {
				return fmt.Errorf("%w: more mail than asked for", ErrBadResponse)
			}
			mail = append(mail, m)
		}
		ids := make([]MessageID, len(mail))
		for i, m := range mail {
			ids[i] = m.ID
		}
		if err := writeReq(f, encodeMailAck(ids), smallFrame); err != nil {
			return err
		}
		_, err := expectOK(f, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	return mail, nil
}

// PutKeyPackages uploads this node's KeyPackages to relay, which hands each
// one-time package out once and the last-resort package (at most one; a new
// one replaces the old) as often as asked. It returns how many packages the
// relay now holds for this node.
func (n *Node) PutKeyPackages(ctx context.Context, relay peer.ID, kps []KeyPackage) (int, error) {
	if len(kps) > maxKPsPerPut {
		return 0, fmt.Errorf("p2p: at most %d key packages per upload", maxKPsPerPut)
	}
	for _, kp := range kps {
		if len(kp.Data) == 0 || len(kp.Data) > MaxKeyPackageSize {
			return 0, fmt.Errorf("p2p: key package of %d bytes", len(kp.Data))
		}
	}
	req := relayRequest{op: relayOpPutKPs, kps: kps}.encode()
	if len(req) > n.relayFrameMax() {
		return 0, &Error{Protocol: ProtocolRelay, Peer: relay, Op: "write", Err: ErrFrameTooLarge}
	}
	var avail int
	err := n.call(ctx, relay, ProtocolRelay, func(f *frameStream) error {
		if err := writeReq(f, req, n.relayFrameMax()); err != nil {
			return err
		}
		body, err := expectOK(f, 16)
		if err != nil {
			return err
		}
		v, err := decodeCount(body)
		if err != nil {
			return err
		}
		avail = int(min(v, 1<<31))
		return nil
	})
	return avail, err
}
