package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func init() {
	registerVector("tree-operations", checkTreeOperations)
	registerVector("tree-validation", checkTreeValidation)
}

type treeOperationsVector struct {
	CipherSuite    uint16   `json:"cipher_suite"`
	TreeBefore     hexBytes `json:"tree_before"`
	Proposal       hexBytes `json:"proposal"`
	ProposalSender uint32   `json:"proposal_sender"`
	TreeHashBefore hexBytes `json:"tree_hash_before"`
	TreeAfter      hexBytes `json:"tree_after"`
	TreeHashAfter  hexBytes `json:"tree_hash_after"`
}

// checkTreeOperations applies the vector's Add, Update or Remove to
// tree_before and compares the encoding and tree hash with tree_after.
func checkTreeOperations(t *testing.T, data []byte) {
	cases := decodeVectors[treeOperationsVector](t, data)
	runPerSuite(t, cases, func(v treeOperationsVector) uint16 { return v.CipherSuite }, func(t *testing.T, cs CipherSuite, v treeOperationsVector) {
		tree, err := unmarshalTree(cs, v.TreeBefore)
		if err != nil {
			t.Fatal(err)
		}
		th, err := tree.treeHash()
		if err != nil {
			t.Fatal(err)
		}
		mustEqualBytes(t, "tree_hash_before", th, v.TreeHashBefore)
		before := tree.clone()
		var prop Proposal
		if err := prop.Unmarshal(v.Proposal); err != nil {
			t.Fatal(err)
		}
		switch prop.Type {
		case ProposalTypeAdd:
			ln := prop.Add.KeyPackage.LeafNode
			if err := tree.validateLeafNode(&ln, LeafIndex(tree.numLeaves()), LeafNodeSourceKeyPackage, nil); err != nil {
				t.Errorf("added leaf does not validate: %v", err)
			}
			if _, err := tree.addLeaf(&ln); err != nil {
				t.Fatal(err)
			}
		case ProposalTypeUpdate:
			ln := prop.Update.LeafNode
			if err := tree.updateLeaf(LeafIndex(v.ProposalSender), &ln); err != nil {
				t.Fatal(err)
			}
		case ProposalTypeRemove:
			if err := tree.removeLeaf(LeafIndex(prop.Remove.Removed)); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected proposal type %v", prop.Type)
		}
		got, err := tree.marshal()
		if err != nil {
			t.Fatal(err)
		}
		mustEqualBytes(t, "tree_after", got, v.TreeAfter)
		th, err = tree.treeHash()
		if err != nil {
			t.Fatal(err)
		}
		mustEqualBytes(t, "tree_hash_after (incremental)", th, v.TreeHashAfter)
		fresh, err := unmarshalTree(cs, got)
		if err != nil {
			t.Fatal(err)
		}
		th, _ = fresh.treeHash()
		mustEqualBytes(t, "tree_hash_after (fresh)", th, v.TreeHashAfter)
		// The clone taken before the operation is untouched.
		bb, _ := before.marshal()
		mustEqualBytes(t, "clone of tree_before", bb, v.TreeBefore)
		th, _ = before.treeHash()
		mustEqualBytes(t, "clone tree hash", th, v.TreeHashBefore)
	})
}

type treeValidationVector struct {
	CipherSuite uint16     `json:"cipher_suite"`
	Tree        hexBytes   `json:"tree"`
	GroupID     hexBytes   `json:"group_id"`
	Resolutions [][]uint32 `json:"resolutions"`
	TreeHashes  []hexBytes `json:"tree_hashes"`
}

