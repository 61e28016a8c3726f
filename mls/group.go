package mls

import (
	"fmt"
	"maps"
	"slices"
)

// Group is one member's state of an MLS group in one epoch (RFC 9420 §8,
// §12): the GroupContext, the ratchet tree with this member's private keys,
// the epoch secrets and secret tree, the transcript hashes, the proposals
// received in the epoch and a window of past epochs kept for late
// application messages.
//
// A Group is not safe for concurrent use: one goroutine owns each group (in
// canopy, the group's processing loop). Distinct groups, and distinct clones
// of one group, may be used by distinct goroutines.
//
// Every method that fails leaves the group exactly as it was. Processing a
// Commit works on a copy and swaps it in only when every check of §12.4.2
// passed; creating a Commit does not change the epoch (it returns a
// PendingCommit that is merged or discarded). The one state change creating
// a message makes is consuming a key of this member's sender ratchet when
// the message is encrypted (§9.2), so that no key is ever used twice.
//
// Clone returns an independent copy cheaply (the ratchet tree is a
// copy-on-write structure: O(1) to copy), and MarshalState/UnmarshalState
// round-trip the whole
// state byte for byte; local policy (Options) is not part of the state and
// is passed again on restore.
type Group struct {
	cfg config

	ctx     GroupContext
	tree    ratchetTree
	myLeaf  LeafIndex
	sigPriv []byte
	priv    privateTree // this member's private HPKE keys (leaf and known path nodes)

	interim []byte        // interim_transcript_hash
	confTag []byte        // confirmation_tag of the Commit that started the epoch (§12.4.3)
	secrets *epochSecrets // without encryption_secret (held by stree) and joiner secrets
	stree   *secretTree
	framing *epochFraming // derived from the above; rebuilt on demand
	past    []*pastEpoch  // oldest first, at most cfg.pastEpochs
	resume  []resumptionEntry
	props   []cachedProposal // proposals received in this epoch, in arrival order
	propRef map[string]bool  // refs of props[:propN] (see cacheProposal)
	propN   int
	updates map[string]ownUpdate
	pending []*PendingCommit // own Commits not yet merged or discarded, for echo recognition
	psks    map[string][]byte
	reinit  *ReInit // a Commit with this ReInit was applied: the group is closed (§11.2)
	removed bool    // the last Commit removed this member
}

// pastEpoch is what a past epoch keeps for late PrivateMessages (§15.3):
// its framing (GroupContext, sender_data_secret, secret tree) and the
// leaves that the Commit ending it changed, as they were in the epoch, so
// that the sender's signature key of that epoch can be found without
// keeping the whole tree (see leafAt).
type pastEpoch struct {
	ctx              GroupContext
	senderDataSecret []byte
	stree            *secretTree
	leaves           map[LeafIndex]*LeafNode // value in this epoch of each leaf the next Commit changed (nil: blank)
	framing          *epochFraming
}

// resumptionEntry is the resumption_psk of one epoch (§8.6).
type resumptionEntry struct {
	epoch uint64
	psk   []byte
}

// cachedProposal is a proposal received (or sent) in the current epoch,
// retrievable by reference (§12.1).
type cachedProposal struct {
	ref      ProposalRef
	proposal *Proposal
	sender   Sender
}

// ownUpdate is the private part of an Update proposal this member sent:
// the encryption key of the proposed leaf.
type ownUpdate struct {
	encPriv []byte
	leaf    *LeafNode
}

func cloneCapabilities(c *Capabilities) Capabilities {
	return Capabilities{
		Versions:     slices.Clone(c.Versions),
		CipherSuites: slices.Clone(c.CipherSuites),
		Extensions:   slices.Clone(c.Extensions),
		Proposals:    slices.Clone(c.Proposals),
		Credentials:  slices.Clone(c.Credentials),
	}
}

func cloneExtensions(exts []Extension) []Extension {
	out := make([]Extension, len(exts))
	for i, e := range exts {
		out[i] = Extension{Type: e.Type, Data: slices.Clone(e.Data)}
	}
	return out
}

