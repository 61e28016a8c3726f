package mls

import (
	"slices"
	"sync/atomic"
)

// treeOwners hands out copy-on-write tokens; 0 is never handed out.
var treeOwners atomic.Uint64

func newTreeOwner() uint64 { return treeOwners.Add(1) }

// Persistent vector of treeSlots: a radix tree with vecFan-way directories
// over chunks of vecFan slots. height is the number of directory levels
// (0: the root is a chunk). Missing (nil) subtrees read as zero slots:
// blank nodes with no cached hash. Every node carries the owner token of
// the tree that created it; a tree writes in place only into nodes with its
// own token and copies the others first (path copying).
const (
	vecBits = 6
	vecFan  = 1 << vecBits
	vecMask = vecFan - 1
)

type vecNode struct {
	owner uint64
	kids  []*vecNode // directory: vecFan entries
	slots []treeSlot // chunk: vecFan entries
}

type nodeVec struct {
	root   *vecNode
	height uint // directory levels above the chunks
}

// zeroSlot is what missing parts of the vector read as. Never written.
var zeroSlot treeSlot

func newVecNode(chunk bool, owner uint64) *vecNode {
	if chunk {
		return &vecNode{owner: owner, slots: make([]treeSlot, vecFan)}
	}
	return &vecNode{owner: owner, kids: make([]*vecNode, vecFan)}
}

func (v *vecNode) copyFor(owner uint64) *vecNode {
	treeOps.chunkCopies.Add(1)
	c := &vecNode{owner: owner}
	if v.slots != nil {
		c.slots = slices.Clone(v.slots)
	} else {
		c.kids = slices.Clone(v.kids)
	}
	return c
}

// capacity is the number of slots the vector can hold at its height.
func (v *nodeVec) capacity() uint64 { return uint64(1) << (vecBits * (v.height + 1)) }

// at returns slot x for reading (zeroSlot if never written). The pointer
// must not be written through and is valid until the next write.
func (v *nodeVec) at(x NodeIndex) *treeSlot {
	if uint64(x) >= v.capacity() {
		return &zeroSlot
	}
	n := v.root
	for h := v.height; h > 0 && n != nil; h-- {
		n = n.kids[(uint64(x)>>(vecBits*h))&vecMask]
	}
	if n == nil {
		return &zeroSlot
	}
	return &n.slots[x&vecMask]
}

// mut returns slot x for writing by owner, copying shared nodes on the
// way and creating missing ones. x must be below the capacity.
func (v *nodeVec) mut(x NodeIndex, owner uint64) *treeSlot {
	p := &v.root
	for h := v.height; ; h-- {
		n := *p
		switch {
		case n == nil:
			n = newVecNode(h == 0, owner)
			*p = n
		case n.owner != owner:
			n = n.copyFor(owner)
			*p = n
		}
		if h == 0 {
			return &n.slots[x&vecMask]
		}
		p = &n.kids[(uint64(x)>>(vecBits*h))&vecMask]
	}
}

// grow raises the height until the capacity is at least size.
func (v *nodeVec) grow(size uint64, owner uint64) {
	for v.capacity() < size {
		if v.root != nil {
			r := newVecNode(false, owner)
			r.kids[0] = v.root
			v.root = r
		}
		v.height++
	}
}

// shrink zeroes every slot at or above size and lowers the height to the
// smallest that holds size slots.
func (v *nodeVec) shrink(size uint64, owner uint64) {
	v.root = v.cut(v.root, v.height, 0, size, owner)
	for v.height > 0 && v.capacity()>>vecBits >= max(size, 1) {
		if v.root != nil {
			v.root = v.root.kids[0]
		}
		v.height--
	}
}

// cut returns n (covering slots from base at height h) with every slot at
// or above size zeroed, copying what it changes.
func (v *nodeVec) cut(n *vecNode, h uint, base, size uint64, owner uint64) *vecNode {
	span := uint64(1) << (vecBits * (h + 1))
	switch {
	case n == nil || base+span <= size:
		return n
	case base >= size:
		return nil
	}
	if n.owner != owner {
		n = n.copyFor(owner)
	}
	if h == 0 {
		clear(n.slots[size-base:])
		return n
	}
	step := span >> vecBits
	for i := range n.kids {
		n.kids[i] = v.cut(n.kids[i], h-1, base+uint64(i)*step, size, owner)
	}
	return n
}

// chunks calls f with each allocated chunk overlapping [0, size) and the
// node index of its first slot, in index order, until f returns false.
func (v *nodeVec) chunks(size uint64, f func(base NodeIndex, slots []treeSlot) bool) {
	var walk func(n *vecNode, h uint, base uint64) bool
	walk = func(n *vecNode, h uint, base uint64) bool {
		if n == nil || base >= size {
			return true
		}
		if h == 0 {
			return f(NodeIndex(base), n.slots[:min(uint64(vecFan), size-base)])
		}
		step := uint64(1) << (vecBits * h)
		for i, k := range n.kids {
			if !walk(k, h-1, base+uint64(i)*step) {
				return false
			}
		}
		return true
	}
	walk(v.root, v.height, 0)
}

// chunkFor returns the chunk holding slot x for writing by owner.
func (v *nodeVec) chunkFor(x NodeIndex, owner uint64) *vecNode {
	v.mut(x, owner)
	n := v.root
	for h := v.height; h > 0; h-- {
		n = n.kids[(uint64(x)>>(vecBits*h))&vecMask]
	}
	return n
}