// checkTreeValidation checks the tree hash and resolution of every node, the
// filtered direct paths, and that the tree is valid (parent hashes, leaf
// signatures with group_id, unmerged leaves, unique keys).
func checkTreeValidation(t *testing.T, data []byte) {
	cases := decodeVectors[treeValidationVector](t, data)
	runPerSuite(t, cases, func(v treeValidationVector) uint16 { return v.CipherSuite }, func(t *testing.T, cs CipherSuite, v treeValidationVector) {
		tree, err := unmarshalTree(cs, v.Tree)
		if err != nil {
			t.Fatal(err)
		}
		if int(tree.width()) != len(v.TreeHashes) || len(v.Resolutions) != len(v.TreeHashes) {
			t.Fatalf("tree has %d nodes, vector %d hashes and %d resolutions", tree.width(), len(v.TreeHashes), len(v.Resolutions))
		}
		for i := range v.TreeHashes {
			x := NodeIndex(i)
			h, err := tree.nodeTreeHash(x)
			if err != nil {
				t.Fatal(err)
			}
			mustEqualBytes(t, fmt.Sprintf("tree hash of node %d", i), h, v.TreeHashes[i])
			res := tree.resolution(x)
			want := make([]NodeIndex, len(v.Resolutions[i]))
			for j, r := range v.Resolutions[i] {
				want[j] = NodeIndex(r)
			}
			if !slices.Equal(res, want) {
				t.Errorf("resolution of node %d = %v, want %v", i, res, want)
			}
			if tree.resolutionEmpty(x) != (len(want) == 0) {
				t.Errorf("resolutionEmpty(%d) = %v", i, tree.resolutionEmpty(x))
			}
		}
		// Filtered direct paths agree with the definition on resolutions.
		for l := range tree.numLeaves() {
			path, cop := tree.filteredDirectPath(LeafIndex(l))
			var wantPath, wantCop []NodeIndex
			dp := directPath(LeafIndex(l).nodeIndex(), tree.numLeaves())
			cp := copath(LeafIndex(l).nodeIndex(), tree.numLeaves())
			for k := range dp {
				if len(v.Resolutions[cp[k]]) > 0 {
					wantPath = append(wantPath, dp[k])
					wantCop = append(wantCop, cp[k])
				}
			}
			if !slices.Equal(path, wantPath) || !slices.Equal(cop, wantCop) {
				t.Errorf("filtered direct path of leaf %d = %v/%v, want %v/%v", l, path, cop, wantPath, wantCop)
			}
		}
		root := v.TreeHashes[tree.root()]
		if err := tree.validate(root, &leafValidation{GroupID: v.GroupID}); err != nil {
			t.Fatalf("valid tree rejected: %v", err)
		}
		// Every non-blank parent is parent-hash valid through exactly one
		// descendant.
		for x := NodeIndex(1); uint32(x) < tree.width(); x += 2 {
			if tree.blank(x) {
				continue
			}
			n, err := tree.parentHashValidCount(x)
			if err != nil || n != 1 {
				t.Errorf("node %d: %d parent-hash-valid descendants, err %v", x, n, err)
			}
		}
		// A wrong group_id breaks the signatures of update/commit leaves.
		hasContext := false
		tree.forEachMember(func(_ LeafIndex, ln *LeafNode) bool {
			hasContext = ln.Source != LeafNodeSourceKeyPackage
			return !hasContext
		})
		if hasContext {
			err := tree.validate(nil, &leafValidation{GroupID: append(slices.Clone(v.GroupID), 0)})
			if !errors.Is(err, ErrInvalidTree) || !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("wrong group_id: got %v", err)
			}
		}
	})
}

// --- A small group built with real TreeKEM commits -----------------------

// treeTestRand returns a deterministic random stream.
func treeTestRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	s[31] = 0x7e
	return rand.NewChaCha8(s)
}

// treeTestGroup is a group whose tree is built by commits with paths, as in
// the "get_tree(n)" construction of the tree-validation vectors: leaf i
// commits adding leaf i+1. Every member's private tree is kept up to date.
type treeTestGroup struct {
	cs       CipherSuite
	groupID  []byte
	epoch    uint64
	tree     ratchetTree
	sigPriv  map[LeafIndex][]byte
	priv     map[LeafIndex]*privateTree
	rnd      *rand.ChaCha8
	identity int
}

