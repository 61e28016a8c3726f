package mls

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Message protection (RFC 9420 §6.1–§6.3): signing FramedContent,
// PublicMessage with its membership tag, and PrivateMessage with content
// encryption, padding, the reuse guard and sender data encryption.
//
// These are building blocks for the group state, not tied to it. An
// epochFraming bundles what one epoch contributes (suite, encoded
// GroupContext, membership_key, sender_data_secret, secret tree, padding
// policy); the group builds one per epoch it keeps and calls:
//
//	sending:    sign → (commit: set Auth.ConfirmationTag) → encodePublic / encryptPrivate
//	            or protectPublic / protectPrivate when the confirmation tag is known
//	receiving:  unprotectPublic / unprotectPrivate / unprotectMessage, each taking
//	            an optional check (signature verification with the sender's key
//	            from the tree: verifySignature)
//
// A commit is signed before its confirmation tag exists: the tag is a MAC
// over the new confirmed_transcript_hash, which covers the signature (§8.2).
// That is why signing and encoding are separate steps.
//
// Key consumption order (§9.2). unprotectPrivate derives the content key of
// the generation in the sender data, opens the AEAD, decodes the
// PrivateMessageContent, checks the padding and runs the caller's check
// (signature, non-blank sender leaf) — all before the secret tree marks the
// key consumed (secretTree.openWithKey). Any failure leaves the ratchet
// exactly as it was, so a forged, corrupted or mis-signed message can never
// burn the key the legitimate message of that generation needs. The price is
// that a key which opened a message that was then rejected stays in memory
// until the real message arrives or the window slides past it; only a member
// (who can derive every leaf's keys anyway) can produce such a message. On
// success the key is deleted at once, so a replay fails with ErrKeyConsumed.
//
// On the sending side a generation is consumed (secretTree.nextSendKey) only
// after everything that can fail for a caller's reason (validation,
// signature, encoding, reading the reuse guard) has succeeded.
//
// An epochFraming references, it does not copy, its secrets and tree: the
// group owns and wipes them. It is not safe for concurrent use (the secret
// tree is mutated by every PrivateMessage); the group's goroutine owns it.

// PaddingMode selects how a PrivateMessageContent is padded (§6.3.1).
type PaddingMode uint8

const (
	// PadToBlock pads the plaintext to the next multiple of BlockSize.
	PadToBlock PaddingMode = iota
	// PadPadme pads with Padmé (Nikitin et al., "Reducing Metadata Leakage
	// from Encrypted Files and Communication with PURBs", PETS 2019; at
	// most ~12% overhead, leaks O(log log L) bits of the length L), then to
	// the next multiple of BlockSize. Useful when large messages (big
	// commits, attachments) should not reveal their size to the byte block.
	PadPadme
	// PadNone adds no padding.
	PadNone
)

// DefaultPaddingBlockSize is the block of the default policy.
//
// Decision: 256 bytes. The padded unit is the whole PrivateMessageContent:
// content, signature (64 bytes Ed25519, 114 Ed448, up to 139 DER P-521) and
// confirmation tag. With 256-byte blocks every short text, reaction, read
// receipt and typing notification (up to ~185 bytes of payload with
// Ed25519) produces the same ciphertext length, which is where length
// analysis of a chat hurts most; the cost is at most 255 bytes per message.
const DefaultPaddingBlockSize = 256

// maxPaddingBlockSize bounds BlockSize so that a misconfiguration cannot
// turn every message into megabytes.
const maxPaddingBlockSize = 1 << 16

// PaddingPolicy says how much zero padding a PrivateMessageContent gets
// (§6.3.1). The zero value is the default: PadToBlock with
// DefaultPaddingBlockSize. It is local policy, not group state: receivers
// accept any amount of (all-zero) padding.
type PaddingPolicy struct {
	Mode PaddingMode
	// BlockSize is the granularity for PadToBlock and PadPadme, in bytes:
	// 0 selects DefaultPaddingBlockSize, 1 no rounding. At most 65536.
	BlockSize int
}

