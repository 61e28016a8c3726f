package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// Group creation (§11), KeyPackages for joining (§10), and the Welcome
// (§12.4.3.1): building it for the members a Commit adds, and joining
// from it with or without the ratchet tree in it.

// CreateGroup creates a one-member group (§11) at epoch 0 with this
// client as its creator: sigPriv is its signature private key (of cs's
// scheme) and cred its credential. WithGroupExtensions sets the
// GroupContext extensions; WithCapabilities, WithLeafExtensions and
// WithLifetime shape the creator's leaf.
func CreateGroup(cs CipherSuite, groupID, sigPriv []byte, cred Credential, opts ...Option) (*Group, error) {
	if !cs.Supported() {
		return nil, &UnsupportedCipherSuiteError{cs}
	}
	cfg := newConfig(opts)
	ln, encPriv, err := newKeyPackageLeaf(cs, sigPriv, cred, &cfg)
	if err != nil {
		return nil, err
	}
	ctx := GroupContext{
		Version:                 ProtocolMLS10,
		CipherSuite:             cs,
		GroupID:                 slices.Clone(groupID),
		ConfirmedTranscriptHash: []byte{},
		Extensions:              cloneExtensions(cfg.groupExts),
	}
	if ctx.Extensions == nil {
		ctx.Extensions = []Extension{}
	}
	if err := checkUniqueExtensionTypes(ctx.Extensions); err != nil {
		return nil, err
	}
	if err := supportsExtensions(ln, ctx.Extensions); err != nil {
		return nil, fmt.Errorf("mls: the creator's leaf: %w", err)
	}
	g := &Group{ctx: ctx, tree: newRatchetTree(cs), sigPriv: slices.Clone(sigPriv)}
	g.adoptConfig(cfg)
	if e, ok := findExtension(ctx.Extensions, ExtensionRequiredCapabilities); ok {
		var rc RequiredCapabilities
		if err := rc.Unmarshal(e.Data); err != nil {
			return nil, err
		}
		if !ln.Capabilities.SupportsRequired(&rc) {
			return nil, fmt.Errorf("%w: the creator does not support the required capabilities", ErrInvalidLeafNode)
		}
	}
	if g.myLeaf, err = g.tree.addLeaf(ln); err != nil {
		return nil, err
	}
	if g.priv, err = newPrivateTree(cs, g.myLeaf, encPriv); err != nil {
		return nil, err
	}
	if g.ctx.TreeHash, err = g.tree.treeHash(); err != nil {
		return nil, err
	}
	// §11: a fresh epoch_secret, then the interim transcript hash from the
	// confirmation tag over the empty confirmed transcript hash.
	if g.secrets, err = initialEpochSecrets(cs, cfg.rand); err != nil {
		return nil, err
	}
	g.confTag = g.secrets.confirmationTag(g.ctx.ConfirmedTranscriptHash)
	if g.interim, err = interimTranscriptHash(cs, g.ctx.ConfirmedTranscriptHash, g.confTag); err != nil {
		return nil, err
	}
	if g.stree, err = g.secrets.newSecretTree(g.tree.numLeaves(), cfg.treeOpts); err != nil {
		return nil, err
	}
	return g, nil
}

// KeyPackageBundle is a KeyPackage with its private keys: what a client
// keeps until it joins from a Welcome.
type KeyPackageBundle struct {
	KeyPackage     KeyPackage
	InitPriv       []byte
	EncryptionPriv []byte
	SignaturePriv  []byte
}

