package mls

import (
	"bytes"
	"fmt"
	"io"
	"slices"
)

// TreeKEM (§7.4–§7.6): the member's private view of the tree, UpdatePath
// generation by a committer and UpdatePath processing by the other members.
//
// Flow for a committer (§12.4.2), on a clone of the tree to which the
// Commit's proposals have been applied:
//
//	pp, _ := tree.generateUpdatePath(me, &template, sigPriv, groupID, rand)
//	// tree now holds the new path; compute the provisional GroupContext
//	// from tree.treeHash() and encode it:
//	up, _ := tree.encryptUpdatePath(pp, gcBytes, newMembers, rand)
//	// on merge: priv = pp.privateTree(); commit_secret = pp.commitSecret
//
// Flow for a receiver (§12.4.2), on clones of the tree (proposals applied)
// and of the private tree:
//
//	_ = tree.mergeUpdatePath(sender, up, newMembers, &validation)
//	// compute the provisional GroupContext from tree.treeHash()
//	dec, _ := priv.decryptUpdatePath(&tree, sender, up, gcBytes, newMembers)
//	// commit_secret = dec.commitSecret
//
// Both sides do O(log n) key derivations; the committer does one HPKE
// encryption per node of each copath child's resolution, which is one per
// level in a full tree without unmerged leaves.

// updatePathLabel is the EncryptWithLabel label of path secrets (§7.6).
const updatePathLabel = "UpdatePathNode"

// deriveNodeKeyPair derives a node's key pair from its path secret (§7.4):
// node_secret = DeriveSecret(path_secret, "node"), then DeriveKeyPair.
func deriveNodeKeyPair(cs CipherSuite, pathSecret []byte) (priv, pub []byte, err error) {
	nodeSecret, err := cs.DeriveSecret(pathSecret, "node")
	if err != nil {
		return nil, nil, err
	}
	return cs.DeriveKeyPair(nodeSecret)
}

// privateNode is the private key of a parent node on the member's direct
// path, with the public key it belongs to (used to detect that the node was
// replaced or blanked).
type privateNode struct {
	node NodeIndex
	pub  []byte
	priv []byte
}

// privateTree is the member's private TreeKEM state (§4.2, §7.4): the HPKE
// private key of its own leaf and the private keys of the parent nodes of
// its direct path that it knows. It is kept apart from the public
// ratchetTree; entries whose node no longer holds the matching public key
// are deleted by prune (and by decryptUpdatePath), as §7.5 requires for
// superseded key material. Path and node secrets are not kept: they are
// consumed when the keys are derived.
//
// Key slices are shared between clones and never modified in place
// ("deleting" drops the reference; older clones kept by the ordering module
// keep theirs until they are released). Not safe for concurrent use.
type privateTree struct {
	cs       CipherSuite
	leaf     LeafIndex
	leafPub  []byte
	leafPriv []byte
	nodes    []privateNode // ascending level
}

// newPrivateTree returns the private state of the member at leaf with HPKE
// private key leafPriv (from its KeyPackage or its last UpdatePath/Update).
func newPrivateTree(cs CipherSuite, leaf LeafIndex, leafPriv []byte) (privateTree, error) {
	pub, err := cs.HPKEPublicKey(leafPriv)
	if err != nil {
		return privateTree{}, err
	}
	return privateTree{cs: cs, leaf: leaf, leafPub: pub, leafPriv: leafPriv}, nil
}

// clone returns an independent copy sharing the immutable key bytes.
func (p *privateTree) clone() privateTree {
	c := *p
	c.nodes = slices.Clone(p.nodes)
	return c
}

// setLeafKey replaces the leaf private key (after the member's own Update
// proposal was committed).
func (p *privateTree) setLeafKey(priv []byte) error {
	pub, err := p.cs.HPKEPublicKey(priv)
	if err != nil {
		return err
	}
	p.leafPub, p.leafPriv = pub, priv
	return nil
}

// privateKey returns the private key for node x if the member holds the key
// matching x's current public key in t.
func (p *privateTree) privateKey(t *ratchetTree, x NodeIndex) []byte {
	pub := t.encryptionKey(x)
	if pub == nil {
		return nil
	}
	if x == p.leaf.nodeIndex() {
		if bytes.Equal(pub, p.leafPub) {
			return p.leafPriv
		}
		return nil
	}
	for _, e := range p.nodes {
		if e.node == x && bytes.Equal(e.pub, pub) {
			return e.priv
		}
	}
	return nil
}