func (p PaddingPolicy) validate() error {
	if p.Mode > PadNone {
		return fmt.Errorf("mls: unknown padding mode %d", p.Mode)
	}
	if p.BlockSize < 0 || p.BlockSize > maxPaddingBlockSize {
		return fmt.Errorf("mls: padding block size %d outside [0, %d]", p.BlockSize, maxPaddingBlockSize)
	}
	return nil
}

// forContent returns the policy for one content type. Decision: under the
// default policy (the zero value) handshake messages are padded with Padmé
// alone (block 1) rather than to 256-byte blocks. A handshake message's
// length is driven by the group's size and the proposals' structure, not by
// anything a user typed, so fixed blocks buy little there and cost up to
// 255 bytes on every Commit (a 10-member Commit with path grows from ~0.86
// to 1.1 KB); Padmé still hides its exact length (at most ~12% overhead).
// Application messages keep the 256-byte blocks. An explicit policy applies
// to every content type as given.
func (p PaddingPolicy) forContent(ct ContentType) PaddingPolicy {
	if p == (PaddingPolicy{}) && ct != ContentTypeApplication {
		return PaddingPolicy{Mode: PadPadme, BlockSize: 1}
	}
	return p
}

// paddedLen returns the length n bytes of plaintext are padded to, capped
// at limit (the caller checks n <= limit).
func (p PaddingPolicy) paddedLen(n, limit int) int {
	if p.Mode == PadNone {
		return n
	}
	block := p.BlockSize
	if block == 0 {
		block = DefaultPaddingBlockSize
	}
	l := n
	if p.Mode == PadPadme {
		l = padme(l)
	}
	if r := l % block; r != 0 {
		l += block - r
	}
	return min(l, limit)
}

// padme returns the Padmé length of l: l rounded up so that only the top
// ⌊log2 ⌊log2 l⌋⌋+1 bits of the ⌊log2 l⌋+1-bit length may be non-zero.
func padme(l int) int {
	if l < 2 {
		return l
	}
	e := bits.Len(uint(l)) - 1 // ⌊log2 l⌋
	s := bits.Len(uint(e))     // ⌊log2 e⌋ + 1
	mask := 1<<(e-s) - 1
	return (l + mask) &^ mask
}

// epochFraming holds what protecting and unprotecting messages needs from
// one epoch. Build it with newEpochFraming.
type epochFraming struct {
	cs               CipherSuite
	groupID          []byte
	epoch            uint64
	groupContext     []byte      // encoded GroupContext of the epoch
	membershipKey    []byte      // §6.2; nil: no member PublicMessage
	senderDataSecret []byte      // §6.3.2; nil: no PrivateMessage
	secrets          *secretTree // §9; nil: no PrivateMessage
	padding          PaddingPolicy

	// signer caches the parsed key of the last signer: SignWithLabel
	// parses the private key on every call, which for EdDSA computes the
	// public key (half the cost of a signature). wipe clears it.
	signer *signingKey
}

// wipe clears the signing key cache. The epoch's secrets and secret tree
// are owned, and wiped, by the group.
func (f *epochFraming) wipe() {
	f.signer.wipe()
	f.signer = nil
}

// signTBS returns SignWithLabel(sigPriv, "FramedContentTBS", tbs) (§6.1).
func (f *epochFraming) signTBS(sigPriv, tbs []byte) ([]byte, error) {
	if !f.signer.is(f.cs, sigPriv) {
		k, err := f.cs.newSigningKey(sigPriv)
		if err != nil {
			return nil, err
		}
		f.wipe()
		f.signer = k
	}
	return f.signer.signWithLabel("FramedContentTBS", tbs)
}

