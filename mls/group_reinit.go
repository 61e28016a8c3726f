package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// Reinitialization (§11.2) and subgroup branching (§11.3): a new group
// linked to the old one by a resumption PSK of usage reinit or branch.

// ReInitGroup creates the group that replaces this one after a Commit with
// a ReInit was applied (§11.2 step 3): the ReInit's group id, version,
// cipher suite and extensions, with the members of keyPackages (the other
// members' new KeyPackages), and a resumption PSK (usage reinit) of this
// group's current epoch. sigPriv is this member's signature key for the new
// cipher suite (nil reuses the current one, which needs the same signature
// scheme). It returns the new group, already at epoch 1, and its
// (merged) initial Commit, whose Welcome goes to the other members.
func (g *Group) ReInitGroup(keyPackages []*KeyPackage, sigPriv []byte, opts CommitOptions, newOpts ...Option) (*Group, *PendingCommit, error) {
	r := g.reinit
	if r == nil {
		return nil, nil, fmt.Errorf("%w: no ReInit was committed", ErrInvalidProposal)
	}
	if sigPriv == nil {
		sigPriv = g.sigPriv
	}
	me := g.tree.leaf(g.myLeaf)
	id := PreSharedKeyID{Type: PSKTypeResumption, Usage: ResumptionReInit, PSKGroupID: slices.Clone(g.ctx.GroupID), PSKEpoch: g.ctx.Epoch}
	cfgOpts := append([]Option{withConfig(g.cfg), WithGroupExtensions(r.Extensions), WithCapabilities(me.Capabilities),
		WithLeafExtensions(me.Extensions)}, newOpts...)
	return g.resumedGroup(r.CipherSuite, r.GroupID, sigPriv, me.Credential, id, keyPackages, &commitContext{inReInit: true}, opts, cfgOpts)
}

// Branch creates a subgroup of this group (§11.3): a new group with the
// same version and cipher suite, group id groupID, this member and the
// members of keyPackages (new KeyPackages of members of this group), and a
// resumption PSK (usage branch) of the current epoch. WithGroupExtensions
// in newOpts sets its extensions. It returns the new group, already at
// epoch 1, and its (merged) initial Commit, whose Welcome goes to the
// other members.
func (g *Group) Branch(groupID []byte, keyPackages []*KeyPackage, opts CommitOptions, newOpts ...Option) (*Group, *PendingCommit, error) {
	if g.removed {
		return nil, nil, fmt.Errorf("%w: this member was removed", ErrGroupClosed)
	}
	me := g.tree.leaf(g.myLeaf)
	id := PreSharedKeyID{Type: PSKTypeResumption, Usage: ResumptionBranch, PSKGroupID: slices.Clone(g.ctx.GroupID), PSKEpoch: g.ctx.Epoch}
	cfgOpts := append([]Option{withConfig(g.cfg), WithCapabilities(me.Capabilities), WithLeafExtensions(me.Extensions)}, newOpts...)
	return g.resumedGroup(g.ctx.CipherSuite, groupID, g.sigPriv, me.Credential, id, keyPackages, &commitContext{inBranch: true}, opts, cfgOpts)
}

// withConfig starts from another group's local policy.
func withConfig(c config) Option {
	return func(dst *config) {
		psks := dst.psks
		*dst = c
		dst.psks = psks
	}
}

// resumedGroup creates a group whose first Commit adds keyPackages and
// injects the resumption PSK id of g, and merges that Commit.
func (g *Group) resumedGroup(cs CipherSuite, groupID, sigPriv []byte, cred Credential, id PreSharedKeyID,
	keyPackages []*KeyPackage, cc *commitContext, opts CommitOptions, cfgOpts []Option) (*Group, *PendingCommit, error) {
	n, err := CreateGroup(cs, groupID, sigPriv, cred, cfgOpts...)
	if err != nil {
		return nil, nil, err
	}
	id.Nonce = make([]byte, cs.Nh())
	if err := readRandom(n.cfg.rand, id.Nonce); err != nil {
		return nil, nil, err
	}
	me := Sender{Type: SenderMember, LeafIndex: uint32(n.myLeaf)}
	cc.committer = me
	list := []committedProposal{{proposal: &Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: id}}, sender: me}}
	for _, kp := range keyPackages {
		list = append(list, committedProposal{proposal: &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: *kp}}, sender: me})
	}
	for _, p := range opts.Proposals {
		list = append(list, committedProposal{proposal: p, sender: me})
	}
	pc, err := n.commit(list, &opts, cc, []*Group{g})
	if err != nil {
		return nil, nil, err
	}
	if _, err := n.MergePendingCommit(pc); err != nil {
		return nil, nil, err
	}
	return n, pc, nil
}

