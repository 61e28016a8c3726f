package mls

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// WireFormat is the MLSMessage wire format (§6, §17.2):
//
//	uint16 WireFormat;
//
// Only the five RFC 9420 values are decodable: MLSMessage selects its body
// on this field with no length prefix, so a message of any other wire format
// (including the private-use range) cannot be parsed and is ErrMalformed.
type WireFormat uint16

const (
	WireFormatPublicMessage  WireFormat = 0x0001
	WireFormatPrivateMessage WireFormat = 0x0002
	WireFormatWelcome        WireFormat = 0x0003
	WireFormatGroupInfo      WireFormat = 0x0004
	WireFormatKeyPackage     WireFormat = 0x0005
)

func (w WireFormat) String() string {
	switch w {
	case WireFormatPublicMessage:
		return "mls_public_message"
	case WireFormatPrivateMessage:
		return "mls_private_message"
	case WireFormatWelcome:
		return "mls_welcome"
	case WireFormatGroupInfo:
		return "mls_group_info"
	case WireFormatKeyPackage:
		return "mls_key_package"
	}
	return fmt.Sprintf("WireFormat(0x%04x)", uint16(w))
}

// ContentType is the type of a FramedContent (§6):
//
//	enum {
//	    reserved(0),
//	    application(1),
//	    proposal(2),
//	    commit(3),
//	    (255)
//	} ContentType;
//
// Closed set: any other value is ErrMalformed.
type ContentType uint8

const (
	ContentTypeApplication ContentType = 1
	ContentTypeProposal    ContentType = 2
	ContentTypeCommit      ContentType = 3
)

func (c ContentType) String() string {
	switch c {
	case ContentTypeApplication:
		return "application"
	case ContentTypeProposal:
		return "proposal"
	case ContentTypeCommit:
		return "commit"
	}
	return fmt.Sprintf("ContentType(%d)", uint8(c))
}

func (c ContentType) valid() bool { return c >= ContentTypeApplication && c <= ContentTypeCommit }

// SenderType says who sent a FramedContent (§6):
//
//	enum {
//	    reserved(0),
//	    member(1),
//	    external(2),
//	    new_member_proposal(3),
//	    new_member_commit(4),
//	    (255)
//	} SenderType;
//
// Closed set: any other value is ErrMalformed.
type SenderType uint8

const (
	SenderMember            SenderType = 1
	SenderExternal          SenderType = 2
	SenderNewMemberProposal SenderType = 3
	SenderNewMemberCommit   SenderType = 4
)

func (t SenderType) String() string {
	switch t {
	case SenderMember:
		return "member"
	case SenderExternal:
		return "external"
	case SenderNewMemberProposal:
		return "new_member_proposal"
	case SenderNewMemberCommit:
		return "new_member_commit"
	}
	return fmt.Sprintf("SenderType(%d)", uint8(t))
}

// Sender identifies the sender of a FramedContent (§6):
//
//	struct {
//	    SenderType sender_type;
//	    select (Sender.sender_type) {
//	        case member:
//	            uint32 leaf_index;
//	        case external:
//	            uint32 sender_index;
//	        case new_member_commit:
//	        case new_member_proposal:
//	            struct{};
//	    };
//	} Sender;
//
// LeafIndex is used for member, SenderIndex (an index into the
// external_senders extension) for external; the encoder ignores the other.
type Sender struct {
	Type        SenderType
	LeafIndex   uint32
	SenderIndex uint32
}

func (s *Sender) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(s.Type))
	switch s.Type {
	case SenderMember:
		b.AddUint32(s.LeafIndex)
	case SenderExternal:
		b.AddUint32(s.SenderIndex)
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		b.SetError(fmt.Errorf("mls: cannot encode sender of type %v", s.Type))
	}
}

func (s *Sender) unmarshal(str *cryptobyte.String) bool {
	*s = Sender{}
	if !str.ReadUint8((*uint8)(&s.Type)) {
		return false
	}
	switch s.Type {
	case SenderMember:
		return str.ReadUint32(&s.LeafIndex)
	case SenderExternal:
		return str.ReadUint32(&s.SenderIndex)
	case SenderNewMemberProposal, SenderNewMemberCommit:
		return true
	default:
		return false
	}
}