// newEpochFraming prepares protection for the epoch described by ctx. The
// GroupContext is encoded once here. membershipKey and senderDataSecret must
// be Nh bytes or nil (nil disables member PublicMessages, respectively
// PrivateMessages, as does a nil secrets); they and secrets are referenced,
// not copied.
func newEpochFraming(ctx *GroupContext, membershipKey, senderDataSecret []byte, secrets *secretTree, padding PaddingPolicy) (*epochFraming, error) {
	if ctx == nil {
		return nil, errors.New("mls: message protection without GroupContext")
	}
	cs := ctx.CipherSuite
	if !cs.Supported() {
		return nil, &UnsupportedCipherSuiteError{cs}
	}
	if ctx.Version != ProtocolMLS10 {
		return nil, fmt.Errorf("mls: GroupContext of version %d", ctx.Version)
	}
	for _, k := range []struct {
		v    []byte
		name string
	}{{membershipKey, "membership_key"}, {senderDataSecret, "sender_data_secret"}} {
		if k.v != nil && len(k.v) != cs.Nh() {
			return nil, fmt.Errorf("mls: %s is %d bytes, want %d", k.name, len(k.v), cs.Nh())
		}
	}
	if secrets != nil && secrets.cs != cs {
		return nil, fmt.Errorf("mls: %v secret tree in a %v epoch", secrets.cs, cs)
	}
	if err := padding.validate(); err != nil {
		return nil, err
	}
	enc, err := ctx.Marshal()
	if err != nil {
		return nil, err
	}
	return &epochFraming{
		cs:               cs,
		groupID:          slices.Clone(ctx.GroupID),
		epoch:            ctx.Epoch,
		groupContext:     enc,
		membershipKey:    membershipKey,
		senderDataSecret: senderDataSecret,
		secrets:          secrets,
		padding:          padding,
	}, nil
}

// checkFraming enforces the rules that tie wire format, sender type and
// content type together, and that the content belongs to this epoch.
//
//   - §6.3.2: a PrivateMessage sender is a member.
//   - §6: application data is sent only as PrivateMessage ("MUST use").
//   - §6.1: external senders send proposals of a type allowed for them
//     (§12.1.8, §17.4); new_member_proposal senders send Add proposals;
//     new_member_commit senders send commits.
func (f *epochFraming) checkFraming(wf WireFormat, fc *FramedContent) error {
	if !bytes.Equal(fc.GroupID, f.groupID) || fc.Epoch != f.epoch {
		return fmt.Errorf("%w: message for epoch %d, this is epoch %d", ErrEpochMismatch, fc.Epoch, f.epoch)
	}
	if !fc.ContentType.valid() {
		return fmt.Errorf("%w: content type %v", ErrInvalidFraming, fc.ContentType)
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: %v from a %v sender in an %v: %s", ErrInvalidFraming, fc.ContentType, fc.Sender.Type, wf, why)
	}
	switch wf {
	case WireFormatPrivateMessage:
		if fc.Sender.Type != SenderMember {
			return bad("only members send PrivateMessages")
		}
		return nil
	case WireFormatPublicMessage:
	default:
		return fmt.Errorf("%w: content in an %v", ErrInvalidFraming, wf)
	}
	if fc.ContentType == ContentTypeApplication {
		return bad("application data must be encrypted")
	}
	switch fc.Sender.Type {
	case SenderMember:
		return nil
	case SenderExternal:
		if fc.ContentType != ContentTypeProposal || fc.Proposal == nil || !fc.Proposal.Type.AllowedForExternalSender() {
			return bad("external senders send only proposals of the types allowed for them")
		}
	case SenderNewMemberProposal:
		if fc.ContentType != ContentTypeProposal || fc.Proposal == nil || fc.Proposal.Type != ProposalTypeAdd {
			return bad("new_member_proposal senders send only Add proposals")
		}
	case SenderNewMemberCommit:
		if fc.ContentType != ContentTypeCommit {
			return bad("new_member_commit senders send only commits")
		}
	default:
		return bad("unknown sender type")
	}
	return nil
}