// NewKeyPackage creates a KeyPackage (§10) for cs with fresh init and
// encryption keys. WithCapabilities, WithLeafExtensions, WithLifetime and
// WithKeyPackageExtensions shape it; WithRandom and WithClock apply.
func NewKeyPackage(cs CipherSuite, sigPriv []byte, cred Credential, opts ...Option) (*KeyPackageBundle, error) {
	if !cs.Supported() {
		return nil, &UnsupportedCipherSuiteError{cs}
	}
	cfg := newConfig(opts)
	initPriv, initPub, err := cs.GenerateHPKEKeyPair(cfg.rand)
	if err != nil {
		return nil, err
	}
	ln, encPriv, err := newKeyPackageLeaf(cs, sigPriv, cred, &cfg)
	if err != nil {
		return nil, err
	}
	kp := KeyPackage{
		Version:     ProtocolMLS10,
		CipherSuite: cs,
		InitKey:     initPub,
		LeafNode:    *ln,
		Extensions:  cloneExtensions(cfg.kpExts),
	}
	if err := kp.Sign(sigPriv, cfg.rand); err != nil {
		return nil, err
	}
	return &KeyPackageBundle{KeyPackage: kp, InitPriv: initPriv, EncryptionPriv: encPriv, SignaturePriv: slices.Clone(sigPriv)}, nil
}

// newKeyPackageLeaf returns a signed key_package LeafNode with a fresh
// encryption key pair, shaped by cfg's creation options.
func newKeyPackageLeaf(cs CipherSuite, sigPriv []byte, cred Credential, cfg *config) (*LeafNode, []byte, error) {
	sigPub, err := cs.SignaturePublicKey(sigPriv)
	if err != nil {
		return nil, nil, err
	}
	encPriv, encPub, err := cs.GenerateHPKEKeyPair(cfg.rand)
	if err != nil {
		return nil, nil, err
	}
	caps, lt, exts := cfg.newLeafParams()
	ln := &LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPub,
		Credential:    cred,
		Capabilities:  caps,
		Source:        LeafNodeSourceKeyPackage,
		Lifetime:      lt,
		Extensions:    exts,
	}
	if err := ln.Sign(cs, sigPriv, nil, 0, cfg.rand); err != nil {
		return nil, nil, err
	}
	return ln, encPriv, nil
}

// Marshal returns the KeyPackage as an encoded MLSMessage, as it is
// published.
func (b *KeyPackageBundle) Marshal() ([]byte, error) {
	return marshalStruct(&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatKeyPackage, KeyPackage: &b.KeyPackage})
}

// ParseKeyPackage decodes a KeyPackage published as an MLSMessage (or a
// bare KeyPackage) and validates it on its own (§10.1) with the clock of
// WithClock, if given.
func ParseKeyPackage(data []byte, opts ...Option) (*KeyPackage, error) {
	var m MLSMessage
	kp := new(KeyPackage)
	if m.Unmarshal(data) == nil && m.WireFormat == WireFormatKeyPackage {
		kp = m.KeyPackage
	} else if err := kp.Unmarshal(data); err != nil {
		return nil, err
	}
	cfg := newConfig(opts)
	if err := kp.Validate(cfg.validTime(&kp.LeafNode)); err != nil {
		return nil, err
	}
	return kp, nil
}

// groupInfo returns a signed GroupInfo of the current epoch (§12.4.3),
// with the ratchet_tree and external_pub extensions as asked.
func (g *Group) groupInfo(includeTree, externalPub bool) (*GroupInfo, error) {
	gi := &GroupInfo{
		GroupContext:    cloneGroupContext(&g.ctx),
		Extensions:      []Extension{},
		ConfirmationTag: slices.Clone(g.confTag),
		Signer:          uint32(g.myLeaf),
	}
	if includeTree {
		tree, err := g.tree.marshal()
		if err != nil {
			return nil, err
		}
		gi.Extensions = append(gi.Extensions, Extension{Type: ExtensionRatchetTree, Data: tree})
	}
	if externalPub {
		priv, pub, err := g.secrets.externalKeyPair()
		if err != nil {
			return nil, err
		}
		clear(priv)
		data, err := marshalStruct(&ExternalPub{ExternalPub: pub})
		if err != nil {
			return nil, err
		}
		gi.Extensions = append(gi.Extensions, Extension{Type: ExtensionExternalPub, Data: data})
	}
	if err := gi.Sign(g.sigPriv, g.cfg.rand); err != nil {
		return nil, err
	}
	return gi, nil
}