func cloneGroupContext(g *GroupContext) GroupContext {
	return GroupContext{
		Version:                 g.Version,
		CipherSuite:             g.CipherSuite,
		GroupID:                 slices.Clone(g.GroupID),
		Epoch:                   g.Epoch,
		TreeHash:                slices.Clone(g.TreeHash),
		ConfirmedTranscriptHash: slices.Clone(g.ConfirmedTranscriptHash),
		Extensions:              cloneExtensions(g.Extensions),
	}
}

// CipherSuite returns the group's cipher suite.
func (g *Group) CipherSuite() CipherSuite { return g.ctx.CipherSuite }

// GroupID returns the group id.
func (g *Group) GroupID() []byte { return slices.Clone(g.ctx.GroupID) }

// Epoch returns the current epoch.
func (g *Group) Epoch() uint64 { return g.ctx.Epoch }

// GroupContext returns a copy of the current GroupContext.
func (g *Group) GroupContext() GroupContext { return cloneGroupContext(&g.ctx) }

// Extensions returns the GroupContext extensions.
func (g *Group) Extensions() []Extension { return cloneExtensions(g.ctx.Extensions) }

// LeafIndex returns this member's leaf index.
func (g *Group) LeafIndex() LeafIndex { return g.myLeaf }

// EpochAuthenticator returns the epoch_authenticator of the current epoch
// (§8.7): members with the same value share the same view of the group.
func (g *Group) EpochAuthenticator() []byte { return slices.Clone(g.secrets.EpochAuthenticator) }

// ResumptionPSK returns the resumption_psk of the current epoch (§8.6).
func (g *Group) ResumptionPSK() []byte { return slices.Clone(g.secrets.ResumptionPSK) }

// Export returns MLS-Exporter(label, context, length) of the current epoch
// (§8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	return g.secrets.exporter(label, context, length)
}

// Closed reports whether the group can no longer be used to send: this
// member was removed, or a Commit with a ReInit was applied (then
// PendingReInit returns it).
func (g *Group) Closed() bool { return g.removed || g.reinit != nil }

// PendingReInit returns the ReInit proposal of the Commit that closed the
// group, if any (§11.2): the members now wait for the Welcome of the new
// group (see ReInitGroup and WithResumptionGroups).
func (g *Group) PendingReInit() (*ReInit, bool) {
	if g.reinit == nil {
		return nil, false
	}
	r := *g.reinit
	r.GroupID = slices.Clone(r.GroupID)
	r.Extensions = cloneExtensions(r.Extensions)
	return &r, true
}

// Member describes one member of the group.
type Member struct {
	Index        LeafIndex
	Credential   Credential
	SignatureKey []byte
	LeafNode     *LeafNode // read-only
}

// Members returns the members in leaf order.
func (g *Group) Members() []Member {
	out := make([]Member, 0, g.tree.memberCount())
	g.tree.forEachMember(func(l LeafIndex, ln *LeafNode) bool {
		out = append(out, Member{Index: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey, LeafNode: ln})
		return true
	})
	return out
}

// Member returns the member at leaf l.
func (g *Group) Member(l LeafIndex) (Member, bool) {
	ln := g.tree.leaf(l)
	if ln == nil {
		return Member{}, false
	}
	return Member{Index: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey, LeafNode: ln}, true
}

// MemberCount returns the number of members.
func (g *Group) MemberCount() int { return g.tree.memberCount() }

// RatchetTree returns the encoded ratchet tree of the current epoch
// (`optional<Node> ratchet_tree<V>`, §12.4.3.3), as served to joiners whose
// Welcome or GroupInfo does not carry it.
func (g *Group) RatchetTree() ([]byte, error) { return g.tree.marshal() }

