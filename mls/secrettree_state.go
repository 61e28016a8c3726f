package mls

import (
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Serialization (canopy's own encoding, for group state snapshots; not an
// RFC 9420 structure). Entries are sorted so that the encoding of a state is
// canonical:
//
//	struct {
//	    uint8 version = 1;
//	    CipherSuite cipher_suite;
//	    uint32 n_leaves;
//	    NodeSecret nodes<V>;        // ascending node
//	    LeafRatchets leaves<V>;     // ascending leaf
//	} SecretTreeState;
//
//	struct { uint32 node; opaque secret<V>; } NodeSecret;
//	struct { uint32 leaf; Ratchet handshake; Ratchet application; } LeafRatchets;
//	struct { uint32 next; opaque secret<V>; SkippedKey skipped<V>; } Ratchet;  // ascending generation
//	struct { uint32 generation; opaque key<V>; opaque nonce<V>; } SkippedKey;

const secretTreeStateVersion = 1

func (t *secretTree) marshal(b *cryptobyte.Builder) {
	b.AddUint8(secretTreeStateVersion)
	b.AddUint16(uint16(t.cs))
	b.AddUint32(t.n)
	nodes := make([]NodeIndex, 0, len(t.nodes))
	for x := range t.nodes {
		nodes = append(nodes, x)
	}
	slices.Sort(nodes)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, x := range nodes {
			b.AddUint32(uint32(x))
			addOpaque(b, t.nodes[x])
		}
	})
	leaves := make([]LeafIndex, 0, len(t.ratchet))
	for l := range t.ratchet {
		leaves = append(leaves, l)
	}
	slices.Sort(leaves)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, l := range leaves {
			b.AddUint32(uint32(l))
			t.ratchet[l].handshake.marshal(b)
			t.ratchet[l].application.marshal(b)
		}
	})
}

func (r *hashRatchet) marshal(b *cryptobyte.Builder) {
	b.AddUint32(r.next)
	addOpaque(b, r.secret)
	gens := make([]uint32, 0, len(r.skipped))
	for g := range r.skipped {
		gens = append(gens, g)
	}
	slices.Sort(gens)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, g := range gens {
			b.AddUint32(g)
			addOpaque(b, r.skipped[g].key)
			addOpaque(b, r.skipped[g].nonce)
		}
	})
}

// unmarshal decodes a SecretTreeState and checks that it is a state the
// tree could have reached: supported suite, secrets of the suite's sizes,
// sorted unique entries inside the tree, and node secrets and ratchets that
// cover every leaf exactly once. The options already set on t are kept (the
// zero value selects the defaults). Decoded secrets are copied, so the input
// may be wiped afterwards.
func (t *secretTree) unmarshal(s *cryptobyte.String) bool {
	var version uint8
	if !s.ReadUint8(&version) || version != secretTreeStateVersion ||
		!s.ReadUint16((*uint16)(&t.cs)) || !t.cs.Supported() ||
		!s.ReadUint32(&t.n) || !validLeafCount(t.n) {
		return false
	}
	nh, nk, nn := t.cs.Nh(), t.cs.Nk(), t.cs.Nn()
	t.nodes = map[NodeIndex][]byte{}
	t.ratchet = map[LeafIndex]*leafRatchets{}
	first := true
	var prev NodeIndex
	ok := readVector(s, func(s *cryptobyte.String) bool {
		var x uint32
		var secret []byte
		if !s.ReadUint32(&x) || !readOpaque(s, &secret) || len(secret) != nh ||
			!inTree(NodeIndex(x), t.n) || (!first && NodeIndex(x) <= prev) {
			return false
		}
		if lo, _ := subtreeLeaves(NodeIndex(x)); lo >= uint64(t.n) {
			return false
		}
		first, prev = false, NodeIndex(x)
		t.nodes[NodeIndex(x)] = slices.Clone(secret)
		return true
	})
	if !ok {
		return false
	}
	first = true
	var prevLeaf LeafIndex
	ok = readVector(s, func(s *cryptobyte.String) bool {
		var l uint32
		lr := &leafRatchets{}
		if !s.ReadUint32(&l) || l >= t.n || (!first && LeafIndex(l) <= prevLeaf) ||
			!lr.handshake.unmarshal(s, nh, nk, nn) || !lr.application.unmarshal(s, nh, nk, nn) {
			return false
		}
		first, prevLeaf = false, LeafIndex(l)
		t.ratchet[LeafIndex(l)] = lr
		return true
	})
	if !ok || !t.checkCover() {
		return false
	}
	if !t.limitsSet {
		t.maxSkipped, t.maxForward = SecretTreeOptions{}.limits()
		t.limitsSet = true
	}
	t.enforceWindows()
	return true
}

func (r *hashRatchet) unmarshal(s *cryptobyte.String, nh, nk, nn int) bool {
	if !s.ReadUint32(&r.next) || !readOpaque(s, &r.secret) || len(r.secret) != nh {
		return false
	}
	r.secret = slices.Clone(r.secret)
	first := true
	var prev uint32
	return readVector(s, func(s *cryptobyte.String) bool {
		var g uint32
		var k ratchetKey
		if !s.ReadUint32(&g) || g >= r.next || (!first && g <= prev) ||
			!readOpaque(s, &k.key) || len(k.key) != nk || !readOpaque(s, &k.nonce) || len(k.nonce) != nn {
			return false
		}
		first, prev = false, g
		if r.skipped == nil {
			r.skipped = map[uint32]ratchetKey{}
		}
		r.skipped[g] = ratchetKey{slices.Clone(k.key), slices.Clone(k.nonce)}
		return true
	})
}

// checkCover reports whether the stored node secrets and leaf ratchets
// partition the leaves: no stored node lies below another stored node or
// above a leaf with ratchets, and together they cover n leaves.
func (t *secretTree) checkCover() bool {
	r := root(t.n)
	aboveStored := func(x NodeIndex) bool { // is a strict ancestor of x stored?
		for x != r {
			x = parentStep(x)
			if _, ok := t.nodes[x]; ok {
				return true
			}
		}
		return false
	}
	covered := uint64(len(t.ratchet))
	for x := range t.nodes {
		if aboveStored(x) {
			return false
		}
		lo, hi := subtreeLeaves(x)
		covered += min(hi, uint64(t.n)) - lo
	}
	for l := range t.ratchet {
		x := l.nodeIndex()
		if _, ok := t.nodes[x]; ok || aboveStored(x) {
			return false
		}
	}
	return covered == uint64(t.n)
}

// marshalBinary returns the canonical SecretTreeState encoding.
func (t *secretTree) marshalBinary() ([]byte, error) { return marshalStruct(t) }

// unmarshalSecretTree restores a tree from marshalBinary's output.
func unmarshalSecretTree(data []byte, opts SecretTreeOptions) (*secretTree, error) {
	t := &secretTree{}
	t.setOptions(opts)
	if err := unmarshalStruct(data, t, "secret tree state"); err != nil {
		return nil, err
	}
	return t, nil
}
