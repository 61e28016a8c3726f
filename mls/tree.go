package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// The ratchet tree (RFC 9420 §4, §7).
//
// Representation. ratchetTree keeps the public tree in the array layout of
// Appendix C, split by node kind: leaves[i] is leaf i (node 2i) and
// parents[i] is node 2i+1; a nil entry is a blank node. The tree is always
// full (§7.7): len(leaves) is a power of two (or zero for the empty tree
// under construction), and node indices are stable under extension and
// truncation, so caches and private keys keyed by node index stay valid.
//
// Immutability and cloning. LeafNode and ParentNode values, once stored in a
// tree, are never modified: every change stores a new value (copy-on-write),
// so clone only copies slices of pointers and every clone shares the node
// data. The same holds for cached hashes. The ordering module keeps the trees
// of past epochs; a clone costs three pointer-slice copies (about 32 bytes
// per leaf) plus the small maps of the key-uniqueness overlay and the
// credential statistics. Plain struct assignment does NOT clone: the copy
// would share the slices. Use clone.
//
// Caches. hashes[x] is the tree hash of node x (§7.8) or nil when it must be
// recomputed. Invariant: if hashes[x] is nil then so is the hash of every
// ancestor of x. Every mutation goes through setLeaf/setParent, which clear
// the node's hash and its ancestors' (stopping at the first ancestor that is
// already clear), so an Add, Update, Remove or UpdatePath dirties O(log n)
// nodes and recomputing the root hash touches only those. Extension adds a
// blank right half whose hashes are computed once, on the next tree hash.
//
// Concurrency: a ratchetTree is not safe for concurrent use, not even for
// reads (reads fill caches). Distinct clones may be used by distinct
// goroutines.
//
// Ownership: the tree never aliases caller memory it did not take over
// explicitly. addLeaves, updateLeaf and mergeUpdatePath store deep copies of
// the LeafNodes they are given (decoded messages alias their input buffers);
// treeFromWire takes ownership of the decoded nodes (unmarshalTree decodes a
// private copy of its input). Pointers and byte slices returned by accessors
// are shared with the tree and every clone and must be treated as read-only.
type ratchetTree struct {
	cs      CipherSuite
	leaves  []*LeafNode
	parents []*ParentNode
	hashes  []*nodeHash

	// Encryption- and signature-key index for the §7.3 uniqueness checks
	// (see keyIndex in treevalidate.go): an immutable base shared by clones
	// plus a small per-tree overlay of keys set since the base was built.
	keyBase   *keyIndex
	encAdded  map[string]NodeIndex
	sigAdded  map[string]LeafIndex
	overlayed int

	// Credential statistics over the non-blank leaves, kept up to date by
	// setLeaf, for the §7.3 credential-support checks; supportCache counts
	// the supporters of credential types no member uses yet (cleared by
	// setLeaf, not shared by clones).
	stats        leafStats
	supportCache map[CredentialType]int
}

// Sentinel errors of the ratchet tree. Errors wrap the most specific one;
// every failure of whole-tree validation also wraps ErrInvalidTree.
var (
	// ErrInvalidTree: a ratchet tree (received in a Welcome, fetched over
	// p2p, or restored) is not valid.
	ErrInvalidTree = errors.New("mls: invalid ratchet tree")
	// ErrTreeHashMismatch: the tree hash does not match the expected one.
	ErrTreeHashMismatch = errors.New("mls: tree hash mismatch")
	// ErrInvalidParentHash: a parent hash (in a tree or an UpdatePath) does
	// not verify (§7.9.2).
	ErrInvalidParentHash = errors.New("mls: invalid parent hash")
	// ErrDuplicateKey: an encryption or signature key appears twice in the
	// tree, or a new key is already in use (§7.3, §12.4.2).
	ErrDuplicateKey = errors.New("mls: duplicate key")
	// ErrInvalidUnmergedLeaves: an unmerged_leaves list is inconsistent
	// (§12.4.3.1).
	ErrInvalidUnmergedLeaves = errors.New("mls: invalid unmerged leaves")
	// ErrInvalidUpdatePath: an UpdatePath does not fit the tree (§7.5, §7.6).
	ErrInvalidUpdatePath = errors.New("mls: invalid update path")
	// ErrNoPathKey: the receiver holds no private key for any node the
	// UpdatePath is encrypted to (§7.5).
	ErrNoPathKey = errors.New("mls: no private key for the update path")
	// ErrBlankLeaf: an operation names a blank or nonexistent leaf.
	ErrBlankLeaf = errors.New("mls: blank or nonexistent leaf")
)