func treeTestLeaf(t testing.TB, g *treeTestGroup) (*LeafNode, []byte, []byte) {
	t.Helper()
	cs := g.cs
	sigPriv, sigPub, err := cs.GenerateSignatureKeyPair(g.rnd)
	if err != nil {
		t.Fatal(err)
	}
	encPriv, encPub, err := cs.GenerateHPKEKeyPair(g.rnd)
	if err != nil {
		t.Fatal(err)
	}
	g.identity++
	ln := &LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPub,
		Credential:    NewBasicCredential(fmt.Appendf(nil, "member-%d", g.identity)),
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
	}
	if err := ln.Sign(cs, sigPriv, nil, 0, g.rnd); err != nil {
		t.Fatal(err)
	}
	return ln, sigPriv, encPriv
}

func treeTestGC(t testing.TB, cs CipherSuite, groupID []byte, epoch uint64, tree *ratchetTree) []byte {
	t.Helper()
	th, err := tree.treeHash()
	if err != nil {
		t.Fatal(err)
	}
	gc := GroupContext{Version: ProtocolMLS10, CipherSuite: cs, GroupID: groupID, Epoch: epoch,
		TreeHash: th, ConfirmedTranscriptHash: []byte{}, Extensions: []Extension{}}
	b, err := gc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTreeTestGroup(t testing.TB, cs CipherSuite, seed uint64) *treeTestGroup {
	t.Helper()
	g := &treeTestGroup{cs: cs, groupID: []byte("tree-test-group"), tree: newRatchetTree(cs),
		sigPriv: map[LeafIndex][]byte{}, priv: map[LeafIndex]*privateTree{}, rnd: treeTestRand(seed)}
	ln, sigPriv, encPriv := treeTestLeaf(t, g)
	l, err := g.tree.addLeaf(ln)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := newPrivateTree(cs, l, encPriv)
	if err != nil {
		t.Fatal(err)
	}
	g.sigPriv[l], g.priv[l] = sigPriv, &pt
	return g
}

// commit has committer apply adds (new members) and removes, then commit
// with a path that every other member processes. It returns the commit
// secret.
func (g *treeTestGroup) commit(t testing.TB, committer LeafIndex, adds int, removes []LeafIndex) []byte {
	t.Helper()
	cs := g.cs
	next := g.tree.clone()
	for _, r := range removes {
		if err := next.removeLeaf(r); err != nil {
			t.Fatal(err)
		}
	}
	var newLeaves []*LeafNode
	var newSig, newEnc [][]byte
	for range adds {
		ln, sp, ep := treeTestLeaf(t, g)
		if err := next.validateLeafNode(ln, LeafIndex(next.numLeaves()), LeafNodeSourceKeyPackage, &leafValidation{GroupID: g.groupID}); err != nil {
			t.Fatal(err)
		}
		newLeaves = append(newLeaves, ln)
		newSig, newEnc = append(newSig, sp), append(newEnc, ep)
	}
	added, err := next.addLeaves(newLeaves)
	if err != nil {
		t.Fatal(err)
	}
	base := next.clone() // the tree receivers start from
	pp, err := next.generateUpdatePath(committer, next.leaf(committer), g.sigPriv[committer], g.groupID, g.rnd)
	if err != nil {
		t.Fatal(err)
	}
	gc := treeTestGC(t, cs, g.groupID, g.epoch+1, &next)
	up, err := next.encryptUpdatePath(pp, gc, added, g.rnd)
	if err != nil {
		t.Fatal(err)
	}
	// Receivers.
	wantHash, _ := next.treeHash()
	privs := map[LeafIndex]*privateTree{}
	for l, p := range g.priv {
		if l == committer || slices.Contains(removes, l) {
			continue
		}
		recv := base.clone()
		if err := recv.mergeUpdatePath(committer, up, added, &leafValidation{GroupID: g.groupID}); err != nil {
			t.Fatalf("leaf %d merging the path of %d: %v", l, committer, err)
		}
		h, _ := recv.treeHash()
		if !bytes.Equal(h, wantHash) {
			t.Fatalf("leaf %d: tree hash after merge differs from the committer's", l)
		}
		np := p.clone()
		dec, err := np.decryptUpdatePath(&recv, committer, up, treeTestGC(t, cs, g.groupID, g.epoch+1, &recv), added)
		if err != nil {
			t.Fatalf("leaf %d processing the path of %d: %v", l, committer, err)
		}
		if !bytes.Equal(dec.commitSecret, pp.commitSecret) {
			t.Fatalf("leaf %d: commit secret differs", l)
		}
		if err := np.consistent(&recv); err != nil {
			t.Fatalf("leaf %d: %v", l, err)
		}
		privs[l] = &np
	}
	cp := pp.privateTree()
	privs[committer] = &cp
	// Joiners implant the path secret from their Welcome.
	for i, l := range added {
		np, err := newPrivateTree(cs, l, newEnc[i])
		if err != nil {
			t.Fatal(err)
		}
		ps, ok := pp.pathSecretFor(l)
		if !ok {
			t.Fatalf("no path secret for joiner %d", l)
		}
		if err := np.implant(&next, commonAncestor(committer.nodeIndex(), l.nodeIndex()), ps); err != nil {
			t.Fatal(err)
		}
		if err := np.consistent(&next); err != nil {
			t.Fatal(err)
		}
		privs[l] = &np
		g.sigPriv[l] = newSig[i]
	}
	for _, r := range removes {
		delete(g.sigPriv, r)
	}
	g.priv = privs
	g.tree = next
	g.epoch++
	return pp.commitSecret
}

// getTree builds get_tree(n) of the tree-validation vectors: leaf i commits
// adding leaf i+1.
func getTree(t testing.TB, cs CipherSuite, n int, seed uint64) *treeTestGroup {
	t.Helper()
	g := newTreeTestGroup(t, cs, seed)
	for i := range n - 1 {
		g.commit(t, LeafIndex(i), 1, nil)
	}
	return g
}

func mustValidate(t *testing.T, g *treeTestGroup) {
	t.Helper()
	th, err := g.tree.treeHash()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.tree.validate(th, &leafValidation{GroupID: g.groupID}); err != nil {
		t.Fatalf("valid tree rejected: %v", err)
	}
}

// TestTreeGroupLifecycle runs adds, removes, blanks and truncation with
// paths in every suite and validates the tree after each step.
func TestTreeGroupLifecycle(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(cs.String(), func(t *testing.T) {
			g := getTree(t, cs, 6, uint64(cs))
			mustValidate(t, g)
			// Leaf 0 removes 2 and 3 and adds two members (internal blanks,
			// unmerged leaves).
			g.commit(t, 0, 0, []LeafIndex{2, 3})
			mustValidate(t, g)
			g.commit(t, 1, 3, nil)
			mustValidate(t, g)
			// Remove the rightmost members: the tree truncates.
			before := g.tree.numLeaves()
			g.commit(t, 0, 0, []LeafIndex{4, 5, 6})
			mustValidate(t, g)
			if g.tree.numLeaves() >= before {
				t.Fatalf("tree did not truncate: %d leaves", g.tree.numLeaves())
			}
			// Round trip through the wire form.
			enc, err := g.tree.marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := unmarshalTree(cs, enc)
			if err != nil {
				t.Fatal(err)
			}
			enc2, _ := back.marshal()
			mustEqualBytes(t, "re-encoding", enc2, enc)
			h1, _ := g.tree.treeHash()
			h2, _ := back.treeHash()
			mustEqualBytes(t, "restored tree hash", h2, h1)
			if back.numLeaves() != g.tree.numLeaves() {
				t.Fatalf("restored %d leaves, want %d", back.numLeaves(), g.tree.numLeaves())
			}
		})
	}
}

