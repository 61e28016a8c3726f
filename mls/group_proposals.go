package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// Proposals (RFC 9420 §12.1): sending them, caching received ones by
// reference for the epoch's Commit, validating a Commit's proposal list
// (§12.2) and applying it to a copy of the tree and GroupContext (§12.3).

// ProposeAdd proposes adding the client of kp (§12.1.1) and returns the
// encoded MLSMessage. The proposal is cached for this epoch's Commit.
func (g *Group) ProposeAdd(kp *KeyPackage, authenticatedData []byte) ([]byte, error) {
	p := &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: *kp}}
	if err := g.checkAddKeyPackage(kp, true); err != nil {
		return nil, err
	}
	msg, _, err := g.propose(p, authenticatedData)
	return msg, err
}

// ProposeUpdate proposes replacing this member's leaf with one holding a
// fresh encryption key (§12.1.2). The new private key is kept until a
// Commit applies the proposal or the epoch ends.
func (g *Group) ProposeUpdate(authenticatedData []byte) ([]byte, error) {
	if err := g.checkCanSend(); err != nil {
		return nil, err
	}
	cs := g.ctx.CipherSuite
	encPriv, encPub, err := cs.GenerateHPKEKeyPair(g.cfg.rand)
	if err != nil {
		return nil, err
	}
	ln := *g.tree.leaf(g.myLeaf)
	ln.EncryptionKey = encPub
	ln.Source = LeafNodeSourceUpdate
	ln.Lifetime = Lifetime{}
	ln.ParentHash = nil
	if err := ln.Sign(cs, g.sigPriv, g.ctx.GroupID, uint32(g.myLeaf), g.cfg.rand); err != nil {
		return nil, err
	}
	msg, ref, err := g.propose(&Proposal{Type: ProposalTypeUpdate, Update: &Update{LeafNode: ln}}, authenticatedData)
	if err != nil {
		return nil, err
	}
	if g.updates == nil {
		g.updates = map[string]ownUpdate{}
	}
	g.updates[string(ref)] = ownUpdate{encPriv: encPriv, leaf: &ln}
	return msg, nil
}

// ProposeRemove proposes removing the member at leaf (§12.1.3).
func (g *Group) ProposeRemove(leaf LeafIndex, authenticatedData []byte) ([]byte, error) {
	if g.tree.leaf(leaf) == nil {
		return nil, fmt.Errorf("%w: remove of blank leaf %d", ErrInvalidProposal, leaf)
	}
	msg, _, err := g.propose(&Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: uint32(leaf)}}, authenticatedData)
	return msg, err
}

// ProposeExternalPSK proposes injecting the external PSK pskID (§12.1.4),
// which must be available (StoreExternalPSK or WithExternalPSK).
func (g *Group) ProposeExternalPSK(pskID, authenticatedData []byte) ([]byte, error) {
	id, err := g.newPSKID(PreSharedKeyID{Type: PSKTypeExternal, PSKID: slices.Clone(pskID)})
	if err != nil {
		return nil, err
	}
	msg, _, err := g.propose(&Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: id}}, authenticatedData)
	return msg, err
}

// ProposeResumptionPSK proposes injecting the resumption_psk of a past
// epoch of this group (§12.1.4, usage application).
func (g *Group) ProposeResumptionPSK(epoch uint64, authenticatedData []byte) ([]byte, error) {
	id, err := g.newPSKID(PreSharedKeyID{Type: PSKTypeResumption, Usage: ResumptionApplication,
		PSKGroupID: slices.Clone(g.ctx.GroupID), PSKEpoch: epoch})
	if err != nil {
		return nil, err
	}
	msg, _, err := g.propose(&Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: id}}, authenticatedData)
	return msg, err
}

// newPSKID fills in a fresh psk_nonce and checks that the PSK is available.
func (g *Group) newPSKID(id PreSharedKeyID) (PreSharedKeyID, error) {
	id.Nonce = make([]byte, g.ctx.CipherSuite.Nh())
	if err := readRandom(g.cfg.rand, id.Nonce); err != nil {
		return id, err
	}
	if _, err := g.lookupPSK(&id, nil); err != nil {
		return id, err
	}
	return id, nil
}