// contentTBS returns the encoded FramedContentTBS (§6.1), with the epoch's
// GroupContext for member and new_member_commit senders:
//
//	struct {
//	    ProtocolVersion version = mls10;
//	    WireFormat wire_format;
//	    FramedContent content;
//	    select (FramedContentTBS.content.sender.sender_type) {
//	        case member:
//	        case new_member_commit:
//	            GroupContext context;
//	        case external:
//	        case new_member_proposal:
//	            struct{};
//	    };
//	} FramedContentTBS;
func (f *epochFraming) contentTBS(wf WireFormat, fc *FramedContent) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, f.tbsSizeHint(fc)))
	f.addContentTBS(b, wf, fc)
	return b.Bytes()
}

func (f *epochFraming) addContentTBS(b *cryptobyte.Builder, wf WireFormat, fc *FramedContent) {
	b.AddUint16(uint16(ProtocolMLS10))
	b.AddUint16(uint16(wf))
	fc.marshal(b)
	switch fc.Sender.Type {
	case SenderMember, SenderNewMemberCommit:
		b.AddBytes(f.groupContext)
	}
}

// tbsSizeHint estimates the FramedContentTBS size so that the common
// (application, small proposal) case is built without regrowing.
func (f *epochFraming) tbsSizeHint(fc *FramedContent) int {
	return 64 + len(fc.GroupID) + len(fc.AuthenticatedData) + len(fc.ApplicationData) + len(f.groupContext)
}

// sign builds the AuthenticatedContent for sending content in wire format
// wf and signs it: signature = SignWithLabel(sigPriv, "FramedContentTBS",
// FramedContentTBS) (§6.1). For a commit, the caller then sets
// Auth.ConfirmationTag (computed from the transcript hash, which covers the
// signature) before encodePublic / encryptPrivate. content is referenced,
// not copied.
func (f *epochFraming) sign(wf WireFormat, content *FramedContent, sigPriv []byte) (*AuthenticatedContent, error) {
	if content == nil {
		return nil, errors.New("mls: signing no content")
	}
	if err := f.checkFraming(wf, content); err != nil {
		return nil, err
	}
	tbs, err := f.contentTBS(wf, content)
	if err != nil {
		return nil, err
	}
	sig, err := f.signTBS(sigPriv, tbs)
	if err != nil {
		return nil, err
	}
	return &AuthenticatedContent{WireFormat: wf, Content: *content, Auth: FramedContentAuthData{Signature: sig}}, nil
}

// verifySignature checks ac's signature with the sender's signature public
// key sigPub (§6.1): for a member, the signature_key of its leaf; for an
// external sender, the key in external_senders; for new members, the key in
// the KeyPackage / UpdatePath leaf. Errors wrap ErrInvalidSignature.
func (f *epochFraming) verifySignature(ac *AuthenticatedContent, sigPub []byte) error {
	if ac.WireFormat != WireFormatPublicMessage && ac.WireFormat != WireFormatPrivateMessage {
		return fmt.Errorf("%w: AuthenticatedContent in an %v", ErrInvalidFraming, ac.WireFormat)
	}
	tbs, err := f.contentTBS(ac.WireFormat, &ac.Content)
	if err != nil {
		return err
	}
	if err := f.cs.VerifyWithLabel(sigPub, "FramedContentTBS", tbs, ac.Auth.Signature); err != nil {
		return fmt.Errorf("mls: %v from %v sender: %w", ac.Content.ContentType, ac.Content.Sender.Type, err)
	}
	return nil
}

// checkAuth checks the shape of FramedContentAuthData: a commit carries a
// confirmation tag (its value is checked by the group, §6.1, §12.4.2).
func (f *epochFraming) checkAuth(ac *AuthenticatedContent) error {
	if ac.Content.ContentType == ContentTypeCommit && len(ac.Auth.ConfirmationTag) == 0 {
		return fmt.Errorf("%w: commit without confirmation tag", ErrInvalidFraming)
	}
	return nil
}

