package mls

import (
	"bytes"
	"errors"
	"fmt"
)

// Received describes a message processed by Process.
type Received struct {
	// ContentType is what the message carried.
	ContentType ContentType
	// WireFormat is mls_public_message or mls_private_message.
	WireFormat WireFormat
	// Epoch is the epoch the message was sent in.
	Epoch uint64
	// Sender is who sent it.
	Sender Sender
	// AuthenticatedData is the message's authenticated_data.
	AuthenticatedData []byte
	// Generation is the sender's ratchet generation of a PrivateMessage
	// (0 for a PublicMessage): within Epoch it numbers the sender's
	// messages of the content type from 0, so it orders them.
	Generation uint32

	// ApplicationData is the plaintext of an application message.
	ApplicationData []byte

	// Proposal and ProposalRef describe a proposal, now cached for the
	// Commit of this epoch.
	Proposal    *Proposal
	ProposalRef ProposalRef

	// Commit summarises a Commit that was applied: the group is now in
	// Commit.Epoch.
	Commit *StateUpdate
}

// StateUpdate summarises what a Commit changed.
type StateUpdate struct {
	// Epoch is the new epoch.
	Epoch uint64
	// Committer is the sender of the Commit (for an external commit, the
	// joiner's new leaf).
	Committer LeafIndex
	// External reports an external commit (§12.4.3.2).
	External bool
	// Own reports that the Commit was this member's (merged from a
	// PendingCommit, directly or because the network echoed it back).
	Own bool
	// Added lists the leaves of new members, in the Commit's Add order
	// (for an external commit: the joiner's leaf).
	Added []LeafIndex
	// Updated lists the leaves whose Update proposals were applied.
	Updated []LeafIndex
	// Removed lists removed members with their last leaf node.
	Removed []RemovedMember
	// PSKs lists the PSKs injected into the key schedule, in order.
	PSKs []PreSharedKeyID
	// Extensions reports a GroupContextExtensions proposal.
	Extensions bool
	// ReInit is set when the Commit carried a ReInit: the group is closed
	// and waits for the Welcome of the new group (§11.2).
	ReInit *ReInit
	// RemovedSelf reports that this member was removed: the group is
	// closed.
	RemovedSelf bool
}

// RemovedMember is a member removed by a Commit.
type RemovedMember struct {
	Index    LeafIndex
	LeafNode *LeafNode
}

// decodeMessage parses an MLSMessage of a group (PublicMessage or
// PrivateMessage) and checks its group id.
func (g *Group) decodeMessage(data []byte) (*MLSMessage, error) {
	var m MLSMessage
	if err := m.Unmarshal(data); err != nil {
		return nil, err
	}
	var groupID []byte
	switch m.WireFormat {
	case WireFormatPublicMessage:
		groupID = m.PublicMessage.Content.GroupID
	case WireFormatPrivateMessage:
		groupID = m.PrivateMessage.GroupID
	default:
		return nil, fmt.Errorf("%w: %v is not a group message", ErrInvalidFraming, m.WireFormat)
	}
	if !bytes.Equal(groupID, g.ctx.GroupID) {
		return nil, ErrWrongGroup
	}
	return &m, nil
}

// Process handles a PublicMessage or PrivateMessage of this group:
// application data is decrypted (also from the past epochs in the
// window), a proposal is verified and cached for the epoch's Commit, and a
// Commit is verified with every check of §12.4.2 and applied, moving the
// group to the next epoch. This member's own Commit, echoed back by the
// network, is recognised (it matches a PendingCommit) and merged.
//
// On error the group is unchanged (a PrivateMessage that fails does not
// even consume its key).
func (g *Group) Process(data []byte) (*Received, error) {
	for _, pc := range g.pending {
		if bytes.Equal(pc.Message, data) {
			upd, err := g.MergePendingCommit(pc)
			if err != nil {
				return nil, err
			}
			return &Received{ContentType: ContentTypeCommit, WireFormat: pc.wireFormat, Epoch: upd.Epoch - 1,
				Sender: pc.sender, AuthenticatedData: pc.authData, Commit: upd}, nil
		}
	}
	m, err := g.decodeMessage(data)
	if err != nil {
		return nil, err
	}
	epoch, ct := messageEpoch(m)
	if epoch != g.ctx.Epoch {
		if ct == ContentTypeApplication && m.WireFormat == WireFormatPrivateMessage {
			return g.processPastApplication(m)
		}
		return nil, fmt.Errorf("%w: %v for epoch %d, group is in epoch %d", ErrWrongEpoch, ct, epoch, g.ctx.Epoch)
	}
	if g.removed && ct != ContentTypeApplication {
		return nil, fmt.Errorf("%w: handshake after this member was removed", ErrGroupClosed)
	}
	f, err := g.currentFraming()
	if err != nil {
		return nil, err
	}
	// Everything is checked inside the unprotect callback, which runs
	// before a PrivateMessage's key is consumed: a message that fails any
	// check (say, a Commit whose referenced proposal has not arrived yet)
	// leaves the group untouched and can be processed again later.
	var (
		ref    ProposalRef
		staged *Group
		upd    *StateUpdate
	)
	ac, sd, err := f.unprotectMessage(m, func(ac *AuthenticatedContent) error {
		if err := g.verifySender(f, ac); err != nil {
			return err
		}
		var err error
		switch ac.Content.ContentType {
		case ContentTypeProposal:
			ref, err = g.checkProposalMessage(ac)
		case ContentTypeCommit:
			staged, upd, err = g.stageCommit(ac)
		}
		return err
	})
	if err != nil {
		var re *RatchetError
		if errors.As(err, &re) && re.Leaf == g.myLeaf && errors.Is(err, ErrKeyConsumed) {
			// This member's own message, echoed back: its key was consumed
			// when it was sent.
			return nil, fmt.Errorf("%w: %w", ErrOwnMessage, err)
		}
		return nil, err
	}
	r := &Received{
		ContentType:       ac.Content.ContentType,
		WireFormat:        ac.WireFormat,
		Epoch:             ac.Content.Epoch,
		Sender:            ac.Content.Sender,
		AuthenticatedData: ac.Content.AuthenticatedData,
	}
	if sd != nil {
		r.Generation = sd.Generation
	}
	switch ac.Content.ContentType {
	case ContentTypeApplication:
		r.ApplicationData = ac.Content.ApplicationData
	case ContentTypeProposal:
		g.cacheProposal(ref, ac)
		r.Proposal, r.ProposalRef = ac.Content.Proposal, ref
	case ContentTypeCommit:
		g.applyStaged(staged, upd)
		r.Commit = upd
	}
	return r, nil
}

