package mls

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
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

// validGroup returns a validated 8-member group with some unmerged leaves.
func validGroup(t *testing.T, cs CipherSuite) *treeTestGroup {
	g := getTree(t, cs, 6, 11)
	g.commit(t, 0, 0, []LeafIndex{1})
	// Adds without a path: leaves stay unmerged in the parents above them.
	var lns []*LeafNode
	for range 2 {
		ln, sp, _ := treeTestLeaf(t, g)
		lns = append(lns, ln)
		_ = sp
	}
	at := mustAdd(t, &g.tree, lns...)
	for _, l := range at {
		g.sigPriv[l] = nil
	}
	mustValidate(t, g)
	return g
}

func wantTreeErr(t *testing.T, err error, kinds ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("invalid tree accepted, want %v", kinds)
	}
	for _, k := range kinds {
		if !errors.Is(err, k) {
			t.Fatalf("error %q does not wrap %q", err, k)
		}
	}
	if !bytes.HasPrefix([]byte(err.Error()), []byte("mls: ")) {
		t.Fatalf("error %q does not start with mls:", err)
	}
}

// someParent returns a non-blank parent node with unmerged leaves if
// withUnmerged, else any non-blank parent.
func someParent(t *testing.T, tr *ratchetTree, withUnmerged bool) NodeIndex {
	t.Helper()
	for x := NodeIndex(1); uint32(x) < tr.width(); x += 2 {
		if pn := tr.parentNode(x); pn != nil && (!withUnmerged || len(pn.UnmergedLeaves) > 0) {
			return x
		}
	}
	t.Fatal("no such parent node")
	return 0
}