// marshalContentBody writes the select on content_type shared by
// FramedContent and PrivateMessageContent:
//
//	select (content_type) {
//	    case application: opaque application_data<V>;
//	    case proposal:    Proposal proposal;
//	    case commit:      Commit commit;
//	};
func marshalContentBody(b *cryptobyte.Builder, ct ContentType, appData []byte, p *Proposal, c *Commit) {
	switch ct {
	case ContentTypeApplication:
		addOpaque(b, appData)
	case ContentTypeProposal:
		if p == nil {
			b.SetError(errors.New("mls: proposal content has no proposal"))
			return
		}
		p.marshal(b)
	case ContentTypeCommit:
		if c == nil {
			b.SetError(errors.New("mls: commit content has no commit"))
			return
		}
		c.marshal(b)
	default:
		b.SetError(fmt.Errorf("mls: cannot encode content of type %v", ct))
	}
}

func unmarshalContentBody(s *cryptobyte.String, ct ContentType, appData *[]byte, p **Proposal, c **Commit) bool {
	switch ct {
	case ContentTypeApplication:
		return readOpaque(s, appData)
	case ContentTypeProposal:
		*p = new(Proposal)
		return (*p).unmarshal(s)
	case ContentTypeCommit:
		*c = new(Commit)
		return (*c).unmarshal(s)
	default:
		return false
	}
}

// FramedContent is the content of a handshake or application message (§6):
//
//	struct {
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    Sender sender;
//	    opaque authenticated_data<V>;
//
//	    ContentType content_type;
//	    select (FramedContent.content_type) {
//	        case application:
//	          opaque application_data<V>;
//	        case proposal:
//	          Proposal proposal;
//	        case commit:
//	          Commit commit;
//	    };
//	} FramedContent;
//
// Exactly the body selected by ContentType is used.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte
	Proposal          *Proposal
	Commit            *Commit
}

func (fc *FramedContent) marshal(b *cryptobyte.Builder) {
	addOpaque(b, fc.GroupID)
	b.AddUint64(fc.Epoch)
	fc.Sender.marshal(b)
	addOpaque(b, fc.AuthenticatedData)
	b.AddUint8(uint8(fc.ContentType))
	marshalContentBody(b, fc.ContentType, fc.ApplicationData, fc.Proposal, fc.Commit)
}

func (fc *FramedContent) unmarshal(s *cryptobyte.String) bool {
	*fc = FramedContent{}
	return readOpaque(s, &fc.GroupID) &&
		s.ReadUint64(&fc.Epoch) &&
		fc.Sender.unmarshal(s) &&
		readOpaque(s, &fc.AuthenticatedData) &&
		s.ReadUint8((*uint8)(&fc.ContentType)) &&
		unmarshalContentBody(s, fc.ContentType, &fc.ApplicationData, &fc.Proposal, &fc.Commit)
}

// Marshal returns the encoding of fc.
func (fc *FramedContent) Marshal() ([]byte, error) { return marshalStruct(fc) }

// Unmarshal decodes fc from data, rejecting trailing bytes.
func (fc *FramedContent) Unmarshal(data []byte) error {
	return unmarshalStruct(data, fc, "FramedContent")
}

// FramedContentAuthData authenticates a FramedContent (§6.1):
//
//	struct {
//	    /* SignWithLabel(., "FramedContentTBS", FramedContentTBS) */
//	    opaque signature<V>;
//	    select (FramedContent.content_type) {
//	        case commit:
//	            /* MAC(confirmation_key,
//	                   GroupContext.confirmed_transcript_hash) */
//	            MAC confirmation_tag;
//	        case application:
//	        case proposal:
//	            struct{};
//	    };
//	} FramedContentAuthData;
//
//	opaque MAC<V>;
//
// ConfirmationTag is present iff the content type is commit, so encoding and
// decoding take the content type.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte // commit only
}

