package mls

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

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
