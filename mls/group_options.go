package mls

import (
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
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