func (a *FramedContentAuthData) marshal(b *cryptobyte.Builder, ct ContentType) {
	addOpaque(b, a.Signature)
	if ct == ContentTypeCommit {
		addOpaque(b, a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) unmarshal(s *cryptobyte.String, ct ContentType) bool {
	*a = FramedContentAuthData{}
	if !readOpaque(s, &a.Signature) {
		return false
	}
	if ct == ContentTypeCommit {
		return readOpaque(s, &a.ConfirmationTag)
	}
	return true
}

// AuthenticatedContent is a FramedContent with its authentication data and
// the wire format it is (to be) sent in (§6):
//
//	struct {
//	    WireFormat wire_format;
//	    FramedContent content;
//	    FramedContentAuthData auth;
//	} AuthenticatedContent;
//
// wire_format must be mls_public_message or mls_private_message; anything
// else is ErrMalformed.
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

func (ac *AuthenticatedContent) marshal(b *cryptobyte.Builder) {
	if ac.WireFormat != WireFormatPublicMessage && ac.WireFormat != WireFormatPrivateMessage {
		b.SetError(fmt.Errorf("mls: AuthenticatedContent with wire format %v", ac.WireFormat))
		return
	}
	b.AddUint16(uint16(ac.WireFormat))
	ac.Content.marshal(b)
	ac.Auth.marshal(b, ac.Content.ContentType)
}

func (ac *AuthenticatedContent) unmarshal(s *cryptobyte.String) bool {
	*ac = AuthenticatedContent{}
	if !s.ReadUint16((*uint16)(&ac.WireFormat)) ||
		(ac.WireFormat != WireFormatPublicMessage && ac.WireFormat != WireFormatPrivateMessage) {
		return false
	}
	return ac.Content.unmarshal(s) && ac.Auth.unmarshal(s, ac.Content.ContentType)
}

// Marshal returns the encoding of ac.
func (ac *AuthenticatedContent) Marshal() ([]byte, error) { return marshalStruct(ac) }

// Unmarshal decodes ac from data, rejecting trailing bytes.
func (ac *AuthenticatedContent) Unmarshal(data []byte) error {
	return unmarshalStruct(data, ac, "AuthenticatedContent")
}

// ProposalRef returns MakeProposalRef(ac) = RefHash("MLS 1.0 Proposal
// Reference", AuthenticatedContent) with the group's suite cs (§5.2). ac must
// carry a proposal.
func (ac *AuthenticatedContent) ProposalRef(cs CipherSuite) (ProposalRef, error) {
	if !cs.Supported() {
		return nil, &UnsupportedCipherSuiteError{cs}
	}
	if ac.Content.ContentType != ContentTypeProposal {
		return nil, fmt.Errorf("mls: ProposalRef of %v content", ac.Content.ContentType)
	}
	enc, err := ac.Marshal()
	if err != nil {
		return nil, err
	}
	return cs.RefHash(proposalRefLabel, enc), nil
}

// PublicMessage is a signed, unencrypted message (§6.2):
//
//	struct {
//	    FramedContent content;
//	    FramedContentAuthData auth;
//	    select (PublicMessage.content.sender.sender_type) {
//	        case member:
//	            MAC membership_tag;
//	        case external:
//	        case new_member_commit:
//	        case new_member_proposal:
//	            struct{};
//	    };
//	} PublicMessage;
//
// MembershipTag is present iff the sender is a member.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte // member senders only
}

func (pm *PublicMessage) marshal(b *cryptobyte.Builder) {
	pm.Content.marshal(b)
	pm.Auth.marshal(b, pm.Content.ContentType)
	if pm.Content.Sender.Type == SenderMember {
		addOpaque(b, pm.MembershipTag)
	}
}

func (pm *PublicMessage) unmarshal(s *cryptobyte.String) bool {
	*pm = PublicMessage{}
	if !pm.Content.unmarshal(s) || !pm.Auth.unmarshal(s, pm.Content.ContentType) {
		return false
	}
	if pm.Content.Sender.Type == SenderMember {
		return readOpaque(s, &pm.MembershipTag)
	}
	return true
}

// Marshal returns the encoding of pm.
func (pm *PublicMessage) Marshal() ([]byte, error) { return marshalStruct(pm) }

// Unmarshal decodes pm from data, rejecting trailing bytes.
func (pm *PublicMessage) Unmarshal(data []byte) error {
	return unmarshalStruct(data, pm, "PublicMessage")
}

// AuthenticatedContent returns the AuthenticatedContent pm carries (sharing
// its slices).
func (pm *PublicMessage) AuthenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: pm.Content, Auth: pm.Auth}
}

// PrivateMessage is a signed and encrypted message (§6.3):
//
//	struct {
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    ContentType content_type;
//	    opaque authenticated_data<V>;
//	    opaque encrypted_sender_data<V>;
//	    opaque ciphertext<V>;
//	} PrivateMessage;
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

func (pm *PrivateMessage) marshal(b *cryptobyte.Builder) {
	if !pm.ContentType.valid() {
		b.SetError(fmt.Errorf("mls: cannot encode PrivateMessage of %v", pm.ContentType))
		return
	}
	addOpaque(b, pm.GroupID)
	b.AddUint64(pm.Epoch)
	b.AddUint8(uint8(pm.ContentType))
	addOpaque(b, pm.AuthenticatedData)
	addOpaque(b, pm.EncryptedSenderData)
	addOpaque(b, pm.Ciphertext)
}

