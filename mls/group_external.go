package mls

import (
	"fmt"
	"io"
	"slices"
)

// External joins (§12.4.3.2) and external proposals (§12.1.8).

// ExternalJoinOptions tune an external join.
type ExternalJoinOptions struct {
	// RatchetTree is the encoded tree when the GroupInfo does not carry
	// the ratchet_tree extension.
	RatchetTree []byte
	// RemovePrior makes this a "resync" commit: the joiner's prior
	// appearance in the group (the member whose credential equals cred) is
	// removed in the same Commit.
	RemovePrior bool
	// PSKs are the ids of external PSKs to inject (they must be given with
	// WithExternalPSK).
	PSKs [][]byte
	// AuthenticatedData is sent with the Commit.
	AuthenticatedData []byte
}

// JoinExternal joins a group with an external Commit (§12.4.3.2) from a
// GroupInfo (an encoded MLSMessage) that carries external_pub. It returns
// the joiner's state, already in the new epoch, and the Commit (a
// PublicMessage) to send to the group. If the group does not accept the
// Commit (another Commit won the epoch), the returned state is void.
func JoinExternal(groupInfo, sigPriv []byte, cred Credential, eo ExternalJoinOptions, opts ...Option) (*Group, []byte, error) {
	cfg := newConfig(opts)
	g, ep, err := externalJoinState(&cfg, groupInfo, sigPriv, &eo)
	if err != nil {
		return nil, nil, err
	}
	cs := g.ctx.CipherSuite
	sigPub, err := cs.SignaturePublicKey(sigPriv)
	if err != nil {
		return nil, nil, err
	}

	joiner := Sender{Type: SenderNewMemberCommit}
	list, initSecret, err := g.externalJoinProposals(ep, cred, &eo, joiner, cfg.rand)
	if err != nil {
		return nil, nil, err
	}
	defer clear(initSecret)
	cc := &commitContext{committer: joiner}
	plan, err := g.planProposals(list, cc)
	if err != nil {
		return nil, nil, err
	}
	ap, err := g.applyPlan(plan)
	if err != nil {
		return nil, nil, err
	}
	entries, err := g.pskEntries(plan.psks, nil)
	if err != nil {
		return nil, nil, err
	}

	// The joiner's leaf and path (§12.4.2: leftmost free leaf).
	me := leftmostFreeLeaf(&ap.tree)
	caps, _, exts := cfg.newLeafParams()
	template := &LeafNode{SignatureKey: sigPub, Credential: cred, Capabilities: caps, Source: LeafNodeSourceCommit, Extensions: exts}
	if err := supportsExtensions(template, ap.ctx.Extensions); err != nil {
		return nil, nil, err
	}
	if rc := g.leafValidation(ap.ctx.Extensions).RequiredCapabilities; rc != nil && !template.Capabilities.SupportsRequired(rc) {
		return nil, nil, fmt.Errorf("%w: the joiner does not support the required capabilities", ErrInvalidLeafNode)
	}
	if err := ap.tree.checkCredentialCompat(template, nil); err != nil {
		return nil, nil, err
	}
	if _, ok := ap.tree.lookupSignatureKey(sigPub); ok {
		return nil, nil, fmt.Errorf("%w: the joiner's signature key is already in the group", ErrDuplicateKey)
	}
	ap.changed[me] = nil
	pp, err := ap.tree.generateUpdatePath(me, template, sigPriv, g.ctx.GroupID, cfg.rand)
	if err != nil {
		return nil, nil, err
	}
	if ap.ctx.TreeHash, err = ap.tree.treeHash(); err != nil {
		return nil, nil, err
	}
	gc, err := ap.ctx.Marshal()
	if err != nil {
		return nil, nil, err
	}
	path, err := ap.tree.encryptUpdatePath(pp, gc, nil, cfg.rand)
	if err != nil {
		return nil, nil, err
	}

	commit := &Commit{Proposals: make([]ProposalOrRef, len(list)), Path: path}
	for i, cp := range list {
		commit.Proposals[i] = ProposalOrRef{Type: ProposalOrRefProposal, Proposal: cp.proposal}
	}
	f, err := newEpochFraming(&g.ctx, nil, nil, nil, cfg.padding)
	if err != nil {
		return nil, nil, err
	}
	fc := &FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: joiner,
		AuthenticatedData: eo.AuthenticatedData, ContentType: ContentTypeCommit, Commit: commit}
	ac, err := f.sign(WireFormatPublicMessage, fc, sigPriv)
	if err != nil {
		return nil, nil, err
	}
	n, tag, err := g.advance(ap, plan, ac, pp.privateTree(), pp.commitSecret, entries, initSecret)
	if err != nil {
		return nil, nil, err
	}
	n.secrets.dropJoinerSecrets()
	ac.Auth.ConfirmationTag = tag
	pm, err := f.encodePublic(ac)
	if err != nil {
		return nil, nil, err
	}
	msg, err := marshalStruct(&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm})
	if err != nil {
		return nil, nil, err
	}
	return n, msg, nil
}

