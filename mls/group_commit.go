package mls

import (
	"fmt"
	"slices"
)

// Commits (RFC 9420 §12.4): creating one without changing the state
// (§12.4.1, §14), processing one with every check of §12.4.2, and the move
// of the group to the next epoch.

// CommitOptions tune a Commit.
type CommitOptions struct {
	// Proposals are sent by value, after the cached proposals of the epoch
	// that the Commit covers by reference.
	Proposals []*Proposal
	// ForcePath includes an UpdatePath even when no proposal requires one
	// (also see WithAlwaysPath).
	ForcePath bool
	// ExternalTree leaves the ratchet tree out of the Welcome: the joiners
	// fetch it (PendingCommit.RatchetTree) out of band and check it against
	// the tree hash in the signed GroupInfo.
	ExternalTree bool
	// GroupInfo also returns a signed GroupInfo of the new epoch with the
	// external_pub extension (for external joins) in PendingCommit.GroupInfo;
	// it carries the ratchet tree unless ExternalTree is set.
	GroupInfo bool
	// AuthenticatedData is sent with the Commit, authenticated but not
	// encrypted.
	AuthenticatedData []byte
}

// PendingCommit is a Commit this member created. The group stays in its
// epoch until the Commit is merged (MergePendingCommit, or Process when the
// network echoes it back); discard it with DiscardPendingCommit if another
// Commit wins the epoch. The Welcome must not be sent before the Commit is
// accepted (§14).
type PendingCommit struct {
	// Message is the Commit, an encoded MLSMessage.
	Message []byte
	// Welcome is an encoded MLSMessage(Welcome) for the members the Commit
	// adds, or nil.
	Welcome []byte
	// GroupInfo is an encoded MLSMessage(GroupInfo) of the new epoch, when
	// CommitOptions.GroupInfo was set.
	GroupInfo []byte
	// RatchetTree is the encoded ratchet tree of the new epoch when the
	// Welcome leaves it out (CommitOptions.ExternalTree).
	RatchetTree []byte
	// Update describes what merging the Commit changes.
	Update *StateUpdate

	owner      *Group
	epoch      uint64
	next       *Group
	wireFormat WireFormat
	sender     Sender
	authData   []byte
}

// Commit creates a Commit covering the proposals cached in this epoch that
// keep the list valid (§12.2) plus opts.Proposals by value, with an
// UpdatePath when required (§12.4) or asked for. The group's epoch does not
// change: merge or discard the returned PendingCommit.
func (g *Group) Commit(opts CommitOptions) (*PendingCommit, error) {
	if err := g.checkCanSend(); err != nil {
		return nil, err
	}
	list := g.selectProposals()
	me := Sender{Type: SenderMember, LeafIndex: uint32(g.myLeaf)}
	for _, p := range opts.Proposals {
		if p == nil {
			return nil, fmt.Errorf("%w: nil proposal", ErrInvalidProposal)
		}
		list = append(list, committedProposal{proposal: p, sender: me})
	}
	return g.commit(list, &opts, &commitContext{committer: me, sending: true}, nil)
}

