package p2p

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// This file holds the only MLS-aware code in p2p: a minimal, allocation-free
// parse of the unencrypted header of an MLSMessage (RFC 9420 §6). It lets the
// topic validator check that a frame belongs to the topic's group and lets a
// relay index frames by epoch, without importing the mls package and without
// any key material.

// WireFormat is the MLSMessage wire_format (RFC 9420 §6, Table 6 in §17.2).
type WireFormat uint16

// Wire formats defined by RFC 9420.
const (
	WirePublicMessage  WireFormat = 1
	WirePrivateMessage WireFormat = 2
	WireWelcome        WireFormat = 3
	WireGroupInfo      WireFormat = 4
	WireKeyPackage     WireFormat = 5
)

func (w WireFormat) String() string {
	switch w {
	case WirePublicMessage:
		return "public_message"
	case WirePrivateMessage:
		return "private_message"
	case WireWelcome:
		return "welcome"
	case WireGroupInfo:
		return "group_info"
	case WireKeyPackage:
		return "key_package"
	}
	return fmt.Sprintf("wire_format(%d)", uint16(w))
}

// ContentType is the MLS content type of a framed message (RFC 9420 §6).
type ContentType uint8

// Content types defined by RFC 9420.
const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

func (c ContentType) String() string {
	switch c {
	case ContentApplication:
		return "application"
	case ContentProposal:
		return "proposal"
	case ContentCommit:
		return "commit"
	}
	return fmt.Sprintf("content_type(%d)", uint8(c))
}

// mlsVersion10 is ProtocolVersion mls10 (RFC 9420 §6).
const mlsVersion10 = 1

// MLSHeader is the cleartext prefix of an MLSMessage. For PublicMessage and
// PrivateMessage frames GroupID, Epoch and ContentType are set; for the other
// wire formats only WireFormat is.
type MLSHeader struct {
	WireFormat WireFormat
	// GroupID aliases the parsed buffer; copy it before keeping it past the
	// lifetime of that buffer.
	GroupID     []byte
	Epoch       uint64
	ContentType ContentType
}

// HasEpoch reports whether the frame carries a group id and epoch, i.e. is a
// PublicMessage or a PrivateMessage.
func (h MLSHeader) HasEpoch() bool {
	return h.WireFormat == WirePublicMessage || h.WireFormat == WirePrivateMessage
}

// ErrMalformedMLS is wrapped by every ParseMLSHeader error.
var ErrMalformedMLS = errors.New("p2p: malformed MLS message")

func mlsErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedMLS}, args...)...)
}

// ParseMLSHeader parses the header of an MLSMessage:
//
//	uint16 version = mls10 (1)
//	uint16 wire_format (1..5)
//	PublicMessage:  opaque group_id<V>; uint64 epoch; Sender sender;
//	                opaque authenticated_data<V>; ContentType content_type; ...
//	PrivateMessage: opaque group_id<V>; uint64 epoch; ContentType content_type;
//	                opaque authenticated_data<V>; opaque encrypted_sender_data<V>;
//	                opaque ciphertext<V>
//
// Vectors use the QUIC-style variable-length size prefix of RFC 9420 §2.1.2
// (the 0b11 prefix and non-minimal encodings are rejected). A PrivateMessage
// is parsed completely and trailing bytes are rejected; a PublicMessage is
// parsed up to its content type (its body is MLS's business). The function
// never allocates and never panics.
func ParseMLSHeader(b []byte) (MLSHeader, error) {
	var h MLSHeader
	if len(b) < 4 {
		return h, mlsErr("short header (%d bytes)", len(b))
	}
	if v := binary.BigEndian.Uint16(b); v != mlsVersion10 {
		return h, mlsErr("unsupported version %d", v)
	}
	h.WireFormat = WireFormat(binary.BigEndian.Uint16(b[2:]))
	rest := b[4:]
	switch h.WireFormat {
	case WireWelcome, WireGroupInfo, WireKeyPackage:
		if len(rest) == 0 {
			return h, mlsErr("empty %s", h.WireFormat)
		}
		return h, nil
	case WirePublicMessage, WirePrivateMessage:
	default:
		return h, mlsErr("unknown wire format %d", uint16(h.WireFormat))
	}

	gid, rest, err := readMLSVector(rest)
	if err != nil {
		return h, mlsErr("group_id: %v", err)
	}
	if len(rest) < 8 {
		return h, mlsErr("short epoch")
	}
	h.GroupID = gid
	h.Epoch = binary.BigEndian.Uint64(rest)
	rest = rest[8:]

	if h.WireFormat == WirePublicMessage {
		// Sender (RFC 9420 §6): uint8 sender_type; member: uint32 leaf_index;
		// external: uint32 sender_index; new_member_*: nothing.
		if len(rest) < 1 {
			return h, mlsErr("short sender")
		}
		st := rest[0]
		rest = rest[1:]
		switch st {
		case 1, 2:
			if len(rest) < 4 {
				return h, mlsErr("short sender index")
			}
			rest = rest[4:]
		case 3, 4:
		default:
			return h, mlsErr("unknown sender type %d", st)
		}
		if _, rest, err = readMLSVector(rest); err != nil {
			return h, mlsErr("authenticated_data: %v", err)
		}
		if len(rest) < 1 {
			return h, mlsErr("short content type")
		}
		h.ContentType = ContentType(rest[0])
		if h.ContentType < ContentApplication || h.ContentType > ContentCommit {
			return h, mlsErr("unknown content type %d", rest[0])
		}
		return h, nil
	}

	// PrivateMessage.
	if len(rest) < 1 {
		return h, mlsErr("short content type")
	}
	h.ContentType = ContentType(rest[0])
	if h.ContentType < ContentApplication || h.ContentType > ContentCommit {
		return h, mlsErr("unknown content type %d", rest[0])
	}
	rest = rest[1:]
	for _, field := range [...]string{"authenticated_data", "encrypted_sender_data", "ciphertext"} {
		if _, rest, err = readMLSVector(rest); err != nil {
			return h, mlsErr("%s: %v", field, err)
		}
	}
	if len(rest) != 0 {
		return h, mlsErr("%d trailing bytes", len(rest))
	}
	return h, nil
}

