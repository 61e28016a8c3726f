package mls

import (
	"fmt"
	"slices"
	"sync/atomic"
)

// The ratchet tree (RFC 9420 §4, §7).
//
// Representation. ratchetTree keeps the public tree in the array layout of
// Appendix C: slot x of nodes is node x (leaf i is node 2i, parents are odd);
// a nil LeafNode/ParentNode is a blank node. The tree is always full (§7.7):
// numLeaves is a power of two (or zero for the empty tree under
// construction), and node indices are stable under extension and
// truncation, so caches and private keys keyed by node index stay valid.
//
// The array is a persistent vector (nodeVec): a radix tree of 64-slot
// chunks under 64-way directories, so that a clone costs O(1) and a change
// copies only the chunks and directories on its way (copy-on-write). Every
// tree has an owner token; chunks carrying the tree's token are private to
// it and written in place, others are shared with clones and copied before
// the first write. clone gives both trees fresh tokens, so neither writes
// into what they now share. A Commit changes O(log n) nodes, which copies
// O(log n) chunks of 4.5 KiB: a 100,000-member tree is never copied whole.
//
// Immutability. LeafNode and ParentNode values, once stored in a tree, are
// never modified: every change stores a new value, so every clone shares
// the node data. Plain struct assignment does NOT clone: the copy would
// share chunks with the same owner token. Use clone.
//
// Caches and aggregates per slot:
//   - hash is the tree hash of the node (§7.8) or nil when it must be
//     recomputed. Invariant: if the hash of x is nil then so is the hash of
//     every ancestor of x. Every mutation goes through setLeaf/setParent,
//     which clear the node's hash and its ancestors' (stopping at the first
//     ancestor that is already clear), so an Add, Update, Remove or
//     UpdatePath dirties O(log n) nodes and recomputing the root hash
//     touches only those.
//   - enc is the encoding of the slot's LeafNode when it is known: the
//     bytes it was decoded from (trees from the wire or a stored state) or
//     deep-copied through (every leaf the tree operations store). Tree
//     hashes, leaf signature checks and encoding the whole tree (Welcome,
//     GroupInfo, state) then copy it instead of encoding every leaf again.
//   - members and nonBlank count the non-blank leaves and the non-blank
//     nodes of the node's subtree. They make "is the resolution of x
//     empty" O(1) and finding the leftmost blank leaf O(log n), in any
//     tree, however sparse; setLeaf/setParent keep them up to date along
//     the direct path when a node turns blank or non-blank.
//
// Key index: every encryption key (all nodes) and signature key (leaves)
// is in a persistent hash map (keyIndex, treevalidate.go) maintained by
// setLeaf/setParent with the same copy-on-write discipline, so the §7.3
// uniqueness checks are O(1) lookups and no operation rebuilds it.
//
// Concurrency: a ratchetTree is not safe for concurrent use, not even for
// reads (reads fill caches), and clone modifies the tree it copies (its
// owner token). Distinct clones may be used by distinct goroutines.
//
// Ownership: the tree never aliases caller memory it did not take over
// explicitly. addLeaves, updateLeaf and mergeUpdatePath store deep copies of
// the LeafNodes they are given (decoded messages alias their input buffers);
// treeFromWire takes ownership of the decoded nodes (unmarshalTree decodes a
// private copy of its input). Pointers and byte slices returned by accessors
// are shared with the tree and every clone and must be treated as read-only.
type ratchetTree struct {
	cs    CipherSuite
	n     uint32  // number of leaf slots: a power of two, or 0
	nodes nodeVec // slot x is node x
	owner uint64  // copy-on-write token (see newTreeOwner)

	// Encryption- and signature-key index for the §7.3 uniqueness checks,
	// built on first use (indexed) and then maintained.
	encIdx  keyIndex
	sigIdx  keyIndex
	indexed bool

	// Credential statistics over the non-blank leaves, kept up to date by
	// setLeaf, for the §7.3 credential-support checks; supportCache counts
	// the supporters of credential types no member uses yet (cleared by
	// setLeaf, not shared by clones).
	stats        leafStats
	supportCache map[CredentialType]int
}

// treeSlot is one node of the tree with its caches (see ratchetTree).
type treeSlot struct {
	leaf     *LeafNode   // even node index; nil: blank
	parent   *ParentNode // odd node index; nil: blank
	enc      []byte      // encoding of leaf, if known (it is immutable too)
	hash     []byte      // tree hash of the node, nil when stale
	members  uint32      // non-blank leaves in the subtree
	nonBlank uint32      // non-blank nodes in the subtree
}

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