// commit builds a Commit of this member over list (§12.4.1). extra are the
// groups whose resumption PSKs may be named (ReInit, branch).
func (g *Group) commit(list []committedProposal, opts *CommitOptions, cc *commitContext, extra []*Group) (*PendingCommit, error) {
	rnd := g.cfg.rand
	plan, err := g.planProposals(list, cc)
	if err != nil {
		return nil, err
	}
	ap, err := g.applyPlan(plan)
	if err != nil {
		return nil, err
	}
	entries, err := g.pskEntries(plan.psks, extra)
	if err != nil {
		return nil, err
	}

	// UpdatePath (§7.5) over the tree with the proposals applied.
	priv := g.priv.clone()
	var pp *pendingPath
	var path *UpdatePath
	if plan.pathRequired || opts.ForcePath || g.cfg.alwaysPath {
		template := *ap.tree.leaf(g.myLeaf)
		if _, ok := ap.changed[g.myLeaf]; !ok {
			ap.changed[g.myLeaf] = g.tree.leaf(g.myLeaf)
		}
		if pp, err = ap.tree.generateUpdatePath(g.myLeaf, &template, g.sigPriv, g.ctx.GroupID, rnd); err != nil {
			return nil, err
		}
		if ap.ctx.TreeHash, err = ap.tree.treeHash(); err != nil {
			return nil, err
		}
		gc, err := ap.ctx.Marshal()
		if err != nil {
			return nil, err
		}
		if path, err = ap.tree.encryptUpdatePath(pp, gc, ap.added, rnd); err != nil {
			return nil, err
		}
		priv = pp.privateTree()
	} else {
		if ap.ctx.TreeHash, err = ap.tree.treeHash(); err != nil {
			return nil, err
		}
		priv.prune(&ap.tree)
	}

	// Sign with the old GroupContext, then the transcript, key schedule
	// and confirmation tag of the new epoch (§12.4.1).
	commit := &Commit{Proposals: make([]ProposalOrRef, len(list)), Path: path}
	for i, cp := range list {
		if cp.ref != nil {
			commit.Proposals[i] = ProposalOrRef{Type: ProposalOrRefReference, Reference: cp.ref}
		} else {
			commit.Proposals[i] = ProposalOrRef{Type: ProposalOrRefProposal, Proposal: cp.proposal}
		}
	}
	f, err := g.currentFraming()
	if err != nil {
		return nil, err
	}
	fc := g.newContent(ContentTypeCommit, opts.AuthenticatedData)
	fc.Commit = commit
	ac, err := f.sign(g.handshakeWireFormat(), fc, g.sigPriv)
	if err != nil {
		return nil, err
	}
	var commitSecret []byte
	if pp != nil {
		commitSecret = pp.commitSecret
	}
	n, tag, err := g.advance(ap, plan, ac, priv, commitSecret, entries, g.secrets.InitSecret)
	if err != nil {
		return nil, err
	}
	ac.Auth.ConfirmationTag = tag

	pc := &PendingCommit{owner: g, epoch: g.ctx.Epoch, next: n, wireFormat: ac.WireFormat, sender: fc.Sender,
		authData: fc.AuthenticatedData}
	pc.Update = g.stateUpdate(ap, plan, g.myLeaf, false)
	pc.Update.Own = true
	if err := n.finishCommitOutputs(pc, ap, plan, pp, opts); err != nil {
		return nil, err
	}
	// Everything that can fail has: protect the Commit (this consumes a
	// key of the handshake ratchet when it is encrypted).
	if pc.Message, err = g.encodeAuthenticated(f, ac); err != nil {
		return nil, err
	}
	g.pending = append(g.pending, pc)
	return pc, nil
}

// finishCommitOutputs builds the Welcome, GroupInfo and ratchet tree of a
// Commit from the new state n, then drops the joiner secrets.
func (n *Group) finishCommitOutputs(pc *PendingCommit, ap *appliedPlan, plan *proposalPlan, pp *pendingPath, opts *CommitOptions) error {
	defer n.secrets.dropJoinerSecrets()
	if len(ap.added) > 0 {
		gi, err := n.groupInfo(!opts.ExternalTree, false)
		if err != nil {
			return err
		}
		w, err := n.buildWelcome(gi, pp, ap.added, plan.adds, plan.psks)
		if err != nil {
			return err
		}
		if pc.Welcome, err = marshalStruct(&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatWelcome, Welcome: w}); err != nil {
			return err
		}
	}
	if opts.GroupInfo {
		gi, err := n.groupInfo(!opts.ExternalTree, true)
		if err != nil {
			return err
		}
		if pc.GroupInfo, err = marshalStruct(&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatGroupInfo, GroupInfo: gi}); err != nil {
			return err
		}
	}
	if opts.ExternalTree && (len(ap.added) > 0 || opts.GroupInfo) {
		var err error
		if pc.RatchetTree, err = n.tree.marshal(); err != nil {
			return err
		}
	}
	return nil
}