// treeError is an error that wraps several sentinels (e.g. ErrInvalidTree
// and ErrInvalidParentHash) and, optionally, a cause, under one message.
type treeError struct {
	msg   string
	kinds []error
}

func (e *treeError) Error() string   { return e.msg }
func (e *treeError) Unwrap() []error { return e.kinds }

// treeErr builds a treeError whose message is the first kind's message
// followed by the formatted detail; cause (if non-nil) is appended to the
// message and wrapped too.
func treeErr(kinds []error, cause error, format string, args ...any) error {
	msg := kinds[0].Error() + ": " + fmt.Sprintf(format, args...)
	ks := slices.Clone(kinds)
	if cause != nil {
		msg += ": " + cause.Error()
		ks = append(ks, cause)
	}
	return &treeError{msg: msg, kinds: ks}
}

// nodeHash is an immutable cached hash (Nh ≤ 64 bytes), allocated once.
type nodeHash struct {
	n uint8
	b [64]byte
}

func newNodeHash(h []byte) *nodeHash {
	nh := &nodeHash{n: uint8(len(h))}
	copy(nh.b[:], h)
	return nh
}

func (h *nodeHash) bytes() []byte { return h.b[:h.n:h.n] }

// newRatchetTree returns an empty tree (no leaves) for suite cs. A group's
// first member is added with addLeaves.
func newRatchetTree(cs CipherSuite) ratchetTree {
	return ratchetTree{cs: cs, stats: newLeafStats()}
}

// treeFromWire builds a tree from its ratchet_tree wire form (§12.4.3.3):
// the node list is extended with blanks to the next full width 2^(d+1)-1.
// The tree takes ownership of the nodes' LeafNode and ParentNode values.
// Only structural checks are done here (node types by index parity, a
// non-blank last node, size limits); validate performs §12.4.3.1.
func treeFromWire(cs CipherSuite, nodes RatchetTree) (ratchetTree, error) {
	if !cs.Supported() {
		return ratchetTree{}, &UnsupportedCipherSuiteError{cs}
	}
	m := len(nodes)
	if m == 0 || nodes[m-1] == nil {
		return ratchetTree{}, treeErr([]error{ErrInvalidTree}, nil, "ratchet tree is empty or ends with a blank node")
	}
	if uint64(m) > uint64(nodeWidth(maxLeaves)) {
		return ratchetTree{}, treeErr([]error{ErrInvalidTree}, nil, "ratchet tree has %d nodes", m)
	}
	n := uint32(1)
	for uint64(nodeWidth(n)) < uint64(m) {
		n <<= 1
	}
	t := ratchetTree{
		cs:      cs,
		leaves:  make([]*LeafNode, n),
		parents: make([]*ParentNode, n-1),
		hashes:  make([]*nodeHash, nodeWidth(n)),
		stats:   newLeafStats(),
	}
	for i, node := range nodes {
		if node == nil {
			continue
		}
		if i%2 == 0 {
			if node.Type != NodeTypeLeaf || node.Leaf == nil {
				return ratchetTree{}, treeErr([]error{ErrInvalidTree}, nil, "node %d is not a leaf node", i)
			}
			t.leaves[i/2] = node.Leaf
			t.stats.add(node.Leaf, t.leaves)
		} else {
			if node.Type != NodeTypeParent || node.Parent == nil {
				return ratchetTree{}, treeErr([]error{ErrInvalidTree}, nil, "node %d is not a parent node", i)
			}
			t.parents[i/2] = node.Parent
		}
	}
	return t, nil
}

// unmarshalTree decodes an `optional<Node> ratchet_tree<V>` encoding. The
// input is copied, so the tree never aliases data.
func unmarshalTree(cs CipherSuite, data []byte) (ratchetTree, error) {
	var nodes RatchetTree
	if err := nodes.Unmarshal(bytes.Clone(data)); err != nil {
		return ratchetTree{}, err
	}
	return treeFromWire(cs, nodes)
}

// wire returns the ratchet_tree wire form of t without trailing blank nodes
// (§12.4.3.3). The Node values are fresh but share the tree's immutable
// LeafNode/ParentNode values: callers must not modify them.
//
// Round trip: treeFromWire(t.wire()) restores t exactly whenever the last
// non-blank node lies in the right half of the array, which every tree
// produced by the operations of this file satisfies (Add fills or extends,
// Remove truncates). A one-leaf tree is its single leaf.
func (t *ratchetTree) wire() RatchetTree {
	w := t.width()
	last := -1
	for x := int(w) - 1; x >= 0; x-- {
		if !t.blank(NodeIndex(x)) {
			last = x
			break
		}
	}
	nodes := make(RatchetTree, last+1)
	for x := range nodes {
		if x%2 == 0 {
			if ln := t.leaves[x/2]; ln != nil {
				nodes[x] = &Node{Type: NodeTypeLeaf, Leaf: ln}
			}
		} else if pn := t.parents[x/2]; pn != nil {
			nodes[x] = &Node{Type: NodeTypeParent, Parent: pn}
		}
	}
	return nodes
}