// membershipTag returns MAC(membership_key, AuthenticatedContentTBM)
// (§6.2) for pm's content and auth:
//
//	struct {
//	  FramedContentTBS content_tbs;
//	  FramedContentAuthData auth;
//	} AuthenticatedContentTBM;
func (f *epochFraming) membershipTag(pm *PublicMessage) ([]byte, error) {
	if f.membershipKey == nil {
		return nil, errors.New("mls: no membership_key for PublicMessages in this epoch")
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, f.tbsSizeHint(&pm.Content)+len(pm.Auth.Signature)+len(pm.Auth.ConfirmationTag)+8))
	f.addContentTBS(b, WireFormatPublicMessage, &pm.Content)
	pm.Auth.marshal(b, pm.Content.ContentType)
	tbm, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return f.cs.MAC(f.membershipKey, tbm), nil
}

// encodePublic turns a signed AuthenticatedContent (wire format
// mls_public_message) into a PublicMessage, adding the membership tag for
// a member sender (§6.2). ac is referenced, not copied.
func (f *epochFraming) encodePublic(ac *AuthenticatedContent) (*PublicMessage, error) {
	if ac.WireFormat != WireFormatPublicMessage {
		return nil, fmt.Errorf("%w: %v content encoded as PublicMessage", ErrInvalidFraming, ac.WireFormat)
	}
	if err := f.checkFraming(ac.WireFormat, &ac.Content); err != nil {
		return nil, err
	}
	if err := f.checkAuth(ac); err != nil {
		return nil, err
	}
	pm := &PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if pm.Content.Sender.Type == SenderMember {
		tag, err := f.membershipTag(pm)
		if err != nil {
			return nil, err
		}
		pm.MembershipTag = tag
	}
	return pm, nil
}

// protectPublic signs content and encodes it as a PublicMessage.
// confirmationTag is required for a commit and ignored otherwise.
func (f *epochFraming) protectPublic(content *FramedContent, sigPriv, confirmationTag []byte) (*PublicMessage, error) {
	ac, err := f.sign(WireFormatPublicMessage, content, sigPriv)
	if err != nil {
		return nil, err
	}
	if content.ContentType == ContentTypeCommit {
		ac.Auth.ConfirmationTag = confirmationTag
	}
	return f.encodePublic(ac)
}

// unprotectPublic checks that pm belongs to this epoch, that its framing is
// allowed, and, for a member sender, its membership tag (constant-time
// comparison), and returns its AuthenticatedContent (sharing pm's slices).
// The signature is not verified: call verifySignature with the sender's
// key (or use unprotectMessage with a check).
func (f *epochFraming) unprotectPublic(pm *PublicMessage) (*AuthenticatedContent, error) {
	if err := f.checkFraming(WireFormatPublicMessage, &pm.Content); err != nil {
		return nil, err
	}
	ac := pm.AuthenticatedContent()
	if err := f.checkAuth(ac); err != nil {
		return nil, err
	}
	if pm.Content.Sender.Type != SenderMember {
		if len(pm.MembershipTag) != 0 {
			return nil, fmt.Errorf("%w: membership tag on a %v sender's message", ErrInvalidFraming, pm.Content.Sender.Type)
		}
		return ac, nil
	}
	want, err := f.membershipTag(pm)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(want, pm.MembershipTag) != 1 {
		return nil, fmt.Errorf("%w: %v from leaf %d", ErrInvalidMembershipTag, pm.Content.ContentType, pm.Content.Sender.LeafIndex)
	}
	return ac, nil
}

// ratchetTypeFor is the secret-tree ratchet of a content type (§9.1).
func ratchetTypeFor(ct ContentType) RatchetType {
	if ct == ContentTypeApplication {
		return ApplicationRatchet
	}
	return HandshakeRatchet
}

