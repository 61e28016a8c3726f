package mls

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func init() { registerVector("treekem", checkTreeKEM) }

type treeKEMVector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32   `json:"index"`
		EncryptionPriv hexBytes `json:"encryption_priv"`
		SignaturePriv  hexBytes `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32   `json:"node"`
			PathSecret hexBytes `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32     `json:"sender"`
		UpdatePath    hexBytes   `json:"update_path"`
		PathSecrets   []hexBytes `json:"path_secrets"`
		CommitSecret  hexBytes   `json:"commit_secret"`
		TreeHashAfter hexBytes   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

// treeKEMContext encodes the GroupContext FORMAT.md prescribes for the
// treekem vectors: the given suite, group_id, epoch and confirmed transcript
// hash, the tree hash of tree, and no extensions.
func treeKEMContext(t testing.TB, cs CipherSuite, v *treeKEMVector, tree *ratchetTree) []byte {
	t.Helper()
	th, err := tree.treeHash()
	if err != nil {
		t.Fatal(err)
	}
	gc := GroupContext{Version: ProtocolMLS10, CipherSuite: cs, GroupID: v.GroupID, Epoch: v.Epoch,
		TreeHash: th, ConfirmedTranscriptHash: v.ConfirmedTranscriptHash, Extensions: []Extension{}}
	b, err := gc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkTreeKEM follows the treekem verification of FORMAT.md: load each
// member's private state, process every UpdatePath as every other member
// (path secrets, commit secret, tree hash after), then generate a fresh
// UpdatePath for each sender and have every other member process it.
func checkTreeKEM(t *testing.T, data []byte) {
	cases := decodeVectors[treeKEMVector](t, data)
	runPerSuite(t, cases, func(v treeKEMVector) uint16 { return v.CipherSuite }, func(t *testing.T, cs CipherSuite, v treeKEMVector) {
		tree, err := unmarshalTree(cs, v.RatchetTree)
		if err != nil {
			t.Fatal(err)
		}
		lv := &leafValidation{GroupID: v.GroupID}
		if err := tree.validate(nil, lv); err != nil {
			t.Fatalf("vector tree rejected: %v", err)
		}
		privs := map[LeafIndex]*privateTree{}
		sigPrivs := map[LeafIndex][]byte{}
		for _, lp := range v.LeavesPrivate {
			l := LeafIndex(lp.Index)
			p, err := newPrivateTree(cs, l, lp.EncryptionPriv)
			if err != nil {
				t.Fatal(err)
			}
			for _, ps := range lp.PathSecrets {
				if err := p.setPathSecret(NodeIndex(ps.Node), ps.PathSecret); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.consistent(&tree); err != nil {
				t.Fatalf("leaf %d: private state inconsistent with the tree: %v", l, err)
			}
			privs[l], sigPrivs[l] = &p, lp.SignaturePriv
		}
		for _, upv := range v.UpdatePaths {
			sender := LeafIndex(upv.Sender)
			var up UpdatePath
			if err := up.Unmarshal(upv.UpdatePath); err != nil {
				t.Fatal(err)
			}
			merged := tree.clone()
			if err := merged.mergeUpdatePath(sender, &up, nil, lv); err != nil {
				t.Fatalf("sender %d: merging the UpdatePath: %v", sender, err)
			}
			th, err := merged.treeHash()
			if err != nil {
				t.Fatal(err)
			}
			mustEqualBytes(t, "tree_hash_after", th, upv.TreeHashAfter)
			if err := merged.validate(th, lv); err != nil {
				t.Fatalf("sender %d: merged tree invalid: %v", sender, err)
			}
			gc := treeKEMContext(t, cs, &v, &merged)
			processed := 0
			for j, p := range privs {
				if j == sender || tree.leaf(j) == nil {
					continue
				}
				np := p.clone()
				dec, err := np.decryptUpdatePath(&merged, sender, &up, gc, nil)
				if err != nil {
					t.Fatalf("leaf %d processing the path of %d: %v", j, sender, err)
				}
				if int(j) >= len(upv.PathSecrets) {
					t.Fatalf("no expected path secret for leaf %d", j)
				}
				mustEqualBytes(t, "path secret", dec.pathSecret, upv.PathSecrets[j])
				mustEqualBytes(t, "commit secret", dec.commitSecret, upv.CommitSecret)
				if dec.node != commonAncestor(sender.nodeIndex(), j.nodeIndex()) {
					t.Errorf("leaf %d decrypted at node %d, want the common ancestor", j, dec.node)
				}
				if err := np.consistent(&merged); err != nil {
					t.Fatalf("leaf %d after processing: %v", j, err)
				}
				if p.consistent(&tree) != nil {
					t.Fatalf("leaf %d: processing changed the original private state", j)
				}
				processed++
			}
			if processed == 0 {
				t.Fatalf("sender %d: no receiver processed the path", sender)
			}

			// A fresh UpdatePath from the same sender.
			sigPriv, ok := sigPrivs[sender]
			if !ok {
				t.Fatalf("no signature key for sender %d", sender)
			}
			gen := tree.clone()
			rnd := treeTestRand(uint64(sender)<<8 | uint64(cs))
			pp, err := gen.generateUpdatePath(sender, tree.leaf(sender), sigPriv, v.GroupID, rnd)
			if err != nil {
				t.Fatal(err)
			}
			gcNew := treeKEMContext(t, cs, &v, &gen)
			newUp, err := gen.encryptUpdatePath(pp, gcNew, nil, rnd)
			if err != nil {
				t.Fatal(err)
			}
			// Through the wire, as a receiver sees it.
			wire, err := newUp.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var recvUp UpdatePath
			if err := recvUp.Unmarshal(wire); err != nil {
				t.Fatal(err)
			}
			genHash, _ := gen.treeHash()
			for j, p := range privs {
				if j == sender || tree.leaf(j) == nil {
					continue
				}
				recv := tree.clone()
				if err := recv.mergeUpdatePath(sender, &recvUp, nil, lv); err != nil {
					t.Fatalf("leaf %d merging a generated path of %d: %v", j, sender, err)
				}
				th, _ := recv.treeHash()
				mustEqualBytes(t, "tree hash after a generated path", th, genHash)
				np := p.clone()
				dec, err := np.decryptUpdatePath(&recv, sender, &recvUp, treeKEMContext(t, cs, &v, &recv), nil)
				if err != nil {
					t.Fatalf("leaf %d processing a generated path of %d: %v", j, sender, err)
				}
				mustEqualBytes(t, "new commit secret", dec.commitSecret, pp.commitSecret)
				want, _ := pp.pathSecretFor(j)
				mustEqualBytes(t, "new path secret", dec.pathSecret, want)
			}
			if err := gen.validate(genHash, lv); err != nil {
				t.Fatalf("tree after a generated path invalid: %v", err)
			}
			cp := pp.privateTree()
			if err := cp.consistent(&gen); err != nil {
				t.Fatalf("committer's private state: %v", err)
			}
		}
	})
}

// treeKEMFixture is a 6-member group with a pending UpdatePath from leaf
// 1 that adds leaf 6, and the trees before and after.
type treeKEMFixture struct {
	g       *treeTestGroup
	base    ratchetTree // proposals applied, before the path
	merged  ratchetTree // base + path
	up      *UpdatePath
	pp      *pendingPath
	gc      []byte
	added   []LeafIndex
	v       *leafValidation
	addedLN *LeafNode
}

func newTreeKEMFixture(t *testing.T, cs CipherSuite) *treeKEMFixture {
	t.Helper()
	g := getTree(t, cs, 6, 77)
	f := &treeKEMFixture{g: g, v: &leafValidation{GroupID: g.groupID}}
	ln, _, _ := treeTestLeaf(t, g)
	f.addedLN = ln
	f.base = g.tree.clone()
	f.added = mustAdd(t, &f.base, ln)
	f.merged = f.base.clone()
	var err error
	f.pp, err = f.merged.generateUpdatePath(1, f.merged.leaf(1), g.sigPriv[1], g.groupID, g.rnd)
	if err != nil {
		t.Fatal(err)
	}
	f.gc = treeTestGC(t, cs, g.groupID, 1, &f.merged)
	f.up, err = f.merged.encryptUpdatePath(f.pp, f.gc, f.added, g.rnd)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// copyPath deep-copies an UpdatePath through its encoding.
func copyPath(t *testing.T, up *UpdatePath) *UpdatePath {
	t.Helper()
	b, err := up.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var c UpdatePath
	if err := c.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestTreeKEMRejects(t *testing.T) {
	cs := CipherSuite(1)
	f := newTreeKEMFixture(t, cs)
	sender := LeafIndex(1)
	merge := func(up *UpdatePath) error {
		tr := f.base.clone()
		before, _ := tr.treeHash()
		err := tr.mergeUpdatePath(sender, up, f.added, f.v)
		if err != nil {
			after, _ := tr.treeHash()
			if !bytes.Equal(before, after) {
				t.Error("failed merge changed the tree")
			}
		}
		return err
	}
	if err := merge(f.up); err != nil {
		t.Fatalf("valid path rejected: %v", err)
	}
	t.Run("wrong length", func(t *testing.T) {
		up := copyPath(t, f.up)
		up.Nodes = up.Nodes[:len(up.Nodes)-1]
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath)
		up = copyPath(t, f.up)
		up.Nodes = append(up.Nodes, up.Nodes[0])
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath)
		// The receiver side checks it as well.
		p := f.g.priv[0].clone()
		short := copyPath(t, f.up)
		short.Nodes = short.Nodes[1:]
		if _, err := p.decryptUpdatePath(&f.merged, sender, short, f.gc, f.added); !errors.Is(err, ErrInvalidUpdatePath) {
			t.Fatalf("decrypting a short path: %v", err)
		}
	})
	t.Run("wrong ciphertext count", func(t *testing.T) {
		up := copyPath(t, f.up)
		last := &up.Nodes[len(up.Nodes)-1]
		last.EncryptedPathSecret = append(last.EncryptedPathSecret, last.EncryptedPathSecret[0])
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath)
		// Not excluding the new member changes the expected count.
		tr := f.base.clone()
		wantTreeErr(t, tr.mergeUpdatePath(sender, f.up, nil, f.v), ErrInvalidUpdatePath)
	})
	t.Run("bad leaf parent hash", func(t *testing.T) {
		up := copyPath(t, f.up)
		up.LeafNode.ParentHash = append(up.LeafNode.ParentHash, 1)
		if err := up.LeafNode.Sign(cs, f.g.sigPriv[sender], f.g.groupID, uint32(sender), f.g.rnd); err != nil {
			t.Fatal(err)
		}
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath, ErrInvalidParentHash)
	})
	t.Run("node key swapped", func(t *testing.T) {
		// Replacing a node's public key breaks the signed parent hash chain.
		up := copyPath(t, f.up)
		_, up.Nodes[0].EncryptionKey, _ = cs.GenerateHPKEKeyPair(f.g.rnd)
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath, ErrInvalidParentHash)
	})
	t.Run("leaf signature", func(t *testing.T) {
		up := copyPath(t, f.up)
		up.LeafNode.Signature[0] ^= 1
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath, ErrInvalidLeafNode, ErrInvalidSignature)
		// Signed for another leaf index.
		up = copyPath(t, f.up)
		if err := up.LeafNode.Sign(cs, f.g.sigPriv[sender], f.g.groupID, uint32(sender)+1, f.g.rnd); err != nil {
			t.Fatal(err)
		}
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath, ErrInvalidSignature)
	})
	t.Run("wrong source", func(t *testing.T) {
		up := copyPath(t, f.up)
		up.LeafNode.Source = LeafNodeSourceUpdate
		if err := up.LeafNode.Sign(cs, f.g.sigPriv[sender], f.g.groupID, uint32(sender), f.g.rnd); err != nil {
			t.Fatal(err)
		}
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath, ErrInvalidLeafNode)
	})
	t.Run("key already in the tree", func(t *testing.T) {
		up := copyPath(t, f.up)
		up.Nodes[0].EncryptionKey = f.base.leaf(4).EncryptionKey
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath, ErrDuplicateKey)
		up = copyPath(t, f.up)
		up.Nodes[1].EncryptionKey = up.Nodes[0].EncryptionKey
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath, ErrDuplicateKey)
		// The old leaf key reused by the committer.
		up = copyPath(t, f.up)
		up.LeafNode.EncryptionKey = f.base.leaf(sender).EncryptionKey
		if err := up.LeafNode.Sign(cs, f.g.sigPriv[sender], f.g.groupID, uint32(sender), f.g.rnd); err != nil {
			t.Fatal(err)
		}
		wantTreeErr(t, merge(up), ErrInvalidUpdatePath, ErrDuplicateKey)
	})
	t.Run("tampered ciphertext", func(t *testing.T) {
		up := copyPath(t, f.up)
		for i := range up.Nodes {
			for j := range up.Nodes[i].EncryptedPathSecret {
				up.Nodes[i].EncryptedPathSecret[j].Ciphertext[0] ^= 1
			}
		}
		tr := f.base.clone()
		if err := tr.mergeUpdatePath(sender, up, f.added, f.v); err != nil {
			t.Fatal(err) // ciphertexts are not checked by merge
		}
		p := f.g.priv[0].clone()
		if _, err := p.decryptUpdatePath(&tr, sender, up, f.gc, f.added); !errors.Is(err, ErrDecryption) {
			t.Fatalf("tampered ciphertext: %v", err)
		}
		if len(p.nodes) != len(f.g.priv[0].nodes) {
			t.Fatal("failed decryption changed the private state")
		}
	})
	t.Run("wrong group context", func(t *testing.T) {
		p := f.g.priv[3].clone()
		if _, err := p.decryptUpdatePath(&f.merged, sender, f.up, append(slices.Clone(f.gc), 0), f.added); !errors.Is(err, ErrDecryption) {
			t.Fatalf("wrong context: %v", err)
		}
	})
	t.Run("path secret for the wrong key", func(t *testing.T) {
		// A consistent path whose secrets do not match the advertised keys:
		// the committer encrypts secrets of another pending path.
		other := f.base.clone()
		pp2, err := other.generateUpdatePath(sender, other.leaf(sender), f.g.sigPriv[sender], f.g.groupID, f.g.rnd)
		if err != nil {
			t.Fatal(err)
		}
		pp2.pubs = f.pp.pubs // advertise f's keys with pp2's secrets
		up, err := other.encryptUpdatePath(pp2, f.gc, f.added, f.g.rnd)
		if err != nil {
			t.Fatal(err)
		}
		up.LeafNode = f.up.LeafNode
		tr := f.base.clone()
		if err := tr.mergeUpdatePath(sender, up, f.added, f.v); err != nil {
			t.Fatal(err)
		}
		p := f.g.priv[0].clone()
		if _, err := p.decryptUpdatePath(&tr, sender, up, f.gc, f.added); !errors.Is(err, ErrInvalidUpdatePath) {
			t.Fatalf("mismatching path secret: %v", err)
		}
	})
	t.Run("no key", func(t *testing.T) {
		// The new member cannot process the path (it uses the Welcome), and
		// a member without keys finds nothing to decrypt with.
		np, err := newPrivateTree(cs, f.added[0], f.g.priv[0].leafPriv)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := np.decryptUpdatePath(&f.merged, sender, f.up, f.gc, f.added); !errors.Is(err, ErrNoPathKey) {
			t.Fatalf("new member: %v", err)
		}
		stranger, _ := newPrivateTree(cs, 4, f.g.priv[0].leafPriv)
		if _, err := stranger.decryptUpdatePath(&f.merged, sender, f.up, f.gc, f.added); !errors.Is(err, ErrNoPathKey) {
			t.Fatalf("member without keys: %v", err)
		}
		own := f.g.priv[sender].clone()
		if _, err := own.decryptUpdatePath(&f.merged, sender, f.up, f.gc, f.added); !errors.Is(err, ErrInvalidUpdatePath) {
			t.Fatalf("own path: %v", err)
		}
	})
	t.Run("implant mismatch", func(t *testing.T) {
		np, _ := newPrivateTree(cs, f.added[0], f.g.priv[0].leafPriv)
		ps, ok := f.pp.pathSecretFor(f.added[0])
		if !ok {
			t.Fatal("no path secret for the joiner")
		}
		ca := commonAncestor(sender.nodeIndex(), f.added[0].nodeIndex())
		if err := np.implant(&f.base, ca, ps); !errors.Is(err, ErrInvalidUpdatePath) {
			t.Fatalf("implant into the tree without the path: %v", err)
		}
		if err := np.implant(&f.merged, ca, ps); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTreeKEMEveryMember has every member of trees with blanks and unmerged
// leaves commit in turn; all others process each path (every suite).
func TestTreeKEMEveryMember(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(cs.String(), func(t *testing.T) {
			g := getTree(t, cs, 7, 3+uint64(cs))
			g.commit(t, 0, 0, []LeafIndex{2, 3})
			// Adds without a path leave unmerged leaves behind.
			var lns []*LeafNode
			var sigs, encs [][]byte
			for range 3 {
				ln, sp, ep := treeTestLeaf(t, g)
				lns, sigs, encs = append(lns, ln), append(sigs, sp), append(encs, ep)
			}
			at := mustAdd(t, &g.tree, lns...)
			for i, l := range at {
				p, err := newPrivateTree(cs, l, encs[i])
				if err != nil {
					t.Fatal(err)
				}
				g.priv[l], g.sigPriv[l] = &p, sigs[i]
			}
			for _, l := range []LeafIndex{4, 2, 0, 7, 5, 1} {
				if g.tree.leaf(l) == nil {
					continue
				}
				secret := g.commit(t, l, 0, nil)
				if len(secret) != cs.Nh() {
					t.Fatalf("commit secret of %d bytes", len(secret))
				}
				mustValidate(t, g)
			}
		})
	}
}

// TestTreeKEMSingleMember: a lone member's path is empty and its leaf parent
// hash is empty.
func TestTreeKEMSingleMember(t *testing.T) {
	cs := CipherSuite(1)
	g := newTreeTestGroup(t, cs, 8)
	pp, err := g.tree.generateUpdatePath(0, g.tree.leaf(0), g.sigPriv[0], g.groupID, g.rnd)
	if err != nil {
		t.Fatal(err)
	}
	if len(pp.path) != 0 || len(pp.commitSecret) != cs.Nh() || len(g.tree.leaf(0).ParentHash) != 0 {
		t.Fatalf("path %v, commit secret %d bytes", pp.path, len(pp.commitSecret))
	}
	mustValidate(t, g)
}