// GroupInfoOptions select the extensions of a GroupInfo.
type GroupInfoOptions struct {
	// RatchetTree includes the ratchet_tree extension; without it the
	// joiner fetches the tree out of band (RatchetTree).
	RatchetTree bool
	// ExternalPub includes the external_pub extension, which external
	// joins need (§12.4.3.2).
	ExternalPub bool
}

// GroupInfo returns a signed GroupInfo of the current epoch as an encoded
// MLSMessage. It contains the group's secrets-derived external key and the
// tree: share it only with those allowed to join.
func (g *Group) GroupInfo(opts GroupInfoOptions) ([]byte, error) {
	gi, err := g.groupInfo(opts.RatchetTree, opts.ExternalPub)
	if err != nil {
		return nil, err
	}
	return marshalStruct(&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatGroupInfo, GroupInfo: gi})
}

// buildWelcome encrypts gi for the new members (§12.4.3.1): the GroupInfo
// under the key and nonce from welcome_secret, and to each new member's
// init_key its GroupSecrets (joiner_secret, the path secret of its lowest
// common ancestor with the committer when the Commit has a path, and the
// Commit's PSKs). g is the state of the new epoch, before its joiner
// secrets are dropped.
func (g *Group) buildWelcome(gi *GroupInfo, pp *pendingPath, added []LeafIndex, kps []*KeyPackage, psks []PreSharedKeyID) (*Welcome, error) {
	cs := g.ctx.CipherSuite
	giBytes, err := gi.Marshal()
	if err != nil {
		return nil, err
	}
	key, nonce, err := welcomeKeyNonce(cs, g.secrets.WelcomeSecret)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	defer clear(nonce)
	aead, err := cs.AEAD(key)
	if err != nil {
		return nil, err
	}
	w := &Welcome{CipherSuite: cs, EncryptedGroupInfo: aead.Seal(nil, nonce, giBytes, nil)}
	if psks == nil {
		psks = []PreSharedKeyID{}
	}
	for i, kp := range kps {
		gs := GroupSecrets{JoinerSecret: g.secrets.JoinerSecret, PSKs: psks}
		if pp != nil {
			if ps, ok := pp.pathSecretFor(added[i]); ok {
				gs.PathSecret = &PathSecret{PathSecret: ps}
			}
		}
		gsBytes, err := gs.Marshal()
		if err != nil {
			return nil, err
		}
		kem, ct, err := cs.EncryptWithLabel(kp.InitKey, "Welcome", w.EncryptedGroupInfo, gsBytes, g.cfg.rand)
		clear(gsBytes)
		if err != nil {
			return nil, err
		}
		ref, err := kp.Ref()
		if err != nil {
			return nil, err
		}
		w.Secrets = append(w.Secrets, EncryptedGroupSecrets{NewMember: ref, EncryptedGroupSecrets: HPKECiphertext{KEMOutput: kem, Ciphertext: ct}})
	}
	return w, nil
}

// StagedWelcome is a Welcome that has been decrypted: the joiner knows the
// group (id, epoch, members' tree hash) and, when the Welcome did not
// carry the ratchet tree, fetches it before calling Join.
type StagedWelcome struct {
	cfg       config
	bundle    *KeyPackageBundle
	gi        *GroupInfo
	gs        *GroupSecrets
	pskSecret []byte
	resumed   *PreSharedKeyID // the reinit or branch PSK, if any
	tree      RatchetTree     // from the ratchet_tree extension, or nil
	treeEncs  [][]byte        // the encodings of tree's leaves
}