func (pm *PrivateMessage) unmarshal(s *cryptobyte.String) bool {
	*pm = PrivateMessage{}
	return readOpaque(s, &pm.GroupID) &&
		s.ReadUint64(&pm.Epoch) &&
		s.ReadUint8((*uint8)(&pm.ContentType)) && pm.ContentType.valid() &&
		readOpaque(s, &pm.AuthenticatedData) &&
		readOpaque(s, &pm.EncryptedSenderData) &&
		readOpaque(s, &pm.Ciphertext)
}

// Marshal returns the encoding of pm.
func (pm *PrivateMessage) Marshal() ([]byte, error) { return marshalStruct(pm) }

// Unmarshal decodes pm from data, rejecting trailing bytes.
func (pm *PrivateMessage) Unmarshal(data []byte) error {
	return unmarshalStruct(data, pm, "PrivateMessage")
}

// contentAAD returns the encoded PrivateContentAAD (§6.3.1):
//
//	struct {
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    ContentType content_type;
//	    opaque authenticated_data<V>;
//	} PrivateContentAAD;
func (pm *PrivateMessage) contentAAD() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	addOpaque(b, pm.GroupID)
	b.AddUint64(pm.Epoch)
	b.AddUint8(uint8(pm.ContentType))
	addOpaque(b, pm.AuthenticatedData)
	return b.Bytes()
}

// senderDataAAD returns the encoded SenderDataAAD (§6.3.2):
//
//	struct {
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    ContentType content_type;
//	} SenderDataAAD;
func (pm *PrivateMessage) senderDataAAD() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	addOpaque(b, pm.GroupID)
	b.AddUint64(pm.Epoch)
	b.AddUint8(uint8(pm.ContentType))
	return b.Bytes()
}

// SenderData is the plaintext of PrivateMessage.encrypted_sender_data
// (§6.3.2):
//
//	struct {
//	    uint32 leaf_index;
//	    uint32 generation;
//	    opaque reuse_guard[4];
//	} SenderData;
type SenderData struct {
	LeafIndex  uint32
	Generation uint32
	ReuseGuard [4]byte
}

func (sd *SenderData) marshal(b *cryptobyte.Builder) {
	b.AddUint32(sd.LeafIndex)
	b.AddUint32(sd.Generation)
	b.AddBytes(sd.ReuseGuard[:])
}

func (sd *SenderData) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint32(&sd.LeafIndex) && s.ReadUint32(&sd.Generation) && s.CopyBytes(sd.ReuseGuard[:])
}

// Marshal returns the encoding of sd.
func (sd *SenderData) Marshal() ([]byte, error) { return marshalStruct(sd) }

// Unmarshal decodes sd from data, rejecting trailing bytes.
func (sd *SenderData) Unmarshal(data []byte) error { return unmarshalStruct(data, sd, "SenderData") }

// PrivateMessageContent is the plaintext of PrivateMessage.ciphertext
// (§6.3.1):
//
//	struct {
//	    select (PrivateMessage.content_type) {
//	        case application:
//	          opaque application_data<V>;
//	        case proposal:
//	          Proposal proposal;
//	        case commit:
//	          Commit commit;
//	    };
//
//	    FramedContentAuthData auth;
//	    opaque padding[length_of_padding];
//	} PrivateMessageContent;
//
// ContentType is not encoded: it comes from PrivateMessage.content_type and
// must be set before Unmarshal. Padding is PaddingLen zero bytes; a
// non-zero padding byte is ErrMalformed (§6.3.1).
type PrivateMessageContent struct {
	ContentType     ContentType
	ApplicationData []byte
	Proposal        *Proposal
	Commit          *Commit
	Auth            FramedContentAuthData
	PaddingLen      int
}

func (c *PrivateMessageContent) marshal(b *cryptobyte.Builder) {
	marshalContentBody(b, c.ContentType, c.ApplicationData, c.Proposal, c.Commit)
	c.Auth.marshal(b, c.ContentType)
	if c.PaddingLen < 0 {
		b.SetError(errors.New("mls: negative padding length"))
		return
	}
	b.AddBytes(make([]byte, c.PaddingLen))
}

