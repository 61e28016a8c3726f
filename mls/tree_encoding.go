package mls

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// treeFromWire builds a tree from its ratchet_tree wire form (§12.4.3.3):
// the node list is extended with blanks to the next full width 2^(d+1)-1.
// The tree takes ownership of the nodes' LeafNode and ParentNode values.
// Only structural checks are done here (node types by index parity, a
// non-blank last node, size limits); validate performs §12.4.3.1.
func treeFromWire(cs CipherSuite, nodes RatchetTree) (ratchetTree, error) {
	return treeFromWireEnc(cs, nodes, nil)
}

// treeFromWireEnc is treeFromWire with the leaves' encodings by leaf index
// (from decodeRatchetTree; nil entries are unknown), which the tree keeps
// for hashing and encoding.
func treeFromWireEnc(cs CipherSuite, nodes RatchetTree, encs [][]byte) (ratchetTree, error) {
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
	leaves := make([]*LeafNode, n)
	parents := make([]*ParentNode, n-1)
	for i, node := range nodes {
		if node == nil {
			continue
		}
		if i%2 == 0 {
			if node.Type != NodeTypeLeaf || node.Leaf == nil {
				return ratchetTree{}, treeErr([]error{ErrInvalidTree}, nil, "node %d is not a leaf node", i)
			}
			leaves[i/2] = node.Leaf
		} else {
			if node.Type != NodeTypeParent || node.Parent == nil {
				return ratchetTree{}, treeErr([]error{ErrInvalidTree}, nil, "node %d is not a parent node", i)
			}
			parents[i/2] = node.Parent
		}
	}
	return treeFromArrays(cs, leaves, parents, nil, encs), nil
}

// treeFromArrays builds a tree from full-width node arrays: len(leaves) a
// power of two (or zero), len(parents) = len(leaves)-1, hashes nil or of
// length 2*len(leaves)-1 holding correct tree hashes (a nil entry must have
// nil ancestors), and encs nil or holding the encodings of (a prefix of)
// the leaves. The tree takes ownership of the nodes, hashes and encodings;
// the arrays themselves are not retained. O(n).
func treeFromArrays(cs CipherSuite, leaves []*LeafNode, parents []*ParentNode, hashes, encs [][]byte) ratchetTree {
	t := newRatchetTree(cs)
	t.n = uint32(len(leaves))
	w := t.width()
	t.nodes.grow(uint64(w), t.owner)
	// Fill chunk by chunk, then the subtree counts level by level.
	for base := uint32(0); base < w; base += vecFan {
		var chunk *vecNode
		for x := base; x < min(base+vecFan, w); x++ {
			var s treeSlot
			if x%2 == 0 {
				s.leaf = leaves[x/2]
				if int(x/2) < len(encs) && s.leaf != nil {
					s.enc = encs[x/2]
				}
			} else {
				s.parent = parents[x/2]
			}
			if hashes != nil {
				s.hash = hashes[x]
			}
			if s.leaf == nil && s.parent == nil && s.hash == nil {
				continue
			}
			if chunk == nil {
				chunk = t.nodes.chunkFor(NodeIndex(base), t.owner)
			}
			chunk.slots[x-base] = s
		}
	}
	if t.n > 0 {
		t.recount(t.root())
	}
	for i, ln := range leaves {
		if ln == nil {
			continue
		}
		t.stats.add(ln, func(f func(*LeafNode)) {
			for _, m := range leaves[:i+1] { // the leaves stored so far
				if m != nil {
					f(m)
				}
			}
		})
	}
	return t
}

// recount recomputes the subtree counts of x and every node below it.
func (t *ratchetTree) recount(x NodeIndex) (members, nonBlank uint32) {
	s := t.nodes.at(x)
	if isLeaf(x) {
		if s.leaf != nil {
			members, nonBlank = 1, 1
		}
	} else {
		l, _ := left(x)
		r, _ := right(x)
		lm, ln := t.recount(l)
		rm, rn := t.recount(r)
		members, nonBlank = lm+rm, ln+rn
		if s.parent != nil {
			nonBlank++
		}
	}
	if s.members != members || s.nonBlank != nonBlank {
		w := t.nodes.mut(x, t.owner)
		w.members, w.nonBlank = members, nonBlank
	}
	return members, nonBlank
}