// TestTreeHashIncremental checks the cached tree hashes against a fresh
// computation after random operations.
func TestTreeHashIncremental(t *testing.T) {
	cs := CipherSuite(1)
	g := getTree(t, cs, 5, 99)
	r := rand.New(rand.NewPCG(1, 2))
	for step := range 40 {
		members := []LeafIndex{}
		g.tree.forEachMember(func(l LeafIndex, _ *LeafNode) bool { members = append(members, l); return true })
		switch op := r.IntN(3); {
		case op == 0 || len(members) < 3:
			g.commit(t, members[r.IntN(len(members))], 1+r.IntN(3), nil)
		case op == 1:
			rm := members[r.IntN(len(members))]
			c := members[r.IntN(len(members))]
			for c == rm {
				c = members[r.IntN(len(members))]
			}
			g.commit(t, c, 0, []LeafIndex{rm})
		default:
			// An Update proposal (no path): blanks the sender's path.
			l := members[r.IntN(len(members))]
			ln := *g.tree.leaf(l)
			priv, pub, _ := cs.GenerateHPKEKeyPair(g.rnd)
			ln.EncryptionKey, ln.Source = pub, LeafNodeSourceUpdate
			if err := ln.Sign(cs, g.sigPriv[l], g.groupID, uint32(l), g.rnd); err != nil {
				t.Fatal(err)
			}
			if err := g.tree.validateLeafNode(&ln, l, LeafNodeSourceUpdate, &leafValidation{GroupID: g.groupID}); err != nil {
				t.Fatal(err)
			}
			if err := g.tree.updateLeaf(l, &ln); err != nil {
				t.Fatal(err)
			}
			if err := g.priv[l].setLeafKey(priv); err != nil {
				t.Fatal(err)
			}
			for _, p := range g.priv {
				p.prune(&g.tree)
			}
		}
		cached, err := g.tree.treeHash()
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := g.tree.marshal()
		fresh, err := unmarshalTree(cs, enc)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := fresh.treeHash()
		if !bytes.Equal(cached, want) {
			t.Fatalf("step %d: cached tree hash %x, fresh %x", step, cached, want)
		}
		for x := NodeIndex(0); uint32(x) < g.tree.width(); x++ {
			a, _ := g.tree.nodeTreeHash(x)
			b, _ := fresh.nodeTreeHash(x)
			if !bytes.Equal(a, b) {
				t.Fatalf("step %d: node %d hash differs", step, x)
			}
		}
		if err := g.tree.validate(want, &leafValidation{GroupID: g.groupID}); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for l, p := range g.priv {
			if err := p.consistent(&g.tree); err != nil {
				t.Fatalf("step %d: private tree of %d: %v", step, l, err)
			}
		}
	}
}