// ProposeReInit proposes reinitializing the group with a new group id,
// cipher suite and GroupContext extensions (§12.1.5, §11.2); version is
// mls10.
func (g *Group) ProposeReInit(groupID []byte, cs CipherSuite, extensions []Extension, authenticatedData []byte) ([]byte, error) {
	r := &ReInit{GroupID: slices.Clone(groupID), Version: ProtocolMLS10, CipherSuite: cs, Extensions: cloneExtensions(extensions)}
	if !cs.Supported() {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, &UnsupportedCipherSuiteError{cs})
	}
	// A member whose leaf does not list the new suite could not make a
	// KeyPackage for the new group and would be left behind by the ReInit
	// (moving a group to the draft X-Wing suite is the common case); refuse
	// to propose it rather than strand them. Received ReInits are not held
	// to this: that would be a local rule deciding whether a Commit applies.
	var lacking []LeafIndex
	g.tree.forEachMember(func(l LeafIndex, ln *LeafNode) bool {
		if !ln.Capabilities.SupportsCipherSuite(cs) {
			lacking = append(lacking, l)
		}
		return true
	})
	if len(lacking) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, &MembersLackCipherSuiteError{Suite: cs, Leaves: lacking})
	}
	msg, _, err := g.propose(&Proposal{Type: ProposalTypeReInit, ReInit: r}, authenticatedData)
	return msg, err
}

// ProposeGroupContextExtensions proposes replacing the GroupContext
// extensions (§12.1.7).
func (g *Group) ProposeGroupContextExtensions(extensions []Extension, authenticatedData []byte) ([]byte, error) {
	p := &Proposal{Type: ProposalTypeGroupContextExtensions,
		GroupContextExtensions: &GroupContextExtensions{Extensions: cloneExtensions(extensions)}}
	if err := checkUniqueExtensionTypes(extensions); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
	}
	msg, _, err := g.propose(p, authenticatedData)
	return msg, err
}

// propose signs and protects a proposal of this member and caches it.
func (g *Group) propose(p *Proposal, authData []byte) ([]byte, ProposalRef, error) {
	if err := g.checkCanSend(); err != nil {
		return nil, nil, err
	}
	f, err := g.currentFraming()
	if err != nil {
		return nil, nil, err
	}
	fc := g.newContent(ContentTypeProposal, authData)
	fc.Proposal = p
	ac, err := f.sign(g.handshakeWireFormat(), fc, g.sigPriv)
	if err != nil {
		return nil, nil, err
	}
	ref, err := ac.ProposalRef(g.ctx.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	msg, err := g.encodeAuthenticated(f, ac)
	if err != nil {
		return nil, nil, err
	}
	g.props = append(g.props, cachedProposal{ref: ref, proposal: p, sender: fc.Sender})
	return msg, ref, nil
}

// checkProposalMessage checks a received proposal (§12.1) and returns its
// reference. The checks here are those that do not depend on the Commit
// that will carry it; the rest are done when the Commit is validated.
func (g *Group) checkProposalMessage(ac *AuthenticatedContent) (ProposalRef, error) {
	if err := g.checkProposalAlone(ac.Content.Proposal, ac.Content.Sender, nil); err != nil {
		return nil, err
	}
	return ac.ProposalRef(g.ctx.CipherSuite)
}

// cacheProposal caches a checked proposal by reference for this epoch's
// Commit; a duplicate delivery is cached once. The duplicate check uses a
// set of the references of props[:propN], brought up to date here (props
// only grows within an epoch; a clone or restore starts without the set),
// so an epoch with p proposals costs O(p), not O(p²).
func (g *Group) cacheProposal(ref ProposalRef, ac *AuthenticatedContent) {
	if g.propRef == nil || g.propN > len(g.props) {
		g.propRef, g.propN = make(map[string]bool, len(g.props)+1), 0
	}
	for _, c := range g.props[g.propN:] {
		g.propRef[string(c.ref)] = true
	}
	g.propN = len(g.props)
	if g.propRef[string(ref)] {
		return
	}
	g.props = append(g.props, cachedProposal{ref: ref, proposal: ac.Content.Proposal, sender: ac.Content.Sender})
}

// checkProposalAlone runs the checks of a proposal that need only the
// current epoch: who may send it (§12.1.2, §12.1.8) and the validity of its
// content on its own (§12.1.1–§12.1.7).
func (g *Group) checkProposalAlone(p *Proposal, sender Sender, cc *commitContext) error {
	cs := g.ctx.CipherSuite
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %v: %s", ErrInvalidProposal, p.Type, fmt.Sprintf(format, args...))
	}
	switch sender.Type {
	case SenderExternal:
		if !p.Type.AllowedForExternalSender() {
			return bad("not allowed from an external sender")
		}
	case SenderNewMemberProposal:
		if p.Type != ProposalTypeAdd {
			return bad("new_member_proposal senders send only Add")
		}
	case SenderMember:
	default:
		return bad("sender type %v", sender.Type)
	}
	switch p.Type {
	case ProposalTypeAdd:
		// A by-value Add in a Commit this member is making is sent by it
		// (§7.3: lifetime against the clock); anything else is received.
		sending := cc != nil && cc.sending && sender == cc.committer
		return g.checkAddKeyPackage(&p.Add.KeyPackage, sending)
	case ProposalTypeUpdate:
		if sender.Type != SenderMember {
			return bad("from a %v sender", sender.Type)
		}
		v := g.leafValidation(g.ctx.Extensions)
		if err := v.checkLeafContent(cs, &p.Update.LeafNode, LeafIndex(sender.LeafIndex), LeafNodeSourceUpdate); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	case ProposalTypeRemove:
		if g.tree.leaf(LeafIndex(p.Remove.Removed)) == nil {
			return bad("leaf %d is blank", p.Remove.Removed)
		}
	case ProposalTypePSK:
		if err := validatePreSharedKeyID(cs, &p.PreSharedKey.PSK, cc != nil && cc.inReInit, cc != nil && cc.inBranch); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	case ProposalTypeReInit:
		if p.ReInit.Version < g.ctx.Version {
			return bad("version %d is older than the group's", p.ReInit.Version)
		}
	case ProposalTypeExternalInit:
		return bad("only valid inside an external commit")
	case ProposalTypeGroupContextExtensions:
		if err := checkUniqueExtensionTypes(p.GroupContextExtensions.Extensions); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	}
	return nil
}