// externalJoinState decodes the GroupInfo of an external join (with its
// external_pub and the ratchet tree, from the GroupInfo or eo) and builds
// the joiner's view of the current epoch: no secrets, but the transcript.
func externalJoinState(cfg *config, groupInfo, sigPriv []byte, eo *ExternalJoinOptions) (*Group, *ExternalPub, error) {
	var m MLSMessage
	// A private copy: the tree (and the joiner's state) keeps referencing
	// the decoded bytes.
	if err := m.Unmarshal(slices.Clone(groupInfo)); err != nil {
		return nil, nil, err
	}
	if m.WireFormat != WireFormatGroupInfo {
		return nil, nil, fmt.Errorf("%w: %v is not a GroupInfo", ErrInvalidGroupInfo, m.WireFormat)
	}
	gi := m.GroupInfo
	cs := gi.GroupContext.CipherSuite
	if !cs.Supported() {
		return nil, nil, &UnsupportedCipherSuiteError{cs}
	}
	ep, ok, err := gi.ExternalPub()
	if err != nil {
		// Kept apart from "missing": a peer that encodes the extension
		// wrongly (e.g. the bare HPKEPublicKey without its opaque<V> length,
		// §12.4.3.2, §5.1.1) is told what the decoder refused.
		return nil, nil, fmt.Errorf("%w: malformed external_pub extension: %w", ErrInvalidGroupInfo, err)
	}
	if !ok {
		return nil, nil, fmt.Errorf("%w: no external_pub extension", ErrInvalidGroupInfo)
	}
	nodes, encs, ok, err := ratchetTreeExtension(gi)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ratchet_tree extension: %w", ErrInvalidGroupInfo, err)
	}
	if !ok {
		if len(eo.RatchetTree) == 0 {
			return nil, nil, fmt.Errorf("%w: the GroupInfo has no ratchet tree and none was given", ErrInvalidGroupInfo)
		}
		if nodes, encs, err = decodeRatchetTree(slices.Clone(eo.RatchetTree)); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
		}
	}
	g, err := joinGroup(cfg, gi, nodes, encs, sigPriv)
	if err != nil {
		return nil, nil, err
	}
	// The joiner's view of the current epoch: no secrets, but the
	// transcript (§12.4.3.2: the interim hash from the confirmation tag).
	if g.interim, err = interimTranscriptHash(cs, g.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
		return nil, nil, err
	}
	return g, ep, nil
}

