package chat

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/canopy-chat/canopy/p2p"
	"golang.org/x/crypto/cryptobyte"
)

// A contact card is what a user hands to another so that they can invite
// them: the libp2p peer id (where to find them), addresses (a hint; the DHT
// and relays find the peer without them), the fingerprint of their MLS
// signature key (what to check the KeyPackage against, and what safety
// numbers are made of) and their nickname.
//
// The compact form is "canopy1:" + base64url (no padding) of
//
//	struct {
//	    uint8  version = 1;
//	    opaque peer_id<1..64>;       // uint8 length; binary peer id (multihash)
//	    opaque fingerprint<32>;      // uint8 length, exactly 32
//	    opaque nick<1..64>;          // uint8 length; UTF-8, no control characters
//	    opaque addrs<0..2^16-1>;     // uint16 length: up to 16 of
//	        opaque addr<1..255>;     //   uint8 length; binary multiaddr
//	} ContactCard;
//
// Parsing is strict: exact lengths, no trailing bytes, a decodable peer id
// and multiaddrs, at most 16 addresses. Addresses that end in /p2p/<id>
// must name the card's own peer id.

// CardPrefix starts the compact form of a contact card.
const CardPrefix = "canopy1:"

const (
	cardVersion     = 1
	maxCardAddrs    = 16
	maxNickLen      = 64
	fingerprintSize = 32
	maxCardLen      = 8 << 10
)

// ErrBadCard is wrapped by every card parsing error.
var ErrBadCard = errors.New("chat: invalid contact card")

// Card is a decoded contact card.
type Card struct {
	PeerID      p2p.PeerID
	Fingerprint []byte // SHA-256 based, see Fingerprint
	Nick        string
	Addrs       []p2p.Multiaddr
}

// Marshal returns the binary form of c.
func (c *Card) Marshal() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddUint8(cardVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.PeerID)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Fingerprint) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Nick)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, a := range c.Addrs {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(a.Bytes()) })
		}
	})
	return b.Bytes()
}

// String returns the compact form to paste.
func (c *Card) String() string {
	b, err := c.Marshal()
	if err != nil {
		return ""
	}
	return CardPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Text returns the card for people to read.
func (c *Card) Text() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "nick:        %s\n", c.Nick)
	fmt.Fprintf(&sb, "peer id:     %s\n", c.PeerID)
	fmt.Fprintf(&sb, "fingerprint: %s\n", FormatFingerprint(c.Fingerprint))
	if len(c.Addrs) == 0 {
		fmt.Fprintf(&sb, "addresses:   (none known; found through the DHT and relays)\n")
	}
	for i, a := range c.Addrs {
		label := ""
		if i == 0 {
			label = "addresses:"
		}
		fmt.Fprintf(&sb, "%-12s %s\n", label, a)
	}
	return sb.String()
}

func (c *Card) check() error {
	if len(c.PeerID) == 0 || len(c.PeerID) > 64 {
		return fmt.Errorf("%w: peer id of %d bytes", ErrBadCard, len(c.PeerID))
	}
	if err := c.PeerID.Validate(); err != nil {
		return fmt.Errorf("%w: peer id: %v", ErrBadCard, err)
	}
	if len(c.Fingerprint) != fingerprintSize {
		return fmt.Errorf("%w: fingerprint of %d bytes", ErrBadCard, len(c.Fingerprint))
	}
	if err := validNick(c.Nick); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCard, err)
	}
	if len(c.Addrs) > maxCardAddrs {
		return fmt.Errorf("%w: %d addresses", ErrBadCard, len(c.Addrs))
	}
	for _, a := range c.Addrs {
		if a == nil || len(a.Bytes()) == 0 || len(a.Bytes()) > 255 {
			return fmt.Errorf("%w: address of bad length", ErrBadCard)
		}
		if id, err := p2p.PeerIDFromP2PAddr(a); err == nil && id != c.PeerID {
			return fmt.Errorf("%w: address %s names another peer", ErrBadCard, a)
		}
	}
	return nil
}

