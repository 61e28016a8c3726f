package mls

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Serialization of the whole group state (canopy's own encoding, not an
// RFC 9420 structure). The encoding is canonical — maps are written in
// sorted order — so MarshalState(UnmarshalState(b)) == b. It holds every
// secret of the member: the store seals it at rest. Local policy (Options)
// and pending Commits are not part of it.
//
//	struct {
//	    uint8 version = 1;
//	    GroupContext context;
//	    optional<Node> ratchet_tree<V>;
//	    uint32 my_leaf;
//	    opaque signature_priv<V>;
//	    opaque leaf_priv<V>;
//	    PrivateNode private_nodes<V>;        // node, pub, priv
//	    opaque interim_transcript_hash<V>;
//	    opaque confirmation_tag<V>;
//	    opaque epoch_secrets<V>;             // EpochSecretsState
//	    opaque secret_tree<V>;               // SecretTreeState
//	    PastEpoch past<V>;                   // context, sender_data_secret, secret_tree, leaves
//	    Resumption resumption<V>;            // epoch, psk
//	    CachedProposal proposals<V>;         // ref, sender, proposal
//	    OwnUpdate updates<V>;                // ref, enc_priv, leaf (sorted by ref)
//	    ExternalPSK psks<V>;                 // id, psk (sorted by id)
//	    optional<ReInit> reinit;
//	    uint8 removed;
//	} GroupState;

const groupStateVersion = 1

// MarshalState returns the encoding of the whole group state.
func (g *Group) MarshalState() ([]byte, error) {
	tree, err := g.tree.marshal()
	if err != nil {
		return nil, err
	}
	secrets, err := g.secrets.marshalBinary()
	if err != nil {
		return nil, err
	}
	var stree []byte
	if g.stree != nil {
		if stree, err = g.stree.marshalBinary(); err != nil {
			return nil, err
		}
	}
	pastTrees := make([][]byte, len(g.past))
	for i, p := range g.past {
		if pastTrees[i], err = p.stree.marshalBinary(); err != nil {
			return nil, err
		}
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(groupStateVersion)
	g.ctx.marshal(b)
	addOpaque(b, tree)
	b.AddUint32(uint32(g.myLeaf))
	addOpaque(b, g.sigPriv)
	addOpaque(b, g.priv.leafPriv)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, n := range g.priv.nodes {
			b.AddUint32(uint32(n.node))
			addOpaque(b, n.pub)
			addOpaque(b, n.priv)
		}
	})
	addOpaque(b, g.interim)
	addOpaque(b, g.confTag)
	addOpaque(b, secrets)
	addOpaque(b, stree)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i, p := range g.past {
			p.ctx.marshal(b)
			addOpaque(b, p.senderDataSecret)
			addOpaque(b, pastTrees[i])
			addVarVector(b, func(b *cryptobyte.Builder) {
				for _, l := range slices.Sorted(maps.Keys(p.leaves)) {
					b.AddUint32(uint32(l))
					ln := p.leaves[l]
					addOptional(b, ln != nil, func(b *cryptobyte.Builder) { ln.marshal(b) })
				}
			})
		}
	})
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, r := range g.resume {
			b.AddUint64(r.epoch)
			addOpaque(b, r.psk)
		}
	})
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, c := range g.props {
			addOpaque(b, c.ref)
			c.sender.marshal(b)
			c.proposal.marshal(b)
		}
	})
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, r := range slices.Sorted(maps.Keys(g.updates)) {
			u := g.updates[r]
			addOpaque(b, []byte(r))
			addOpaque(b, u.encPriv)
			u.leaf.marshal(b)
		}
	})
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, id := range slices.Sorted(maps.Keys(g.psks)) {
			addOpaque(b, []byte(id))
			addOpaque(b, g.psks[id])
		}
	})
	addOptional(b, g.reinit != nil, func(b *cryptobyte.Builder) { g.reinit.marshal(b) })
	addBool(b, g.removed)
	return b.Bytes()
}

// UnmarshalState restores a group from MarshalState's output with the
// given local policy. The restored state is checked for consistency (tree
// hash, the member's leaf and private keys, secret tree sizes); errors
// wrap ErrInvalidState.
func UnmarshalState(data []byte, opts ...Option) (*Group, error) {
	g := &Group{}
	g.adoptConfig(newConfig(opts))
	s := cryptobyte.String(bytes.Clone(data))
	for _, read := range []func(*cryptobyte.String) error{g.unmarshalEpoch, g.unmarshalPast, g.unmarshalPending} {
		if err := read(&s); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalidState, err)
		}
	}
	return g, nil
}

// stateErr is the detail of an ErrInvalidState.
func stateErr(format string, args ...any) error { return fmt.Errorf(format, args...) }

