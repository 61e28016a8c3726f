package chat

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
)

// The application payload: what canopy puts inside an MLS application
// message (RFC 9420 §6, application_data). It is deliberately small and
// extensible:
//
//	struct {
//	    uint8  version = 1;
//	    uint16 kind;
//	    opaque id<1..32>;          // uint8 length; the message id, kept by re-sends
//	    uint64 sent_at;            // sender's clock, ms since the Unix epoch; display only
//	    opaque reply_to<0..32>;    // uint8 length; the message this one refers to
//	    opaque body<0..2^20>;      // uint32 length; meaning depends on kind
//	    AppExtension extensions<0..2^16-1>;  // uint16 length
//	} AppMessage;
//
//	struct {
//	    uint16 type;               // strictly ascending, no duplicates
//	    opaque data<0..2^16-1>;    // uint16 length
//	} AppExtension;
//
// Decisions:
//   - A payload of another version is reported as errAppVersion and ignored
//     by the engine (never fatal), so a later version can change anything.
//   - Within version 1 new fields go into extensions: readers keep unknown
//     extension types and ignore them. Unknown kinds parse fine and are
//     ignored by the engine.
//   - Parsing is strict (exact lengths, no trailing bytes, ascending unique
//     extension types, UTF-8 text where the kind has text), so every
//     accepted payload has exactly one encoding: Marshal(Parse(b)) == b.
//   - sent_at is never used for protocol decisions (DESIGN.md §6).

// appKind is the wire value of a message kind.
type appKind uint16

// Wire values of the kinds. 0 is reserved.
const (
	appText     appKind = 1 // body: UTF-8 text
	appEdit     appKind = 2 // reply_to: edited message; body: new text
	appDelete   appKind = 3 // reply_to: deleted message; body empty
	appReaction appKind = 4 // reply_to: message; body: the reaction (UTF-8, short)
	appReceipt  appKind = 5 // body: ids of received messages (see receiptIDs)
	appTyping   appKind = 6 // body empty
	appProfile  appKind = 7 // body: the sender's contact card (binary), see card.go
)

// Limits of the format.
const (
	maxAppIDLen    = 32
	maxAppBodyLen  = 1 << 20
	maxAppExtCount = 64
	// maxTextLen is what the engine lets a user send in one message.
	maxTextLen = 16 << 10
)

// Errors of ParseAppMessage.
var (
	errAppMalformed = errors.New("chat: malformed application message")
	errAppVersion   = errors.New("chat: unsupported application message version")
)

const appVersion = 1

// appExtension is one extension of an AppMessage.
type appExtension struct {
	Type uint16
	Data []byte
}

// appMessage is the decoded application payload.
type appMessage struct {
	Kind       appKind
	ID         []byte
	SentAt     time.Time // millisecond precision
	ReplyTo    []byte
	Body       []byte
	Extensions []appExtension
}

// textKind reports whether the body of kind k must be UTF-8 text.
func (k appKind) textKind() bool {
	return k == appText || k == appEdit || k == appReaction
}

// apiKind maps a wire kind to the API's Kind ("" for kinds the API does not
// show).
func (k appKind) apiKind() Kind {
	switch k {
	case appText:
		return KindText
	case appEdit:
		return KindEdit
	case appDelete:
		return KindDelete
	case appReaction:
		return KindReaction
	case appReceipt:
		return KindReceipt
	case appTyping:
		return KindTyping
	case appFile:
		return KindFile
	}
	return ""
}

// kindFromAPI maps an API kind to its wire value (0 if none).
func kindFromAPI(k Kind) appKind {
	switch k {
	case KindText:
		return appText
	case KindEdit:
		return appEdit
	case KindDelete:
		return appDelete
	case KindReaction:
		return appReaction
	case KindReceipt:
		return appReceipt
	case KindTyping:
		return appTyping
	}
	return 0
}

// Marshal encodes m. It fails on values Parse would reject.
func (m *appMessage) Marshal() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddUint8(appVersion)
	b.AddUint16(uint16(m.Kind))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.ID) })
	b.AddUint64(uint64(m.SentAt.UnixMilli()))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.ReplyTo) })
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.Body) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, e := range m.Extensions {
			b.AddUint16(e.Type)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Data) })
		}
	})
	return b.Bytes()
}