// senderDataLen is the encoded size of SenderData (§6.3.2).
const senderDataLen = 4 + 4 + 4

// encryptPrivate turns a signed AuthenticatedContent (wire format
// mls_private_message, member sender) into a PrivateMessage (§6.3): the
// PrivateMessageContent is padded by the epoch's policy, encrypted with the
// next key of the sender's ratchet and a fresh reuse guard read from rand,
// and the sender data is encrypted under sender_data_secret. Consumes one
// generation of the sender's ratchet.
func (f *epochFraming) encryptPrivate(ac *AuthenticatedContent, rand io.Reader) (*PrivateMessage, error) {
	if ac.WireFormat != WireFormatPrivateMessage {
		return nil, fmt.Errorf("%w: %v content encoded as PrivateMessage", ErrInvalidFraming, ac.WireFormat)
	}
	if err := f.checkFraming(ac.WireFormat, &ac.Content); err != nil {
		return nil, err
	}
	if err := f.checkAuth(ac); err != nil {
		return nil, err
	}
	fc := &ac.Content
	hint := 16 + len(fc.ApplicationData) + len(ac.Auth.Signature) + len(ac.Auth.ConfirmationTag)
	policy := f.padding.forContent(fc.ContentType)
	b := cryptobyte.NewBuilder(make([]byte, 0, policy.paddedLen(hint, maxVarint)+f.aeadOverhead()))
	marshalContentBody(b, fc.ContentType, fc.ApplicationData, fc.Proposal, fc.Commit)
	ac.Auth.marshal(b, fc.ContentType)
	pt, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	limit := maxVarint - f.aeadOverhead()
	if len(pt) > limit {
		return nil, fmt.Errorf("mls: PrivateMessageContent of %d bytes exceeds the ciphertext limit", len(pt))
	}
	padded := policy.paddedLen(len(pt), limit)
	pt = slices.Grow(pt, padded-len(pt)+f.aeadOverhead())
	pt = append(pt, make([]byte, padded-len(pt))...)
	return f.sealPrivate(fc, pt, rand)
}

// aeadOverhead is the tag size of every MLS AEAD (AES-GCM and
// ChaCha20-Poly1305).
func (f *epochFraming) aeadOverhead() int { return 16 }

// protectPrivate signs content and encodes it as a PrivateMessage.
// confirmationTag is required for a commit and ignored otherwise.
func (f *epochFraming) protectPrivate(content *FramedContent, sigPriv, confirmationTag []byte, rand io.Reader) (*PrivateMessage, error) {
	ac, err := f.sign(WireFormatPrivateMessage, content, sigPriv)
	if err != nil {
		return nil, err
	}
	if content.ContentType == ContentTypeCommit {
		ac.Auth.ConfirmationTag = confirmationTag
	}
	return f.encryptPrivate(ac, rand)
}