// advance computes the next epoch from the applied proposals and the
// signed Commit content (§12.4.1, §12.4.2): transcript hashes, PSK secret,
// key schedule, confirmation tag. It returns the new state and the
// confirmation tag; ac.Auth.ConfirmationTag is not read.
func (g *Group) advance(ap *appliedPlan, plan *proposalPlan, ac *AuthenticatedContent, priv privateTree,
	commitSecret []byte, psks []pskEntry, initSecret []byte) (*Group, []byte, error) {
	cs := g.ctx.CipherSuite
	fcBytes, err := marshalStruct(&ac.Content)
	if err != nil {
		return nil, nil, err
	}
	input, err := marshalConfirmedTranscriptHashInput(uint16(ac.WireFormat), fcBytes, ac.Auth.Signature)
	if err != nil {
		return nil, nil, err
	}
	confirmed := confirmedTranscriptHash(cs, g.interim, input)
	ap.ctx.ConfirmedTranscriptHash = confirmed
	pskSecret, err := computePSKSecret(cs, psks)
	if err != nil {
		return nil, nil, err
	}
	defer clear(pskSecret)
	secrets, err := newEpochSecrets(cs, initSecret, commitSecret, pskSecret, &ap.ctx)
	if err != nil {
		return nil, nil, err
	}
	tag := secrets.confirmationTag(confirmed)
	interim, err := interimTranscriptHash(cs, confirmed, tag)
	if err != nil {
		return nil, nil, err
	}
	n, err := g.nextState(ap, plan, priv, secrets, interim, tag)
	if err != nil {
		return nil, nil, err
	}
	return n, tag, nil
}

// nextState assembles the group state of the next epoch. The current
// epoch joins the past-epoch window (its secret tree, sender data secret
// and the old values of the leaves the Commit changes) and its resumption
// PSK the resumption window. Nothing of g is modified or wiped here: that
// happens when the new state replaces g (replaceWith).
func (g *Group) nextState(ap *appliedPlan, plan *proposalPlan, priv privateTree, secrets *epochSecrets, interim, tag []byte) (*Group, error) {
	stree, err := secrets.newSecretTree(ap.tree.numLeaves(), g.cfg.treeOpts)
	if err != nil {
		return nil, err
	}
	n := &Group{
		cfg:     g.cfg,
		ctx:     ap.ctx,
		tree:    ap.tree,
		myLeaf:  priv.leaf,
		sigPriv: g.sigPriv,
		priv:    priv,
		interim: interim,
		confTag: tag,
		secrets: secrets,
		stree:   stree,
		psks:    g.psks,
		reinit:  plan.reinit,
	}
	if g.secrets != nil {
		n.past = append(slices.Clone(g.past), &pastEpoch{
			ctx:              g.ctx,
			senderDataSecret: g.secrets.SenderDataSecret,
			stree:            g.stree,
			leaves:           ap.changed,
		})
		n.resume = append(slices.Clone(g.resume), resumptionEntry{epoch: g.ctx.Epoch, psk: g.secrets.ResumptionPSK})
		n.trimPast()
	}
	return n, nil
}

// stateUpdate summarises an applied proposal list.
func (g *Group) stateUpdate(ap *appliedPlan, plan *proposalPlan, committer LeafIndex, external bool) *StateUpdate {
	u := &StateUpdate{
		Epoch:      ap.ctx.Epoch,
		Committer:  committer,
		External:   external,
		Added:      slices.Clone(ap.added),
		Updated:    slices.Clone(ap.updated),
		Removed:    slices.Clone(ap.removed),
		PSKs:       slices.Clone(plan.psks),
		Extensions: plan.gce != nil,
		ReInit:     plan.reinit,
	}
	if external {
		u.Added = append(u.Added, committer)
	}
	return u
}