func TestTreeValidateRejects(t *testing.T) {
	cs := CipherSuite(1)
	g := validGroup(t, cs)
	v := &leafValidation{GroupID: g.groupID}
	th, _ := g.tree.treeHash()

	t.Run("wrong tree hash", func(t *testing.T) {
		tr := g.tree.clone()
		bad := slices.Clone(th)
		bad[0] ^= 1
		wantTreeErr(t, tr.validate(bad, v), ErrInvalidTree, ErrTreeHashMismatch)
	})
	t.Run("bad parent hash", func(t *testing.T) {
		for x := NodeIndex(1); uint32(x) < g.tree.width(); x += 2 {
			pn := g.tree.parentNode(x)
			if pn == nil {
				continue
			}
			tr := g.tree.clone()
			mod := *pn
			mod.ParentHash = append(slices.Clone(pn.ParentHash), 0)
			tr.setParent(x, &mod)
			wantTreeErr(t, tr.validate(nil, v), ErrInvalidTree, ErrInvalidParentHash)
		}
	})
	t.Run("replaced parent key", func(t *testing.T) {
		tr := g.tree.clone()
		x := someParent(t, &tr, false)
		mod := *tr.parentNode(x)
		_, mod.EncryptionKey, _ = cs.GenerateHPKEKeyPair(g.rnd)
		tr.setParent(x, &mod)
		wantTreeErr(t, tr.validate(nil, v), ErrInvalidTree, ErrInvalidParentHash)
	})
	t.Run("duplicate encryption key", func(t *testing.T) {
		tr := g.tree.clone()
		x := someParent(t, &tr, false)
		mod := *tr.parentNode(x)
		mod.EncryptionKey = tr.leaf(0).EncryptionKey
		tr.setParent(x, &mod)
		wantTreeErr(t, tr.validate(nil, v), ErrInvalidTree, ErrDuplicateKey)
	})
	t.Run("duplicate signature key", func(t *testing.T) {
		tr := g.tree.clone()
		ln := *tr.leaf(2)
		ln.SignatureKey = tr.leaf(0).SignatureKey
		tr.setLeaf(2, &ln)
		wantTreeErr(t, tr.validate(nil, v), ErrInvalidTree, ErrDuplicateKey)
	})
	t.Run("invalid leaf signature", func(t *testing.T) {
		tr := g.tree.clone()
		ln := *tr.leaf(3)
		ln.Signature = slices.Clone(ln.Signature)
		ln.Signature[5] ^= 0x40
		tr.setLeaf(3, &ln)
		wantTreeErr(t, tr.validate(nil, v), ErrInvalidTree, ErrInvalidLeafNode, ErrInvalidSignature)
	})
	t.Run("unmerged leaves", func(t *testing.T) {
		// The highest parent with unmerged leaves offers every kind of
		// inconsistency.
		x := someParent(t, &g.tree, true)
		for y := NodeIndex(1); uint32(y) < g.tree.width(); y += 2 {
			if pn := g.tree.parentNode(y); pn != nil && len(pn.UnmergedLeaves) > 0 && level(y) > level(x) {
				x = y
			}
		}
		pn := g.tree.parentNode(x)
		lo, hi := subtreeLeaves(x)
		mutations := map[string]func([]uint32) []uint32{
			"outside subtree": func(u []uint32) []uint32 {
				if lo > 0 {
					return append([]uint32{uint32(lo - 1)}, u...)
				}
				return append(u, uint32(hi))
			},
			"unsorted":  func(u []uint32) []uint32 { return append(u, u[0]) },
			"beyond n":  func(u []uint32) []uint32 { return append(u, 1<<31) },
			"duplicate": func(u []uint32) []uint32 { return append([]uint32{u[0]}, u...) },
		}
		// A blank leaf under x.
		for l := lo; l < hi && l < uint64(g.tree.numLeaves()); l++ {
			if g.tree.leaf(LeafIndex(l)) == nil {
				mutations["blank leaf"] = func(u []uint32) []uint32 { return mergeSorted(u, []uint32{uint32(l)}) }
				break
			}
		}
		// A member under x that the nodes in between do not list.
		for l := lo; l < hi && l < uint64(g.tree.numLeaves()); l++ {
			if g.tree.leaf(LeafIndex(l)) == nil || slices.Contains(pn.UnmergedLeaves, uint32(l)) {
				continue
			}
			between := false
			for y, _ := parent(LeafIndex(l).nodeIndex(), g.tree.numLeaves()); y != x; y, _ = parent(y, g.tree.numLeaves()) {
				if g.tree.parentNode(y) != nil {
					between = true
				}
			}
			if between {
				mutations["not listed in between"] = func(u []uint32) []uint32 { return mergeSorted(u, []uint32{uint32(l)}) }
				break
			}
		}
		if len(mutations) < 6 {
			t.Fatalf("fixture lacks a case: %d mutations (node %d %v)\n%s", len(mutations), x, pn.UnmergedLeaves, treeDump(&g.tree))
		}
		for name, mut := range mutations {
			t.Run(name, func(t *testing.T) {
				tr := g.tree.clone()
				mod := *pn
				mod.UnmergedLeaves = mut(slices.Clone(pn.UnmergedLeaves))
				tr.setParent(x, &mod)
				wantTreeErr(t, tr.validate(nil, v), ErrInvalidTree, ErrInvalidUnmergedLeaves)
			})
		}
		// Dropping an unmerged leaf keeps the lists consistent but breaks the
		// parent hash of a node whose original sibling tree hash depends on
		// it, or the resolution condition.
		tr := g.tree.clone()
		mod := *pn
		mod.UnmergedLeaves = pn.UnmergedLeaves[1:]
		tr.setParent(x, &mod)
		if err := tr.validate(nil, v); err == nil {
			t.Fatal("tree with a dropped unmerged leaf accepted")
		}
	})
	t.Run("empty tree", func(t *testing.T) {
		tr := newRatchetTree(cs)
		wantTreeErr(t, tr.validate(nil, v), ErrInvalidTree)
		if _, err := treeFromWire(cs, RatchetTree{nil}); !errors.Is(err, ErrInvalidTree) {
			t.Fatalf("blank-only tree: %v", err)
		}
		if _, err := treeFromWire(cs, RatchetTree{{Type: NodeTypeParent, Parent: &ParentNode{}}}); !errors.Is(err, ErrInvalidTree) {
			t.Fatalf("parent node at a leaf position: %v", err)
		}
	})
	// The unmodified tree still validates (all mutations were on clones).
	mustValidate(t, g)
}

