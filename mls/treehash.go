package mls

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sort"

	"golang.org/x/crypto/cryptobyte"
)

// Tree hashes (§7.8) and parent hashes (§7.9).
//
// Tree hashes are cached per node in the tree's slots (see tree.go for the
// invalidation invariant); computing the root hash recurses only into
// uncached nodes, so after a change along one path it costs O(log n) hashes.
//
// Parent hashes are not cached: a Commit computes them once along the
// committer's filtered direct path (O(log n), using the cached tree hashes of
// the copath children as original sibling tree hashes, §7.9), and joining
// verifies each parent node once (treevalidate.go). The original sibling
// tree hash of a node whose parent has unmerged leaves under it is computed by
// hashExcluding, which reuses the cached hash of every subtree that contains
// none of the excluded leaves, so its cost is O(k log n) hashes for k
// excluded leaves rather than the size of the subtree.

// node types of TreeHashInput (§7.8), the same values as NodeType.
const (
	treeHashLeaf   = uint8(NodeTypeLeaf)
	treeHashParent = uint8(NodeTypeParent)
)

// treeHash returns the tree hash of the root (§7.8). The returned slice is
// the caller's.
func (t *ratchetTree) treeHash() ([]byte, error) {
	if t.n == 0 {
		return nil, treeErr([]error{ErrInvalidTree}, nil, "tree hash of an empty tree")
	}
	h, err := t.nodeTreeHash(t.root())
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), h...), nil
}

// nodeTreeHash returns the tree hash of node x. The result is shared with
// the cache and must not be modified.
func (t *ratchetTree) nodeTreeHash(x NodeIndex) ([]byte, error) {
	if !t.inRange(x) {
		return nil, fmt.Errorf("mls: tree hash of node %d outside a tree of %d nodes", x, t.width())
	}
	return t.computeHash(x)
}

// computeHash returns the cached hash of x, computing (and caching) it and
// any uncached descendants first.
func (t *ratchetTree) computeHash(x NodeIndex) ([]byte, error) {
	s := t.nodes.at(x)
	if s.hash != nil {
		return s.hash, nil
	}
	var in []byte
	if isLeaf(x) {
		var err error
		if in, err = leafHashInputEnc(LeafIndex(x>>1), s.leaf, s.enc); err != nil {
			return nil, err
		}
	} else {
		pn := s.parent
		l, _ := left(x)
		r, _ := right(x)
		lh, err := t.computeHash(l)
		if err != nil {
			return nil, err
		}
		rh, err := t.computeHash(r)
		if err != nil {
			return nil, err
		}
		if in, err = parentHashInputTH(pn, lh, rh); err != nil {
			return nil, err
		}
	}
	treeOps.hashes.Add(1)
	h := t.cs.Hash(in)
	t.mutSlot(x).hash = h
	return h, nil
}

// computeHashesParallel fills the hash cache of the whole tree, hashing
// the subtrees below the top levels on GOMAXPROCS goroutines (joining a
// large group hashes every node once). Results are stored sequentially.
func (t *ratchetTree) computeHashesParallel() error {
	workers := runtime.GOMAXPROCS(0)
	if t.n < 1024 || workers < 2 || t.nodes.at(t.root()).hash != nil {
		_, err := t.treeHash()
		return err
	}
	// Subtrees of 2^k leaves, at least 4 per worker.
	k := uint(0)
	for (t.n>>(k+1)) >= uint32(4*workers) && k < 20 {
		k++
	}
	roots := make([]NodeIndex, 0, t.n>>k)
	for i := uint32(0); i < t.n>>k; i++ {
		// The root of the i-th subtree of 2^k leaves.
		roots = append(roots, NodeIndex(i<<(k+1)+(1<<k)-1))
	}
	type sub struct {
		hashes [][]byte // by node index relative to the subtree's first node
	}
	subs := make([]sub, len(roots))
	err := parallelFor(len(roots), func(i int) error {
		lo := roots[i] - (NodeIndex(1)<<k - 1)
		hs := make([][]byte, 1<<(k+1)-1)
		var count int64
		defer func() { treeOps.hashes.Add(count) }()
		var hash func(x NodeIndex) ([]byte, error)
		hash = func(x NodeIndex) ([]byte, error) {
			s := t.nodes.at(x) // read-only: safe concurrently
			if s.hash != nil {
				return s.hash, nil
			}
			var in []byte
			var err error
			if isLeaf(x) {
				in, err = leafHashInputEnc(LeafIndex(x>>1), s.leaf, s.enc)
			} else {
				l, _ := left(x)
				r, _ := right(x)
				var lh, rh []byte
				if lh, err = hash(l); err != nil {
					return nil, err
				}
				if rh, err = hash(r); err != nil {
					return nil, err
				}
				in, err = parentHashInputTH(s.parent, lh, rh)
			}
			if err != nil {
				return nil, err
			}
			count++
			h := t.cs.Hash(in)
			hs[x-lo] = h
			return h, nil
		}
		if _, err := hash(roots[i]); err != nil {
			return err
		}
		subs[i].hashes = hs
		return nil
	})
	if err != nil {
		return err
	}
	for i, r := range roots {
		lo := r - (NodeIndex(1)<<k - 1)
		for j, h := range subs[i].hashes {
			if h != nil {
				t.mutSlot(lo + NodeIndex(j)).hash = h
			}
		}
	}
	_, err = t.treeHash()
	return err
}