// treeOps counts work done by the tree code, for the operation-counting
// test TestScaleGrowth: it checks that per-Commit work grows no
// faster than log n. Atomic because validation runs in parallel.
var treeOps struct {
	chunkCopies      atomic.Int64 // copy-on-write copies of vector nodes
	hashes           atomic.Int64 // tree-hash computations of a node
	parentHashes     atomic.Int64 // ParentHashInput hashes
	resolutionVisits atomic.Int64 // nodes visited computing resolutions
	indexOps         atomic.Int64 // key-index node visits
	leafScans        atomic.Int64 // leaves visited by linear scans
}

// newRatchetTree returns an empty tree (no leaves) for suite cs. A group's
// first member is added with addLeaves.
func newRatchetTree(cs CipherSuite) ratchetTree {
	return ratchetTree{cs: cs, owner: newTreeOwner(), stats: newLeafStats()}
}

// clone returns an independent copy of t that shares all immutable node
// values, cached hashes and vector chunks with t. O(1): both trees get
// fresh owner tokens, so each copies a shared chunk before writing to it.
func (t *ratchetTree) clone() ratchetTree {
	c := *t
	c.owner = newTreeOwner()
	t.owner = newTreeOwner()
	c.stats = t.stats.clone()
	c.supportCache = nil
	return c
}

// suite returns the tree's cipher suite.
func (t *ratchetTree) suite() CipherSuite { return t.cs }

// numLeaves is the number of leaf slots (a power of two, or 0).
func (t *ratchetTree) numLeaves() uint32 { return t.n }

// width is the number of nodes, 2*numLeaves-1 (0 for the empty tree).
func (t *ratchetTree) width() uint32 { return nodeWidth(t.numLeaves()) }

// root is the root node index.
func (t *ratchetTree) root() NodeIndex { return root(t.numLeaves()) }

// inRange reports whether x is a node of t.
func (t *ratchetTree) inRange(x NodeIndex) bool { return uint32(x) < t.width() }

// slot returns node x for reading (a zero slot outside the tree).
func (t *ratchetTree) slot(x NodeIndex) *treeSlot {
	if !t.inRange(x) {
		return &zeroSlot
	}
	return t.nodes.at(x)
}

// mutSlot returns node x (in range) for writing.
func (t *ratchetTree) mutSlot(x NodeIndex) *treeSlot {
	return t.nodes.mut(x, t.owner)
}

// leaf returns the LeafNode at l, or nil if l is blank or out of range.
func (t *ratchetTree) leaf(l LeafIndex) *LeafNode {
	if uint64(l) >= uint64(t.n) {
		return nil
	}
	return t.nodes.at(l.nodeIndex()).leaf
}

// parentNode returns the ParentNode at x, or nil if x is blank, a leaf or
// out of range.
func (t *ratchetTree) parentNode(x NodeIndex) *ParentNode {
	if isLeaf(x) || !t.inRange(x) {
		return nil
	}
	return t.nodes.at(x).parent
}

// blank reports whether node x is blank (or out of range).
func (t *ratchetTree) blank(x NodeIndex) bool {
	s := t.slot(x)
	return s.leaf == nil && s.parent == nil
}

// encryptionKey returns the HPKE public key of node x, or nil if blank.
func (t *ratchetTree) encryptionKey(x NodeIndex) []byte {
	s := t.slot(x)
	switch {
	case s.leaf != nil:
		return s.leaf.EncryptionKey
	case s.parent != nil:
		return s.parent.EncryptionKey
	}
	return nil
}

// memberCount is the number of non-blank leaves.
func (t *ratchetTree) memberCount() int { return t.stats.members }

// forEachMember calls f for each non-blank leaf in index order until f
// returns false.
func (t *ratchetTree) forEachMember(f func(LeafIndex, *LeafNode) bool) {
	t.nodes.chunks(uint64(t.width()), func(base NodeIndex, slots []treeSlot) bool {
		for i := 0; i < len(slots); i += 2 { // base is even
			if ln := slots[i].leaf; ln != nil && !f(LeafIndex((int(base)+i)/2), ln) {
				return false
			}
		}
		return true
	})
}

// forEachParent calls f for each non-blank parent node in index order
// until f returns false.
func (t *ratchetTree) forEachParent(f func(NodeIndex, *ParentNode) bool) {
	t.nodes.chunks(uint64(t.width()), func(base NodeIndex, slots []treeSlot) bool {
		for i := 1; i < len(slots); i += 2 {
			if pn := slots[i].parent; pn != nil && !f(base+NodeIndex(i), pn) {
				return false
			}
		}
		return true
	})
}

// setLeaf stores ln (nil blanks the leaf) and updates the caches, counts
// and key index along the path.
func (t *ratchetTree) setLeaf(l LeafIndex, ln *LeafNode) { t.setLeafEnc(l, ln, nil) }

