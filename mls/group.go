package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"time"
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

// Errors callers branch on. Every error of a Group method starts with
// "mls: " and wraps one of these (or a sentinel of the lower layers:
// ErrMalformed, ErrInvalidSignature, ErrDecryption, ErrInvalidMembershipTag,
// ErrEpochMismatch, *RatchetError, ErrInvalidTree, ...) where one applies.
var (
	// ErrInvalidProposal: a proposal, or a Commit's proposal list, is
	// invalid (§12.1, §12.2).
	ErrInvalidProposal = errors.New("mls: invalid proposal")
	// ErrInvalidCommit: a Commit fails a check of §12.4.2.
	ErrInvalidCommit = errors.New("mls: invalid commit")
	// ErrInvalidConfirmationTag: the confirmation tag of a Commit or
	// GroupInfo does not verify.
	ErrInvalidConfirmationTag = errors.New("mls: invalid confirmation tag")
	// ErrWrongEpoch: a handshake message is not for the current epoch, or
	// an application message for an epoch outside the window.
	ErrWrongEpoch = errors.New("mls: message is for another epoch")
	// ErrWrongGroup: a message is for another group.
	ErrWrongGroup = errors.New("mls: message is for another group")
	// ErrUnknownProposal: a Commit references a proposal that was not
	// received in this epoch.
	ErrUnknownProposal = errors.New("mls: unknown proposal reference")
	// ErrUnknownSender: the sender is not a member (blank or out-of-range
	// leaf) or not a configured external sender.
	ErrUnknownSender = errors.New("mls: unknown sender")
	// ErrMissingPSK: a PSK named by a proposal or Welcome is not available.
	ErrMissingPSK = errors.New("mls: pre-shared key not available")
	// ErrInvalidWelcome: a Welcome cannot be used to join (§12.4.3.1).
	ErrInvalidWelcome = errors.New("mls: invalid welcome")
	// ErrNoMatchingKeyPackage: no entry of the Welcome is for one of the
	// given KeyPackages.
	ErrNoMatchingKeyPackage = errors.New("mls: welcome is not for any of the key packages")
	// ErrInvalidGroupInfo: a GroupInfo fails validation.
	ErrInvalidGroupInfo = errors.New("mls: invalid group info")
	// ErrGroupClosed: the group was reinitialized (a Commit with a ReInit
	// was applied, §11.2) or this member was removed; it can no longer send.
	ErrGroupClosed = errors.New("mls: group is closed")
	// ErrOwnMessage: the message is this member's own (its key was consumed
	// when it was sent); own Commits are recognised and merged instead.
	ErrOwnMessage = errors.New("mls: message was sent by this member")
	// ErrNotPending: MergePendingCommit was given a commit that this group
	// did not create in its current epoch.
	ErrNotPending = errors.New("mls: not a pending commit of this group and epoch")
	// ErrInvalidState: MarshalState output that cannot be restored.
	ErrInvalidState = errors.New("mls: invalid group state")
)

// Defaults of the Options.
const (
	// DefaultPastEpochs is the number of previous epochs whose secret trees
	// are kept for late application messages.
	DefaultPastEpochs = 3
	// DefaultResumptionEpochs is the number of epochs (the current one
	// included) whose resumption_psk is kept (§8.6).
	DefaultResumptionEpochs = 8
)

// config is the local policy of a group: not part of its state.
type config struct {
	rand             io.Reader
	now              func() time.Time
	pastEpochs       int
	resumptionEpochs int
	treeOpts         SecretTreeOptions
	padding          PaddingPolicy
	encryptHandshake bool
	alwaysPath       bool
	validateCred     func(cred *Credential, signatureKey []byte) error
	psks             map[string][]byte

	// Creation parameters (CreateGroup, NewKeyPackage, JoinExternal,
	// Branch); ignored elsewhere.
	caps          *Capabilities
	leafExts      []Extension
	groupExts     []Extension
	kpExts        []Extension
	lifetime      *Lifetime
	resumeSources []*Group
}

// Option sets local policy or creation parameters. Policy options (random
// source, clock, windows, padding, wire format, path policy, credential
// validation, external PSKs) are not part of the serialized state: pass
// them again to UnmarshalState. Creation options (capabilities, extensions,
// lifetime) only apply where a leaf or group is created.
type Option func(*config)

func defaultConfig() config {
	return config{
		rand:             rand.Reader,
		pastEpochs:       DefaultPastEpochs,
		resumptionEpochs: DefaultResumptionEpochs,
		encryptHandshake: true,
	}
}