// unmarshalEpoch reads the current epoch of a state: GroupContext, ratchet
// tree (checked against the tree hash), own keys and the epoch's secrets.
func (g *Group) unmarshalEpoch(s *cryptobyte.String) error {
	var (
		version              uint8
		tree, secrets, stree []byte
		myLeaf               uint32
		leafPriv             []byte
	)
	type privNode struct {
		node      uint32
		pub, priv []byte
	}
	var nodes []privNode
	if !s.ReadUint8(&version) || version != groupStateVersion ||
		!g.ctx.unmarshal(s) || !readOpaque(s, &tree) || !s.ReadUint32(&myLeaf) ||
		!readOpaque(s, &g.sigPriv) || !readOpaque(s, &leafPriv) ||
		!readVector(s, func(s *cryptobyte.String) bool {
			var n privNode
			if !s.ReadUint32(&n.node) || !readOpaque(s, &n.pub) || !readOpaque(s, &n.priv) {
				return false
			}
			nodes = append(nodes, n)
			return true
		}) ||
		!readOpaque(s, &g.interim) || !readOpaque(s, &g.confTag) ||
		!readOpaque(s, &secrets) || !readOpaque(s, &stree) {
		return stateErr("header")
	}
	cs := g.ctx.CipherSuite
	if !cs.Supported() {
		return stateErr("cipher suite %v", cs)
	}
	var err error
	if g.tree, err = unmarshalTree(cs, tree); err != nil {
		return stateErr("tree: %v", err)
	}
	if err := g.tree.computeHashesParallel(); err != nil {
		return stateErr("tree hash: %v", err)
	}
	th, err := g.tree.treeHash()
	if err != nil || !bytes.Equal(th, g.ctx.TreeHash) {
		return stateErr("the tree does not match the GroupContext's tree hash")
	}
	g.myLeaf = LeafIndex(myLeaf)
	if g.tree.leaf(g.myLeaf) == nil {
		return stateErr("own leaf %d is blank", myLeaf)
	}
	if g.priv, err = newPrivateTree(cs, g.myLeaf, leafPriv); err != nil {
		return stateErr("leaf key: %v", err)
	}
	for _, n := range nodes {
		g.priv.put(NodeIndex(n.node), n.pub, n.priv)
	}
	if !slices.EqualFunc(g.priv.nodes, nodes, func(a privateNode, b privNode) bool { return uint32(a.node) == b.node }) {
		return stateErr("private nodes out of order")
	}
	if err := g.priv.consistent(&g.tree); err != nil {
		return stateErr("%v", err)
	}
	if g.secrets, err = unmarshalEpochSecrets(secrets); err != nil || g.secrets.Suite != cs {
		return stateErr("epoch secrets")
	}
	if g.stree, err = unmarshalSecretTree(stree, g.cfg.treeOpts); err != nil || g.stree.cs != cs ||
		g.stree.leafCount() != g.tree.numLeaves() {
		return stateErr("secret tree")
	}
	return nil
}

// unmarshalPast reads the window of past epochs kept for late application
// messages.
func (g *Group) unmarshalPast(s *cryptobyte.String) error {
	cs := g.ctx.CipherSuite
	if !readVector(s, func(s *cryptobyte.String) bool {
		p := &pastEpoch{leaves: map[LeafIndex]*LeafNode{}}
		var st []byte
		if !p.ctx.unmarshal(s) || !readOpaque(s, &p.senderDataSecret) || !readOpaque(s, &st) {
			return false
		}
		t, err := unmarshalSecretTree(st, g.cfg.treeOpts)
		if err != nil || t.cs != cs || p.ctx.CipherSuite != cs || len(p.senderDataSecret) != cs.Nh() {
			return false
		}
		p.stree = t
		last := int64(-1)
		if !readVector(s, func(s *cryptobyte.String) bool {
			var l uint32
			var present bool
			ln := new(LeafNode)
			if !s.ReadUint32(&l) || int64(l) <= last || !readOptional(s, &present, ln.unmarshal) {
				return false
			}
			last = int64(l)
			if !present {
				ln = nil
			}
			p.leaves[LeafIndex(l)] = ln
			return true
		}) {
			return false
		}
		g.past = append(g.past, p)
		return true
	}) {
		return stateErr("past epochs")
	}
	return nil
}

// unmarshalPending reads what the epoch has accumulated: resumption PSKs,
// received proposals, own updates, external PSKs and a pending ReInit.
func (g *Group) unmarshalPending(s *cryptobyte.String) error {
	if !readVector(s, func(s *cryptobyte.String) bool {
		var r resumptionEntry
		if !s.ReadUint64(&r.epoch) || !readOpaque(s, &r.psk) {
			return false
		}
		g.resume = append(g.resume, r)
		return true
	}) {
		return stateErr("resumption PSKs")
	}
	if !readVector(s, func(s *cryptobyte.String) bool {
		var c cachedProposal
		c.proposal = new(Proposal)
		if !readOpaque(s, (*[]byte)(&c.ref)) || !c.sender.unmarshal(s) || !c.proposal.unmarshal(s) {
			return false
		}
		g.props = append(g.props, c)
		return true
	}) {
		return stateErr("proposals")
	}
	lastRef := ""
	first := true
	if !readVector(s, func(s *cryptobyte.String) bool {
		var ref []byte
		u := ownUpdate{leaf: new(LeafNode)}
		if !readOpaque(s, &ref) || !readOpaque(s, &u.encPriv) || !u.leaf.unmarshal(s) ||
			(!first && string(ref) <= lastRef) {
			return false
		}
		first, lastRef = false, string(ref)
		if g.updates == nil {
			g.updates = map[string]ownUpdate{}
		}
		g.updates[string(ref)] = u
		return true
	}) {
		return stateErr("updates")
	}
	first = true
	lastID := ""
	if !readVector(s, func(s *cryptobyte.String) bool {
		var id, v []byte
		if !readOpaque(s, &id) || !readOpaque(s, &v) || (!first && string(id) <= lastID) {
			return false
		}
		first, lastID = false, string(id)
		if g.psks == nil {
			g.psks = map[string][]byte{}
		}
		g.psks[string(id)] = v
		return true
	}) {
		return stateErr("external PSKs")
	}
	var present bool
	r := new(ReInit)
	if !readOptional(s, &present, r.unmarshal) || !readBool(s, &g.removed) || !s.Empty() {
		return stateErr("trailer")
	}
	if present {
		g.reinit = r
	}
	return nil
}
