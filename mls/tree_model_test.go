package mls

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTreeCopyOnWriteModel drives a tree large enough for two directory
// levels of the persistent vector through random node changes, extensions,
// truncations and clones, and checks it against a plain-array model after
// every step: the nodes, the subtree counts, the key index, the leftmost
// blank leaf, the tree hash, and that no clone ever sees a later change of
// another.
func TestTreeCopyOnWriteModel(t *testing.T) {
	cs := CipherSuite(1)
	r := rand.New(rand.NewPCG(3, 4))
	key := func() []byte {
		k := make([]byte, 32)
		for i := range k {
			k[i] = byte(r.Uint32())
		}
		return k
	}
	fakeLeaf := func() *LeafNode {
		return &LeafNode{EncryptionKey: key(), SignatureKey: key(), Credential: NewBasicCredential([]byte("x")),
			Capabilities: Capabilities{Versions: []ProtocolVersion{}, CipherSuites: []CipherSuite{}, Extensions: []ExtensionType{},
				Proposals: []ProposalType{}, Credentials: []CredentialType{CredentialBasic}},
			Source: LeafNodeSourceKeyPackage, Extensions: []Extension{}, Signature: []byte{}}
	}
	type model struct {
		leaves  []*LeafNode
		parents []*ParentNode
	}
	cloneModel := func(m model) model { return model{slices.Clone(m.leaves), slices.Clone(m.parents)} }
	check := func(step int, what string, tr *ratchetTree, m model) {
		t.Helper()
		if int(tr.numLeaves()) != len(m.leaves) {
			t.Fatalf("step %d (%s): %d leaves, model %d", step, what, tr.numLeaves(), len(m.leaves))
		}
		// Subtree counts of the model, level by level.
		w := tr.width()
		memb := make([]uint32, w)
		nb := make([]uint32, w)
		for lvl := uint(0); w > 0 && lvl <= level(tr.root()); lvl++ {
			for x := NodeIndex(1)<<lvl - 1; uint32(x) < w; x += NodeIndex(1) << (lvl + 1) {
				if lvl == 0 {
					if m.leaves[x/2] != nil {
						memb[x], nb[x] = 1, 1
					}
					continue
				}
				l, _ := left(x)
				rr, _ := right(x)
				memb[x], nb[x] = memb[l]+memb[rr], nb[l]+nb[rr]
				if m.parents[x/2] != nil {
					nb[x]++
				}
			}
		}
		members := func(x NodeIndex) uint32 { return memb[x] }
		nonBlank := func(x NodeIndex) uint32 { return nb[x] }
		encKeys, sigKeys := 0, 0
		firstBlank := LeafIndex(len(m.leaves))
		for x := NodeIndex(0); uint32(x) < tr.width(); x++ {
			s := tr.slot(x)
			if isLeaf(x) {
				ln := m.leaves[x/2]
				if s.leaf != ln {
					t.Fatalf("step %d (%s): leaf %d differs", step, what, x/2)
				}
				if ln == nil && firstBlank == LeafIndex(len(m.leaves)) {
					firstBlank = LeafIndex(x / 2)
				}
				if ln != nil {
					encKeys++
					sigKeys++
					if l, ok := tr.lookupSignatureKey(ln.SignatureKey); !ok || l != LeafIndex(x/2) {
						t.Fatalf("step %d (%s): signature key of leaf %d not indexed", step, what, x/2)
					}
				}
			} else if s.parent != m.parents[x/2] {
				t.Fatalf("step %d (%s): parent %d differs", step, what, x)
			} else if s.parent != nil {
				encKeys++
			}
			if k := tr.encryptionKey(x); k != nil {
				if y, ok := tr.lookupEncryptionKey(k); !ok || y != x {
					t.Fatalf("step %d (%s): encryption key of node %d not indexed", step, what, x)
				}
			}
			if s.members != members(x) || s.nonBlank != nonBlank(x) {
				t.Fatalf("step %d (%s): node %d counts %d/%d, want %d/%d", step, what, x, s.members, s.nonBlank, members(x), nonBlank(x))
			}
		}
		if tr.indexed && (tr.encIdx.size != encKeys || tr.sigIdx.size != sigKeys) {
			t.Fatalf("step %d (%s): index sizes %d/%d, want %d/%d", step, what, tr.encIdx.size, tr.sigIdx.size, encKeys, sigKeys)
		}
		if got := tr.firstBlankLeaf(); got != firstBlank {
			t.Fatalf("step %d (%s): first blank leaf %d, want %d", step, what, got, firstBlank)
		}
		if tr.lastNonBlank() >= 0 && step%10 == 0 {
			got, err1 := tr.marshal()
			want, err2 := tr.wire().Marshal()
			if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Fatalf("step %d (%s): fast encoding differs (%v, %v) at %d of %d/%d: %x vs %x", step, what, err1, err2, i, len(got), len(want), got[max(i-8, 0):min(i+8, len(got))], want[max(i-8, 0):min(i+8, len(want))])
			}
		}
		if len(m.leaves) > 0 && step%10 == 0 {
			fresh := treeFromArrays(cs, slices.Clone(m.leaves), slices.Clone(m.parents), nil, nil)
			want, err1 := fresh.treeHash()
			got, err2 := tr.treeHash()
			if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
				t.Fatalf("step %d (%s): tree hash differs (%v, %v)", step, what, err1, err2)
			}
		}
	}

	const start = 3000 // 4096 leaves: 8191 slots, two directory levels
	m := model{}
	tr := newRatchetTree(cs)
	for len(m.leaves) < start {
		tr.extend()
		m.leaves = append(m.leaves, make([]*LeafNode, max(len(m.leaves), 1))...)
		if len(m.leaves) > 1 {
			m.parents = append(m.parents, make([]*ParentNode, len(m.leaves)-1-len(m.parents))...)
		}
	}
	for i := range start {
		ln := fakeLeaf()
		tr.setLeaf(LeafIndex(i), ln)
		m.leaves[i] = ln
	}
	tr.ensureKeyIndex()
	type snap struct {
		tr ratchetTree
		m  model
	}
	var snaps []snap
	for step := range 200 {
		what := ""
		switch op := r.IntN(10); {
		case op < 4: // leaf change
			l := r.IntN(len(m.leaves))
			var ln *LeafNode
			var enc []byte
			if r.IntN(3) > 0 {
				ln = fakeLeaf()
				if r.IntN(2) == 0 {
					enc, _ = ln.Marshal()
				}
			}
			tr.setLeafEnc(LeafIndex(l), ln, enc)
			m.leaves[l] = ln
			what = "leaf"
		case op < 7 && len(m.parents) > 0: // parent change
			j := r.IntN(len(m.parents))
			var pn *ParentNode
			if r.IntN(3) > 0 {
				pn = &ParentNode{EncryptionKey: key(), ParentHash: []byte{}, UnmergedLeaves: []uint32{}}
			}
			tr.setParent(NodeIndex(2*j+1), pn)
			m.parents[j] = pn
			what = "parent"
		case op == 7: // blank a whole right half, then truncate
			h := len(m.leaves) / 2
			for l := h; l < len(m.leaves); l++ {
				if r.IntN(4) > 0 || l > h+40 {
					tr.setLeaf(LeafIndex(l), nil)
					m.leaves[l] = nil
				}
			}
			tr.truncate()
			n := len(m.leaves)
			for n > 1 && !slices.ContainsFunc(m.leaves[n/2:n], func(ln *LeafNode) bool { return ln != nil }) {
				n /= 2
			}
			m.leaves, m.parents = m.leaves[:n], m.parents[:max(n-1, 0)]
			what = "truncate"
		case op == 8: // extend
			if len(m.leaves) < 1<<13 {
				tr.extend()
				n := len(m.leaves)
				m.leaves = append(m.leaves, make([]*LeafNode, n)...)
				m.parents = append(m.parents, make([]*ParentNode, n)...)
				what = "extend"
			}
		default: // clone: keep the snapshot, go on with either copy
			c := tr.clone()
			cm := cloneModel(m)
			if r.IntN(2) == 0 {
				snaps = append(snaps, snap{tr, m})
				tr, m = c, cm
			} else {
				snaps = append(snaps, snap{c, cm})
			}
			what = "clone"
		}
		check(step, what, &tr, m)
	}
	for i := range snaps {
		check(-1, fmt.Sprintf("snapshot %d", i), &snaps[i].tr, snaps[i].m)
	}
}