func messageEpoch(m *MLSMessage) (uint64, ContentType) {
	if m.WireFormat == WireFormatPublicMessage {
		return m.PublicMessage.Content.Epoch, m.PublicMessage.Content.ContentType
	}
	return m.PrivateMessage.Epoch, m.PrivateMessage.ContentType
}

// verifySender checks the sender of a message of the current epoch and its
// signature (§6.1): a member's non-blank leaf, a configured external
// sender, or for new members the key in the content itself.
func (g *Group) verifySender(f *epochFraming, ac *AuthenticatedContent) error {
	fc := &ac.Content
	var pub []byte
	switch fc.Sender.Type {
	case SenderMember:
		ln := g.tree.leaf(LeafIndex(fc.Sender.LeafIndex))
		if ln == nil {
			return fmt.Errorf("%w: leaf %d is blank", ErrUnknownSender, fc.Sender.LeafIndex)
		}
		if LeafIndex(fc.Sender.LeafIndex) == g.myLeaf && fc.ContentType != ContentTypeCommit {
			return fmt.Errorf("%w: %v from this member's own leaf", ErrOwnMessage, fc.ContentType)
		}
		pub = ln.SignatureKey
	case SenderExternal:
		senders, err := g.externalSenders()
		if err != nil {
			return err
		}
		if uint64(fc.Sender.SenderIndex) >= uint64(len(senders)) {
			return fmt.Errorf("%w: external sender %d of %d", ErrUnknownSender, fc.Sender.SenderIndex, len(senders))
		}
		pub = senders[fc.Sender.SenderIndex].SignatureKey
	case SenderNewMemberProposal:
		if fc.Proposal == nil || fc.Proposal.Add == nil {
			return fmt.Errorf("%w: new_member_proposal without Add", ErrInvalidFraming)
		}
		pub = fc.Proposal.Add.KeyPackage.LeafNode.SignatureKey
	case SenderNewMemberCommit:
		if fc.Commit == nil || fc.Commit.Path == nil {
			return fmt.Errorf("%w: external commit without path", ErrInvalidCommit)
		}
		pub = fc.Commit.Path.LeafNode.SignatureKey
	default:
		return fmt.Errorf("%w: sender type %v", ErrUnknownSender, fc.Sender.Type)
	}
	return f.verifySignature(ac, pub)
}

// externalSenders decodes the external_senders GroupContext extension.
func (g *Group) externalSenders() (ExternalSenders, error) {
	e, ok := findExtension(g.ctx.Extensions, ExtensionExternalSenders)
	if !ok {
		return nil, fmt.Errorf("%w: the group has no external_senders extension", ErrUnknownSender)
	}
	var l ExternalSenders
	if err := l.Unmarshal(e.Data); err != nil {
		return nil, err
	}
	return l, nil
}

// processPastApplication decrypts a late application message of a past
// epoch kept in the window.
func (g *Group) processPastApplication(m *MLSMessage) (*Received, error) {
	pm := m.PrivateMessage
	for i, p := range g.past {
		if p.ctx.Epoch != pm.Epoch {
			continue
		}
		f, err := p.getFraming(g.cfg.padding)
		if err != nil {
			return nil, err
		}
		ac, sd, err := f.unprotectMessage(m, func(ac *AuthenticatedContent) error {
			ln := g.leafAt(i, LeafIndex(ac.Content.Sender.LeafIndex))
			if ln == nil {
				return fmt.Errorf("%w: leaf %d was blank in epoch %d", ErrUnknownSender, ac.Content.Sender.LeafIndex, pm.Epoch)
			}
			return f.verifySignature(ac, ln.SignatureKey)
		})
		if err != nil {
			return nil, err
		}
		var gen uint32
		if sd != nil {
			gen = sd.Generation
		}
		return &Received{
			ContentType:       ContentTypeApplication,
			WireFormat:        WireFormatPrivateMessage,
			Epoch:             pm.Epoch,
			Sender:            ac.Content.Sender,
			AuthenticatedData: ac.Content.AuthenticatedData,
			ApplicationData:   ac.Content.ApplicationData,
			Generation:        gen,
		}, nil
	}
	return nil, fmt.Errorf("%w: application message for epoch %d, group is in epoch %d and keeps %d past epochs",
		ErrWrongEpoch, pm.Epoch, g.ctx.Epoch, len(g.past))
}
