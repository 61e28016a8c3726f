package mls

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
)

// Benchmark fixture: a deterministic "full" tree of n members.
//
//   - Suite 0x0001 (X25519, Ed25519, SHA-256); leaves 0..n-1 of a tree of
//     2^ceil(log2 n) leaves, the rest blank.
//   - Leaf i: HPKE key pair DeriveKeyPair(SHA-256("canopy-bench leaf" ||
//     i)), signature key pair from a ChaCha8 stream seeded with i, basic
//     credential "member-i", source key_package. Leaf signatures are NOT
//     computed (a fixed placeholder): none of these benchmarks verifies
//     existing leaves, and signing 10,000 leaves would dominate setup.
//   - Every parent node with at least one member below it is non-blank,
//     with key pair DeriveKeyPair(SHA-256("canopy-bench node" || x)), no
//     unmerged leaves and an empty parent hash. So every copath child is a
//     single non-blank node: one HPKE encryption per level, the best case
//     TreeKEM is designed for.
//   - Every member's private tree is derivable from the same seeds.
//
// Fixtures are built once per size and shared (read-only; benchmarks clone).
type benchFixture struct {
	cs        CipherSuite
	groupID   []byte
	tree      ratchetTree
	leafPrivs [][]byte
	sigPrivs  [][]byte
	nodePrivs map[NodeIndex][]byte
}

var (
	benchFixturesMu sync.Mutex
	benchFixtures   = map[int]*benchFixture{}
)

func benchSeed(label string, i uint32) []byte {
	h := sha256.New()
	h.Write([]byte(label))
	binary.Write(h, binary.BigEndian, i)
	return h.Sum(nil)
}

func getBenchFixture(b *testing.B, n int) *benchFixture {
	b.Helper()
	benchFixturesMu.Lock()
	defer benchFixturesMu.Unlock()
	if f, ok := benchFixtures[n]; ok {
		return f
	}
	cs := CipherSuite(1)
	f := &benchFixture{cs: cs, groupID: []byte("bench-group"), nodePrivs: map[NodeIndex][]byte{}}
	leaves := make([]*LeafNode, n)
	for i := range n {
		priv, pub, err := cs.DeriveKeyPair(benchSeed("canopy-bench leaf", uint32(i)))
		if err != nil {
			b.Fatal(err)
		}
		sigPriv, sigPub, err := cs.GenerateSignatureKeyPair(treeTestRand(uint64(i) + 1<<20))
		if err != nil {
			b.Fatal(err)
		}
		f.leafPrivs = append(f.leafPrivs, priv)
		f.sigPrivs = append(f.sigPrivs, sigPriv)
		leaves[i] = &LeafNode{
			EncryptionKey: pub,
			SignatureKey:  sigPub,
			Credential:    NewBasicCredential(fmt.Appendf(nil, "member-%d", i)),
			Capabilities: Capabilities{
				Versions:     []ProtocolVersion{ProtocolMLS10},
				CipherSuites: []CipherSuite{cs},
				Extensions:   []ExtensionType{},
				Proposals:    []ProposalType{},
				Credentials:  []CredentialType{CredentialBasic},
			},
			Source:     LeafNodeSourceKeyPackage,
			Lifetime:   Lifetime{NotBefore: 0, NotAfter: 1<<63 - 1},
			Extensions: []Extension{},
			Signature:  make([]byte, 64),
		}
	}
	f.tree = newRatchetTree(cs)
	if _, err := f.tree.addLeaves(leaves); err != nil { // no parents yet: no unmerged leaves
		b.Fatal(err)
	}
	for x := NodeIndex(1); uint32(x) < f.tree.width(); x += 2 {
		if lo, _ := subtreeLeaves(x); lo >= uint64(n) {
			continue
		}
		priv, pub, err := cs.DeriveKeyPair(benchSeed("canopy-bench node", uint32(x)))
		if err != nil {
			b.Fatal(err)
		}
		f.nodePrivs[x] = priv
		f.tree.setParent(x, &ParentNode{EncryptionKey: pub, ParentHash: []byte{}, UnmergedLeaves: []uint32{}})
	}
	if _, err := f.tree.treeHash(); err != nil { // warm the hash cache
		b.Fatal(err)
	}
	f.tree.ensureKeyIndex() // shared by every clone
	benchFixtures[n] = f
	return f
}

// privateTreeFor returns member l's private state in the fixture.
func (f *benchFixture) privateTreeFor(b *testing.B, l LeafIndex) privateTree {
	p, err := newPrivateTree(f.cs, l, f.leafPrivs[l])
	if err != nil {
		b.Fatal(err)
	}
	for _, x := range directPath(l.nodeIndex(), f.tree.numLeaves()) {
		if priv, ok := f.nodePrivs[x]; ok {
			p.nodes = append(p.nodes, privateNode{x, f.tree.encryptionKey(x), priv})
		}
	}
	return p
}