// unmarshal consumes all of s: whatever follows auth is padding.
func (c *PrivateMessageContent) unmarshal(s *cryptobyte.String) bool {
	ct := c.ContentType
	*c = PrivateMessageContent{ContentType: ct}
	if !unmarshalContentBody(s, ct, &c.ApplicationData, &c.Proposal, &c.Commit) ||
		!c.Auth.unmarshal(s, ct) {
		return false
	}
	for _, x := range *s {
		if x != 0 {
			return false
		}
	}
	c.PaddingLen = len(*s)
	*s = (*s)[len(*s):]
	return true
}

// Marshal returns the encoding of c, padding included.
func (c *PrivateMessageContent) Marshal() ([]byte, error) { return marshalStruct(c) }

// Unmarshal decodes c from data using the already set c.ContentType.
func (c *PrivateMessageContent) Unmarshal(data []byte) error {
	return unmarshalStruct(data, c, "PrivateMessageContent")
}

// MLSMessage is the top-level message (§6):
//
//	struct {
//	    ProtocolVersion version = mls10;
//	    WireFormat wire_format;
//	    select (MLSMessage.wire_format) {
//	        case mls_public_message:
//	            PublicMessage public_message;
//	        case mls_private_message:
//	            PrivateMessage private_message;
//	        case mls_welcome:
//	            Welcome welcome;
//	        case mls_group_info:
//	            GroupInfo group_info;
//	        case mls_key_package:
//	            KeyPackage key_package;
//	    };
//	} MLSMessage;
//
// version must be mls10: the layout of other versions is unknown, so any
// other value is ErrMalformed. Exactly the body selected by WireFormat is
// set.
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

// sizeHint estimates the encoding's length for the large bodies (Welcome,
// GroupInfo); 0 lets the buffer grow.
func (m *MLSMessage) sizeHint() int {
	switch {
	case m.WireFormat == WireFormatWelcome && m.Welcome != nil:
		return 4 + m.Welcome.sizeHint()
	case m.WireFormat == WireFormatGroupInfo && m.GroupInfo != nil:
		return 4 + m.GroupInfo.sizeHint()
	}
	return 0
}

func (m *MLSMessage) marshal(b *cryptobyte.Builder) {
	if m.Version != ProtocolMLS10 {
		b.SetError(fmt.Errorf("mls: cannot encode MLSMessage of version %d", m.Version))
		return
	}
	b.AddUint16(uint16(m.Version))
	b.AddUint16(uint16(m.WireFormat))
	var body interface{ marshal(*cryptobyte.Builder) }
	switch m.WireFormat {
	case WireFormatPublicMessage:
		if m.PublicMessage != nil {
			body = m.PublicMessage
		}
	case WireFormatPrivateMessage:
		if m.PrivateMessage != nil {
			body = m.PrivateMessage
		}
	case WireFormatWelcome:
		if m.Welcome != nil {
			body = m.Welcome
		}
	case WireFormatGroupInfo:
		if m.GroupInfo != nil {
			body = m.GroupInfo
		}
	case WireFormatKeyPackage:
		if m.KeyPackage != nil {
			body = m.KeyPackage
		}
	default:
		b.SetError(fmt.Errorf("mls: cannot encode MLSMessage of %v", m.WireFormat))
		return
	}
	if body == nil {
		b.SetError(fmt.Errorf("mls: %v MLSMessage has no body", m.WireFormat))
		return
	}
	body.marshal(b)
}

func (m *MLSMessage) unmarshal(s *cryptobyte.String) bool {
	*m = MLSMessage{}
	if !s.ReadUint16((*uint16)(&m.Version)) || m.Version != ProtocolMLS10 ||
		!s.ReadUint16((*uint16)(&m.WireFormat)) {
		return false
	}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = new(PublicMessage)
		return m.PublicMessage.unmarshal(s)
	case WireFormatPrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
		return m.PrivateMessage.unmarshal(s)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
		return m.Welcome.unmarshal(s)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
		return m.GroupInfo.unmarshal(s)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
		return m.KeyPackage.unmarshal(s)
	default:
		return false
	}
}

// Marshal returns the encoding of m.
func (m *MLSMessage) Marshal() ([]byte, error) { return marshalStruct(m) }

// Unmarshal decodes m from data, rejecting trailing bytes. As with every
// decoder of the package, the byte-string fields of the result alias data
// (no copies are made), so data must not be modified while m is in use.
func (m *MLSMessage) Unmarshal(data []byte) error { return unmarshalStruct(data, m, "MLSMessage") }