// TestTreeLeafValidation covers the group-dependent §7.3 checks.
func TestTreeLeafValidation(t *testing.T) {
	cs := CipherSuite(1)
	g := getTree(t, cs, 3, 21)
	v := &leafValidation{GroupID: g.groupID}
	fresh, freshSig, _ := treeTestLeaf(t, g)
	newAt := LeafIndex(g.tree.numLeaves()) // any index past the end: a new leaf
	if err := g.tree.validateLeafNode(fresh, newAt, LeafNodeSourceKeyPackage, v); err != nil {
		t.Fatal(err)
	}
	dupEnc := *fresh
	dupEnc.EncryptionKey = g.tree.leaf(1).EncryptionKey
	if err := dupEnc.Sign(cs, freshSig, nil, 0, g.rnd); err != nil {
		t.Fatal(err)
	}
	if err := g.tree.validateLeafNode(&dupEnc, 5, LeafNodeSourceKeyPackage, v); !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("duplicate encryption key: %v", err)
	}
	parentKey := *fresh
	parentKey.EncryptionKey = g.tree.parentNode(g.tree.root()).EncryptionKey
	if err := parentKey.Sign(cs, freshSig, nil, 0, g.rnd); err != nil {
		t.Fatal(err)
	}
	if err := g.tree.validateLeafNode(&parentKey, 5, LeafNodeSourceKeyPackage, v); !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("encryption key of a parent: %v", err)
	}
	dupSig := *fresh
	dupSig.SignatureKey = g.tree.leaf(1).SignatureKey
	if err := dupSig.Sign(cs, g.sigPriv[1], nil, 0, g.rnd); err != nil {
		t.Fatal(err)
	}
	if err := g.tree.validateLeafNode(&dupSig, newAt, LeafNodeSourceKeyPackage, v); !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("duplicate signature key: %v", err)
	}
	// The same signature key is fine for the member's own leaf (Update).
	own := *fresh
	own.SignatureKey = g.tree.leaf(1).SignatureKey
	own.Source = LeafNodeSourceUpdate
	if err := own.Sign(cs, g.sigPriv[1], g.groupID, 1, g.rnd); err != nil {
		t.Fatal(err)
	}
	if err := g.tree.validateLeafNode(&own, 1, LeafNodeSourceUpdate, v); err != nil {
		t.Fatalf("update keeping the signature key: %v", err)
	}
	if err := g.tree.validateLeafNode(fresh, 0, LeafNodeSourceUpdate, v); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("wrong source: %v", err)
	}
	rc := &RequiredCapabilities{ExtensionTypes: []ExtensionType{0x0f0f}}
	if err := g.tree.validateLeafNode(fresh, 5, LeafNodeSourceKeyPackage, &leafValidation{RequiredCapabilities: rc}); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("required capabilities: %v", err)
	}
	// A member with an x509 credential that nobody else supports.
	sp, spub, _ := cs.GenerateSignatureKeyPair(g.rnd)
	x := *fresh
	x.SignatureKey = spub
	x.Credential = Credential{Type: CredentialX509, Certificates: [][]byte{{1, 2, 3}}}
	x.Capabilities.Credentials = []CredentialType{CredentialBasic, CredentialX509}
	if err := x.Sign(cs, sp, nil, 0, g.rnd); err != nil {
		t.Fatal(err)
	}
	if err := g.tree.validateLeafNode(&x, 5, LeafNodeSourceKeyPackage, v); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("unsupported credential type: %v", err)
	}
	// A member that does not support basic.
	nb := x
	nb.Capabilities.Credentials = []CredentialType{CredentialX509}
	if err := nb.Sign(cs, sp, nil, 0, g.rnd); err != nil {
		t.Fatal(err)
	}
	if err := g.tree.validateLeafNode(&nb, 5, LeafNodeSourceKeyPackage, v); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("missing support for basic: %v", err)
	}
	// Lifetime.
	old := *fresh
	old.Lifetime = Lifetime{NotBefore: 10, NotAfter: 20}
	if err := old.Sign(cs, freshSig, nil, 0, g.rnd); err != nil {
		t.Fatal(err)
	}
	if err := g.tree.validateLeafNode(&old, newAt, LeafNodeSourceKeyPackage, v); err != nil {
		t.Fatalf("lifetime checked without a clock: %v", err)
	}
	if err := g.tree.validateLeafNode(&old, newAt, LeafNodeSourceKeyPackage, &leafValidation{Now: testNow}); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("expired lifetime: %v", err)
	}
	if err := g.tree.validateLeafNode(fresh, newAt, LeafNodeSourceKeyPackage, &leafValidation{MaxLifetime: 1e9 * 3600 * 24 * 365}); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("overlong lifetime: %v", err)
	}
	// Statistics survive removals: once the x509 member is added (with
	// everyone supporting x509) and removed, basic-only leaves are fine again.
	if g.tree.stats.members != 3 || g.tree.stats.credInUse[CredentialBasic] != 3 || g.tree.stats.credSupport[CredentialBasic] != 3 {
		t.Fatalf("stats %+v", g.tree.stats)
	}
	tr := g.tree.clone()
	l := mustAdd(t, &tr, &x)[0]
	if tr.stats.credInUse[CredentialX509] != 1 || tr.stats.credSupport[CredentialX509] != 1 {
		t.Fatalf("stats after x509 add %+v", tr.stats)
	}
	if err := tr.removeLeaf(l); err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.stats.credInUse[CredentialX509]; ok || tr.stats.members != 3 {
		t.Fatalf("stats after x509 removal %+v", tr.stats)
	}
	if g.tree.stats.members != 3 {
		t.Fatal("clone stats leaked into the original")
	}
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