// StoreExternalPSK makes an external PSK available to this group (§8.4).
// PSKs are part of the group state (they are needed to commit or process
// PreSharedKey proposals later).
func (g *Group) StoreExternalPSK(pskID, psk []byte) {
	if g.psks == nil {
		g.psks = map[string][]byte{}
	}
	g.psks[string(pskID)] = slices.Clone(psk)
}

// currentFraming returns the message protection of the current epoch.
func (g *Group) currentFraming() (*epochFraming, error) {
	if g.framing != nil {
		return g.framing, nil
	}
	f, err := newEpochFraming(&g.ctx, g.secrets.MembershipKey, g.secrets.SenderDataSecret, g.stree, g.cfg.padding)
	if err != nil {
		return nil, err
	}
	g.framing = f
	return f, nil
}

func (p *pastEpoch) getFraming(padding PaddingPolicy) (*epochFraming, error) {
	if p.framing != nil {
		return p.framing, nil
	}
	f, err := newEpochFraming(&p.ctx, nil, p.senderDataSecret, p.stree, padding)
	if err != nil {
		return nil, err
	}
	p.framing = f
	return f, nil
}

// leafAt returns the LeafNode at l in past epoch index i of g.past (nil if
// blank): the value recorded by the first Commit at or after that epoch
// that changed it, or else the current one.
func (g *Group) leafAt(i int, l LeafIndex) *LeafNode {
	for _, p := range g.past[i:] {
		if ln, ok := p.leaves[l]; ok {
			return ln
		}
	}
	return g.tree.leaf(l)
}

// trimPast enforces the past-epoch and resumption windows. It only drops
// references: the state a new epoch is built from may still use them, so
// wiping is left to replaceWith (and SetOptions).
func (g *Group) trimPast() (droppedPast []*pastEpoch, droppedResume []resumptionEntry) {
	if k := len(g.past) - g.cfg.pastEpochs; k > 0 {
		droppedPast = slices.Clone(g.past[:k])
		g.past = slices.Clone(g.past[k:])
	}
	n := max(g.cfg.resumptionEpochs, 1) - 1 // the current epoch's is in secrets
	if k := len(g.resume) - n; k > 0 {
		droppedResume = slices.Clone(g.resume[:k])
		g.resume = slices.Clone(g.resume[k:])
	}
	return droppedPast, droppedResume
}

func (p *pastEpoch) wipe() {
	p.stree.wipe()
	clear(p.senderDataSecret)
}

// resumptionPSK returns the resumption_psk of epoch e of this group, if
// still kept.
func (g *Group) resumptionPSK(epoch uint64) ([]byte, bool) {
	if epoch == g.ctx.Epoch {
		return g.secrets.ResumptionPSK, true
	}
	for _, r := range g.resume {
		if r.epoch == epoch {
			return r.psk, true
		}
	}
	return nil, false
}

// Protect encrypts application data as a PrivateMessage of the current
// epoch (§15) and returns the encoded MLSMessage. authenticatedData is
// sent in the clear but authenticated.
func (g *Group) Protect(applicationData, authenticatedData []byte) ([]byte, error) {
	if err := g.checkCanSend(); err != nil {
		return nil, err
	}
	if len(g.props) > 0 {
		// §12.4: "A group member that has observed one or more valid
		// proposals within an epoch MUST send a Commit message before
		// sending application data."
		return nil, fmt.Errorf("%w: %d proposals of this epoch must be committed before sending application data",
			ErrInvalidProposal, len(g.props))
	}
	f, err := g.currentFraming()
	if err != nil {
		return nil, err
	}
	fc := &FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            Sender{Type: SenderMember, LeafIndex: uint32(g.myLeaf)},
		AuthenticatedData: authenticatedData,
		ContentType:       ContentTypeApplication,
		ApplicationData:   applicationData,
	}
	pm, err := f.protectPrivate(fc, g.sigPriv, nil, g.cfg.rand)
	if err != nil {
		return nil, err
	}
	return marshalStruct(&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm})
}