// put stores the key pair of node x, replacing any older one.
func (p *privateTree) put(x NodeIndex, pub, priv []byte) {
	for i := range p.nodes {
		if p.nodes[i].node == x {
			p.nodes[i] = privateNode{x, pub, priv}
			return
		}
	}
	i := 0
	for i < len(p.nodes) && level(p.nodes[i].node) < level(x) {
		i++
	}
	p.nodes = slices.Insert(p.nodes, i, privateNode{x, pub, priv})
}

// setPathSecret derives the key pair of node x from its path secret and
// stores it (used when loading state, e.g. the treekem test vectors).
func (p *privateTree) setPathSecret(x NodeIndex, pathSecret []byte) error {
	priv, pub, err := deriveNodeKeyPair(p.cs, pathSecret)
	if err != nil {
		return err
	}
	p.put(x, pub, priv)
	return nil
}

// prune deletes the keys of nodes that are now blank, outside the tree or
// hold a different public key in t.
func (p *privateTree) prune(t *ratchetTree) {
	p.nodes = slices.DeleteFunc(p.nodes, func(e privateNode) bool {
		return !bytes.Equal(t.encryptionKey(e.node), e.pub)
	})
}

// consistent checks that the private state matches t: the member's leaf
// holds its public key, and every private node is a non-blank ancestor of
// that leaf holding the matching public key.
func (p *privateTree) consistent(t *ratchetTree) error {
	if !bytes.Equal(t.encryptionKey(p.leaf.nodeIndex()), p.leafPub) {
		return fmt.Errorf("mls: private tree: leaf %d does not hold the member's encryption key", p.leaf)
	}
	lo := uint64(p.leaf)
	for _, e := range p.nodes {
		a, b := subtreeLeaves(e.node)
		if isLeaf(e.node) || lo < a || lo >= b {
			return fmt.Errorf("mls: private tree: node %d is not on the direct path of leaf %d", e.node, p.leaf)
		}
		if !bytes.Equal(t.encryptionKey(e.node), e.pub) {
			return fmt.Errorf("mls: private tree: node %d does not hold the public key of its private key", e.node)
		}
	}
	return nil
}

// implant installs the path secret a joiner receives in its Welcome
// (§12.4.3.1): start is the lowest common ancestor of the joiner and the
// committer; the keys of start and of each node above it on the committer's
// filtered direct path are derived and must match the public keys in t.
func (p *privateTree) implant(t *ratchetTree, start NodeIndex, pathSecret []byte) error {
	n := t.numLeaves()
	if isLeaf(start) || !t.inRange(start) {
		return fmt.Errorf("%w: path secret for node %d", ErrInvalidUpdatePath, start)
	}
	type derived struct {
		x         NodeIndex
		pub, priv []byte
	}
	var out []derived
	secret := pathSecret
	x := start
	for {
		priv, pub, err := deriveNodeKeyPair(p.cs, secret)
		if err != nil {
			return err
		}
		if !bytes.Equal(pub, t.encryptionKey(x)) {
			return fmt.Errorf("%w: path secret does not match the public key of node %d", ErrInvalidUpdatePath, x)
		}
		out = append(out, derived{x, pub, priv})
		// Next node of the committer's filtered direct path above x.
		next, found := NodeIndex(0), false
		for c, ok := x, true; ok; {
			var a NodeIndex
			if a, ok = parent(c, n); !ok {
				break
			}
			s, _ := sibling(c, n)
			if !t.resolutionEmpty(s) {
				next, found = a, true
				break
			}
			c = a
		}
		if !found {
			break
		}
		if secret, err = p.cs.DeriveSecret(secret, "path"); err != nil {
			return err
		}
		x = next
	}
	for _, d := range out {
		p.put(d.x, d.pub, d.priv)
	}
	return nil
}

// pendingPath is what a committer keeps from generateUpdatePath until its
// Commit is merged or discarded.
type pendingPath struct {
	cs           CipherSuite
	sender       LeafIndex
	leafPub      []byte
	leafPriv     []byte
	path         []NodeIndex // filtered direct path, leaf to root
	copath       []NodeIndex // copath child of each path node
	pathSecrets  [][]byte    // path_secret[i] of path[i]
	pubs, privs  [][]byte    // node key pairs of path[i]
	commitSecret []byte
}