// checkAddKeyPackage validates a KeyPackage for an Add (§10.1, §12.1.1)
// with the group's parameters; uniqueness and capability checks against the
// tree are done when the Add is applied.
//
// Lifetimes (§7.3): an Add this member sends (ProposeAdd, or by value in
// its own Commit) must be valid at the clock's current time (WithClock;
// without a clock nothing is checked), the MUST of §7.3. An Add received
// from another member, alone or in a Commit, is checked for everything
// but the time: §7.3 only recommends that check for received leaves, and
// canopy's fork choice needs the validity of a Commit to be a function of
// its bytes and parent state, identical on every member and at every
// re-processing (ordering.Processor); a check against each member's own
// clock would let members disagree about which Commits exist.
func (g *Group) checkAddKeyPackage(kp *KeyPackage, sending bool) error {
	if kp.CipherSuite != g.ctx.CipherSuite || kp.Version != g.ctx.Version {
		return fmt.Errorf("%w: key package for %v version %d in a %v version %d group", ErrInvalidProposal,
			kp.CipherSuite, kp.Version, g.ctx.CipherSuite, g.ctx.Version)
	}
	if err := kp.Validate(lifetimeStart(&kp.LeafNode)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
	}
	if sending {
		if err := g.cfg.checkLifetime(&kp.LeafNode); err != nil {
			return fmt.Errorf("%w: key package: %w", ErrInvalidProposal, err)
		}
	}
	if err := g.cfg.checkCredential(&kp.LeafNode); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
	}
	return nil
}

// leafValidation returns the §7.3 parameters of this group with the given
// GroupContext extensions.
func (g *Group) leafValidation(exts []Extension) *leafValidation {
	v := &leafValidation{GroupID: g.ctx.GroupID, CheckCredential: g.cfg.validateCred}
	if e, ok := findExtension(exts, ExtensionRequiredCapabilities); ok {
		var rc RequiredCapabilities
		if rc.Unmarshal(e.Data) == nil {
			v.RequiredCapabilities = &rc
		}
	}
	return v
}