// leafHashInput encodes
//
//	struct {
//	    NodeType node_type = leaf;
//	    uint32 leaf_index;
//	    optional<LeafNode> leaf_node;
//	} TreeHashInput (leaf case);
func leafHashInput(l LeafIndex, ln *LeafNode) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, 512))
	b.AddUint8(treeHashLeaf)
	b.AddUint32(uint32(l))
	addOptional(b, ln != nil, func(b *cryptobyte.Builder) { ln.marshal(b) })
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: tree hash input of leaf %d: %w", l, err)
	}
	return out, nil
}

// leafHashInputEnc is leafHashInput from the encoding of ln when it is
// known (enc non-nil), without encoding ln again.
func leafHashInputEnc(l LeafIndex, ln *LeafNode, enc []byte) ([]byte, error) {
	if ln == nil || enc == nil {
		return leafHashInput(l, ln)
	}
	in := make([]byte, 0, 6+len(enc))
	in = append(in, treeHashLeaf)
	in = binary.BigEndian.AppendUint32(in, uint32(l))
	in = append(in, 1)
	return append(in, enc...), nil
}

// parentHashInputTH encodes the parent case of TreeHashInput:
//
//	struct {
//	    NodeType node_type = parent;
//	    optional<ParentNode> parent_node;
//	    opaque left_hash<V>;
//	    opaque right_hash<V>;
//	} TreeHashInput (parent case);
func parentHashInputTH(pn *ParentNode, lh, rh []byte) ([]byte, error) {
	size := 3 + len(lh) + len(rh)
	if pn != nil {
		size += 16 + len(pn.EncryptionKey) + len(pn.ParentHash) + 4*len(pn.UnmergedLeaves)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, size))
	b.AddUint8(treeHashParent)
	addOptional(b, pn != nil, func(b *cryptobyte.Builder) { pn.marshal(b) })
	addOpaque(b, lh)
	addOpaque(b, rh)
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: tree hash input of parent node: %w", err)
	}
	return out, nil
}

// parentHash computes the parent hash of a node (§7.9):
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    opaque parent_hash<V>;
//	    opaque original_sibling_tree_hash<V>;
//	} ParentHashInput;
func (t *ratchetTree) parentHash(encryptionKey, parentHash, originalSiblingTreeHash []byte) []byte {
	return parentHashValue(t.cs, encryptionKey, parentHash, originalSiblingTreeHash)
}

// parentHashValue is the hash of a ParentHashInput (§7.9) in suite cs.
func parentHashValue(cs CipherSuite, encryptionKey, parentHash, originalSiblingTreeHash []byte) []byte {
	treeOps.parentHashes.Add(1)
	buf := make([]byte, 0, 12+len(encryptionKey)+len(parentHash)+len(originalSiblingTreeHash))
	buf = appendVarintPrefix(buf, len(encryptionKey))
	buf = append(buf, encryptionKey...)
	buf = appendVarintPrefix(buf, len(parentHash))
	buf = append(buf, parentHash...)
	buf = appendVarintPrefix(buf, len(originalSiblingTreeHash))
	buf = append(buf, originalSiblingTreeHash...)
	return cs.Hash(buf)
}

// parentHashOf returns the parent hash of the non-blank parent node p with
// copath child s (§7.9): the original sibling tree hash of s is the tree
// hash of s with p's unmerged leaves blanked and removed from every
// unmerged_leaves list.
func (t *ratchetTree) parentHashOf(p, s NodeIndex) ([]byte, error) {
	pn := t.parentNode(p)
	if pn == nil {
		return nil, fmt.Errorf("mls: parent hash of blank node %d", p)
	}
	osth, err := t.originalSiblingTreeHash(pn, s)
	if err != nil {
		return nil, err
	}
	return t.parentHash(pn.EncryptionKey, pn.ParentHash, osth), nil
}