// sealPrivate encrypts the encoded (padded) PrivateMessageContent pt of
// the member content fc (§6.3.1, §6.3.2). pt is overwritten by the
// ciphertext.
func (f *epochFraming) sealPrivate(fc *FramedContent, pt []byte, rand io.Reader) (*PrivateMessage, error) {
	if f.secrets == nil || f.senderDataSecret == nil {
		return nil, errors.New("mls: no secret tree or sender_data_secret for PrivateMessages in this epoch")
	}
	if fc.Sender.Type != SenderMember {
		return nil, fmt.Errorf("%w: PrivateMessage from a %v sender", ErrInvalidFraming, fc.Sender.Type)
	}
	pm := &PrivateMessage{
		GroupID:           fc.GroupID,
		Epoch:             fc.Epoch,
		ContentType:       fc.ContentType,
		AuthenticatedData: fc.AuthenticatedData,
	}
	aad, err := pm.contentAAD()
	if err != nil {
		return nil, err
	}
	sdAAD, err := pm.senderDataAAD()
	if err != nil {
		return nil, err
	}
	if rand == nil {
		return nil, errors.New("mls: no randomness for the reuse guard")
	}
	var guard [4]byte
	if _, err := io.ReadFull(rand, guard[:]); err != nil {
		return nil, fmt.Errorf("mls: reading the reuse guard: %w", err)
	}

	// Everything that can fail for the caller's reasons has been checked:
	// consume the generation.
	leaf := LeafIndex(fc.Sender.LeafIndex)
	gen, key, nonce, err := f.secrets.nextSendKey(leaf, ratchetTypeFor(fc.ContentType))
	if err != nil {
		return nil, err
	}
	defer clear(key)
	defer clear(nonce)
	for i := range guard {
		nonce[i] ^= guard[i]
	}
	aead, err := f.cs.AEAD(key)
	if err != nil {
		return nil, err
	}
	pm.Ciphertext = aead.Seal(pt[:0], nonce, pt, aad)

	sdKey, sdNonce, err := senderDataKeyNonce(f.cs, f.senderDataSecret, pm.Ciphertext)
	if err != nil {
		return nil, err
	}
	defer clear(sdKey)
	defer clear(sdNonce)
	sdAEAD, err := f.cs.AEAD(sdKey)
	if err != nil {
		return nil, err
	}
	sd := make([]byte, senderDataLen, senderDataLen+sdAEAD.Overhead())
	putUint32(sd[0:], uint32(leaf))
	putUint32(sd[4:], gen)
	copy(sd[8:], guard[:])
	pm.EncryptedSenderData = sdAEAD.Seal(sd[:0], sdNonce, sd, sdAAD)
	return pm, nil
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// unprotectPrivate decrypts pm (§6.3): it opens the sender data, checks
// that the sender leaf is inside the tree, derives the content key of the
// sender's generation, opens the content, decodes the PrivateMessageContent
// (rejecting non-zero padding) and runs check on the result. Only if all
// of that succeeds is the key consumed (deleted); any failure leaves the
// secret tree unchanged. check may be nil; the group passes one that
// verifies the sender leaf is not blank and the signature
// (verifySignature with the leaf's signature_key), so that a message
// failing those checks does not consume the key either.
//
// The returned AuthenticatedContent shares pm's GroupID and
// AuthenticatedData; its body aliases the decrypted plaintext.
func (f *epochFraming) unprotectPrivate(pm *PrivateMessage, check func(*AuthenticatedContent) error) (*AuthenticatedContent, SenderData, error) {
	var sd SenderData
	if f.secrets == nil || f.senderDataSecret == nil {
		return nil, sd, errors.New("mls: no secret tree or sender_data_secret for PrivateMessages in this epoch")
	}
	if !bytes.Equal(pm.GroupID, f.groupID) || pm.Epoch != f.epoch {
		return nil, sd, fmt.Errorf("%w: PrivateMessage for epoch %d, this is epoch %d", ErrEpochMismatch, pm.Epoch, f.epoch)
	}
	if !pm.ContentType.valid() {
		return nil, sd, fmt.Errorf("%w: PrivateMessage of %v", ErrMalformed, pm.ContentType)
	}
	if len(pm.EncryptedSenderData) != senderDataLen+f.aeadOverhead() {
		return nil, sd, fmt.Errorf("%w: encrypted sender data is %d bytes, want %d", ErrDecryption, len(pm.EncryptedSenderData), senderDataLen+f.aeadOverhead())
	}

	// §6.3.2: sender data.
	sdAAD, err := pm.senderDataAAD()
	if err != nil {
		return nil, sd, err
	}
	sdKey, sdNonce, err := senderDataKeyNonce(f.cs, f.senderDataSecret, pm.Ciphertext)
	if err != nil {
		return nil, sd, err
	}
	sdAEAD, err := f.cs.AEAD(sdKey)
	clear(sdKey)
	if err != nil {
		return nil, sd, err
	}
	var sdBuf [senderDataLen]byte
	sdPlain, err := sdAEAD.Open(sdBuf[:0], sdNonce, pm.EncryptedSenderData, sdAAD)
	clear(sdNonce)
	if err != nil {
		return nil, sd, fmt.Errorf("%w: sender data did not open", ErrDecryption)
	}
	if err := sd.Unmarshal(sdPlain); err != nil {
		return nil, sd, err // cannot happen: the length was checked
	}
	if sd.LeafIndex >= f.secrets.leafCount() {
		return nil, sd, &RatchetError{Leaf: LeafIndex(sd.LeafIndex), Ratchet: ratchetTypeFor(pm.ContentType), Generation: sd.Generation, Err: ErrUnknownLeaf}
	}

	// §6.3.1: content.
	aad, err := pm.contentAAD()
	if err != nil {
		return nil, sd, err
	}
	var ac *AuthenticatedContent
	err = f.secrets.openWithKey(LeafIndex(sd.LeafIndex), ratchetTypeFor(pm.ContentType), sd.Generation, func(key, nonce []byte) error {
		var nonceBuf [32]byte
		n := append(nonceBuf[:0], nonce...)
		for i := range sd.ReuseGuard {
			n[i] ^= sd.ReuseGuard[i]
		}
		defer clear(n)
		aead, err := f.cs.AEAD(key)
		if err != nil {
			return err
		}
		pt, err := aead.Open(nil, n, pm.Ciphertext, aad)
		if err != nil {
			return fmt.Errorf("%w: content from leaf %d generation %d did not open", ErrDecryption, sd.LeafIndex, sd.Generation)
		}
		c := PrivateMessageContent{ContentType: pm.ContentType}
		if err := c.Unmarshal(pt); err != nil {
			return fmt.Errorf("%w: PrivateMessageContent from leaf %d (bad content or non-zero padding)", ErrMalformed, sd.LeafIndex)
		}
		a := &AuthenticatedContent{
			WireFormat: WireFormatPrivateMessage,
			Content: FramedContent{
				GroupID:           pm.GroupID,
				Epoch:             pm.Epoch,
				Sender:            Sender{Type: SenderMember, LeafIndex: sd.LeafIndex},
				AuthenticatedData: pm.AuthenticatedData,
				ContentType:       pm.ContentType,
				ApplicationData:   c.ApplicationData,
				Proposal:          c.Proposal,
				Commit:            c.Commit,
			},
			Auth: c.Auth,
		}
		if err := f.checkAuth(a); err != nil {
			return err
		}
		if check != nil {
			if err := check(a); err != nil {
				return err
			}
		}
		// Success: the key and nonce are ours; delete them now.
		clear(key)
		clear(nonce)
		ac = a
		return nil
	})
	if err != nil {
		return nil, sd, err
	}
	return ac, sd, nil
}

// unprotectMessage unprotects a PublicMessage or PrivateMessage and runs
// check on the AuthenticatedContent (for a PrivateMessage, before its key
// is consumed). sd is nil for a PublicMessage.
func (f *epochFraming) unprotectMessage(m *MLSMessage, check func(*AuthenticatedContent) error) (*AuthenticatedContent, *SenderData, error) {
	switch {
	case m.WireFormat == WireFormatPublicMessage && m.PublicMessage != nil:
		ac, err := f.unprotectPublic(m.PublicMessage)
		if err != nil {
			return nil, nil, err
		}
		if check != nil {
			if err := check(ac); err != nil {
				return nil, nil, err
			}
		}
		return ac, nil, nil
	case m.WireFormat == WireFormatPrivateMessage && m.PrivateMessage != nil:
		ac, sd, err := f.unprotectPrivate(m.PrivateMessage, check)
		if err != nil {
			return nil, nil, err
		}
		return ac, &sd, nil
	}
	return nil, nil, fmt.Errorf("%w: %v is not a framed message", ErrInvalidFraming, m.WireFormat)
}