func benchGC(b *testing.B, f *benchFixture, tree *ratchetTree) []byte {
	th, err := tree.treeHash()
	if err != nil {
		b.Fatal(err)
	}
	gc := GroupContext{Version: ProtocolMLS10, CipherSuite: f.cs, GroupID: f.groupID, Epoch: 1,
		TreeHash: th, ConfirmedTranscriptHash: make([]byte, 32), Extensions: []Extension{}}
	enc, err := gc.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return enc
}

// BenchmarkTreeHash: "full" recomputes every node's hash of a tree with a
// cold cache; "incremental" recomputes the root hash after one UpdatePath
// (alternating between two precomputed paths of member 0, so each
// iteration dirties the O(log n) nodes of a path).
func BenchmarkTreeHash(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		f := getBenchFixture(b, n)
		b.Run(fmt.Sprintf("n=%d/full", n), func(b *testing.B) {
			tree := f.tree.clone()
			for b.Loop() {
				b.StopTimer()
				for x := NodeIndex(0); uint32(x) < tree.width(); x++ {
					tree.mutSlot(x).hash = nil
				}
				b.StartTimer()
				if _, err := tree.treeHash(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("n=%d/incremental", n), func(b *testing.B) {
			tree := f.tree.clone()
			type pathState struct {
				leaf  *LeafNode
				nodes []*ParentNode
			}
			path, _ := tree.filteredDirectPath(0)
			var states [2]pathState
			rnd := treeTestRand(42)
			for k := range states {
				ln := *tree.leaf(0)
				_, ln.EncryptionKey, _ = f.cs.GenerateHPKEKeyPair(rnd)
				states[k].leaf = &ln
				for range path {
					_, pub, _ := f.cs.GenerateHPKEKeyPair(rnd)
					states[k].nodes = append(states[k].nodes, &ParentNode{EncryptionKey: pub, ParentHash: []byte{}, UnmergedLeaves: []uint32{}})
				}
			}
			i := 0
			for b.Loop() {
				s := &states[i&1]
				i++
				tree.setLeaf(0, s.leaf)
				for k, x := range path {
					tree.setParent(x, s.nodes[k])
				}
				if _, err := tree.treeHash(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTreeClone measures the cost the ordering module pays to keep an
// epoch's tree.
func BenchmarkTreeClone(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		f := getBenchFixture(b, n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				c := f.tree.clone()
				_ = c
			}
		})
	}
}

// BenchmarkGenerateUpdatePath: a committer (member 0) clones the tree,
// generates its new path (key derivations, parent hashes, leaf signature),
// computes the provisional tree hash and encrypts the path secrets.
func BenchmarkGenerateUpdatePath(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		f := getBenchFixture(b, n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			rnd := treeTestRand(7)
			var encryptions int
			for b.Loop() {
				tree := f.tree.clone()
				pp, err := tree.generateUpdatePath(0, tree.leaf(0), f.sigPrivs[0], f.groupID, rnd)
				if err != nil {
					b.Fatal(err)
				}
				up, err := tree.encryptUpdatePath(pp, benchGC(b, f, &tree), nil, rnd)
				if err != nil {
					b.Fatal(err)
				}
				encryptions = 0
				for _, node := range up.Nodes {
					encryptions += len(node.EncryptedPathSecret)
				}
			}
			b.ReportMetric(float64(encryptions), "encryptions/op")
		})
	}
}

// BenchmarkProcessUpdatePath: member 1 (the committer's sibling, the
// receiver that derives the longest chain) clones the tree, merges and
// validates member 0's UpdatePath (leaf §7.3 checks incl. signature, key
// uniqueness, parent hashes), computes the provisional tree hash, decrypts
// its path secret and derives the keys up to the root.
func BenchmarkProcessUpdatePath(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		f := getBenchFixture(b, n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			rnd := treeTestRand(9)
			gen := f.tree.clone()
			pp, err := gen.generateUpdatePath(0, gen.leaf(0), f.sigPrivs[0], f.groupID, rnd)
			if err != nil {
				b.Fatal(err)
			}
			up, err := gen.encryptUpdatePath(pp, benchGC(b, f, &gen), nil, rnd)
			if err != nil {
				b.Fatal(err)
			}
			priv := f.privateTreeFor(b, 1)
			v := &leafValidation{GroupID: f.groupID}
			for b.Loop() {
				tree := f.tree.clone()
				if err := tree.mergeUpdatePath(0, up, nil, v); err != nil {
					b.Fatal(err)
				}
				p := priv.clone()
				dec, err := p.decryptUpdatePath(&tree, 0, up, benchGC(b, f, &tree), nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(dec.commitSecret) == 0 {
					b.Fatal("no commit secret")
				}
			}
		})
	}
}