func (g *Group) checkCanSend() error {
	switch {
	case g.removed:
		return fmt.Errorf("%w: this member was removed", ErrGroupClosed)
	case g.reinit != nil:
		return fmt.Errorf("%w: the group was reinitialized", ErrGroupClosed)
	}
	return nil
}

// newContent returns the FramedContent of a handshake or application
// message this member sends in the current epoch.
func (g *Group) newContent(ct ContentType, authData []byte) *FramedContent {
	return &FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            Sender{Type: SenderMember, LeafIndex: uint32(g.myLeaf)},
		AuthenticatedData: authData,
		ContentType:       ct,
	}
}

func (g *Group) handshakeWireFormat() WireFormat {
	if g.cfg.encryptHandshake {
		return WireFormatPrivateMessage
	}
	return WireFormatPublicMessage
}

// encodeAuthenticated protects a signed AuthenticatedContent of the
// current epoch and returns the MLSMessage encoding.
func (g *Group) encodeAuthenticated(f *epochFraming, ac *AuthenticatedContent) ([]byte, error) {
	m := &MLSMessage{Version: ProtocolMLS10, WireFormat: ac.WireFormat}
	switch ac.WireFormat {
	case WireFormatPublicMessage:
		pm, err := f.encodePublic(ac)
		if err != nil {
			return nil, err
		}
		m.PublicMessage = pm
	default:
		pm, err := f.encryptPrivate(ac, g.cfg.rand)
		if err != nil {
			return nil, err
		}
		m.PrivateMessage = pm
	}
	return marshalStruct(m)
}

// Clone returns an independent copy of the group. The ratchet tree and its
// key index are persistent (copy-on-write) structures, so copying them is
// O(1) whatever the group size; the rest is the secrets: the epoch's
// secret tree (proportional to the senders heard from in the epoch), the
// past epochs kept, proposals and PSKs. No hashing or crypto. Like every
// method, Clone must not run concurrently with another method on g (it
// updates g's copy-on-write bookkeeping).
func (g *Group) Clone() *Group {
	c := &Group{
		cfg:     g.cfg,
		ctx:     cloneGroupContext(&g.ctx),
		tree:    g.tree.clone(),
		myLeaf:  g.myLeaf,
		sigPriv: slices.Clone(g.sigPriv),
		priv:    g.priv.clone(),
		interim: slices.Clone(g.interim),
		confTag: slices.Clone(g.confTag),
		secrets: g.secrets.clone(),
		removed: g.removed,
	}
	if g.stree != nil {
		c.stree = g.stree.clone()
	}
	c.past = make([]*pastEpoch, len(g.past))
	for i, p := range g.past {
		c.past[i] = p.clone()
	}
	c.resume = make([]resumptionEntry, len(g.resume))
	for i, r := range g.resume {
		c.resume[i] = resumptionEntry{epoch: r.epoch, psk: slices.Clone(r.psk)}
	}
	c.props = slices.Clone(g.props) // proposals are immutable once cached
	if len(g.updates) > 0 {
		c.updates = make(map[string]ownUpdate, len(g.updates))
		for k, u := range g.updates {
			c.updates[k] = ownUpdate{encPriv: slices.Clone(u.encPriv), leaf: u.leaf}
		}
	}
	if len(g.psks) > 0 {
		c.psks = make(map[string][]byte, len(g.psks))
		for k, v := range g.psks {
			c.psks[k] = slices.Clone(v)
		}
	}
	if g.reinit != nil {
		r := *g.reinit
		c.reinit = &r
	}
	// Pending commits are not cloned: each belongs to the group that made
	// it (MergePendingCommit on the clone reports ErrNotPending).
	return c
}

func (p *pastEpoch) clone() *pastEpoch {
	return &pastEpoch{
		ctx:              cloneGroupContext(&p.ctx),
		senderDataSecret: slices.Clone(p.senderDataSecret),
		stree:            p.stree.clone(),
		leaves:           maps.Clone(p.leaves),
	}
}
