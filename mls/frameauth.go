package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// Frame authentication without processing.
//
// A transport that relays a group's frames (gossip) wants to forward and
// store only frames a member of the epoch produced, before the group's
// goroutine processes them, and from other goroutines. Processing is too
// late (the frame was already forwarded) and too costly (a Commit is a
// full tree update), and it touches the secret tree. A FrameAuthenticator
// is the cheap part of §6.2/§6.3 for one epoch, taken from a Group as an
// immutable snapshot:
//
//   - PrivateMessage: the sender data opens under the epoch's
//     sender_data_secret (an AEAD tag: only a holder of the epoch's key
//     schedule can produce it) and names a non-blank leaf. The content is
//     not decrypted, so no ratchet key is derived or consumed.
//   - PublicMessage from a member: the membership tag verifies under the
//     epoch's membership_key (constant-time comparison) and names a
//     non-blank leaf.
//   - PublicMessage new_member_commit (an external join): there is no
//     shared secret to check cheaply; the signature is verified with the
//     key in the Commit's UpdatePath leaf and that key is returned, so the
//     caller can decide whether it trusts it (say, it is the key of a
//     known member rejoining). A full check needs Process.
//   - external and new_member_proposal senders: ErrUnauthenticated (a
//     caller that needs them processes them).
//
// Authenticate never changes the Group it came from, derives no ratchet
// key and is safe for concurrent use.

// FrameAuthenticator checks that frames of one epoch come from a holder of
// its secrets. Get one with Group.FrameAuthenticator.
type FrameAuthenticator struct {
	f       *epochFraming // membership_key and sender_data_secret copied; no secret tree
	leaves  uint32
	sigKeys [][]byte // by leaf index; nil for a blank leaf
}

// FrameSender is who a frame authenticated as.
type FrameSender struct {
	Type SenderType
	// Leaf is the sender's leaf (member senders).
	Leaf LeafIndex
	// Generation is the ratchet generation a PrivateMessage names (from
	// its sender data); with Leaf and the content type it identifies the
	// one frame the sender may send with that key.
	Generation uint32
	// SignatureKey is the verified signer of a new_member_commit; for a
	// member, the signature key of its leaf in this epoch.
	SignatureKey []byte
}

// FrameAuthenticator returns an immutable authenticator of the group's
// current epoch. Its secrets are copies: wiping or advancing the group
// does not affect it, and it holds no key that decrypts content.
func (g *Group) FrameAuthenticator() (*FrameAuthenticator, error) {
	if g.secrets == nil {
		return nil, errors.New("mls: group has no epoch secrets")
	}
	f, err := newEpochFraming(&g.ctx, slices.Clone(g.secrets.MembershipKey), slices.Clone(g.secrets.SenderDataSecret), nil, g.cfg.padding)
	if err != nil {
		return nil, err
	}
	a := &FrameAuthenticator{f: f, leaves: g.tree.numLeaves(), sigKeys: make([][]byte, g.tree.numLeaves())}
	g.tree.forEachMember(func(l LeafIndex, ln *LeafNode) bool {
		a.sigKeys[l] = slices.Clone(ln.SignatureKey)
		return true
	})
	return a, nil
}

// Epoch is the epoch the authenticator checks.
func (a *FrameAuthenticator) Epoch() uint64 { return a.f.epoch }

// Authenticate checks data, an MLSMessage, as described on
// FrameAuthenticator. Errors wrap ErrEpochMismatch (another group or
// epoch), ErrDecryption (sender data did not open), ErrInvalidMembershipTag,
// ErrInvalidSignature, ErrUnknownSender (blank or out-of-tree leaf),
// ErrInvalidFraming, ErrMalformed or ErrUnauthenticated.
func (a *FrameAuthenticator) Authenticate(data []byte) (FrameSender, error) {
	var m MLSMessage
	if err := m.Unmarshal(data); err != nil {
		return FrameSender{}, err
	}
	switch {
	case m.WireFormat == WireFormatPrivateMessage && m.PrivateMessage != nil:
		return a.private(m.PrivateMessage)
	case m.WireFormat == WireFormatPublicMessage && m.PublicMessage != nil:
		return a.public(m.PublicMessage)
	}
	return FrameSender{}, fmt.Errorf("%w: %v is not a framed message", ErrInvalidFraming, m.WireFormat)
}