// supportsExtensions reports whether ln supports every GroupContext
// extension in exts (§13.4: all GroupContext extensions are mandatory).
func supportsExtensions(ln *LeafNode, exts []Extension) error {
	for _, e := range exts {
		if !ln.Capabilities.SupportsExtension(e.Type) {
			return fmt.Errorf("%w: does not support GroupContext extension 0x%04x", ErrInvalidLeafNode, uint16(e.Type))
		}
	}
	return nil
}

// lookupPSK returns the value of a PSK (§8.4): an external PSK from the
// group's store, or the resumption_psk of this group (or of one of extra,
// for ReInit and branching) at the named epoch.
func (g *Group) lookupPSK(id *PreSharedKeyID, extra []*Group) ([]byte, error) {
	switch id.Type {
	case PSKTypeExternal:
		if v, ok := g.psks[string(id.PSKID)]; ok {
			return v, nil
		}
		return nil, fmt.Errorf("%w: external PSK %x", ErrMissingPSK, id.PSKID)
	case PSKTypeResumption:
		for _, src := range append([]*Group{g}, extra...) {
			if src == nil || !bytes.Equal(src.ctx.GroupID, id.PSKGroupID) {
				continue
			}
			if v, ok := src.resumptionPSK(id.PSKEpoch); ok {
				return v, nil
			}
		}
		return nil, fmt.Errorf("%w: resumption PSK of group %x epoch %d", ErrMissingPSK, id.PSKGroupID, id.PSKEpoch)
	}
	return nil, errInvalidPSKType
}

// committedProposal is one entry of a Commit's proposal list, resolved.
type committedProposal struct {
	proposal *Proposal
	sender   Sender
	ref      ProposalRef // nil when sent by value
}

// resolveProposals turns a Commit's ProposalOrRef list into proposals with
// their senders: by-value proposals are the committer's, references are
// looked up among this epoch's cached proposals (§12.4).
func (g *Group) resolveProposals(c *Commit, committer Sender) ([]committedProposal, error) {
	var byRef map[string]*cachedProposal
	out := make([]committedProposal, len(c.Proposals))
	for i, por := range c.Proposals {
		switch por.Type {
		case ProposalOrRefProposal:
			out[i] = committedProposal{proposal: por.Proposal, sender: committer}
		case ProposalOrRefReference:
			if committer.Type == SenderNewMemberCommit {
				return nil, fmt.Errorf("%w: external commit with a proposal by reference", ErrInvalidCommit)
			}
			if byRef == nil {
				byRef = make(map[string]*cachedProposal, len(g.props))
				for j := range g.props {
					byRef[string(g.props[j].ref)] = &g.props[j]
				}
			}
			cp, ok := byRef[string(por.Reference)]
			if !ok {
				return nil, fmt.Errorf("%w: %x", ErrUnknownProposal, por.Reference)
			}
			out[i] = committedProposal{proposal: cp.proposal, sender: cp.sender, ref: cp.ref}
		default:
			return nil, fmt.Errorf("%w: ProposalOrRef type %d", ErrMalformed, por.Type)
		}
	}
	return out, nil
}

// commitContext says in which setting a proposal list is validated: a
// regular or external commit, and whether the new group being created is a
// reinitialization or a branch (which allow resumption PSKs of usage
// reinit / branch, §12.1.4).
type commitContext struct {
	committer Sender // member (its leaf) or new_member_commit
	sending   bool   // this member makes the Commit (its by-value proposals are sent, §7.3)
	inReInit  bool
	inBranch  bool
}

func (c *commitContext) external() bool { return c.committer.Type == SenderNewMemberCommit }

// proposalPlan is a validated proposal list sorted for application
// (§12.3).
type proposalPlan struct {
	list         []committedProposal
	gce          *GroupContextExtensions
	updates      []committedProposal
	removes      []LeafIndex
	adds         []*KeyPackage
	psks         []PreSharedKeyID
	extInit      *ExternalInit
	reinit       *ReInit
	pathRequired bool
}