// setLeafEnc is setLeaf with the encoding of ln, if known (it must be the
// encoding of ln; the tree keeps it).
func (t *ratchetTree) setLeafEnc(l LeafIndex, ln *LeafNode, enc []byte) {
	x := l.nodeIndex()
	old := t.nodes.at(x).leaf
	if old == ln {
		return
	}
	if t.indexed && old != nil {
		t.encIdx.remove(old.EncryptionKey, uint32(x), t.owner)
		t.sigIdx.remove(old.SignatureKey, uint32(l), t.owner)
	}
	ws := t.mutSlot(x)
	ws.leaf, ws.enc = ln, nil
	if ln != nil {
		ws.enc = enc
	}
	if t.indexed && ln != nil {
		t.encIdx.put(ln.EncryptionKey, uint32(x), t.encKeyOf, t.owner)
		t.sigIdx.put(ln.SignatureKey, uint32(l), t.sigKeyOf, t.owner)
	}
	t.stats.remove(old)
	t.stats.add(ln, t.scanLeaves)
	t.supportCache = nil
	t.touch(x, old == nil, ln == nil)
}

// scanLeaves calls f for every non-blank leaf (for leafStats).
func (t *ratchetTree) scanLeaves(f func(*LeafNode)) {
	t.forEachMember(func(_ LeafIndex, ln *LeafNode) bool {
		treeOps.leafScans.Add(1)
		f(ln)
		return true
	})
}

// setParent stores pn (nil blanks the node) at parent node x.
func (t *ratchetTree) setParent(x NodeIndex, pn *ParentNode) {
	old := t.nodes.at(x).parent
	if old == pn {
		return
	}
	if t.indexed && old != nil {
		t.encIdx.remove(old.EncryptionKey, uint32(x), t.owner)
	}
	t.mutSlot(x).parent = pn
	if t.indexed && pn != nil {
		t.encIdx.put(pn.EncryptionKey, uint32(x), t.encKeyOf, t.owner)
	}
	t.touch(x, old == nil, pn == nil)
}

