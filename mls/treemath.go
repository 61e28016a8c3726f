package mls

import "math/bits"

// Tree math for the array representation of the ratchet tree and the secret
// tree (RFC 9420 §4, Appendix C "Array-Based Trees").
//
// Leaves sit at even node indices (leaf i is node 2i), parents at odd ones.
// A node's level is the number of trailing one bits of its index. The tree
// with n leaves occupies nodeWidth(n) = 2n-1 array slots and its root is the
// largest 2^k-1 below that width.
//
// RFC 9420 trees are always full (n a power of two: §7.7 doubles the tree
// when it is full and halves it when its right half is empty), and the
// vectors of the tree-math test file only exercise such trees. parent,
// sibling, directPath and copath are nevertheless correct for any
// left-balanced tree (they skip ancestors that fall outside the array), so a
// caller that passes a member count instead of a power of two gets the
// left-balanced answer rather than an index past the end of the array.
// left and right are purely structural (Appendix C) and never consult n.
//
// Indices are uint32 on the wire (§7.8 leaf_index, §6.3.2 SenderData), so
// the largest tree has 2^31 leaves and 2^32-1 nodes; functions taking a leaf
// count treat larger counts as invalid. Everything is O(log n) and allocates
// only the returned path slices.

// LeafIndex is the index of a leaf among the leaves (§7.8).
type LeafIndex uint32

// NodeIndex is the index of a node in the array representation (Appendix C).
type NodeIndex uint32

// maxLeaves is the largest leaf count whose node width fits in a uint32.
const maxLeaves = 1 << 31

// nodeIndex returns the node index of leaf l (2l). Leaf indices at or above
// 2^31 have no node index; callers validate against the tree size first.
func (l LeafIndex) nodeIndex() NodeIndex { return NodeIndex(l) << 1 }

// leafIndex returns the leaf index of node x; ok is false if x is not a leaf.
func (x NodeIndex) leafIndex() (LeafIndex, bool) {
	if !isLeaf(x) {
		return 0, false
	}
	return LeafIndex(x >> 1), true
}

// isLeaf reports whether x is a leaf node (even index).
func isLeaf(x NodeIndex) bool { return x&1 == 0 }

// level is the height of x above the leaves: 0 for leaves, and for a parent
// the number of trailing one bits of its index.
func level(x NodeIndex) uint {
	return uint(bits.TrailingZeros32(^uint32(x)))
}

// nodeWidth is the number of array slots used by a tree with n leaves:
// 2(n-1)+1, or 0 for the empty tree. It returns 0 for n > 2^31.
func nodeWidth(n uint32) uint32 {
	if n == 0 || n > maxLeaves {
		return 0
	}
	return 2*(n-1) + 1
}

// validLeafCount reports whether n is a leaf count tree math supports.
func validLeafCount(n uint32) bool { return n > 0 && n <= maxLeaves }

// root is the root of the tree with n leaves (n ≥ 1): 2^k-1 for the largest
// k with 2^k-1 < nodeWidth(n). root(0) is 0.
func root(n uint32) NodeIndex {
	w := nodeWidth(n)
	if w == 0 {
		return 0
	}
	return NodeIndex(uint32(1)<<(bits.Len32(w)-1) - 1)
}

// left is the left child of x; ok is false for a leaf.
func left(x NodeIndex) (NodeIndex, bool) {
	k := level(x)
	if k == 0 {
		return 0, false
	}
	return x ^ NodeIndex(1)<<(k-1), true
}

// right is the right child of x; ok is false for a leaf. In a tree that is
// not full the structural right child may lie past the end of the array.
func right(x NodeIndex) (NodeIndex, bool) {
	k := level(x)
	if k == 0 {
		return 0, false
	}
	return x ^ NodeIndex(3)<<(k-1), true
}

// parentStep is the structural parent of x in the infinite tree.
func parentStep(x NodeIndex) NodeIndex {
	k := level(x)
	b := (x >> (k + 1)) & 1
	return (x | NodeIndex(1)<<k) ^ (b << (k + 1))
}

// inTree reports whether x is a node of the tree with n leaves.
func inTree(x NodeIndex, n uint32) bool { return uint32(x) < nodeWidth(n) }

// parent is the parent of x in the tree with n leaves; ok is false for the
// root and for nodes outside the tree.
func parent(x NodeIndex, n uint32) (NodeIndex, bool) {
	if !inTree(x, n) || x == root(n) {
		return 0, false
	}
	p := parentStep(x)
	for !inTree(p, n) { // only in trees that are not full
		p = parentStep(p)
	}
	return p, true
}

// sibling is the other child of x's parent; ok is false for the root and for
// nodes outside the tree.
func sibling(x NodeIndex, n uint32) (NodeIndex, bool) {
	p, ok := parent(x, n)
	if !ok {
		return 0, false
	}
	var s NodeIndex
	if x < p {
		s, _ = right(p)
	} else {
		s, _ = left(p)
	}
	for !inTree(s, n) { // only in trees that are not full
		s, _ = left(s)
	}
	return s, true
}

// directPath is the list of x's ancestors from its parent to the root
// (§4.1.2); empty for the root, nil for a node outside the tree.
func directPath(x NodeIndex, n uint32) []NodeIndex {
	if !inTree(x, n) {
		return nil
	}
	r := root(n)
	path := make([]NodeIndex, 0, level(r)-level(x))
	for x != r {
		x, _ = parent(x, n)
		path = append(path, x)
	}
	return path
}

// copath is the sibling of x followed by the siblings of every node of x's
// direct path except the root, ordered from leaf to root (§4.1.2); empty for
// the root, nil for a node outside the tree.
func copath(x NodeIndex, n uint32) []NodeIndex {
	if !inTree(x, n) {
		return nil
	}
	r := root(n)
	path := make([]NodeIndex, 0, level(r)-level(x))
	for x != r {
		s, _ := sibling(x, n)
		path = append(path, s)
		x, _ = parent(x, n)
	}
	return path
}

// commonAncestor is the lowest node that is x or an ancestor of x and also y
// or an ancestor of y (Appendix C common_ancestor_direct). It is structural
// and does not depend on the tree size; for two nodes of a full tree it is
// a node of that tree.
func commonAncestor(x, y NodeIndex) NodeIndex {
	lx, ly := level(x)+1, level(y)+1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	// The highest bit where x and y differ decides the level of the
	// ancestor: k = position of that bit + 1.
	k := uint(bits.Len32(uint32(x ^ y)))
	return (x>>k)<<k + NodeIndex(1)<<(k-1) - 1
}

// subtreeLeaves returns the half-open range [lo, hi) of leaf indices under x
// in the infinite structural tree; hi may exceed the tree's leaf count.
func subtreeLeaves(x NodeIndex) (lo, hi uint64) {
	k := level(x)
	lo = uint64(x>>(k+1)) << k
	return lo, lo + uint64(1)<<k
}

// childToward returns the child of the parent node x on the way to the
// descendant node target (which must lie below x).
func childToward(x, target NodeIndex) NodeIndex {
	if target < x {
		c, _ := left(x)
		return c
	}
	c, _ := right(x)
	return c
}