// TestTreeClone: mutating a clone never changes the original and vice
// versa, for every operation; private trees likewise.
func TestTreeClone(t *testing.T) {
	cs := CipherSuite(1)
	g := getTree(t, cs, 7, 5)
	orig := g.tree
	encBefore, _ := orig.marshal()
	hashBefore, _ := orig.treeHash()

	check := func(what string, tr *ratchetTree, enc, hash []byte) {
		t.Helper()
		e, _ := tr.marshal()
		h, _ := tr.treeHash()
		if !bytes.Equal(e, enc) || !bytes.Equal(h, hash) {
			t.Fatalf("%s: tree changed", what)
		}
	}
	// Mutate clones in every way.
	c := orig.clone()
	ln, _, _ := treeTestLeaf(t, g)
	mustAdd(t, &c, ln) // adds unmerged entries (copy-on-write)
	check("add on clone", &orig, encBefore, hashBefore)
	c = orig.clone()
	if err := c.removeLeaf(6); err != nil {
		t.Fatal(err)
	}
	check("remove on clone", &orig, encBefore, hashBefore)
	c = orig.clone()
	upd := *c.leaf(3)
	upd.Signature = []byte{1}
	if err := c.updateLeaf(3, &upd); err != nil {
		t.Fatal(err)
	}
	check("update on clone", &orig, encBefore, hashBefore)
	c = orig.clone()
	pp, err := c.generateUpdatePath(2, c.leaf(2), g.sigPriv[2], g.groupID, g.rnd)
	if err != nil {
		t.Fatal(err)
	}
	check("path on clone", &orig, encBefore, hashBefore)
	// Extension and truncation of a clone.
	c = orig.clone()
	var lns []*LeafNode
	for range 9 {
		ln, _, _ := treeTestLeaf(t, g)
		lns = append(lns, ln)
	}
	mustAdd(t, &c, lns...)
	for l := range c.numLeaves() {
		if l != 0 && c.leaf(LeafIndex(l)) != nil {
			_ = c.removeLeaf(LeafIndex(l))
		}
	}
	if c.numLeaves() != 1 {
		t.Fatalf("clone truncated to %d leaves", c.numLeaves())
	}
	check("extend/truncate on clone", &orig, encBefore, hashBefore)

	// Mutating the original leaves an earlier clone alone.
	snap := orig.clone()
	snapEnc, snapHash := encBefore, hashBefore
	if err := orig.removeLeaf(1); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, &orig, ln)
	check("original mutated", &snap, snapEnc, snapHash)

	// Private trees.
	p := g.priv[0].clone()
	before := slices.Clone(p.nodes)
	q := p.clone()
	q.put(p.nodes[0].node, []byte("pub"), []byte("priv"))
	q.prune(&orig)
	if !slices.EqualFunc(p.nodes, before, func(a, b privateNode) bool {
		return a.node == b.node && bytes.Equal(a.pub, b.pub) && bytes.Equal(a.priv, b.priv)
	}) {
		t.Fatal("mutating a private tree clone changed the original")
	}
	_ = pp
}