func (a *FrameAuthenticator) member(l uint32) (FrameSender, error) {
	if l >= a.leaves || a.sigKeys[l] == nil {
		return FrameSender{}, fmt.Errorf("%w: leaf %d is blank or outside the tree", ErrUnknownSender, l)
	}
	return FrameSender{Type: SenderMember, Leaf: LeafIndex(l), SignatureKey: a.sigKeys[l]}, nil
}

func (a *FrameAuthenticator) private(pm *PrivateMessage) (FrameSender, error) {
	f := a.f
	if f.senderDataSecret == nil {
		return FrameSender{}, ErrUnauthenticated
	}
	if !bytes.Equal(pm.GroupID, f.groupID) || pm.Epoch != f.epoch {
		return FrameSender{}, fmt.Errorf("%w: PrivateMessage for epoch %d, this is epoch %d", ErrEpochMismatch, pm.Epoch, f.epoch)
	}
	if !pm.ContentType.valid() {
		return FrameSender{}, fmt.Errorf("%w: PrivateMessage of %v", ErrMalformed, pm.ContentType)
	}
	if len(pm.EncryptedSenderData) != senderDataLen+f.aeadOverhead() {
		return FrameSender{}, fmt.Errorf("%w: encrypted sender data is %d bytes", ErrDecryption, len(pm.EncryptedSenderData))
	}
	sdAAD, err := pm.senderDataAAD()
	if err != nil {
		return FrameSender{}, err
	}
	key, nonce, err := senderDataKeyNonce(f.cs, f.senderDataSecret, pm.Ciphertext)
	if err != nil {
		return FrameSender{}, err
	}
	defer clear(nonce)
	aead, err := f.cs.AEAD(key)
	clear(key)
	if err != nil {
		return FrameSender{}, err
	}
	var buf [senderDataLen]byte
	plain, err := aead.Open(buf[:0], nonce, pm.EncryptedSenderData, sdAAD)
	if err != nil {
		return FrameSender{}, fmt.Errorf("%w: sender data did not open", ErrDecryption)
	}
	var sd SenderData
	if err := sd.Unmarshal(plain); err != nil {
		return FrameSender{}, err
	}
	s, err := a.member(sd.LeafIndex)
	s.Generation = sd.Generation
	return s, err
}

func (a *FrameAuthenticator) public(pm *PublicMessage) (FrameSender, error) {
	f := a.f
	if !bytes.Equal(pm.Content.GroupID, f.groupID) || pm.Content.Epoch != f.epoch {
		return FrameSender{}, fmt.Errorf("%w: PublicMessage for epoch %d, this is epoch %d", ErrEpochMismatch, pm.Content.Epoch, f.epoch)
	}
	switch pm.Content.Sender.Type {
	case SenderMember:
		s, err := a.member(pm.Content.Sender.LeafIndex)
		if err != nil {
			return FrameSender{}, err
		}
		// unprotectPublic checks framing and the tag in constant time.
		if _, err := f.unprotectPublic(pm); err != nil {
			return FrameSender{}, err
		}
		return s, nil
	case SenderNewMemberCommit:
		ac, err := f.unprotectPublic(pm)
		if err != nil {
			return FrameSender{}, err
		}
		c := ac.Content.Commit
		if c == nil || c.Path == nil {
			return FrameSender{}, fmt.Errorf("%w: external commit without path", ErrInvalidCommit)
		}
		pub := c.Path.LeafNode.SignatureKey
		if err := f.verifySignature(ac, pub); err != nil {
			return FrameSender{}, err
		}
		return FrameSender{Type: SenderNewMemberCommit, SignatureKey: slices.Clone(pub)}, nil
	}
	return FrameSender{}, fmt.Errorf("%w: %v sender", ErrUnauthenticated, pm.Content.Sender.Type)
}