// OpenWelcome decrypts a Welcome (an encoded MLSMessage) with the first of
// bundles it is addressed to (§12.4.3.1): the GroupSecrets with the init
// key, then, with its PSKs (external ones from WithExternalPSK, resumption
// ones from WithResumptionGroups), the GroupInfo. Nothing is validated
// beyond what decryption proves; Join does the rest.
func OpenWelcome(welcome []byte, bundles []*KeyPackageBundle, opts ...Option) (*StagedWelcome, error) {
	var m MLSMessage
	if err := m.Unmarshal(welcome); err != nil {
		return nil, err
	}
	if m.WireFormat != WireFormatWelcome {
		return nil, fmt.Errorf("%w: %v is not a Welcome", ErrInvalidWelcome, m.WireFormat)
	}
	cfg := newConfig(opts)
	w := m.Welcome
	for _, b := range bundles {
		if b == nil || b.KeyPackage.CipherSuite != w.CipherSuite {
			continue
		}
		ref, err := b.KeyPackage.Ref()
		if err != nil {
			return nil, err
		}
		egs, ok := w.Find(ref)
		if !ok {
			continue
		}
		s := &StagedWelcome{cfg: cfg, bundle: b}
		if err := s.open(w, egs); err != nil {
			return nil, err
		}
		return s, nil
	}
	if !w.CipherSuite.Supported() {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, &UnsupportedCipherSuiteError{w.CipherSuite})
	}
	return nil, ErrNoMatchingKeyPackage
}

// open decrypts the GroupSecrets and GroupInfo of w.
func (s *StagedWelcome) open(w *Welcome, egs *EncryptedGroupSecrets) error {
	cs := w.CipherSuite
	if !cs.Supported() {
		return &UnsupportedCipherSuiteError{cs}
	}
	pt, err := cs.DecryptWithLabel(s.bundle.InitPriv, "Welcome", w.EncryptedGroupInfo,
		egs.EncryptedGroupSecrets.KEMOutput, egs.EncryptedGroupSecrets.Ciphertext)
	if err != nil {
		return fmt.Errorf("%w: group secrets: %w", ErrInvalidWelcome, err)
	}
	defer clear(pt)
	gs := new(GroupSecrets)
	if err := gs.Unmarshal(slices.Clone(pt)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if len(gs.JoinerSecret) != cs.Nh() {
		return fmt.Errorf("%w: joiner_secret of %d bytes", ErrInvalidWelcome, len(gs.JoinerSecret))
	}
	// PSKs (§12.4.3.1): all available, at most one of usage reinit or
	// branch.
	entries := make([]pskEntry, len(gs.PSKs))
	for i := range gs.PSKs {
		id := &gs.PSKs[i]
		if err := validatePreSharedKeyID(cs, id, true, true); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
		}
		if id.Type == PSKTypeResumption && id.Usage != ResumptionApplication {
			if s.resumed != nil {
				return fmt.Errorf("%w: more than one reinit/branch PSK", ErrInvalidWelcome)
			}
			s.resumed = id
		}
		v, err := s.lookupPSK(id)
		if err != nil {
			return err
		}
		entries[i] = pskEntry{ID: *id, PSK: v}
	}
	if s.pskSecret, err = computePSKSecret(cs, entries); err != nil {
		return err
	}
	welcomeSecret, err := deriveWelcomeSecret(cs, gs.JoinerSecret, s.pskSecret)
	if err != nil {
		return err
	}
	defer clear(welcomeSecret)
	key, nonce, err := welcomeKeyNonce(cs, welcomeSecret)
	if err != nil {
		return err
	}
	defer clear(key)
	defer clear(nonce)
	aead, err := cs.AEAD(key)
	if err != nil {
		return err
	}
	giBytes, err := aead.Open(nil, nonce, w.EncryptedGroupInfo, nil)
	if err != nil {
		return fmt.Errorf("%w: %w: group info did not open", ErrInvalidWelcome, ErrDecryption)
	}
	gi := new(GroupInfo)
	if err := gi.Unmarshal(giBytes); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if gi.GroupContext.CipherSuite != cs || gi.GroupContext.Version != ProtocolMLS10 {
		return fmt.Errorf("%w: group info for %v version %d in a %v Welcome", ErrInvalidWelcome,
			gi.GroupContext.CipherSuite, gi.GroupContext.Version, cs)
	}
	if tree, encs, ok, err := ratchetTreeExtension(gi); err != nil {
		return fmt.Errorf("%w: ratchet_tree extension: %w", ErrInvalidWelcome, err)
	} else if ok {
		s.tree, s.treeEncs = tree, encs
	}
	s.gi, s.gs = gi, gs
	return nil
}