// TestTreeKeyIndex exercises the overlay and rebuild of the key index.
func TestTreeKeyIndex(t *testing.T) {
	cs := CipherSuite(1)
	g := getTree(t, cs, 4, 31)
	tr := g.tree.clone()
	if _, ok := tr.lookupEncryptionKey(tr.leaf(2).EncryptionKey); !ok {
		t.Fatal("leaf key not found")
	}
	c := tr.clone()
	// Churn well past the rebuild threshold, checking lookups as we go.
	var gone [][]byte
	for i := range 600 {
		l := LeafIndex(i % 4)
		ln := *c.leaf(l)
		gone = append(gone, ln.EncryptionKey)
		_, ln.EncryptionKey, _ = cs.GenerateHPKEKeyPair(g.rnd)
		c.setLeaf(l, &ln)
		if x, ok := c.lookupEncryptionKey(ln.EncryptionKey); !ok || x != l.nodeIndex() {
			t.Fatalf("step %d: new key not found", i)
		}
		if _, ok := c.lookupEncryptionKey(gone[len(gone)-1]); ok {
			t.Fatalf("step %d: replaced key still found", i)
		}
	}
	if _, ok := c.lookupSignatureKey(c.leaf(1).SignatureKey); !ok {
		t.Fatal("signature key not found")
	}
	// The original clone is unaffected.
	if _, ok := tr.lookupEncryptionKey(gone[0]); !ok {
		t.Fatal("original lost its key")
	}
}

// treeDump renders the tree for failure messages: one line per node.
func treeDump(tr *ratchetTree) string {
	var b bytes.Buffer
	for x := NodeIndex(0); uint32(x) < tr.width(); x++ {
		switch {
		case tr.blank(x):
			fmt.Fprintf(&b, "%3d _\n", x)
		case isLeaf(x):
			fmt.Fprintf(&b, "%3d leaf %x\n", x, tr.encryptionKey(x)[:4])
		default:
			fmt.Fprintf(&b, "%3d parent %x unmerged %v\n", x, tr.encryptionKey(x)[:4], tr.parentNode(x).UnmergedLeaves)
		}
	}
	return b.String()
}

func mustAdd(t testing.TB, tr *ratchetTree, lns ...*LeafNode) []LeafIndex {
	t.Helper()
	at, err := tr.addLeaves(lns)
	if err != nil {
		t.Fatal(err)
	}
	return at
}