// readMLSVarint decodes an RFC 9420 §2.1.2 variable-length integer.
func readMLSVarint(b []byte) (v uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, errors.New("short length")
	}
	switch b[0] >> 6 {
	case 0:
		return uint64(b[0] & 0x3f), 1, nil
	case 1:
		if len(b) < 2 {
			return 0, 0, errors.New("short length")
		}
		v = uint64(b[0]&0x3f)<<8 | uint64(b[1])
		if v < 1<<6 {
			return 0, 0, errors.New("non-minimal length")
		}
		return v, 2, nil
	case 2:
		if len(b) < 4 {
			return 0, 0, errors.New("short length")
		}
		v = uint64(binary.BigEndian.Uint32(b) & 0x3fffffff)
		if v < 1<<14 {
			return 0, 0, errors.New("non-minimal length")
		}
		return v, 4, nil
	default:
		return 0, 0, errors.New("invalid length prefix 0b11")
	}
}

// readMLSVector reads opaque data<V> and returns it (aliasing b) and the rest.
func readMLSVector(b []byte) (data, rest []byte, err error) {
	n, hdr, err := readMLSVarint(b)
	if err != nil {
		return nil, nil, err
	}
	b = b[hdr:]
	if uint64(len(b)) < n {
		return nil, nil, fmt.Errorf("vector of %d bytes exceeds remaining %d", n, len(b))
	}
	return b[:n], b[n:], nil
}

// appendMLSVarint appends the minimal RFC 9420 §2.1.2 encoding of v (v < 2^30).
func appendMLSVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, byte(v>>8)|0x40, byte(v))
	case v < 1<<30:
		return append(b, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	}
	panic("p2p: MLS vector too long")
}

// appendMLSVector appends data as an MLS opaque<V>.
func appendMLSVector(b, data []byte) []byte {
	return append(appendMLSVarint(b, uint64(len(data))), data...)
}

// BuildPrivateMessage frames ciphertext parts as an MLSMessage carrying a
// PrivateMessage. p2p never builds real MLS messages; this exists for tests,
// benchmarks and tools that need syntactically valid frames.
func BuildPrivateMessage(groupID []byte, epoch uint64, ct ContentType, authData, encSenderData, ciphertext []byte) []byte {
	b := make([]byte, 0, 16+len(groupID)+len(authData)+len(encSenderData)+len(ciphertext)+16)
	b = binary.BigEndian.AppendUint16(b, mlsVersion10)
	b = binary.BigEndian.AppendUint16(b, uint16(WirePrivateMessage))
	b = appendMLSVector(b, groupID)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, byte(ct))
	b = appendMLSVector(b, authData)
	b = appendMLSVector(b, encSenderData)
	b = appendMLSVector(b, ciphertext)
	return b
}