func newConfig(opts []Option) config {
	c := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithRandom sets the source of randomness (default crypto/rand.Reader).
// Tests pass a deterministic reader.
func WithRandom(r io.Reader) Option { return func(c *config) { c.rand = r } }

// WithClock sets the clock used for lifetime checks (§7.3, §10.1). The
// package has no clock of its own: without this option, lifetimes are not
// checked, and new key_package leaves get the lifetime [0, 2^64-1] unless
// WithLifetime says otherwise.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithPastEpochs sets how many previous epochs keep their secret trees for
// late application messages (default DefaultPastEpochs; 0 keeps none).
// Their keys are deleted as soon as an epoch falls out of the window.
func WithPastEpochs(n int) Option { return func(c *config) { c.pastEpochs = max(n, 0) } }

// WithResumptionEpochs sets how many epochs keep their resumption_psk for
// resumption PSK proposals, ReInit and branching (default
// DefaultResumptionEpochs, at least 1: the current epoch).
func WithResumptionEpochs(n int) Option {
	return func(c *config) { c.resumptionEpochs = max(n, 1) }
}

// WithOutOfOrder bounds out-of-order delivery within an epoch: how many
// skipped keys each sender ratchet keeps and how far ahead a generation may
// be (see SecretTreeOptions).
func WithOutOfOrder(opts SecretTreeOptions) Option { return func(c *config) { c.treeOpts = opts } }

// WithPadding sets how PrivateMessages are padded (§6.3.1).
func WithPadding(p PaddingPolicy) Option { return func(c *config) { c.padding = p } }

// WithEncryptedHandshake chooses the wire format of this member's
// proposals and commits: PrivateMessage (true, the default) or
// PublicMessage (false). Received messages are accepted in either form;
// external commits and external proposals are always PublicMessages.
func WithEncryptedHandshake(encrypt bool) Option {
	return func(c *config) { c.encryptHandshake = encrypt }
}

// WithAlwaysPath makes every Commit this member creates carry an
// UpdatePath, even when §12.4 allows leaving it out (adds, PSKs, ReInit),
// for post-compromise security with every Commit.
func WithAlwaysPath(always bool) Option { return func(c *config) { c.alwaysPath = always } }

// WithCredentialValidator sets the Authentication Service check (§5.3.1)
// run on every credential that enters the group (Add, Update, Commit path,
// joining tree, external commits). The default accepts every credential.
func WithCredentialValidator(f func(cred *Credential, signatureKey []byte) error) Option {
	return func(c *config) { c.validateCred = f }
}

// WithExternalPSK makes an external PSK available (§8.4), by psk_id.
func WithExternalPSK(pskID, psk []byte) Option {
	return func(c *config) {
		if c.psks == nil {
			c.psks = map[string][]byte{}
		}
		c.psks[string(pskID)] = slices.Clone(psk)
	}
}

// WithCapabilities sets the capabilities of a new leaf (default:
// DefaultCapabilities()).
func WithCapabilities(caps Capabilities) Option {
	return func(c *config) { c.caps = &caps }
}

// WithLeafExtensions sets the extensions of a new leaf.
func WithLeafExtensions(exts []Extension) Option { return func(c *config) { c.leafExts = exts } }

// WithGroupExtensions sets the GroupContext extensions of a new group
// (CreateGroup, Branch).
func WithGroupExtensions(exts []Extension) Option { return func(c *config) { c.groupExts = exts } }

// WithKeyPackageExtensions sets the extensions of a new KeyPackage.
func WithKeyPackageExtensions(exts []Extension) Option {
	return func(c *config) { c.kpExts = exts }
}

// WithLifetime sets the lifetime of a new key_package leaf.
func WithLifetime(l Lifetime) Option { return func(c *config) { c.lifetime = &l } }

// WithResumptionGroups gives a joiner the groups whose resumption PSKs a
// Welcome may name: the old group of a ReInit or the parent of a branch
// (§11.2, §11.3, §12.4.3.1). Only the named epochs' resumption_psk and, for
// the checks of reinit and branch, the groups' members and parameters are
// read.
func WithResumptionGroups(groups ...*Group) Option {
	return func(c *config) { c.resumeSources = append(c.resumeSources, groups...) }
}

// DefaultCapabilities are the capabilities canopy advertises: MLS 1.0, every
// supported cipher suite, the last_resort extension, and basic and X.509
// credentials. The default proposal and extension types need not be listed
// (§7.2).
func DefaultCapabilities() Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{ProtocolMLS10},
		CipherSuites: slices.Clone(CipherSuites),
		Extensions:   []ExtensionType{ExtensionLastResort},
		Proposals:    []ProposalType{},
		Credentials:  []CredentialType{CredentialBasic, CredentialX509},
	}
}

// newLeafParams returns the capabilities, lifetime and extensions of a new
// leaf.
func (c *config) newLeafParams() (Capabilities, Lifetime, []Extension) {
	caps := DefaultCapabilities()
	if c.caps != nil {
		caps = cloneCapabilities(c.caps)
	}
	lt := Lifetime{NotBefore: 0, NotAfter: math.MaxUint64}
	switch {
	case c.lifetime != nil:
		lt = *c.lifetime
	case c.now != nil:
		// Decision: a KeyPackage leaf made with a clock is valid from an
		// hour ago (clock skew) for 90 days.
		now := c.now().Unix()
		lt = Lifetime{NotBefore: uint64(max(now-3600, 0)), NotAfter: uint64(max(now, 0)) + 90*24*3600}
	}
	return caps, lt, cloneExtensions(c.leafExts)
}

