package chat

import (
	"errors"
	"fmt"

	"github.com/canopy-chat/canopy/p2p"
	"golang.org/x/crypto/cryptobyte"
)

// Signed control messages.
//
// Hellos, declines and claims change what a member believes (contacts,
// rosters, the fork choice), and they travel outside MLS: over
// /canopy/inbox/1, where the transport authenticates the sending peer, or
// through relay mailboxes, where the sender field is whatever the relay
// wrote. So each one is signed by its sender inside the payload, with the
// sender's MLS signature key (the key its fingerprint names), and the
// receiver checks the key against what it knows of that sender: the card
// for a hello, the sender's leaf in the group for a decline or a claim.
// Nothing a relay writes (sender, time, order) authenticates anything.
//
//	struct {
//	    uint8  version = 1;
//	    uint8  kind;              // dmHello, dmDecline or dmClaim
//	    opaque sender<1..255>;    // the sender's peer id (its credential identity)
//	    opaque signature_key<1..255>;
//	    opaque topic<0..255>;     // the group topic ("" for a hello)
//	    opaque body<0..2^24-1>;   // kind-specific (see below)
//	    opaque signature<1..255>; // SignWithLabel(key, "canopy control v1", all fields above)
//	} SignedControl;
//
// It is carried as InboxDirect data dmSigned || SignedControl. Bodies:
// hello, the sender's contact card (binary); decline, the encryption key
// of the declined KeyPackage's leaf (so that a decline names one
// invitation and cannot be replayed against a later one); claim, an
// ordering claim (ordering.MarshalClaim).

// dmSigned prefixes a SignedControl in InboxDirect data.
const dmSigned byte = 4

const (
	controlVersion = 1
	controlLabel   = "canopy control v1"
)

// Errors of signed control messages.
var (
	ErrControlMalformed = errors.New("chat: malformed control message")
	ErrControlSignature = errors.New("chat: control message signature does not verify")
)

// signedControl is a decoded SignedControl.
type signedControl struct {
	Kind      byte
	Sender    p2p.PeerID
	SigKey    []byte
	Topic     string
	Body      []byte
	Signature []byte
}

// tbs is the signed content: every field but the signature.
func (c *signedControl) tbs() ([]byte, error) {
	var b cryptobyte.Builder
	c.addTBS(&b)
	return b.Bytes()
}

func (c *signedControl) addTBS(b *cryptobyte.Builder) {
	b.AddUint8(controlVersion)
	b.AddUint8(c.Kind)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Sender)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.SigKey) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Topic)) })
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Body) })
}

// marshal encodes c (signed).
func (c *signedControl) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	c.addTBS(&b)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Signature) })
	return b.Bytes()
}

// parseSignedControl decodes a SignedControl strictly: known version and
// kind, a valid peer id, non-empty key and signature, no trailing bytes.
// The signature is not checked here (verify).
func parseSignedControl(data []byte) (*signedControl, error) {
	s := cryptobyte.String(data)
	var ver, kind uint8
	var sender, key, topic, body, sig cryptobyte.String
	if !s.ReadUint8(&ver) || !s.ReadUint8(&kind) ||
		!s.ReadUint8LengthPrefixed(&sender) || !s.ReadUint8LengthPrefixed(&key) ||
		!s.ReadUint8LengthPrefixed(&topic) || !s.ReadUint24LengthPrefixed(&body) ||
		!s.ReadUint8LengthPrefixed(&sig) || !s.Empty() {
		return nil, fmt.Errorf("%w: truncated or trailing bytes", ErrControlMalformed)
	}
	if ver != controlVersion {
		return nil, fmt.Errorf("%w: version %d", ErrControlMalformed, ver)
	}
	switch kind {
	case dmHello, dmDecline, dmClaim:
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrControlMalformed, kind)
	}
	p, err := p2p.PeerIDFromBytes(sender)
	if err != nil {
		return nil, fmt.Errorf("%w: sender: %v", ErrControlMalformed, err)
	}
	if len(key) == 0 || len(sig) == 0 {
		return nil, fmt.Errorf("%w: empty key or signature", ErrControlMalformed)
	}
	return &signedControl{Kind: kind, Sender: p, SigKey: append([]byte(nil), key...), Topic: string(topic),
		Body: append([]byte(nil), body...), Signature: append([]byte(nil), sig...)}, nil
}

// verify checks the signature with the key the message carries. Whether
// that key is the sender's is the caller's question (see Engine handlers).
func (c *signedControl) verify() error {
	tbs, err := c.tbs()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrControlMalformed, err)
	}
	if err := suite.VerifyWithLabel(c.SigKey, controlLabel, tbs, c.Signature); err != nil {
		return fmt.Errorf("%w: %v", ErrControlSignature, err)
	}
	return nil
}

// signControl makes the InboxDirect data of a control message of ours.
func (e *Engine) signControl(kind byte, topic string, body []byte) ([]byte, error) {
	c := &signedControl{Kind: kind, Sender: e.id.id, SigKey: e.id.sigPub, Topic: topic, Body: body}
	tbs, err := c.tbs()
	if err != nil {
		return nil, err
	}
	if c.Signature, err = suite.SignWithLabel(e.id.sigPriv, controlLabel, tbs, nil); err != nil {
		return nil, err
	}
	out, err := c.marshal()
	if err != nil {
		return nil, err
	}
	return append([]byte{dmSigned}, out...), nil
}

// inboxSource says how an inbox item reached the engine, which decides
// what its sender field is worth.
type inboxSource uint8

const (
	// viaStream: /canopy/inbox/1; the transport authenticated the peer.
	viaStream inboxSource = iota + 1
	// viaMailbox: a relay's mailbox; the sender field is the relay's word.
	viaMailbox
)