// marshal encodes t as `optional<Node> ratchet_tree<V>`, the form of the
// ratchet_tree extension and of canopy's stored group state.
func (t *ratchetTree) marshal() ([]byte, error) {
	return t.wire().Marshal()
}

// clone returns an independent copy of t that shares all immutable node
// values and cached hashes with t.
func (t *ratchetTree) clone() ratchetTree {
	c := ratchetTree{
		cs:        t.cs,
		leaves:    slices.Clone(t.leaves),
		parents:   slices.Clone(t.parents),
		hashes:    slices.Clone(t.hashes),
		keyBase:   t.keyBase,
		overlayed: t.overlayed,
		stats:     t.stats.clone(),
	}
	if t.encAdded != nil {
		c.encAdded = make(map[string]NodeIndex, len(t.encAdded))
		for k, v := range t.encAdded {
			c.encAdded[k] = v
		}
		c.sigAdded = make(map[string]LeafIndex, len(t.sigAdded))
		for k, v := range t.sigAdded {
			c.sigAdded[k] = v
		}
	}
	return c
}

// suite returns the tree's cipher suite.
func (t *ratchetTree) suite() CipherSuite { return t.cs }

// numLeaves is the number of leaf slots (a power of two, or 0).
func (t *ratchetTree) numLeaves() uint32 { return uint32(len(t.leaves)) }

// width is the number of nodes, 2*numLeaves-1 (0 for the empty tree).
func (t *ratchetTree) width() uint32 { return nodeWidth(t.numLeaves()) }

// root is the root node index.
func (t *ratchetTree) root() NodeIndex { return root(t.numLeaves()) }

// inRange reports whether x is a node of t.
func (t *ratchetTree) inRange(x NodeIndex) bool { return uint32(x) < t.width() }

// leaf returns the LeafNode at l, or nil if l is blank or out of range.
func (t *ratchetTree) leaf(l LeafIndex) *LeafNode {
	if uint64(l) >= uint64(len(t.leaves)) {
		return nil
	}
	return t.leaves[l]
}

// parentNode returns the ParentNode at x, or nil if x is blank, a leaf or
// out of range.
func (t *ratchetTree) parentNode(x NodeIndex) *ParentNode {
	if isLeaf(x) || uint64(x>>1) >= uint64(len(t.parents)) {
		return nil
	}
	return t.parents[x>>1]
}

// blank reports whether node x is blank (or out of range).
func (t *ratchetTree) blank(x NodeIndex) bool {
	if isLeaf(x) {
		return t.leaf(LeafIndex(x>>1)) == nil
	}
	return t.parentNode(x) == nil
}

// encryptionKey returns the HPKE public key of node x, or nil if blank.
func (t *ratchetTree) encryptionKey(x NodeIndex) []byte {
	if isLeaf(x) {
		if ln := t.leaf(LeafIndex(x >> 1)); ln != nil {
			return ln.EncryptionKey
		}
		return nil
	}
	if pn := t.parentNode(x); pn != nil {
		return pn.EncryptionKey
	}
	return nil
}

// memberCount is the number of non-blank leaves.
func (t *ratchetTree) memberCount() int { return t.stats.members }

// forEachMember calls f for each non-blank leaf in index order until f
// returns false.
func (t *ratchetTree) forEachMember(f func(LeafIndex, *LeafNode) bool) {
	for i, ln := range t.leaves {
		if ln != nil && !f(LeafIndex(i), ln) {
			return
		}
	}
}

// setLeaf stores ln (nil blanks the leaf) and invalidates the path's hashes.
func (t *ratchetTree) setLeaf(l LeafIndex, ln *LeafNode) {
	old := t.leaves[l]
	if old == ln {
		return
	}
	t.leaves[l] = ln
	t.stats.remove(old)
	t.stats.add(ln, t.leaves)
	t.supportCache = nil
	if ln != nil {
		t.noteKeys(l.nodeIndex(), ln.EncryptionKey, ln.SignatureKey)
	}
	t.dirty(l.nodeIndex())
}