// originalSiblingTreeHash is the tree hash of s with the leaves of
// pn.UnmergedLeaves blanked and removed from the unmerged lists (§7.9).
// When none of those leaves is under s, this is the cached tree hash of s.
func (t *ratchetTree) originalSiblingTreeHash(pn *ParentNode, s NodeIndex) ([]byte, error) {
	lo, hi := subtreeLeaves(s)
	var excl []uint32
	for _, u := range pn.UnmergedLeaves {
		if uint64(u) >= lo && uint64(u) < hi {
			excl = append(excl, u)
		}
	}
	if len(excl) == 0 {
		return t.nodeTreeHash(s)
	}
	if !sort.SliceIsSorted(excl, func(i, j int) bool { return excl[i] < excl[j] }) {
		sorted := append([]uint32(nil), excl...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		excl = sorted
	}
	return t.hashExcluding(s, excl)
}

// hashExcluding returns the tree hash of x in the tree where the leaves in
// excl (sorted, all under x) are blank and absent from every unmerged list.
// Subtrees containing no excluded leaf use the cache.
func (t *ratchetTree) hashExcluding(x NodeIndex, excl []uint32) ([]byte, error) {
	if len(excl) == 0 {
		return t.nodeTreeHash(x)
	}
	if isLeaf(x) {
		in, err := leafHashInput(LeafIndex(x>>1), nil)
		if err != nil {
			return nil, err
		}
		return t.cs.Hash(in), nil
	}
	l, _ := left(x)
	r, _ := right(x)
	_, mid := subtreeLeaves(l)
	split := sort.Search(len(excl), func(i int) bool { return uint64(excl[i]) >= mid })
	lh, err := t.hashExcluding(l, excl[:split])
	if err != nil {
		return nil, err
	}
	rh, err := t.hashExcluding(r, excl[split:])
	if err != nil {
		return nil, err
	}
	pn := t.parentNode(x)
	if pn != nil {
		kept := make([]uint32, 0, len(pn.UnmergedLeaves))
		for _, u := range pn.UnmergedLeaves {
			i := sort.Search(len(excl), func(i int) bool { return excl[i] >= u })
			if i == len(excl) || excl[i] != u {
				kept = append(kept, u)
			}
		}
		if len(kept) != len(pn.UnmergedLeaves) {
			filtered := *pn
			filtered.UnmergedLeaves = kept
			pn = &filtered
		}
	}
	in, err := parentHashInputTH(pn, lh, rh)
	if err != nil {
		return nil, err
	}
	return t.cs.Hash(in), nil
}

// pathParentHashes computes the parent_hash fields of a new filtered direct
// path (§7.9, §7.5 step 3) without modifying t: path[i] gets public key
// pubs[i] and an empty unmerged list, and copath[i] is its copath child.
// nodePH[i] is the parent_hash field of path[i] (empty for the topmost) and
// leafPH the parent_hash the committer's LeafNode must carry (empty when the
// path is empty). The original sibling tree hash of copath[i] is its current
// tree hash, since path[i] has no unmerged leaves.
func (t *ratchetTree) pathParentHashes(path, copath []NodeIndex, pubs [][]byte) (nodePH [][]byte, leafPH []byte, err error) {
	nodePH = make([][]byte, len(path))
	ph := []byte{}
	for i := len(path) - 1; i >= 0; i-- {
		nodePH[i] = ph
		sh, err := t.nodeTreeHash(copath[i])
		if err != nil {
			return nil, nil, err
		}
		ph = t.parentHash(pubs[i], nodePH[i], sh)
	}
	return nodePH, ph, nil
}

// installPath blanks the direct path of sender and stores the new parent
// nodes of its filtered direct path (§7.5 "merge UpdatePath", steps 1–2).
// Each node of the direct path is written once (blanked or replaced), so
// that nodes replaced by new ones do not turn blank in between.
func (t *ratchetTree) installPath(sender LeafIndex, path []NodeIndex, pubs, nodePH [][]byte) {
	n := t.numLeaves()
	i := 0
	for x, ok := parent(sender.nodeIndex(), n); ok; x, ok = parent(x, n) {
		var pn *ParentNode
		if i < len(path) && path[i] == x {
			pn = &ParentNode{
				EncryptionKey:  pubs[i],
				ParentHash:     nodePH[i],
				UnmergedLeaves: []uint32{},
			}
			i++
		}
		t.setParent(x, pn)
	}
}