// planProposals validates a proposal list (§12.2) apart from the checks
// that need the proposals applied (leaf validity, capabilities), which
// applyPlan does, and sorts it for application.
func (g *Group) planProposals(list []committedProposal, cc *commitContext) (*proposalPlan, error) {
	cs := g.ctx.CipherSuite
	plan := &proposalPlan{list: list, pathRequired: len(list) == 0}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidProposal, fmt.Sprintf(format, args...))
	}
	touched := make(map[LeafIndex]ProposalType)
	psks := make(map[string]bool)
	for i := range list {
		cp := &list[i]
		p := cp.proposal
		if p == nil {
			return nil, bad("proposal %d is empty", i)
		}
		if p.Type.PathRequired() {
			plan.pathRequired = true
		}
		// Proposals by reference were checked on their own when they were
		// cached; by-value proposals of a member committer are checked
		// here (those of an external commit are checked below).
		if cp.ref == nil && cp.sender.Type == SenderMember {
			if err := g.checkProposalAlone(p, cp.sender, cc); err != nil {
				return nil, err
			}
		}
		switch p.Type {
		case ProposalTypeAdd:
			if cc.external() {
				return nil, bad("Add in an external commit")
			}
			plan.adds = append(plan.adds, &p.Add.KeyPackage)
		case ProposalTypeUpdate:
			if cc.external() {
				return nil, bad("Update in an external commit")
			}
			l := LeafIndex(cp.sender.LeafIndex)
			if cp.sender.Type != SenderMember || g.tree.leaf(l) == nil {
				return nil, bad("Update from a non-member")
			}
			if l == LeafIndex(cc.committer.LeafIndex) {
				return nil, bad("Update from the committer (leaf %d)", l)
			}
			if _, dup := touched[l]; dup {
				return nil, bad("several Update/Remove proposals for leaf %d", l)
			}
			touched[l] = p.Type
			plan.updates = append(plan.updates, *cp)
		case ProposalTypeRemove:
			l := LeafIndex(p.Remove.Removed)
			if g.tree.leaf(l) == nil {
				return nil, bad("Remove of blank leaf %d", l)
			}
			if !cc.external() && l == LeafIndex(cc.committer.LeafIndex) {
				return nil, bad("Remove of the committer (leaf %d)", l)
			}
			if _, dup := touched[l]; dup {
				return nil, bad("several Update/Remove proposals for leaf %d", l)
			}
			touched[l] = p.Type
			plan.removes = append(plan.removes, l)
		case ProposalTypePSK:
			id := &p.PreSharedKey.PSK
			if err := validatePreSharedKeyID(cs, id, cc.inReInit, cc.inBranch); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
			}
			enc, err := id.Marshal()
			if err != nil {
				return nil, err
			}
			if psks[string(enc)] {
				return nil, bad("the same PreSharedKeyID twice")
			}
			psks[string(enc)] = true
			plan.psks = append(plan.psks, *id)
		case ProposalTypeReInit:
			if cc.external() {
				return nil, bad("ReInit in an external commit")
			}
			if p.ReInit.Version < g.ctx.Version {
				return nil, bad("ReInit to version %d", p.ReInit.Version)
			}
			plan.reinit = p.ReInit
		case ProposalTypeExternalInit:
			if !cc.external() {
				return nil, bad("ExternalInit in a regular commit")
			}
			if plan.extInit != nil {
				return nil, bad("several ExternalInit proposals")
			}
			plan.extInit = p.ExternalInit
		case ProposalTypeGroupContextExtensions:
			if cc.external() {
				return nil, bad("GroupContextExtensions in an external commit")
			}
			if plan.gce != nil {
				return nil, bad("several GroupContextExtensions proposals")
			}
			if err := checkUniqueExtensionTypes(p.GroupContextExtensions.Extensions); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
			}
			plan.gce = p.GroupContextExtensions
		default:
			return nil, bad("unsupported proposal type %v", p.Type)
		}
	}
	if plan.reinit != nil && len(list) > 1 {
		return nil, bad("ReInit together with other proposals")
	}
	if cc.external() {
		if plan.extInit == nil {
			return nil, bad("external commit without ExternalInit")
		}
		if len(plan.removes) > 1 {
			return nil, bad("external commit with %d Remove proposals", len(plan.removes))
		}
	}
	return plan, nil
}

// appliedPlan is the result of applying a proposal list to copies of the
// tree and GroupContext.
type appliedPlan struct {
	tree      ratchetTree
	ctx       GroupContext // epoch+1, new extensions; tree hash and transcript not yet set
	added     []LeafIndex
	updated   []LeafIndex
	removed   []RemovedMember
	changed   map[LeafIndex]*LeafNode // old values of every leaf the Commit changes
	ownUpdate *ownUpdate              // this member's Update, if committed
}