// externalJoinProposals lists the proposals of an external Commit
// (ExternalInit, the optional Remove of the prior leaf, PSKs) and returns
// the init_secret the ExternalInit encapsulates; the caller clears it.
func (g *Group) externalJoinProposals(ep *ExternalPub, cred Credential, eo *ExternalJoinOptions, joiner Sender, random io.Reader) ([]committedProposal, []byte, error) {
	kemOutput, initSecret, err := externalInitSecretSend(g.ctx.CipherSuite, ep.ExternalPub, random)
	if err != nil {
		return nil, nil, err
	}
	list := []committedProposal{{proposal: &Proposal{Type: ProposalTypeExternalInit,
		ExternalInit: &ExternalInit{KEMOutput: kemOutput}}, sender: joiner}}
	if eo.RemovePrior {
		prior, found := g.tree.findLeaf(func(ln *LeafNode) bool { return ln.Credential.Equal(&cred) })
		if !found {
			clear(initSecret)
			return nil, nil, fmt.Errorf("%w: no prior leaf with this credential to remove", ErrInvalidProposal)
		}
		list = append(list, committedProposal{proposal: &Proposal{Type: ProposalTypeRemove,
			Remove: &Remove{Removed: uint32(prior)}}, sender: joiner})
	}
	for _, id := range eo.PSKs {
		pid, err := g.newPSKID(PreSharedKeyID{Type: PSKTypeExternal, PSKID: slices.Clone(id)})
		if err != nil {
			clear(initSecret)
			return nil, nil, err
		}
		list = append(list, committedProposal{proposal: &Proposal{Type: ProposalTypePSK,
			PreSharedKey: &PreSharedKey{PSK: pid}}, sender: joiner})
	}
	return list, initSecret, nil
}

// ExternalProposal creates a proposal from an external sender (§12.1.8):
// senderIndex is the sender's position in the group's external_senders
// extension and sigPriv its signature key. groupInfo (an encoded
// MLSMessage, whose signature is not checked here: the sender need not
// know the tree) names the group and epoch. The proposal type must be
// allowed for external senders. The result is a PublicMessage.
func ExternalProposal(groupInfo []byte, senderIndex uint32, sigPriv []byte, p *Proposal, authenticatedData []byte, opts ...Option) ([]byte, error) {
	if !p.Type.AllowedForExternalSender() {
		return nil, fmt.Errorf("%w: %v from an external sender", ErrInvalidProposal, p.Type)
	}
	return signedExternalProposal(groupInfo, Sender{Type: SenderExternal, SenderIndex: senderIndex}, sigPriv, p, authenticatedData, opts)
}

// NewMemberAddProposal creates the Add proposal of a client asking to join
// (§12.1.8, sender type new_member_proposal) for its own KeyPackage, signed
// with the KeyPackage's signature key. The result is a PublicMessage.
func NewMemberAddProposal(groupInfo []byte, bundle *KeyPackageBundle, authenticatedData []byte, opts ...Option) ([]byte, error) {
	p := &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: bundle.KeyPackage}}
	return signedExternalProposal(groupInfo, Sender{Type: SenderNewMemberProposal}, bundle.SignaturePriv, p, authenticatedData, opts)
}

func signedExternalProposal(groupInfo []byte, sender Sender, sigPriv []byte, p *Proposal, authData []byte, opts []Option) ([]byte, error) {
	var m MLSMessage
	if err := m.Unmarshal(groupInfo); err != nil {
		return nil, err
	}
	if m.WireFormat != WireFormatGroupInfo {
		return nil, fmt.Errorf("%w: %v is not a GroupInfo", ErrInvalidGroupInfo, m.WireFormat)
	}
	cfg := newConfig(opts)
	ctx := &m.GroupInfo.GroupContext
	f, err := newEpochFraming(ctx, nil, nil, nil, cfg.padding)
	if err != nil {
		return nil, err
	}
	fc := &FramedContent{GroupID: ctx.GroupID, Epoch: ctx.Epoch, Sender: sender, AuthenticatedData: authData,
		ContentType: ContentTypeProposal, Proposal: p}
	pm, err := f.protectPublic(fc, sigPriv, nil)
	if err != nil {
		return nil, err
	}
	return marshalStruct(&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm})
}