// TestKeyIndexModel checks the persistent key index against a map through
// many insertions, removals and clones (bucket splits included). Value i
// stands for key i.
func TestKeyIndexModel(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	keys := make([][]byte, 5000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d-%d", i, r.Uint64())
	}
	keyOf := func(v uint32) []byte { return keys[v] }
	type version struct {
		ix    keyIndex
		model map[uint32]bool
	}
	owner := newTreeOwner()
	cur := version{model: map[uint32]bool{}}
	var old []version
	verify := func(v version) {
		t.Helper()
		if v.ix.size != len(v.model) {
			t.Fatalf("size %d, model %d", v.ix.size, len(v.model))
		}
		for i, k := range keys {
			got, ok := v.ix.get(k, keyOf)
			if ok != v.model[uint32(i)] || ok && got != uint32(i) {
				t.Fatalf("key %d: %d %v, want %v", i, got, ok, v.model[uint32(i)])
			}
		}
	}
	for step := range 30000 {
		i := uint32(r.IntN(len(keys)))
		switch r.IntN(5) {
		case 0, 1, 2:
			cur.ix.put(keys[i], i, keyOf, owner)
			cur.model[i] = true
		case 3:
			cur.ix.remove(keys[i], i, owner)
			delete(cur.model, i)
		default:
			if step%500 == 0 {
				old = append(old, version{cur.ix, maps.Clone(cur.model)})
				owner = newTreeOwner() // both copies now share the nodes
			}
		}
	}
	verify(cur)
	for _, v := range old {
		verify(v)
	}
}