// lookupPSK finds a PSK named by a Welcome.
func (s *StagedWelcome) lookupPSK(id *PreSharedKeyID) ([]byte, error) {
	if id.Type == PSKTypeExternal {
		if v, ok := s.cfg.psks[string(id.PSKID)]; ok {
			return v, nil
		}
		return nil, fmt.Errorf("%w: %w: external PSK %x", ErrInvalidWelcome, ErrMissingPSK, id.PSKID)
	}
	for _, g := range s.cfg.resumeSources {
		if g != nil && bytes.Equal(g.ctx.GroupID, id.PSKGroupID) {
			if v, ok := g.resumptionPSK(id.PSKEpoch); ok {
				return v, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %w: resumption PSK of group %x epoch %d", ErrInvalidWelcome, ErrMissingPSK, id.PSKGroupID, id.PSKEpoch)
}

// GroupID returns the id of the group the Welcome is for.
func (s *StagedWelcome) GroupID() []byte { return slices.Clone(s.gi.GroupContext.GroupID) }

// Epoch returns the epoch the joiner enters.
func (s *StagedWelcome) Epoch() uint64 { return s.gi.GroupContext.Epoch }

// CipherSuite returns the group's cipher suite.
func (s *StagedWelcome) CipherSuite() CipherSuite { return s.gi.GroupContext.CipherSuite }

// TreeHash returns the tree hash the ratchet tree must have.
func (s *StagedWelcome) TreeHash() []byte { return slices.Clone(s.gi.GroupContext.TreeHash) }

// NeedsRatchetTree reports whether the Welcome left out the ratchet tree,
// which Join then needs.
func (s *StagedWelcome) NeedsRatchetTree() bool { return s.tree == nil }

// Resumption returns the Welcome's resumption PSK of usage reinit or
// branch, if it has one. Join checks it against the old group (§11.2,
// §11.3), so after a successful Join it says that the new group continues
// that one: only members of its epoch PSKEpoch know the PSK.
func (s *StagedWelcome) Resumption() (PreSharedKeyID, bool) {
	if s.resumed == nil {
		return PreSharedKeyID{}, false
	}
	id := *s.resumed
	id.PSKGroupID, id.PSKID, id.Nonce = slices.Clone(id.PSKGroupID), slices.Clone(id.PSKID), slices.Clone(id.Nonce)
	return id, true
}

// Join validates the group and returns the joiner's state (§12.4.3.1).
// ratchetTree is the encoded tree fetched out of band when the Welcome did
// not carry it (ignored otherwise); it is trusted only through the tree
// hash in the signed GroupInfo. Checked: the tree (hash, parent hashes,
// every leaf, unmerged leaves, unique keys), the GroupInfo signature by its
// signer's leaf, support for every GroupContext extension, the joiner's
// leaf, the path secret against the tree, the confirmation tag, and for a
// reinit or branch PSK the rules of §11.2/§11.3.
func (s *StagedWelcome) Join(ratchetTree []byte) (*Group, error) {
	gi := s.gi
	cs := gi.GroupContext.CipherSuite
	nodes, encs := s.tree, s.treeEncs
	if nodes == nil {
		if len(ratchetTree) == 0 {
			return nil, fmt.Errorf("%w: the Welcome has no ratchet tree and none was given", ErrInvalidWelcome)
		}
		var err error
		if nodes, encs, err = decodeRatchetTree(slices.Clone(ratchetTree)); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
		}
	}
	g, err := joinGroup(&s.cfg, gi, nodes, encs, s.bundle.SignaturePriv)
	if err != nil {
		return nil, err
	}

	// The joiner's leaf: identical to its KeyPackage's.
	kpLeaf := &s.bundle.KeyPackage.LeafNode
	x, ok := g.tree.lookupEncryptionKey(kpLeaf.EncryptionKey)
	me, isLeafNode := x.leafIndex()
	if !ok || !isLeafNode || !g.tree.leaf(me).Equal(kpLeaf) {
		return nil, fmt.Errorf("%w: the joiner's leaf is not in the tree", ErrInvalidWelcome)
	}
	g.myLeaf = me
	if err := supportsExtensions(kpLeaf, gi.GroupContext.Extensions); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if g.priv, err = newPrivateTree(cs, me, slices.Clone(s.bundle.EncryptionPriv)); err != nil {
		return nil, err
	}
	if err := g.priv.consistent(&g.tree); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	if s.gs.PathSecret != nil {
		signer := LeafIndex(gi.Signer)
		if signer == me {
			return nil, fmt.Errorf("%w: path secret from the joiner itself", ErrInvalidWelcome)
		}
		ca := commonAncestor(me.nodeIndex(), signer.nodeIndex())
		if err := g.priv.implant(&g.tree, ca, s.gs.PathSecret.PathSecret); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
		}
	}

	// Key schedule from joiner_secret, confirmation tag, interim hash.
	secrets, err := epochSecretsFromJoiner(cs, s.gs.JoinerSecret, s.pskSecret, &g.ctx)
	if err != nil {
		return nil, err
	}
	secrets.dropJoinerSecrets()
	if !secrets.verifyConfirmationTag(g.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		secrets.wipe()
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, ErrInvalidConfirmationTag)
	}
	g.secrets = secrets
	g.confTag = slices.Clone(gi.ConfirmationTag)
	if g.interim, err = interimTranscriptHash(cs, g.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
		return nil, err
	}
	if s.resumed != nil {
		if err := s.checkResumption(g); err != nil {
			return nil, err
		}
	}
	if g.stree, err = secrets.newSecretTree(g.tree.numLeaves(), g.cfg.treeOpts); err != nil {
		return nil, err
	}
	return g, nil
}