func (m *appMessage) check() error {
	switch {
	case m.Kind == 0:
		return fmt.Errorf("%w: kind 0", errAppMalformed)
	case len(m.ID) == 0 || len(m.ID) > maxAppIDLen:
		return fmt.Errorf("%w: id of %d bytes", errAppMalformed, len(m.ID))
	case len(m.ReplyTo) > maxAppIDLen:
		return fmt.Errorf("%w: reply_to of %d bytes", errAppMalformed, len(m.ReplyTo))
	case len(m.Body) > maxAppBodyLen:
		return fmt.Errorf("%w: body of %d bytes", errAppMalformed, len(m.Body))
	case m.Kind.textKind() && !utf8.Valid(m.Body):
		return fmt.Errorf("%w: body is not UTF-8", errAppMalformed)
	case len(m.Extensions) > maxAppExtCount:
		return fmt.Errorf("%w: %d extensions", errAppMalformed, len(m.Extensions))
	case m.SentAt.UnixMilli() < 0:
		return fmt.Errorf("%w: time before 1970", errAppMalformed)
	}
	for i, e := range m.Extensions {
		if i > 0 && e.Type <= m.Extensions[i-1].Type {
			return fmt.Errorf("%w: extension types not strictly ascending", errAppMalformed)
		}
		if len(e.Data) > 0xffff {
			return fmt.Errorf("%w: extension of %d bytes", errAppMalformed, len(e.Data))
		}
	}
	return nil
}

// parseAppMessage decodes an application payload strictly. Byte slices of
// the result alias data.
func parseAppMessage(data []byte) (*appMessage, error) {
	s := cryptobyte.String(data)
	var version uint8
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: empty", errAppMalformed)
	}
	if version != appVersion {
		return nil, fmt.Errorf("%w: %d", errAppVersion, version)
	}
	var (
		m                     appMessage
		kind                  uint16
		id, reply, body, exts cryptobyte.String
		sentAt                uint64
	)
	if !s.ReadUint16(&kind) ||
		!s.ReadUint8LengthPrefixed(&id) ||
		!s.ReadUint64(&sentAt) ||
		!s.ReadUint8LengthPrefixed(&reply) ||
		!readUint32Prefixed(&s, &body) ||
		!s.ReadUint16LengthPrefixed(&exts) {
		return nil, fmt.Errorf("%w: truncated", errAppMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: trailing bytes", errAppMalformed)
	}
	if sentAt > 1<<62 {
		return nil, fmt.Errorf("%w: time out of range", errAppMalformed)
	}
	m.Kind = appKind(kind)
	m.ID, m.ReplyTo, m.Body = id, reply, body
	m.SentAt = time.UnixMilli(int64(sentAt))
	for !exts.Empty() {
		var e appExtension
		var d cryptobyte.String
		if !exts.ReadUint16(&e.Type) || !exts.ReadUint16LengthPrefixed(&d) {
			return nil, fmt.Errorf("%w: truncated extension", errAppMalformed)
		}
		e.Data = d
		if len(m.Extensions) == maxAppExtCount {
			return nil, fmt.Errorf("%w: too many extensions", errAppMalformed)
		}
		m.Extensions = append(m.Extensions, e)
	}
	if len(m.ID) == 0 {
		m.ID = nil
	}
	if len(m.ReplyTo) == 0 {
		m.ReplyTo = nil
	}
	if len(m.Body) == 0 {
		m.Body = nil
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// encodeIDList encodes message ids for a receipt body: each id with a
// uint8 length.
func encodeIDList(ids [][]byte) []byte {
	var b cryptobyte.Builder
	for _, id := range ids {
		if len(id) == 0 || len(id) > maxAppIDLen {
			continue
		}
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(id) })
	}
	out, _ := b.Bytes()
	return out
}

// parseIDList decodes a receipt body.
func parseIDList(body []byte) ([][]byte, error) {
	s := cryptobyte.String(body)
	var ids [][]byte
	for !s.Empty() {
		var id cryptobyte.String
		if !s.ReadUint8LengthPrefixed(&id) || len(id) == 0 || len(id) > maxAppIDLen {
			return nil, fmt.Errorf("%w: receipt id list", errAppMalformed)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// readUint32Prefixed reads a uint32 length and that many bytes; the length
// is checked against what is left, so nothing is allocated.
func readUint32Prefixed(s *cryptobyte.String, out *cryptobyte.String) bool {
	var n uint32
	if !s.ReadUint32(&n) || uint64(n) > uint64(len(*s)) {
		return false
	}
	return s.ReadBytes((*[]byte)(out), int(n))
}