// validNick accepts 1 to 64 bytes of UTF-8 without control characters,
// spaces at either end, or a leading '/' or '@'.
func validNick(s string) error {
	if s == "" || len(s) > maxNickLen {
		return fmt.Errorf("nickname must be 1 to %d bytes", maxNickLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("nickname is not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Cf, r) {
			return errors.New("nickname contains control characters")
		}
	}
	if strings.TrimSpace(s) != s {
		return errors.New("nickname starts or ends with a space")
	}
	if s[0] == '/' || s[0] == '@' {
		return errors.New("nickname starts with '/' or '@'")
	}
	return nil
}

// UnmarshalCard decodes the binary form of a card.
func UnmarshalCard(data []byte) (*Card, error) {
	if len(data) > maxCardLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadCard, len(data))
	}
	s := cryptobyte.String(data)
	var (
		version             uint8
		id, fp, nick, addrs cryptobyte.String
	)
	if !s.ReadUint8(&version) {
		return nil, fmt.Errorf("%w: empty", ErrBadCard)
	}
	if version != cardVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadCard, version)
	}
	if !s.ReadUint8LengthPrefixed(&id) || !s.ReadUint8LengthPrefixed(&fp) ||
		!s.ReadUint8LengthPrefixed(&nick) || !s.ReadUint16LengthPrefixed(&addrs) {
		return nil, fmt.Errorf("%w: truncated", ErrBadCard)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: trailing bytes", ErrBadCard)
	}
	c := &Card{PeerID: p2p.PeerID(id), Fingerprint: append([]byte(nil), fp...), Nick: string(nick)}
	for !addrs.Empty() {
		var a cryptobyte.String
		if !addrs.ReadUint8LengthPrefixed(&a) || len(a) == 0 {
			return nil, fmt.Errorf("%w: truncated address", ErrBadCard)
		}
		if len(c.Addrs) == maxCardAddrs {
			return nil, fmt.Errorf("%w: more than %d addresses", ErrBadCard, maxCardAddrs)
		}
		m, err := p2p.MultiaddrFromBytes(append([]byte(nil), a...))
		if err != nil {
			return nil, fmt.Errorf("%w: address: %v", ErrBadCard, err)
		}
		if !bytesEqual(m.Bytes(), a) {
			return nil, fmt.Errorf("%w: non-canonical address", ErrBadCard)
		}
		c.Addrs = append(c.Addrs, m)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseCard parses the compact form ("canopy1:…"). Surrounding white space
// is ignored.
func ParseCard(s string) (*Card, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, CardPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with %q", ErrBadCard, CardPrefix)
	}
	if len(rest) > base64.RawURLEncoding.EncodedLen(maxCardLen) {
		return nil, fmt.Errorf("%w: too long", ErrBadCard)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCard, err)
	}
	return UnmarshalCard(b)
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// Fingerprint returns the fingerprint of an MLS signature public key of
// cipher suite cs: SHA-256("canopy fingerprint v1" || uint16 cs || key).
func Fingerprint(cs uint16, sigPub []byte) []byte {
	h := sha256.New()
	h.Write([]byte("canopy fingerprint v1"))
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], cs)
	h.Write(b[:])
	h.Write(sigPub)
	return h.Sum(nil)
}

// FormatFingerprint groups a fingerprint's hex digits in fours for reading
// aloud: "3f2a 9c01 …".
func FormatFingerprint(fp []byte) string {
	h := hex.EncodeToString(fp)
	var sb strings.Builder
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(h[i:min(i+4, len(h))])
	}
	return sb.String()
}

// SafetyNumber derives the number two users compare to verify each other
// from their two fingerprints. It does not depend on the order of the
// arguments: SHA-512("canopy safety number v1" || lower || higher), where
// lower and higher are the fingerprints sorted bytewise; twelve 5-byte
// chunks of the digest, each reduced modulo 100000, give twelve groups of
// five digits (about 199 bits).
func SafetyNumber(fpA, fpB []byte) string {
	lo, hi := fpA, fpB
	if string(lo) > string(hi) {
		lo, hi = hi, lo
	}
	h := sha512.New()
	h.Write([]byte("canopy safety number v1"))
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(lo)))
	h.Write(n[:])
	h.Write(lo)
	binary.BigEndian.PutUint16(n[:], uint16(len(hi)))
	h.Write(n[:])
	h.Write(hi)
	sum := h.Sum(nil)
	groups := make([]string, 12)
	for i := range groups {
		c := sum[i*5 : i*5+5]
		v := uint64(c[0])<<32 | uint64(c[1])<<24 | uint64(c[2])<<16 | uint64(c[3])<<8 | uint64(c[4])
		groups[i] = fmt.Sprintf("%05d", v%100000)
	}
	return strings.Join(groups, " ")
}