// setParent stores pn (nil blanks the node) at parent node x.
func (t *ratchetTree) setParent(x NodeIndex, pn *ParentNode) {
	if t.parents[x>>1] == pn {
		return
	}
	t.parents[x>>1] = pn
	if pn != nil {
		t.noteKeys(x, pn.EncryptionKey, nil)
	}
	t.dirty(x)
}

// dirty clears the cached hash of x and of its ancestors.
func (t *ratchetTree) dirty(x NodeIndex) {
	n := t.numLeaves()
	for {
		if t.hashes[x] == nil {
			// Invariant: every ancestor of an uncached node is uncached.
			return
		}
		t.hashes[x] = nil
		p, ok := parent(x, n)
		if !ok {
			return
		}
		x = p
	}
}

// extend doubles the number of leaves, adding a blank root and a blank
// right subtree (§7.7). The empty tree becomes a one-leaf tree.
func (t *ratchetTree) extend() {
	n := len(t.leaves)
	if n == 0 {
		t.leaves = append(t.leaves, nil)
		t.hashes = append(t.hashes, nil)
		return
	}
	t.leaves = append(t.leaves, make([]*LeafNode, n)...)
	t.parents = append(t.parents, make([]*ParentNode, n)...)
	t.hashes = append(t.hashes, make([]*nodeHash, 2*n)...)
}

// truncate removes right subtrees without non-blank leaves (§7.7, §12.1.3):
// with L the rightmost non-blank leaf, the tree keeps the smallest power of
// two of leaves greater than L. A tree without members becomes empty.
func (t *ratchetTree) truncate() {
	last := len(t.leaves) - 1
	for last >= 0 && t.leaves[last] == nil {
		last--
	}
	n := 0
	if last >= 0 {
		n = 1
		for n <= last {
			n <<= 1
		}
	}
	if n == len(t.leaves) {
		return
	}
	clear(t.leaves[n:])
	t.leaves = t.leaves[:n]
	np := max(n-1, 0)
	clear(t.parents[np:])
	t.parents = t.parents[:np]
	w := int(nodeWidth(uint32(n)))
	clear(t.hashes[w:])
	t.hashes = t.hashes[:w]
}

// addLeaves adds the leaves in order (§12.1.1): each goes to the leftmost
// blank leaf, the tree being extended when none is left, and is added to the
// unmerged_leaves of every non-blank parent on its direct path. It returns
// the leaf index of each. The unmerged lists are rewritten once per parent
// node for the whole batch, so adding k members costs O(k log n) plus the
// size of the lists touched. The LeafNodes are deep-copied (see
// cloneLeafNode); on error (a LeafNode that cannot be encoded) t is
// unchanged.
func (t *ratchetTree) addLeaves(lns []*LeafNode) ([]LeafIndex, error) {
	copies := make([]*LeafNode, len(lns))
	for i, ln := range lns {
		c, err := cloneLeafNode(ln)
		if err != nil {
			return nil, err
		}
		copies[i] = c
	}
	at := make([]LeafIndex, len(copies))
	next := 0
	for i, ln := range copies {
		for next < len(t.leaves) && t.leaves[next] != nil {
			next++
		}
		if next == len(t.leaves) {
			t.extend()
		}
		t.setLeaf(LeafIndex(next), ln)
		at[i] = LeafIndex(next)
		next++
	}
	// Positions are increasing, so each parent's additions are sorted.
	adds := map[NodeIndex][]uint32{}
	n := t.numLeaves()
	for _, l := range at {
		for x, ok := parent(l.nodeIndex(), n); ok; x, ok = parent(x, n) {
			if t.parents[x>>1] != nil {
				adds[x] = append(adds[x], uint32(l))
			}
		}
	}
	for x, list := range adds {
		old := t.parents[x>>1]
		pn := *old
		pn.UnmergedLeaves = mergeSorted(old.UnmergedLeaves, list)
		t.setParent(x, &pn)
	}
	return at, nil
}

// addLeaf adds one leaf; see addLeaves.
func (t *ratchetTree) addLeaf(ln *LeafNode) (LeafIndex, error) {
	at, err := t.addLeaves([]*LeafNode{ln})
	if err != nil {
		return 0, err
	}
	return at[0], nil
}

// cloneLeafNode returns a deep copy of ln (through its encoding), so that
// the tree does not alias message buffers or caller-owned slices.
func cloneLeafNode(ln *LeafNode) (*LeafNode, error) {
	if ln == nil {
		return nil, fmt.Errorf("%w: nil leaf node", ErrBlankLeaf)
	}
	enc, err := ln.Marshal()
	if err != nil {
		return nil, err
	}
	c := new(LeafNode)
	if err := c.Unmarshal(enc); err != nil {
		return nil, err
	}
	return c, nil
}