// checkResumption applies the rules of §12.4.3.1 for a Welcome with a
// resumption PSK of usage reinit or branch: the new group is at epoch 1,
// and it matches the ReInit of the old group's last Commit with every old
// member in it (reinit), or has the old group's version and cipher suite
// and only old members (branch). Members are matched by credential.
func (s *StagedWelcome) checkResumption(g *Group) error {
	id := s.resumed
	if g.ctx.Epoch != 1 {
		return fmt.Errorf("%w: a %v resumption into epoch %d, not 1", ErrInvalidWelcome, id.Usage, g.ctx.Epoch)
	}
	var old *Group
	for _, o := range s.cfg.resumeSources {
		if o != nil && bytes.Equal(o.ctx.GroupID, id.PSKGroupID) {
			old = o
			break
		}
	}
	if old == nil {
		return fmt.Errorf("%w: %w: group %x", ErrInvalidWelcome, ErrMissingPSK, id.PSKGroupID)
	}
	newMembers := credentialSet(&g.tree)
	switch id.Usage {
	case ResumptionReInit:
		r := old.reinit
		if r == nil || id.PSKEpoch != old.ctx.Epoch {
			return fmt.Errorf("%w: the old group's last Commit has no ReInit", ErrInvalidWelcome)
		}
		ctx := &g.ctx
		if !bytes.Equal(r.GroupID, ctx.GroupID) || r.Version != ctx.Version || r.CipherSuite != ctx.CipherSuite ||
			!extensionsEqual(r.Extensions, ctx.Extensions) {
			return fmt.Errorf("%w: the new group does not match the ReInit", ErrInvalidWelcome)
		}
		var missing error
		old.tree.forEachMember(func(l LeafIndex, ln *LeafNode) bool {
			if !newMembers[credentialKey(&ln.Credential)] {
				missing = fmt.Errorf("%w: member %d of the old group is not in the new one", ErrInvalidWelcome, l)
				return false
			}
			return true
		})
		return missing
	case ResumptionBranch:
		if old.ctx.Version != g.ctx.Version || old.ctx.CipherSuite != g.ctx.CipherSuite {
			return fmt.Errorf("%w: a branch with another version or cipher suite", ErrInvalidWelcome)
		}
		oldMembers := credentialSet(&old.tree)
		var stranger error
		g.tree.forEachMember(func(l LeafIndex, ln *LeafNode) bool {
			if !oldMembers[credentialKey(&ln.Credential)] {
				stranger = fmt.Errorf("%w: member %d of the branch is not in the old group", ErrInvalidWelcome, l)
				return false
			}
			return true
		})
		return stranger
	}
	return nil
}

// credentialKey identifies a member for the reinit and branch membership
// rules: by default, the encoded credential (the application's notion of
// "the same identity", §11.3).
func credentialKey(c *Credential) string {
	b, err := c.Marshal()
	if err != nil {
		return ""
	}
	return string(b)
}

func credentialSet(t *ratchetTree) map[string]bool {
	m := make(map[string]bool, t.memberCount())
	t.forEachMember(func(_ LeafIndex, ln *LeafNode) bool {
		m[credentialKey(&ln.Credential)] = true
		return true
	})
	return m
}

func extensionsEqual(a, b []Extension) bool {
	return slices.EqualFunc(a, b, func(x, y Extension) bool { return x.Type == y.Type && bytes.Equal(x.Data, y.Data) })
}