// checkLifetime verifies, with the configured clock, that a key_package
// leaf this member sends is valid now (§7.3); without a clock it passes.
// The error wraps ErrLifetime and ErrInvalidLeafNode and says which bound
// failed.
func (c *config) checkLifetime(ln *LeafNode) error {
	if c.now == nil || ln.Source != LeafNodeSourceKeyPackage {
		return nil
	}
	now := c.now()
	t := now.Unix()
	switch {
	case t < 0 || uint64(t) < ln.Lifetime.NotBefore:
		return fmt.Errorf("%w: %w: not valid before %s (now %s)", ErrInvalidLeafNode, ErrLifetime,
			unixTime(ln.Lifetime.NotBefore), now.UTC().Format(time.RFC3339))
	case uint64(t) > ln.Lifetime.NotAfter:
		return fmt.Errorf("%w: %w: expired at %s (now %s)", ErrInvalidLeafNode, ErrLifetime,
			unixTime(ln.Lifetime.NotAfter), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// ErrLifetime is wrapped when a leaf's lifetime does not contain the
// current time (§7.3): an expired or not yet valid KeyPackage.
var ErrLifetime = errors.New("mls: lifetime does not contain the current time")

func unixTime(s uint64) string {
	if s > math.MaxInt64 {
		return "the end of time"
	}
	return time.Unix(int64(s), 0).UTC().Format(time.RFC3339)
}

// validTime is the time at which a KeyPackage is validated: the clock's,
// or without a clock a time inside its own lifetime (lifetimes are then
// not checked).
func (c *config) validTime(ln *LeafNode) time.Time {
	if c.now != nil {
		return c.now()
	}
	return lifetimeStart(ln)
}

// lifetimeStart is a time inside ln's lifetime if it has one (its start):
// validating at it checks everything but the current time.
func lifetimeStart(ln *LeafNode) time.Time {
	nb := ln.Lifetime.NotBefore
	if nb > math.MaxInt64 {
		nb = math.MaxInt64
	}
	return time.Unix(int64(nb), 0)
}

func (c *config) checkCredential(ln *LeafNode) error {
	if c.validateCred == nil {
		return nil
	}
	if err := c.validateCred(&ln.Credential, ln.SignatureKey); err != nil {
		return fmt.Errorf("%w: credential rejected: %w", ErrInvalidLeafNode, err)
	}
	return nil
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

// SetOptions changes local policy (windows, padding, wire format, clock,
// random source, validators, external PSKs).
func (g *Group) SetOptions(opts ...Option) {
	psks := g.cfg.psks
	for _, o := range opts {
		if o != nil {
			o(&g.cfg)
		}
	}
	for id, v := range g.cfg.psks {
		if _, ok := psks[id]; !ok {
			g.StoreExternalPSK([]byte(id), v)
		}
	}
	g.cfg.psks = nil
	if g.stree != nil {
		g.stree.setOptions(g.cfg.treeOpts)
	}
	for _, p := range g.past {
		p.stree.setOptions(g.cfg.treeOpts)
		p.framing = nil
	}
	g.framing = nil
	past, resume := g.trimPast()
	for _, p := range past {
		p.wipe()
	}
	for _, r := range resume {
		clear(r.psk)
	}
}

// adoptConfig installs cfg in a new group: external PSKs given as options
// become part of the state.
func (g *Group) adoptConfig(cfg config) {
	g.cfg = cfg
	for id, v := range cfg.psks {
		g.StoreExternalPSK([]byte(id), v)
	}
	g.cfg.psks = nil
	g.cfg.resumeSources = nil
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
	ac, _, err := f.unprotectMessage(m, func(ac *AuthenticatedContent) error {
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
		ac, _, err := f.unprotectMessage(m, func(ac *AuthenticatedContent) error {
			ln := g.leafAt(i, LeafIndex(ac.Content.Sender.LeafIndex))
			if ln == nil {
				return fmt.Errorf("%w: leaf %d was blank in epoch %d", ErrUnknownSender, ac.Content.Sender.LeafIndex, pm.Epoch)
			}
			return f.verifySignature(ac, ln.SignatureKey)
		})
		if err != nil {
			return nil, err
		}
		return &Received{
			ContentType:       ContentTypeApplication,
			WireFormat:        WireFormatPrivateMessage,
			Epoch:             pm.Epoch,
			Sender:            ac.Content.Sender,
			AuthenticatedData: ac.Content.AuthenticatedData,
			ApplicationData:   ac.Content.ApplicationData,
		}, nil
	}
	return nil, fmt.Errorf("%w: application message for epoch %d, group is in epoch %d and keeps %d past epochs",
		ErrWrongEpoch, pm.Epoch, g.ctx.Epoch, len(g.past))
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