// joinGroup builds the public part of a joiner's state from a GroupInfo
// and the tree (Welcome or external join): the tree is validated against
// the GroupInfo's tree hash (§12.4.3.1) and the GroupInfo signature is
// verified with its signer's leaf.
func joinGroup(cfg *config, gi *GroupInfo, nodes RatchetTree, encs [][]byte, sigPriv []byte) (*Group, error) {
	cs := gi.GroupContext.CipherSuite
	if !cs.Supported() {
		return nil, &UnsupportedCipherSuiteError{cs}
	}
	if gi.GroupContext.Version != ProtocolMLS10 {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidGroupInfo, gi.GroupContext.Version)
	}
	if err := checkUniqueExtensionTypes(gi.GroupContext.Extensions); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	tree, err := treeFromWireEnc(cs, nodes, encs)
	if err != nil {
		return nil, err
	}
	g := &Group{ctx: cloneGroupContext(&gi.GroupContext), tree: tree, sigPriv: slices.Clone(sigPriv)}
	g.adoptConfig(*cfg)
	v := g.leafValidation(g.ctx.Extensions)
	if _, ok := findExtension(g.ctx.Extensions, ExtensionRequiredCapabilities); ok && v.RequiredCapabilities == nil {
		return nil, fmt.Errorf("%w: malformed required_capabilities extension", ErrInvalidGroupInfo)
	}
	if err := g.tree.validate(gi.GroupContext.TreeHash, v); err != nil {
		return nil, err
	}
	signer := g.tree.leaf(LeafIndex(gi.Signer))
	if signer == nil {
		return nil, fmt.Errorf("%w: signer leaf %d is blank", ErrInvalidGroupInfo, gi.Signer)
	}
	if err := gi.VerifySignature(signer.SignatureKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	return g, nil
}

// JoinFromWelcome joins a group from a Welcome addressed to bundle:
// OpenWelcome followed by Join. ratchetTree is the tree fetched out of band
// when the Welcome does not carry it (nil otherwise).
func JoinFromWelcome(welcome []byte, bundle *KeyPackageBundle, ratchetTree []byte, opts ...Option) (*Group, error) {
	s, err := OpenWelcome(welcome, []*KeyPackageBundle{bundle}, opts...)
	if err != nil {
		return nil, err
	}
	return s.Join(ratchetTree)
}