// touch clears the cached hash of node x and its ancestors after x
// changed; wasBlank/isBlank say whether x was and is blank, to keep the
// subtree counts. Without a change of blankness it stops at the first
// ancestor whose hash is already clear (its ancestors' are too).
func (t *ratchetTree) touch(x NodeIndex, wasBlank, isBlank bool) {
	var dn int32
	switch {
	case wasBlank && !isBlank:
		dn = 1
	case !wasBlank && isBlank:
		dn = -1
	}
	var dm int32
	if isLeaf(x) {
		dm = dn
	}
	n := t.numLeaves()
	for {
		if dn == 0 && t.nodes.at(x).hash == nil {
			return
		}
		s := t.mutSlot(x)
		s.hash = nil
		s.members = uint32(int32(s.members) + dm)
		s.nonBlank = uint32(int32(s.nonBlank) + dn)
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
	if t.n == 0 {
		t.n = 1
		t.nodes.grow(1, t.owner)
		return
	}
	oldRoot := t.root()
	t.n *= 2
	t.nodes.grow(uint64(t.width()), t.owner)
	// The new root's subtree holds what the old root's held; its hash is
	// not computed yet (the slots of the right half are already zero).
	old := *t.nodes.at(oldRoot)
	s := t.mutSlot(t.root())
	s.members, s.nonBlank, s.hash = old.members, old.nonBlank, nil
}

// truncate removes right subtrees without non-blank leaves (§7.7, §12.1.3):
// with L the rightmost non-blank leaf, the tree keeps the smallest power of
// two of leaves greater than L. A tree without members becomes empty.
func (t *ratchetTree) truncate() {
	n := t.n
	for n > 1 {
		// The right half of the tree of n leaves is the subtree of the
		// right child of root(n).
		r, _ := right(root(n))
		if t.nodes.at(r).members > 0 {
			break
		}
		// A valid tree has no non-blank parent without a member below
		// it, but one from the wire may: its keys leave the index. The
		// walk visits only non-blank nodes.
		t.forgetKeys(r)
		if pn := t.nodes.at(root(n)).parent; pn != nil && t.indexed {
			t.encIdx.remove(pn.EncryptionKey, uint32(root(n)), t.owner)
		}
		n /= 2
	}
	if n == 1 && t.nodes.at(0).leaf == nil {
		n = 0
	}
	if n == t.n {
		return
	}
	t.n = n
	t.nodes.shrink(uint64(t.width()), t.owner)
}

// forgetKeys removes from the key index the keys of the non-blank nodes of
// x's subtree, visiting only non-blank nodes.
func (t *ratchetTree) forgetKeys(x NodeIndex) {
	s := t.nodes.at(x)
	if !t.indexed || s.nonBlank == 0 {
		return
	}
	if ln := s.leaf; ln != nil {
		t.encIdx.remove(ln.EncryptionKey, uint32(x), t.owner)
		t.sigIdx.remove(ln.SignatureKey, uint32(x>>1), t.owner)
		return
	}
	if pn := s.parent; pn != nil {
		t.encIdx.remove(pn.EncryptionKey, uint32(x), t.owner)
	}
	if !isLeaf(x) {
		l, _ := left(x)
		r, _ := right(x)
		t.forgetKeys(l)
		t.forgetKeys(r)
	}
}

// firstBlankLeaf returns the leftmost blank leaf, or numLeaves if every
// leaf is taken. O(log n) with the subtree member counts.
func (t *ratchetTree) firstBlankLeaf() LeafIndex {
	if t.n == 0 {
		return 0
	}
	x := t.root()
	full := func(x NodeIndex) bool {
		lo, hi := subtreeLeaves(x)
		return uint64(t.nodes.at(x).members) == hi-lo
	}
	if full(x) {
		return LeafIndex(t.n)
	}
	for !isLeaf(x) {
		l, _ := left(x)
		if !full(l) {
			x = l
		} else {
			x, _ = right(x)
		}
	}
	return LeafIndex(x >> 1)
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
	encs := make([][]byte, len(lns))
	for i, ln := range lns {
		c, enc, err := cloneLeafNode(ln)
		if err != nil {
			return nil, err
		}
		copies[i], encs[i] = c, enc
	}
	at := make([]LeafIndex, len(copies))
	for i, ln := range copies {
		next := t.firstBlankLeaf()
		if uint32(next) == t.n {
			t.extend()
		}
		t.setLeafEnc(next, ln, encs[i])
		at[i] = next
	}
	// Positions are increasing, so each parent's additions are sorted.
	adds := map[NodeIndex][]uint32{}
	n := t.numLeaves()
	for _, l := range at {
		for x, ok := parent(l.nodeIndex(), n); ok; x, ok = parent(x, n) {
			if t.parentNode(x) != nil {
				adds[x] = append(adds[x], uint32(l))
			}
		}
	}
	for x, list := range adds {
		old := t.parentNode(x)
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
// the tree does not alias message buffers or caller-owned slices, and the
// encoding, which the copy aliases.
func cloneLeafNode(ln *LeafNode) (*LeafNode, []byte, error) {
	if ln == nil {
		return nil, nil, fmt.Errorf("%w: nil leaf node", ErrBlankLeaf)
	}
	enc, err := ln.Marshal()
	if err != nil {
		return nil, nil, err
	}
	c := new(LeafNode)
	if err := c.Unmarshal(enc); err != nil {
		return nil, nil, err
	}
	return c, enc, nil
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
	c, enc, err := cloneLeafNode(ln)
	if err != nil {
		return err
	}
	t.setLeafEnc(l, c, enc)
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
		if t.parentNode(x) != nil {
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
// leaves in exclude (new members of the current Commit, §7.6). Subtrees
// without non-blank nodes are skipped at once, so the cost is proportional
// to the size of the result (times log n), however sparse the tree.
func (t *ratchetTree) appendResolution(dst []NodeIndex, x NodeIndex, exclude map[LeafIndex]bool) []NodeIndex {
	if !t.inRange(x) {
		return dst
	}
	treeOps.resolutionVisits.Add(1)
	s := t.nodes.at(x)
	if s.nonBlank == 0 {
		return dst
	}
	if isLeaf(x) {
		if !exclude[LeafIndex(x>>1)] {
			dst = append(dst, x)
		}
		return dst
	}
	if pn := s.parent; pn != nil {
		dst = append(dst, x)
		for _, u := range pn.UnmergedLeaves {
			if !exclude[LeafIndex(u)] {
				dst = append(dst, LeafIndex(u).nodeIndex())
			}
		}
		return dst
	}
	l, _ := left(x)
	r, _ := right(x)
	dst = t.appendResolution(dst, l, exclude)
	return t.appendResolution(dst, r, exclude)
}

// resolutionEmpty reports whether the resolution of x is empty, i.e. no node
// of the subtree under x is non-blank. O(1).
func (t *ratchetTree) resolutionEmpty(x NodeIndex) bool {
	return t.slot(x).nonBlank == 0
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
	var found LeafIndex
	ok := false
	t.forEachMember(func(l LeafIndex, ln *LeafNode) bool {
		treeOps.leafScans.Add(1)
		if match(ln) {
			found, ok = l, true
			return false
		}
		return true
	})
	return found, ok
}