// generateUpdatePath refreshes the committer's path in t (§7.4, §7.5):
// fresh leaf key pair, path secrets for the filtered direct path (the first
// sampled from rand, each next one DeriveSecret(previous, "path")), node key
// pairs, parent hashes, and a new LeafNode copied from template with source
// commit, the new encryption key and parent hash, signed with sigPriv in the
// context of groupID and sender. t must be the tree with the Commit's
// proposals applied (a clone: it is modified in place); the sender's leaf
// may be blank (external commit). The commit secret is
// DeriveSecret(last path secret, "path"); with an empty filtered direct path
// (the committer is alone) it is derived from a fresh random secret.
func (t *ratchetTree) generateUpdatePath(sender LeafIndex, template *LeafNode, sigPriv, groupID []byte, rand io.Reader) (*pendingPath, error) {
	cs := t.cs
	if !t.inRange(sender.nodeIndex()) {
		return nil, fmt.Errorf("%w: committer leaf %d outside the tree", ErrInvalidUpdatePath, sender)
	}
	path, copath := t.filteredDirectPath(sender)
	leafPriv, leafPub, err := cs.GenerateHPKEKeyPair(rand)
	if err != nil {
		return nil, err
	}
	pp := &pendingPath{
		cs: cs, sender: sender, leafPub: leafPub, leafPriv: leafPriv,
		path: path, copath: copath,
		pathSecrets: make([][]byte, len(path)),
		pubs:        make([][]byte, len(path)),
		privs:       make([][]byte, len(path)),
	}
	secret := make([]byte, cs.Nh())
	if err := readRandom(rand, secret); err != nil {
		return nil, err
	}
	for i := range path {
		if i > 0 {
			if secret, err = cs.DeriveSecret(secret, "path"); err != nil {
				return nil, err
			}
		}
		pp.pathSecrets[i] = secret
		if pp.privs[i], pp.pubs[i], err = deriveNodeKeyPair(cs, secret); err != nil {
			return nil, err
		}
	}
	if pp.commitSecret, err = cs.DeriveSecret(secret, "path"); err != nil {
		return nil, err
	}
	nodePH, leafPH, err := t.pathParentHashes(path, copath, pp.pubs)
	if err != nil {
		return nil, err
	}
	ln := *template
	ln.EncryptionKey = leafPub
	ln.Source = LeafNodeSourceCommit
	ln.Lifetime = Lifetime{}
	ln.ParentHash = leafPH
	ln.Signature = nil
	if err := ln.Sign(cs, sigPriv, groupID, uint32(sender), rand); err != nil {
		return nil, err
	}
	stored, enc, err := cloneLeafNode(&ln) // not aliasing the caller's template
	if err != nil {
		return nil, err
	}
	t.installPath(sender, path, pp.pubs, nodePH)
	t.setLeafEnc(sender, stored, enc)
	return pp, nil
}

// encryptUpdatePath builds the UpdatePath of pp (§7.5, §7.6): for each node
// of the filtered direct path, its path secret is encrypted with
// EncryptWithLabel(·, "UpdatePathNode", groupContext, ·) to every node of
// the resolution of its copath child, leaving out the members added by this
// Commit (exclude). groupContext is the encoded provisional GroupContext.
// t must be the tree generateUpdatePath modified. The UpdatePath's LeafNode
// shares its byte slices with the tree: treat it as read-only.
func (t *ratchetTree) encryptUpdatePath(pp *pendingPath, groupContext []byte, exclude []LeafIndex, rand io.Reader) (*UpdatePath, error) {
	ln := t.leaf(pp.sender)
	if ln == nil || !bytes.Equal(ln.EncryptionKey, pp.leafPub) {
		return nil, fmt.Errorf("mls: encryptUpdatePath: the tree does not hold the generated path")
	}
	excl := leafSet(exclude)
	up := &UpdatePath{LeafNode: *ln, Nodes: make([]UpdatePathNode, len(pp.path))}
	var res []NodeIndex
	for i := range pp.path {
		res = t.appendResolution(res[:0], pp.copath[i], excl)
		cts := make([]HPKECiphertext, len(res))
		for j, x := range res {
			kem, ct, err := t.cs.EncryptWithLabel(t.encryptionKey(x), updatePathLabel, groupContext, pp.pathSecrets[i], rand)
			if err != nil {
				return nil, fmt.Errorf("mls: encrypting the path secret of node %d to node %d: %w", pp.path[i], x, err)
			}
			cts[j] = HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
		}
		up.Nodes[i] = UpdatePathNode{EncryptionKey: pp.pubs[i], EncryptedPathSecret: cts}
	}
	return up, nil
}