// TestTreeValidateParallel validates a tree large enough for the parallel
// leaf checks and checks that the lowest failing leaf is reported.
func TestTreeValidateParallel(t *testing.T) {
	cs := CipherSuite(1)
	g := newTreeTestGroup(t, cs, 41)
	var lns []*LeafNode
	for range 150 {
		ln, _, _ := treeTestLeaf(t, g)
		lns = append(lns, ln)
	}
	mustAdd(t, &g.tree, lns...)
	mustValidate(t, g)
	tr := g.tree.clone()
	for _, l := range []LeafIndex{140, 70, 90} {
		ln := *tr.leaf(l)
		ln.Signature = slices.Clone(ln.Signature)
		ln.Signature[0] ^= 1
		tr.setLeaf(l, &ln)
	}
	err := tr.validate(nil, &leafValidation{GroupID: g.groupID})
	wantTreeErr(t, err, ErrInvalidTree, ErrInvalidSignature)
	if !bytes.Contains([]byte(err.Error()), []byte("leaf 70:")) {
		t.Fatalf("error %q does not name the lowest bad leaf", err)
	}
}

// FuzzTreeValidate feeds arbitrary ratchet trees to the tree code: decoding,
// validation, hashes, resolutions and operations must never panic, and
// decoding then encoding must reproduce the input.
func FuzzTreeValidate(f *testing.F) {
	for _, v := range decodeVectors[treeValidationVector](f, loadVectorFile(f, "tree-validation")) {
		if v.CipherSuite == 1 || v.CipherSuite == 2 {
			f.Add(uint8(v.CipherSuite), []byte(v.Tree))
		}
	}
	f.Fuzz(func(t *testing.T, suite uint8, data []byte) {
		cs := CipherSuites[int(suite)%len(CipherSuites)]
		tree, err := unmarshalTree(cs, data)
		if err != nil {
			return
		}
		enc, err := tree.marshal()
		if err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs")
		}
		_ = tree.validate(nil, &leafValidation{GroupID: []byte("g")})
		if tree.width() > 1<<12 {
			return
		}
		for x := NodeIndex(0); uint32(x) < tree.width(); x++ {
			_ = tree.resolution(x)
			_, _ = tree.nodeTreeHash(x)
		}
		c := tree.clone()
		for l := range c.numLeaves() {
			_, _ = c.filteredDirectPath(LeafIndex(l))
			if c.leaf(LeafIndex(l)) != nil {
				_ = c.removeLeaf(LeafIndex(l))
				break
			}
		}
		_, _ = c.treeHash()
		after, _ := tree.marshal()
		if !bytes.Equal(after, data) {
			t.Fatalf("operations on a clone changed the original")
		}
	})
}

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

// TestLeafBadSignatureKeyNamed checks that a leaf with a malformed
// signature key is refused as a bad key, not merely as a bad signature,
// although the on-curve test of Ed25519 keys now happens inside Verify.
func TestLeafBadSignatureKeyNamed(t *testing.T) {
	cs := CipherSuite(1)
	g := getTree(t, cs, 3, 22)
	fresh, freshSig, _ := treeTestLeaf(t, g)
	for i, bad := range cryptoBadSignaturePublicKeys(cs, fresh.SignatureKey) {
		ln := *fresh
		ln.SignatureKey = bad
		if err := ln.Sign(cs, freshSig, nil, 0, g.rnd); err != nil {
			t.Fatal(err)
		}
		err := g.tree.validateLeafNode(&ln, LeafIndex(g.tree.numLeaves()), LeafNodeSourceKeyPackage, &leafValidation{GroupID: g.groupID})
		if !errors.Is(err, ErrInvalidLeafNode) || !errors.Is(err, ErrInvalidKey) {
			t.Errorf("bad key %d (%x): %v", i, bad, err)
		}
	}
}