// unmarshalTree decodes an `optional<Node> ratchet_tree<V>` encoding. The
// input is copied, so the tree never aliases data.
func unmarshalTree(cs CipherSuite, data []byte) (ratchetTree, error) {
	nodes, encs, err := decodeRatchetTree(bytes.Clone(data))
	if err != nil {
		return ratchetTree{}, err
	}
	return treeFromWireEnc(cs, nodes, encs)
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
	last := t.lastNonBlank()
	nodes := make(RatchetTree, last+1)
	t.nodes.chunks(uint64(last+1), func(base NodeIndex, slots []treeSlot) bool {
		for i := range slots {
			x := int(base) + i
			if ln := slots[i].leaf; ln != nil {
				nodes[x] = &Node{Type: NodeTypeLeaf, Leaf: ln}
			} else if pn := slots[i].parent; pn != nil {
				nodes[x] = &Node{Type: NodeTypeParent, Parent: pn}
			}
		}
		return true
	})
	return nodes
}

// marshal encodes t as `optional<Node> ratchet_tree<V>`, the form of the
// ratchet_tree extension and of canopy's stored group state, exactly as
// t.wire().Marshal() would, into one buffer of the right size: leaves are
// copied from their kept encodings.
func (t *ratchetTree) marshal() ([]byte, error) {
	last := t.lastNonBlank()
	if last < 0 {
		return nil, errEmptyRatchetTree
	}
	// Pass 1: sizes (and the encodings of leaves that have none kept).
	// Unallocated chunks are blank nodes: one byte each.
	var missing map[NodeIndex][]byte
	size := 0
	var err error
	next := 0
	t.nodes.chunks(uint64(last+1), func(base NodeIndex, slots []treeSlot) bool {
		size += int(base) - next
		next = int(base) + len(slots)
		for i := range slots {
			s := &slots[i]
			switch {
			case s.leaf != nil:
				enc := s.enc
				if enc == nil {
					if enc, err = s.leaf.Marshal(); err != nil {
						return false
					}
					if missing == nil {
						missing = map[NodeIndex][]byte{}
					}
					missing[base+NodeIndex(i)] = enc
				}
				size += 2 + len(enc)
			case s.parent != nil:
				size += 2 + parentNodeSize(s.parent)
			default:
				size++
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	size += last + 1 - next
	if size > maxVarint {
		return nil, fmt.Errorf("mls: ratchet tree of %d bytes exceeds the 2^30-1 limit", size)
	}
	out := make([]byte, 0, varintSize(size)+size)
	out = appendVarintPrefix(out, size)
	blanks := func(k int) {
		for range k {
			out = append(out, 0)
		}
	}
	next = 0
	t.nodes.chunks(uint64(last+1), func(base NodeIndex, slots []treeSlot) bool {
		blanks(int(base) - next)
		next = int(base) + len(slots)
		for i := range slots {
			s := &slots[i]
			switch {
			case s.leaf != nil:
				enc := s.enc
				if enc == nil {
					enc = missing[base+NodeIndex(i)]
				}
				out = append(out, 1, byte(NodeTypeLeaf))
				out = append(out, enc...)
			case s.parent != nil:
				out = append(out, 1, byte(NodeTypeParent))
				out = appendParentNode(out, s.parent)
			default:
				out = append(out, 0)
			}
		}
		return true
	})
	blanks(last + 1 - next)
	return out, nil
}

// parentNodeSize is the length of the encoding of pn.
func parentNodeSize(pn *ParentNode) int {
	k, h, u := len(pn.EncryptionKey), len(pn.ParentHash), 4*len(pn.UnmergedLeaves)
	return varintSize(k) + k + varintSize(h) + h + varintSize(u) + u
}

// appendParentNode appends the encoding of pn (see ParentNode.marshal).
func appendParentNode(dst []byte, pn *ParentNode) []byte {
	dst = appendVarintPrefix(dst, len(pn.EncryptionKey))
	dst = append(dst, pn.EncryptionKey...)
	dst = appendVarintPrefix(dst, len(pn.ParentHash))
	dst = append(dst, pn.ParentHash...)
	dst = appendVarintPrefix(dst, 4*len(pn.UnmergedLeaves))
	for _, l := range pn.UnmergedLeaves {
		dst = binary.BigEndian.AppendUint32(dst, l)
	}
	return dst
}

// lastNonBlank returns the index of the rightmost non-blank node, or -1.
func (t *ratchetTree) lastNonBlank() int {
	if t.width() == 0 || t.nodes.at(t.root()).nonBlank == 0 {
		return -1
	}
	x := t.root()
	for !isLeaf(x) {
		if r, _ := right(x); t.nodes.at(r).nonBlank > 0 {
			x = r
			continue
		}
		if t.nodes.at(x).parent != nil {
			break
		}
		x, _ = left(x)
	}
	return int(x)
}