// privateTree returns the committer's private state after its Commit is
// merged: its new leaf key and the keys of its whole filtered direct path.
func (pp *pendingPath) privateTree() privateTree {
	p := privateTree{cs: pp.cs, leaf: pp.sender, leafPub: pp.leafPub, leafPriv: pp.leafPriv,
		nodes: make([]privateNode, len(pp.path))}
	for i, x := range pp.path {
		p.nodes[i] = privateNode{x, pp.pubs[i], pp.privs[i]}
	}
	return p
}

// pathSecretFor returns the path secret for a new member at leaf joiner
// (GroupSecrets.path_secret, §12.4.3.1): the secret of the lowest common
// ancestor of the committer and the joiner.
func (pp *pendingPath) pathSecretFor(joiner LeafIndex) ([]byte, bool) {
	ca := commonAncestor(pp.sender.nodeIndex(), joiner.nodeIndex())
	for i, x := range pp.path {
		if x == ca {
			return pp.pathSecrets[i], true
		}
	}
	return nil, false
}

// leafSet turns a list of leaf indices into a set (nil for an empty list).
func leafSet(leaves []LeafIndex) map[LeafIndex]bool {
	if len(leaves) == 0 {
		return nil
	}
	m := make(map[LeafIndex]bool, len(leaves))
	for _, l := range leaves {
		m[l] = true
	}
	return m
}

// mergeUpdatePath validates the public part of a received UpdatePath and
// merges it into t (§7.5 "merge UpdatePath into the tree", §12.4.2):
//
//   - it has one node per node of the sender's filtered direct path, and
//     each node one ciphertext per node of the copath child's resolution
//     without the Commit's new members (exclude);
//   - its LeafNode is valid for the sender's position with source commit
//     (§7.3 via validateLeafNode and v: signature over group_id and leaf
//     index, capabilities, unique keys, ...);
//   - no public key of the path is already in the tree or repeated, and each
//     is a valid HPKE key;
//   - the parent hash computed for the new path matches the LeafNode's
//     parent_hash (§7.9.2).
//
// Then the sender's direct path is blanked, the path's keys installed with
// their parent hashes and empty unmerged lists, and the leaf replaced. t is
// the tree after the Commit's proposals; on error it is left unchanged.
func (t *ratchetTree) mergeUpdatePath(sender LeafIndex, up *UpdatePath, exclude []LeafIndex, v *leafValidation) error {
	if !t.inRange(sender.nodeIndex()) {
		return fmt.Errorf("%w: sender leaf %d outside the tree", ErrInvalidUpdatePath, sender)
	}
	path, copath := t.filteredDirectPath(sender)
	if len(up.Nodes) != len(path) {
		return fmt.Errorf("%w: %d nodes for a filtered direct path of %d", ErrInvalidUpdatePath, len(up.Nodes), len(path))
	}
	excl := leafSet(exclude)
	var res []NodeIndex
	for i := range path {
		res = t.appendResolution(res[:0], copath[i], excl)
		if got := len(up.Nodes[i].EncryptedPathSecret); got != len(res) {
			return fmt.Errorf("%w: node %d has %d encrypted path secrets for a resolution of %d", ErrInvalidUpdatePath, path[i], got, len(res))
		}
	}
	if err := t.validateLeafNode(&up.LeafNode, sender, LeafNodeSourceCommit, v); err != nil {
		return treeErr([]error{ErrInvalidUpdatePath}, err, "leaf node")
	}
	pubs := make([][]byte, len(path))
	seen := make(map[string]bool, len(path)+1)
	seen[string(up.LeafNode.EncryptionKey)] = true
	for i := range up.Nodes {
		pub := up.Nodes[i].EncryptionKey
		if err := t.cs.ValidateHPKEPublicKey(pub); err != nil {
			return treeErr([]error{ErrInvalidUpdatePath}, err, "public key of node %d", path[i])
		}
		if seen[string(pub)] {
			return treeErr([]error{ErrInvalidUpdatePath, ErrDuplicateKey}, nil, "public key of node %d repeats another key of the path", path[i])
		}
		if x, ok := t.lookupEncryptionKey(pub); ok {
			return treeErr([]error{ErrInvalidUpdatePath, ErrDuplicateKey}, nil, "public key of node %d is already used by node %d", path[i], x)
		}
		seen[string(pub)] = true
		pubs[i] = pub
	}
	nodePH, leafPH, err := t.pathParentHashes(path, copath, pubs)
	if err != nil {
		return err
	}
	if !bytes.Equal(leafPH, up.LeafNode.ParentHash) {
		return treeErr([]error{ErrInvalidUpdatePath, ErrInvalidParentHash}, nil, "leaf parent_hash %x, computed %x", up.LeafNode.ParentHash, leafPH)
	}
	ln, enc, err := cloneLeafNode(&up.LeafNode)
	if err != nil {
		return err
	}
	for i := range pubs {
		pubs[i] = bytes.Clone(pubs[i])
	}
	t.installPath(sender, path, pubs, nodePH)
	t.setLeafEnc(sender, ln, enc)
	return nil
}