// applyPlan applies a validated proposal list in the order of §12.3 to a
// clone of the tree and GroupContext, checking what needs the new state:
// the new extensions must be supported by every member, and every new or
// changed leaf must be valid for the group (§7.3).
func (g *Group) applyPlan(plan *proposalPlan) (*appliedPlan, error) {
	ap := &appliedPlan{
		tree:    g.tree.clone(),
		ctx:     cloneGroupContext(&g.ctx),
		changed: map[LeafIndex]*LeafNode{},
	}
	ap.ctx.Epoch++
	t := &ap.tree
	if plan.gce != nil {
		ap.ctx.Extensions = cloneExtensions(plan.gce.Extensions)
	}
	v := g.leafValidation(ap.ctx.Extensions)
	if plan.gce != nil {
		if _, ok := findExtension(ap.ctx.Extensions, ExtensionRequiredCapabilities); ok && v.RequiredCapabilities == nil {
			return nil, fmt.Errorf("%w: malformed required_capabilities extension", ErrInvalidProposal)
		}
		if e, ok := findExtension(ap.ctx.Extensions, ExtensionExternalSenders); ok {
			var es ExternalSenders
			if err := es.Unmarshal(e.Data); err != nil {
				return nil, fmt.Errorf("%w: external_senders: %w", ErrInvalidProposal, err)
			}
		}
	}
	note := func(l LeafIndex) {
		if _, ok := ap.changed[l]; !ok {
			ap.changed[l] = g.tree.leaf(l)
		}
	}

	// Updates.
	for _, cp := range plan.updates {
		l := LeafIndex(cp.sender.LeafIndex)
		ln := &cp.proposal.Update.LeafNode
		if err := t.validateLeafNode(ln, l, LeafNodeSourceUpdate, v); err != nil {
			return nil, fmt.Errorf("%w: Update of leaf %d: %w", ErrInvalidProposal, l, err)
		}
		if err := supportsExtensions(ln, ap.ctx.Extensions); err != nil {
			return nil, fmt.Errorf("%w: Update of leaf %d: %w", ErrInvalidProposal, l, err)
		}
		note(l)
		if err := t.updateLeaf(l, ln); err != nil {
			return nil, err
		}
		ap.updated = append(ap.updated, l)
		if l == g.myLeaf {
			u, ok := g.updates[string(cp.ref)]
			if !ok {
				return nil, fmt.Errorf("%w: an Update of this member's leaf that it did not send", ErrInvalidProposal)
			}
			ap.ownUpdate = &u
		}
	}

	// Removes.
	for _, l := range plan.removes {
		note(l)
		ap.removed = append(ap.removed, RemovedMember{Index: l, LeafNode: g.tree.leaf(l)})
		if err := t.removeLeaf(l); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	}

	// Adds: validated against the tree after removals, and against each
	// other (keys must be unique within the batch too).
	if len(plan.adds) > 0 {
		sigs := make(map[string]bool, len(plan.adds))
		encs := make(map[string]bool, len(plan.adds))
		leaves := make([]*LeafNode, len(plan.adds))
		for i, kp := range plan.adds {
			ln := &kp.LeafNode
			if err := t.validateLeafNode(ln, noLeaf, LeafNodeSourceKeyPackage, v); err != nil {
				return nil, fmt.Errorf("%w: Add %d: %w", ErrInvalidProposal, i, err)
			}
			if err := supportsExtensions(ln, ap.ctx.Extensions); err != nil {
				return nil, fmt.Errorf("%w: Add %d: %w", ErrInvalidProposal, i, err)
			}
			if sigs[string(ln.SignatureKey)] || encs[string(ln.EncryptionKey)] {
				return nil, fmt.Errorf("%w: Add %d: %w: two Adds with the same key", ErrInvalidProposal, i, ErrDuplicateKey)
			}
			sigs[string(ln.SignatureKey)] = true
			encs[string(ln.EncryptionKey)] = true
			leaves[i] = ln
		}
		var err error
		if ap.added, err = t.addLeaves(leaves); err != nil {
			return nil, err
		}
		for _, l := range ap.added {
			if _, ok := ap.changed[l]; !ok {
				ap.changed[l] = nil
			}
		}
	}

	// A new set of extensions must be supported by every member (§12.1.7,
	// §13.4). This is the one O(n) step, and only for a
	// GroupContextExtensions proposal.
	if plan.gce != nil {
		var err error
		t.forEachMember(func(l LeafIndex, ln *LeafNode) bool {
			if rc := v.RequiredCapabilities; rc != nil && !ln.Capabilities.SupportsRequired(rc) {
				err = fmt.Errorf("%w: GroupContextExtensions: leaf %d does not support the required capabilities", ErrInvalidProposal, l)
				return false
			}
			if e := supportsExtensions(ln, ap.ctx.Extensions); e != nil {
				err = fmt.Errorf("%w: GroupContextExtensions: leaf %d: %w", ErrInvalidProposal, l, e)
				return false
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return ap, nil
}

// noLeaf is the position passed to validateLeafNode for a leaf that does
// not replace one (an Add): out of range, so nothing is replaced.
const noLeaf = LeafIndex(1<<32 - 1)

// pskEntries looks up the values of a Commit's or Welcome's PSKs.
func (g *Group) pskEntries(ids []PreSharedKeyID, extra []*Group) ([]pskEntry, error) {
	out := make([]pskEntry, len(ids))
	for i := range ids {
		v, err := g.lookupPSK(&ids[i], extra)
		if err != nil {
			return nil, err
		}
		out[i] = pskEntry{ID: ids[i], PSK: v}
	}
	return out, nil
}

// selectProposals chooses which cached proposals this member's Commit
// covers (§12.2, §12.4): every cached proposal that keeps the list valid,
// preferring a Remove over Updates of the same leaf and the latest Update,
// leaving out its own Updates (the Commit's path replaces them), Removes of
// itself, duplicates, and a ReInit when there is anything else to commit.
func (g *Group) selectProposals() []committedProposal {
	me := g.myLeaf
	removed := map[LeafIndex]bool{}
	for _, c := range g.props {
		if c.proposal.Type == ProposalTypeRemove {
			removed[LeafIndex(c.proposal.Remove.Removed)] = true
		}
	}
	latestUpdate := map[LeafIndex]int{}
	for i, c := range g.props {
		if c.proposal.Type == ProposalTypeUpdate && c.sender.Type == SenderMember {
			latestUpdate[LeafIndex(c.sender.LeafIndex)] = i
		}
	}
	var out []committedProposal
	seenRemove := map[LeafIndex]bool{}
	addSigs := map[string]bool{}
	pskIDs := map[string]bool{}
	var gce, reinit *committedProposal
	for i, c := range g.props {
		cp := committedProposal{proposal: c.proposal, sender: c.sender, ref: c.ref}
		switch c.proposal.Type {
		case ProposalTypeUpdate:
			l := LeafIndex(c.sender.LeafIndex)
			if c.sender.Type != SenderMember || l == me || removed[l] || latestUpdate[l] != i {
				continue
			}
		case ProposalTypeRemove:
			l := LeafIndex(c.proposal.Remove.Removed)
			if l == me || seenRemove[l] || g.tree.leaf(l) == nil {
				continue
			}
			seenRemove[l] = true
		case ProposalTypeAdd:
			sig := string(c.proposal.Add.KeyPackage.LeafNode.SignatureKey)
			if addSigs[sig] {
				continue
			}
			if l, ok := g.tree.lookupSignatureKey([]byte(sig)); ok && !removed[l] {
				continue
			}
			addSigs[sig] = true
		case ProposalTypePSK:
			enc, err := c.proposal.PreSharedKey.PSK.Marshal()
			if err != nil || pskIDs[string(enc)] {
				continue
			}
			if _, err := g.lookupPSK(&c.proposal.PreSharedKey.PSK, nil); err != nil {
				continue
			}
			pskIDs[string(enc)] = true
		case ProposalTypeGroupContextExtensions:
			if gce == nil {
				gce = &cp
			}
			continue
		case ProposalTypeReInit:
			if reinit == nil {
				reinit = &cp
			}
			continue
		default:
			continue
		}
		out = append(out, cp)
	}
	if gce != nil {
		out = append(out, *gce)
	}
	if len(out) == 0 && reinit != nil {
		out = append(out, *reinit)
	}
	return out
}