// mergeSorted returns the sorted union of two sorted lists (duplicates
// dropped) in a new slice.
func mergeSorted(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var v uint32
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			v, i = a[i], i+1
		case i == len(a) || b[j] < a[i]:
			v, j = b[j], j+1
		default:
			v, i, j = a[i], i+1, j+1
		}
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}

// updateLeaf applies an Update (§12.1.2): the leaf at l is replaced by ln
// and the intermediate nodes of its direct path are blanked.
func (t *ratchetTree) updateLeaf(l LeafIndex, ln *LeafNode) error {
	if t.leaf(l) == nil {
		return fmt.Errorf("%w: update of leaf %d", ErrBlankLeaf, l)
	}
	c, err := cloneLeafNode(ln)
	if err != nil {
		return err
	}
	t.setLeaf(l, c)
	t.blankPath(l)
	return nil
}

// removeLeaf applies a Remove (§12.1.3): the leaf and its direct path are
// blanked and the tree is truncated.
func (t *ratchetTree) removeLeaf(l LeafIndex) error {
	if t.leaf(l) == nil {
		return fmt.Errorf("%w: remove of leaf %d", ErrBlankLeaf, l)
	}
	t.setLeaf(l, nil)
	t.blankPath(l)
	t.truncate()
	return nil
}

// blankPath blanks every parent node on the direct path of leaf l.
func (t *ratchetTree) blankPath(l LeafIndex) {
	n := t.numLeaves()
	for x, ok := parent(l.nodeIndex(), n); ok; x, ok = parent(x, n) {
		if t.parents[x>>1] != nil {
			t.setParent(x, nil)
		}
	}
}

// resolution returns the resolution of x (§4.1.1): the nearest non-blank
// nodes below x, left to right, each non-blank parent followed by its
// unmerged leaves.
func (t *ratchetTree) resolution(x NodeIndex) []NodeIndex {
	return t.appendResolution(nil, x, nil)
}

// appendResolution appends the resolution of x to dst, leaving out the
// leaves in exclude (new members of the current Commit, §7.6).
func (t *ratchetTree) appendResolution(dst []NodeIndex, x NodeIndex, exclude map[LeafIndex]bool) []NodeIndex {
	if isLeaf(x) {
		l := LeafIndex(x >> 1)
		if t.leaf(l) != nil && !exclude[l] {
			dst = append(dst, x)
		}
		return dst
	}
	if pn := t.parentNode(x); pn != nil {
		dst = append(dst, x)
		for _, u := range pn.UnmergedLeaves {
			if !exclude[LeafIndex(u)] {
				dst = append(dst, LeafIndex(u).nodeIndex())
			}
		}
		return dst
	}
	if !t.inRange(x) {
		return dst
	}
	l, _ := left(x)
	r, _ := right(x)
	dst = t.appendResolution(dst, l, exclude)
	return t.appendResolution(dst, r, exclude)
}

// resolutionEmpty reports whether the resolution of x is empty, i.e. no node
// of the subtree under x is non-blank. It stops at the first non-blank node.
func (t *ratchetTree) resolutionEmpty(x NodeIndex) bool {
	if !t.blank(x) {
		return false
	}
	if isLeaf(x) || !t.inRange(x) {
		return true
	}
	l, _ := left(x)
	r, _ := right(x)
	return t.resolutionEmpty(l) && t.resolutionEmpty(r)
}

// filteredDirectPath returns the filtered direct path of leaf l (§4.1.2),
// from the leaf's parent to the root, and for each of its nodes the child on
// l's copath (whose resolution is non-empty).
func (t *ratchetTree) filteredDirectPath(l LeafIndex) (path, copathChildren []NodeIndex) {
	n := t.numLeaves()
	x := l.nodeIndex()
	if !inTree(x, n) {
		return nil, nil
	}
	for {
		p, ok := parent(x, n)
		if !ok {
			return path, copathChildren
		}
		s, _ := sibling(x, n)
		if !t.resolutionEmpty(s) {
			path = append(path, p)
			copathChildren = append(copathChildren, s)
		}
		x = p
	}
}

// findLeaf returns the first non-blank leaf for which match is true.
func (t *ratchetTree) findLeaf(match func(*LeafNode) bool) (LeafIndex, bool) {
	for i, ln := range t.leaves {
		if ln != nil && match(ln) {
			return LeafIndex(i), true
		}
	}
	return 0, false
}