// pathDecryption is the result of decryptUpdatePath.
type pathDecryption struct {
	node         NodeIndex // filtered-direct-path node whose secret was decrypted
	pathSecret   []byte    // its path secret
	commitSecret []byte
}

// decryptUpdatePath processes an UpdatePath as a receiver (§7.5 "decrypt
// the path secrets"): it finds the node of the sender's filtered direct path
// whose copath child covers the member, decrypts that node's path secret
// with the key of the member's node in the copath child's resolution,
// derives the path secrets and key pairs up to the root, checks them
// against the public keys of up and t, stores the new private keys (dropping
// superseded ones) and returns commit_secret = DeriveSecret(last path
// secret, "path"). t must be the tree mergeUpdatePath produced from up;
// groupContext the encoded provisional GroupContext; exclude the Commit's
// new members. On error p is unchanged.
func (p *privateTree) decryptUpdatePath(t *ratchetTree, sender LeafIndex, up *UpdatePath, groupContext []byte, exclude []LeafIndex) (*pathDecryption, error) {
	cs := p.cs
	if sender == p.leaf {
		return nil, fmt.Errorf("%w: the member's own UpdatePath is not decrypted", ErrInvalidUpdatePath)
	}
	path, copath := t.filteredDirectPath(sender)
	if len(up.Nodes) != len(path) {
		return nil, fmt.Errorf("%w: %d nodes for a filtered direct path of %d", ErrInvalidUpdatePath, len(up.Nodes), len(path))
	}
	excl := leafSet(exclude)
	if excl[p.leaf] {
		return nil, fmt.Errorf("%w: a member added by the Commit gets its path secret from the Welcome", ErrNoPathKey)
	}
	me := uint64(p.leaf)
	i := -1
	for k, c := range copath {
		if lo, hi := subtreeLeaves(c); me >= lo && me < hi {
			i = k
			break
		}
	}
	if i < 0 {
		return nil, fmt.Errorf("%w: leaf %d is under no copath node of leaf %d", ErrNoPathKey, p.leaf, sender)
	}
	res := t.appendResolution(nil, copath[i], excl)
	cts := up.Nodes[i].EncryptedPathSecret
	if len(cts) != len(res) {
		return nil, fmt.Errorf("%w: node %d has %d encrypted path secrets for a resolution of %d", ErrInvalidUpdatePath, path[i], len(cts), len(res))
	}
	j := -1
	var priv []byte
	for k, x := range res {
		if priv = p.privateKey(t, x); priv != nil {
			j = k
			break
		}
	}
	if j < 0 {
		return nil, fmt.Errorf("%w: no key for the resolution of node %d", ErrNoPathKey, copath[i])
	}
	secret, err := cs.DecryptWithLabel(priv, updatePathLabel, groupContext, cts[j].KEMOutput, cts[j].Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("mls: decrypting the path secret of node %d: %w", path[i], err)
	}
	if len(secret) != cs.Nh() {
		return nil, fmt.Errorf("%w: path secret of %d bytes", ErrInvalidUpdatePath, len(secret))
	}
	dec := &pathDecryption{node: path[i], pathSecret: secret}
	fresh := make([]privateNode, 0, len(path)-i)
	for k := i; k < len(path); k++ {
		if k > i {
			if secret, err = cs.DeriveSecret(secret, "path"); err != nil {
				return nil, err
			}
		}
		nodePriv, nodePub, err := deriveNodeKeyPair(cs, secret)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(nodePub, up.Nodes[k].EncryptionKey) || !bytes.Equal(nodePub, t.encryptionKey(path[k])) {
			return nil, fmt.Errorf("%w: path secret does not match the public key of node %d", ErrInvalidUpdatePath, path[k])
		}
		fresh = append(fresh, privateNode{path[k], nodePub, nodePriv})
	}
	if dec.commitSecret, err = cs.DeriveSecret(secret, "path"); err != nil {
		return nil, err
	}
	p.prune(t)
	for _, e := range fresh {
		p.put(e.node, e.pub, e.priv)
	}
	return dec, nil
}