// MergePendingCommit moves the group to the epoch of one of its own
// Commits (§12.4.1) and returns what changed. The Commit must have been
// created by this group in its current epoch; after a merge (or after
// another Commit was processed) every other pending Commit is void.
func (g *Group) MergePendingCommit(pc *PendingCommit) (*StateUpdate, error) {
	if pc == nil || pc.owner != g || pc.next == nil || pc.epoch != g.ctx.Epoch || !slices.Contains(g.pending, pc) {
		return nil, ErrNotPending
	}
	n := pc.next
	pc.next = nil
	g.replaceWith(n)
	return pc.Update, nil
}

// DiscardPendingCommit forgets one of this member's Commits (another
// Commit won the epoch, or the application gave up on it) and wipes the
// secrets of the epoch it would have started.
func (g *Group) DiscardPendingCommit(pc *PendingCommit) {
	if pc == nil {
		return
	}
	g.pending = slices.DeleteFunc(g.pending, func(p *PendingCommit) bool { return p == pc })
	if n := pc.next; n != nil && pc.owner == g {
		pc.next = nil
		n.secrets.wipe()
		n.stree.wipe()
	}
}

// replaceWith makes n the state of g and wipes the secrets of the old
// state that n does not keep (§9.2): the old epoch's secrets other than
// the sender data secret and resumption PSK (moved to the windows), past
// epochs and resumption PSKs that fell out of the windows, and unused
// Update keys.
func (g *Group) replaceWith(n *Group) {
	old := *g
	*g = *n
	sameBytes := func(a, b []byte) bool { return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] }
	if old.secrets != nil {
		for _, f := range old.secrets.allFields() {
			if f != &old.secrets.SenderDataSecret && f != &old.secrets.ResumptionPSK {
				clear(*f)
			}
		}
		if old.stree != nil && !slices.ContainsFunc(g.past, func(p *pastEpoch) bool { return p.stree == old.stree }) {
			old.stree.wipe()
			clear(old.secrets.SenderDataSecret)
		}
		if !slices.ContainsFunc(g.resume, func(r resumptionEntry) bool { return sameBytes(r.psk, old.secrets.ResumptionPSK) }) {
			clear(old.secrets.ResumptionPSK)
		}
	}
	for _, p := range old.past {
		if !slices.Contains(g.past, p) {
			p.wipe()
		}
	}
	for _, r := range old.resume {
		if !slices.ContainsFunc(g.resume, func(k resumptionEntry) bool { return sameBytes(k.psk, r.psk) }) {
			clear(r.psk)
		}
	}
	for _, u := range old.updates {
		if !sameBytes(u.encPriv, g.priv.leafPriv) {
			clear(u.encPriv)
		}
	}
}

// applyStaged makes the state stageCommit built current. A Commit that
// removed this member leaves it in its last epoch (for late messages),
// closed.
func (g *Group) applyStaged(n *Group, upd *StateUpdate) {
	if upd.RemovedSelf {
		g.removed = true
		g.props, g.propRef, g.propN = nil, nil, 0
		g.updates = nil
		g.pending = nil
		return
	}
	g.replaceWith(n)
}

