package p2p

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// /canopy/inbox/1 delivers one direct message to a peer.
//
//	request:  kind u8 | topic str | data bytes
//	response: status
//
// Kind InboxTopic carries a topic frame to a peer that joined the topic late
// (see Topic); p2p handles it. All other kinds go to Handlers.Inbox. The same
// encoding is what relay mailboxes hold (SendOrDeposit, FetchMailbox).

// InboxKind says what a direct message is.
type InboxKind uint8

const (
	// InboxWelcome carries an MLS Welcome; Topic names the group's topic.
	InboxWelcome InboxKind = 1
	// InboxTopic carries a frame of Topic to a late-joining peer. p2p
	// validates and re-publishes it; it never reaches Handlers.Inbox.
	InboxTopic InboxKind = 2
	// InboxDirect is any other message the engine defines.
	InboxDirect InboxKind = 3
)

// InboxMessage is a direct message.
type InboxMessage struct {
	Kind InboxKind
	// Topic is the group topic the message concerns, if any.
	Topic string
	Data  []byte
}

// InboxHandler receives direct messages (Welcomes and InboxDirect).
// Returning an error wrapping ErrBadRequest, ErrDenied or ErrQuotaExceeded
// tells the sender; other errors are reported as internal.
type InboxHandler func(ctx context.Context, from peer.ID, msg InboxMessage) error

func (n *Node) inboxFrameMax() int { return n.cfg.maxMsgSize + 1024 }

// EncodeInboxMessage encodes m as carried by /canopy/inbox/1 and mailboxes.
func EncodeInboxMessage(m InboxMessage) []byte {
	var e enc
	e.u8(uint8(m.Kind))
	e.str(m.Topic)
	e.bytes(m.Data)
	return e.body()
}

// DecodeInboxMessage decodes an encoded InboxMessage of at most maxData
// bytes of data. Data aliases b.
func DecodeInboxMessage(b []byte, maxData int) (InboxMessage, error) {
	d := newDec(b)
	m := InboxMessage{Kind: InboxKind(d.u8()), Topic: d.str(maxTopicLen), Data: d.bytes(maxData)}
	if err := d.done(); err != nil {
		return InboxMessage{}, err
	}
	if m.Kind < InboxWelcome || m.Kind > InboxDirect {
		return InboxMessage{}, fmt.Errorf("%w: unknown inbox kind %d", errDecode, m.Kind)
	}
	if m.Topic != "" && !isTopicName(m.Topic) {
		return InboxMessage{}, fmt.Errorf("%w: bad topic name", errDecode)
	}
	if m.Kind == InboxTopic && m.Topic == "" {
		return InboxMessage{}, fmt.Errorf("%w: topic message without topic", errDecode)
	}
	return m, nil
}

func (n *Node) serveInbox(ctx context.Context, f *frameStream, from peer.ID, req []byte) error {
	m, err := DecodeInboxMessage(req, n.cfg.maxMsgSize)
	if err != nil {
		return err
	}
	if m.Kind == InboxTopic {
		err = n.deliverDirect(ctx, from, m.Topic, m.Data)
	} else if h := n.getHandlers().Inbox; h != nil {
		err = h(ctx, from, m)
	} else {
		err = fmt.Errorf("%w: no inbox", ErrUnavailable)
	}
	if err != nil {
		return err
	}
	return f.writeStatus(CodeOK, "", nil, 0)
}

// SendInbox delivers msg to peer `to` directly. The peer must be reachable.
func (n *Node) SendInbox(ctx context.Context, to peer.ID, msg InboxMessage) error {
	body := EncodeInboxMessage(msg)
	if len(body) > n.inboxFrameMax() {
		return &Error{Protocol: ProtocolInbox, Peer: to, Op: "write", Err: ErrFrameTooLarge}
	}
	return n.call(ctx, to, ProtocolInbox, func(f *frameStream) error {
		if err := writeReq(f, body, n.inboxFrameMax()); err != nil {
			return err
		}
		_, err := expectOK(f, 0)
		return err
	})
}

// Delivery tells how SendOrDeposit delivered a message.
type Delivery struct {
	// Direct is true when the recipient accepted the message itself.
	Direct bool
	// Relays lists the relays whose mailboxes hold the message otherwise.
	Relays []peer.ID
}

// SendOrDeposit delivers msg to `to` directly if it answers within
// directTimeout, and otherwise deposits it, for ttl, in the mailbox of every
// relay given (default: the configured relays). It fails only if neither
// worked. A remote refusal of the message itself (ErrBadRequest, ErrDenied)
// is returned without trying relays.
func (n *Node) SendOrDeposit(ctx context.Context, to peer.ID, msg InboxMessage, directTimeout, ttl time.Duration, relays ...peer.ID) (Delivery, error) {
	dctx, cancel := context.WithTimeout(ctx, directTimeout)
	err := n.SendInbox(dctx, to, msg)
	cancel()
	if err == nil {
		return Delivery{Direct: true}, nil
	}
	if errors.Is(err, ErrBadRequest) || errors.Is(err, ErrDenied) || errors.Is(err, ErrFrameTooLarge) {
		return Delivery{}, err
	}
	if len(relays) == 0 {
		for _, r := range n.cfg.relays {
			relays = append(relays, r.ID)
		}
	}
	errs := []error{err}
	var d Delivery
	for _, r := range relays {
		if derr := n.Deposit(ctx, r, to, msg, ttl); derr != nil {
			errs = append(errs, derr)
			continue
		}
		d.Relays = append(d.Relays, r)
	}
	if len(d.Relays) == 0 {
		return d, errors.Join(errs...)
	}
	return d, nil
}