// stageCommit runs §12.4.2 on a Commit and returns the state of the next
// epoch without touching g.
func (g *Group) stageCommit(ac *AuthenticatedContent) (*Group, *StateUpdate, error) {
	cs := g.ctx.CipherSuite
	fc := &ac.Content
	c := fc.Commit
	if c == nil {
		return nil, nil, fmt.Errorf("%w: no commit", ErrInvalidCommit)
	}
	cc := &commitContext{committer: fc.Sender}
	var committer LeafIndex
	switch fc.Sender.Type {
	case SenderMember:
		committer = LeafIndex(fc.Sender.LeafIndex)
		if committer == g.myLeaf {
			return nil, nil, fmt.Errorf("%w: a Commit from this member's leaf that matches no pending Commit", ErrOwnMessage)
		}
	case SenderNewMemberCommit:
	default:
		return nil, nil, fmt.Errorf("%w: commit from a %v sender", ErrInvalidCommit, fc.Sender.Type)
	}
	list, err := g.resolveProposals(c, fc.Sender)
	if err != nil {
		return nil, nil, err
	}
	plan, err := g.planProposals(list, cc)
	if err != nil {
		return nil, nil, err
	}
	entries, err := g.pskEntries(plan.psks, nil)
	if err != nil {
		return nil, nil, err
	}
	ap, err := g.applyPlan(plan)
	if err != nil {
		return nil, nil, err
	}
	if plan.pathRequired && c.Path == nil {
		return nil, nil, fmt.Errorf("%w: the proposals require an UpdatePath", ErrInvalidCommit)
	}
	removedSelf := slices.ContainsFunc(ap.removed, func(r RemovedMember) bool { return r.Index == g.myLeaf })

	priv := g.priv.clone()
	if ap.ownUpdate != nil {
		if err := priv.setLeafKey(ap.ownUpdate.encPriv); err != nil {
			return nil, nil, err
		}
	}
	var commitSecret []byte
	if c.Path != nil {
		if cc.external() {
			committer = leftmostFreeLeaf(&ap.tree)
		}
		if _, ok := ap.changed[committer]; !ok {
			ap.changed[committer] = ap.tree.leaf(committer)
		}
		if err := g.checkPathLeaf(ap, plan, &c.Path.LeafNode, cc); err != nil {
			return nil, nil, err
		}
		v := g.leafValidation(ap.ctx.Extensions)
		if err := ap.tree.mergeUpdatePath(committer, c.Path, ap.added, v); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		if ap.ctx.TreeHash, err = ap.tree.treeHash(); err != nil {
			return nil, nil, err
		}
		if !removedSelf {
			gc, err := ap.ctx.Marshal()
			if err != nil {
				return nil, nil, err
			}
			dec, err := priv.decryptUpdatePath(&ap.tree, committer, c.Path, gc, ap.added)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
			}
			commitSecret = dec.commitSecret
		}
	} else {
		if ap.ctx.TreeHash, err = ap.tree.treeHash(); err != nil {
			return nil, nil, err
		}
		priv.prune(&ap.tree)
	}
	upd := g.stateUpdate(ap, plan, committer, cc.external())
	if removedSelf {
		upd.RemovedSelf = true
		return nil, upd, nil
	}

	initSecret := g.secrets.InitSecret
	if plan.extInit != nil {
		extPriv, _, err := g.secrets.externalKeyPair()
		if err != nil {
			return nil, nil, err
		}
		initSecret, err = externalInitSecretReceive(cs, extPriv, plan.extInit.KEMOutput)
		clear(extPriv)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		defer clear(initSecret)
	}
	n, _, err := g.advance(ap, plan, ac, priv, commitSecret, entries, initSecret)
	if err != nil {
		return nil, nil, err
	}
	if !cs.VerifyMAC(n.secrets.ConfirmationKey, n.ctx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag) {
		n.secrets.wipe()
		n.stree.wipe()
		return nil, nil, ErrInvalidConfirmationTag
	}
	n.secrets.dropJoinerSecrets()
	return n, upd, nil
}

// checkPathLeaf runs the checks on the committer's new LeafNode that
// mergeUpdatePath does not: support for the GroupContext extensions
// (§13.4), and for an external commit that removes a prior appearance of
// the joiner, that the new credential is the removed member's (§12.2).
func (g *Group) checkPathLeaf(ap *appliedPlan, plan *proposalPlan, ln *LeafNode, cc *commitContext) error {
	if err := supportsExtensions(ln, ap.ctx.Extensions); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	if cc.external() && len(ap.removed) == 1 {
		old := ap.removed[0].LeafNode
		if !old.Credential.Equal(&ln.Credential) {
			return fmt.Errorf("%w: an external commit removes leaf %d of another client", ErrInvalidCommit, ap.removed[0].Index)
		}
	}
	return nil
}

// leftmostFreeLeaf returns the leftmost blank leaf of t, extending the
// tree when it has none (§12.4.2: the leaf of an external joiner). O(log n)
// (the tree keeps subtree member counts).
func leftmostFreeLeaf(t *ratchetTree) LeafIndex {
	l := t.firstBlankLeaf()
	if uint32(l) == t.numLeaves() {
		t.extend()
	}
	return l
}
