package mls

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// LeafNode validation against a group (§7.3) and whole-tree validation on
// joining (§12.4.3.1), with no O(n²) step:
//
//   - key uniqueness uses hash maps (keyIndex below), never pairwise
//     comparison;
//   - credential-type compatibility uses per-type counters kept by the tree
//     (leafStats), so validating one new leaf is O(1) in the group size;
//   - parent-hash validity is checked top down, each non-blank parent node
//     once, in O(n + Σ|unmerged_leaves|) node visits plus the hashes;
//   - leaf signatures, the dominant cost when joining a large group, are
//     verified in parallel on GOMAXPROCS goroutines (handed out in small
//     blocks, so a descheduled worker does not hold up the others), while
//     the calling goroutine does the structural checks; the tree hashes of
//     a large tree are computed in parallel too (computeHashesParallel).

// leafValidation holds the group-dependent inputs of §7.3. The zero value
// checks signatures, capabilities and uniqueness only.
type leafValidation struct {
	// GroupID is the signing context of update/commit LeafNodes.
	GroupID []byte
	// RequiredCapabilities is the group's required_capabilities extension,
	// if any.
	RequiredCapabilities *RequiredCapabilities
	// Now, if non-zero, is the current time: the lifetime of key_package
	// LeafNodes must contain it. The package has no clock.
	Now time.Time
	// MaxLifetime, if non-zero, is the longest not_after-not_before span
	// accepted for a key_package LeafNode (§7.2: applications MUST define
	// one).
	MaxLifetime time.Duration
	// CheckCredential, if set, is the Authentication Service check of
	// §5.3.1 (the credential authenticates the signature key).
	CheckCredential func(c *Credential, signatureKey []byte) error
}

// checkLeafContent runs the checks of §7.3 that depend only on ln, its
// position and the group's parameters: Validate (source, signature,
// capabilities, extensions), the AS hook, required capabilities, lifetime,
// and the HPKE key encoding. Errors wrap ErrInvalidLeafNode.
func (v *leafValidation) checkLeafContent(cs CipherSuite, ln *LeafNode, at LeafIndex, source LeafNodeSource) error {
	return v.checkLeafContentEnc(cs, ln, nil, at, source)
}

// checkLeafContentEnc is checkLeafContent for a LeafNode whose encoding is
// known (enc; nil if not), which saves encoding it again.
func (v *leafValidation) checkLeafContentEnc(cs CipherSuite, ln *LeafNode, enc []byte, at LeafIndex, source LeafNodeSource) error {
	if err := ln.validateEnc(cs, source, v.GroupID, uint32(at), enc); err != nil {
		return err
	}
	if v.CheckCredential != nil {
		if err := v.CheckCredential(&ln.Credential, ln.SignatureKey); err != nil {
			return fmt.Errorf("%w: credential: %w", ErrInvalidLeafNode, err)
		}
	}
	if rc := v.RequiredCapabilities; rc != nil && !ln.Capabilities.SupportsRequired(rc) {
		return fmt.Errorf("%w: does not support the group's required capabilities", ErrInvalidLeafNode)
	}
	if ln.Source == LeafNodeSourceKeyPackage {
		lt := ln.Lifetime
		if lt.NotBefore > lt.NotAfter {
			return fmt.Errorf("%w: lifetime ends before it starts", ErrInvalidLeafNode)
		}
		if v.MaxLifetime > 0 && lt.NotAfter-lt.NotBefore > uint64(v.MaxLifetime/time.Second) {
			return fmt.Errorf("%w: lifetime of %ds exceeds the maximum %v", ErrInvalidLeafNode, lt.NotAfter-lt.NotBefore, v.MaxLifetime)
		}
		if !v.Now.IsZero() && !lt.Contains(v.Now) {
			return fmt.Errorf("%w: lifetime [%d, %d] does not contain the current time", ErrInvalidLeafNode, lt.NotBefore, lt.NotAfter)
		}
	}
	if err := cs.ValidateHPKEPublicKey(ln.EncryptionKey); err != nil {
		return fmt.Errorf("%w: encryption key: %w", ErrInvalidLeafNode, err)
	}
	return nil
}

// validateLeafNode performs §7.3 for a LeafNode that is about to be placed
// at leaf at (an Add at its future position, an Update or the committer's
// UpdatePath leaf at the sender's position): the content checks, credential
// compatibility with the other members, and uniqueness: the encryption key
// must not appear anywhere in the tree (for an Update or a Commit that also
// means it differs from the leaf it replaces), and the signature key must not
// be used by any other leaf. Cost: O(1) in the group size (amortized, see
// keyIndex).
func (t *ratchetTree) validateLeafNode(ln *LeafNode, at LeafIndex, source LeafNodeSource, v *leafValidation) error {
	if v == nil {
		v = &leafValidation{}
	}
	if err := v.checkLeafContent(t.cs, ln, at, source); err != nil {
		return err
	}
	if err := t.checkCredentialCompat(ln, t.leaf(at)); err != nil {
		return err
	}
	if x, ok := t.lookupEncryptionKey(ln.EncryptionKey); ok {
		return fmt.Errorf("%w: encryption key of the new leaf is already used by node %d", ErrDuplicateKey, x)
	}
	if l, ok := t.lookupSignatureKey(ln.SignatureKey); ok && l != at {
		return fmt.Errorf("%w: signature key of the new leaf is already used by leaf %d", ErrDuplicateKey, l)
	}
	return nil
}

// checkCredentialCompat is the credential rule of §7.3: every other member
// supports ln's credential type, and ln supports every credential type used
// by the other members. replaced is the leaf ln replaces (nil for an Add).
func (t *ratchetTree) checkCredentialCompat(ln, replaced *LeafNode) error {
	s := &t.stats
	others := s.members
	if replaced != nil {
		others--
	}
	ct := ln.Credential.Type
	supporters, inUse := s.credSupport[ct]
	if !inUse {
		// A type no member uses yet (rare): count its supporters once and
		// remember the count until the leaves change, so that a Commit
		// adding many such members stays linear.
		var cached bool
		if supporters, cached = t.supportCache[ct]; !cached {
			t.scanLeaves(func(m *LeafNode) {
				if m.Capabilities.SupportsCredential(ct) {
					supporters++
				}
			})
			if t.supportCache == nil {
				t.supportCache = map[CredentialType]int{}
			}
			t.supportCache[ct] = supporters
		}
	}
	if replaced != nil && replaced.Capabilities.SupportsCredential(ct) {
		supporters--
	}
	if supporters != others {
		return fmt.Errorf("%w: credential type %v is not supported by every member", ErrInvalidLeafNode, ct)
	}
	for used, count := range s.credInUse {
		if replaced != nil && replaced.Credential.Type == used {
			count--
		}
		if count > 0 && !ln.Capabilities.SupportsCredential(used) {
			return fmt.Errorf("%w: does not support credential type %v used in the group", ErrInvalidLeafNode, used)
		}
	}
	return nil
}

// validate checks a whole tree as a joiner must (§12.4.3.1), typically
// after treeFromWire:
//
//   - the root tree hash equals treeHash (skipped if treeHash is nil);
//   - every non-blank leaf is a valid LeafNode for its position (§7.3,
//     signatures with v.GroupID as context) and the credential types of all
//     members are mutually supported;
//   - no encryption key appears in two nodes and no signature key in two
//     leaves;
//   - every unmerged_leaves list is sorted and lists non-blank leaves below
//     the node, each also listed by every non-blank node in between;
//   - every non-blank parent node is parent-hash valid (§7.9.2).
//
// All errors wrap ErrInvalidTree and the specific sentinel
// (ErrTreeHashMismatch, ErrInvalidLeafNode, ErrDuplicateKey,
// ErrInvalidUnmergedLeaves, ErrInvalidParentHash); when several fail, the
// error is the first in the order tree hash, key uniqueness, leaves,
// unmerged leaves, parent hashes. On success the index built
// for the uniqueness check becomes the tree's key index.
func (t *ratchetTree) validate(treeHash []byte, v *leafValidation) error {
	if v == nil {
		v = &leafValidation{}
	}
	if t.n == 0 || t.memberCount() == 0 {
		return treeErr([]error{ErrInvalidTree}, nil, "tree has no members")
	}
	if treeHash != nil {
		if err := t.computeHashesParallel(); err != nil {
			return treeErr([]error{ErrInvalidTree}, err, "computing the tree hash")
		}
		got, err := t.treeHash()
		if err != nil {
			return treeErr([]error{ErrInvalidTree}, err, "computing the tree hash")
		}
		if !bytes.Equal(got, treeHash) {
			return treeErr([]error{ErrInvalidTree, ErrTreeHashMismatch}, nil, "tree hash %x, expected %x", got, treeHash)
		}
	}
	// The leaf checks (signatures: the bulk of the work) run on worker
	// goroutines while this one does the structural checks; the error
	// reported is the first in the order of the list above.
	if t.nodes.at(t.root()).hash == nil {
		// Fill the hash cache first, so that the checks below only read
		// the tree.
		if err := t.computeHashesParallel(); err != nil {
			return treeErr([]error{ErrInvalidTree}, err, "computing the tree hash")
		}
	}
	leafErr := make(chan error, 1)
	go func() { leafErr <- t.checkLeaves(v) }()
	enc, sig, errKeys := t.checkUniqueKeys()
	var errStruct error
	if errKeys == nil {
		if errStruct = t.checkUnmergedLeaves(); errStruct == nil {
			errStruct = t.checkParentHashes()
		}
	}
	errLeaves := <-leafErr
	for _, err := range []error{errKeys, errLeaves, errStruct} {
		if err != nil {
			return err
		}
	}
	t.encIdx, t.sigIdx, t.indexed = enc, sig, true
	return nil
}

// checkLeaves validates every non-blank leaf, in parallel for large trees,
// reporting the failure with the lowest leaf index.
func (t *ratchetTree) checkLeaves(v *leafValidation) error {
	var leaves []*LeafNode
	var encs [][]byte
	var at []LeafIndex
	t.nodes.chunks(uint64(t.width()), func(base NodeIndex, slots []treeSlot) bool {
		for i := 0; i < len(slots); i += 2 {
			if s := &slots[i]; s.leaf != nil {
				leaves, encs = append(leaves, s.leaf), append(encs, s.enc)
				at = append(at, LeafIndex((int(base)+i)/2))
			}
		}
		return true
	})
	checkOne := func(i int) error {
		ln := leaves[i]
		if err := v.checkLeafContentEnc(t.cs, ln, encs[i], at[i], ln.Source); err != nil {
			return err
		}
		for used := range t.stats.credInUse {
			if !ln.Capabilities.SupportsCredential(used) {
				return fmt.Errorf("%w: does not support credential type %v used in the group", ErrInvalidLeafNode, used)
			}
		}
		return nil
	}
	n := len(leaves)
	workers := min(runtime.GOMAXPROCS(0), n/32)
	firstErr := func(lo, hi int) (int, error) {
		for i := lo; i < hi; i++ {
			if err := checkOne(i); err != nil {
				return i, err
			}
		}
		return -1, nil
	}
	var bad int
	var err error
	if workers <= 1 {
		bad, err = firstErr(0, n)
	} else {
		// Small interleaved blocks handed out dynamically, so that a
		// worker slowed down by the scheduler does not hold up the others;
		// the lowest failing index is found by stopping only the blocks
		// above a failure.
		const block = 16
		var next atomic.Int64
		var lowest atomic.Int64
		lowest.Store(int64(n))
		errs := make([]error, (n+block-1)/block)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					b := int(next.Add(1) - 1)
					lo := b * block
					if lo >= n || int64(lo) > lowest.Load() {
						return
					}
					if i, e := firstErr(lo, min(lo+block, n)); e != nil {
						errs[b] = e
						for {
							cur := lowest.Load()
							if int64(i) >= cur || lowest.CompareAndSwap(cur, int64(i)) {
								break
							}
						}
					}
				}
			}()
		}
		wg.Wait()
		if l := int(lowest.Load()); l < n {
			bad, err = l, errs[l/block]
		}
	}
	if err != nil {
		return treeErr([]error{ErrInvalidTree}, err, "leaf %d", at[bad])
	}
	return nil
}

// checkUniqueKeys builds the encryption-key index over all nodes and the
// signature-key index over all leaves, failing on any duplicate.
func (t *ratchetTree) checkUniqueKeys() (enc, sig keyIndex, err error) {
	owner := t.owner
	t.nodes.chunks(uint64(t.width()), func(base NodeIndex, slots []treeSlot) bool {
		for i := range slots {
			x := base + NodeIndex(i)
			var key []byte
			switch s := &slots[i]; {
			case s.leaf != nil:
				key = s.leaf.EncryptionKey
			case s.parent != nil:
				key = s.parent.EncryptionKey
				if e := t.cs.ValidateHPKEPublicKey(key); e != nil {
					err = treeErr([]error{ErrInvalidTree}, e, "encryption key of parent node %d", x)
					return false
				}
			default:
				continue
			}
			if y, dup := enc.get(key, t.encKeyOf); dup {
				err = treeErr([]error{ErrInvalidTree, ErrDuplicateKey}, nil, "nodes %d and %d have the same encryption key", y, x)
				return false
			}
			enc.put(key, uint32(x), t.encKeyOf, owner)
		}
		return true
	})
	if err != nil {
		return keyIndex{}, keyIndex{}, err
	}
	t.forEachMember(func(l LeafIndex, ln *LeafNode) bool {
		if j, dup := sig.get(ln.SignatureKey, t.sigKeyOf); dup {
			err = treeErr([]error{ErrInvalidTree, ErrDuplicateKey}, nil, "leaves %d and %d have the same signature key", j, l)
			return false
		}
		sig.put(ln.SignatureKey, uint32(l), t.sigKeyOf, owner)
		return true
	})
	if err != nil {
		return keyIndex{}, keyIndex{}, err
	}
	return enc, sig, nil
}

// checkUnmergedLeaves enforces the unmerged_leaves rules of §7.1 and
// §12.4.3.1. O(Σ|unmerged_leaves| · log n · log k).
func (t *ratchetTree) checkUnmergedLeaves() error {
	fail := func(format string, args ...any) error {
		return treeErr([]error{ErrInvalidTree, ErrInvalidUnmergedLeaves}, nil, format, args...)
	}
	var err error
	t.forEachParent(func(p NodeIndex, pn *ParentNode) bool {
		for j := 1; j < len(pn.UnmergedLeaves); j++ {
			if pn.UnmergedLeaves[j-1] >= pn.UnmergedLeaves[j] {
				err = fail("unmerged leaves of node %d are not strictly increasing", p)
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	n := t.numLeaves()
	t.forEachParent(func(p NodeIndex, pn *ParentNode) bool {
		lo, hi := subtreeLeaves(p)
		for _, u := range pn.UnmergedLeaves {
			if uint64(u) < lo || uint64(u) >= hi || u >= n {
				err = fail("node %d lists leaf %d, which is not below it", p, u)
				return false
			}
			if t.leaf(LeafIndex(u)) == nil {
				err = fail("node %d lists blank leaf %d", p, u)
				return false
			}
			for x, _ := parent(LeafIndex(u).nodeIndex(), n); x != p; x, _ = parent(x, n) {
				if in := t.parentNode(x); in != nil {
					if _, found := slices.BinarySearch(in.UnmergedLeaves, u); !found {
						err = fail("node %d lists leaf %d but node %d between them does not", p, u, x)
						return false
					}
				}
			}
		}
		return true
	})
	return err
}

// checkParentHashes verifies that every non-blank parent node is
// parent-hash valid (§7.9.2), top down: a non-blank parent P is valid iff
// exactly one of its descendants D has a parent hash valid with respect to
// P. Validity of P's descendants is checked when they are visited as P, so
// every node is chained back to a leaf.
func (t *ratchetTree) checkParentHashes() error {
	var err error
	t.forEachParent(func(p NodeIndex, _ *ParentNode) bool {
		valid, e := t.parentHashValidCount(p)
		if e != nil {
			err = treeErr([]error{ErrInvalidTree}, e, "parent hash of node %d", p)
			return false
		}
		if valid != 1 {
			err = treeErr([]error{ErrInvalidTree, ErrInvalidParentHash}, nil, "parent node %d is not parent-hash valid (%d matching descendants)", p, valid)
			return false
		}
		return true
	})
	return err
}

// parentHashValidCount counts the descendants D of the non-blank parent p
// whose parent hash is valid with respect to p (§7.9.2): with C the child of
// p above D and S the other child, D.parent_hash is the parent hash of p
// with copath child S, D is in the resolution of C, and p's unmerged leaves
// under C are exactly the rest of that resolution. There is at most one
// candidate D per side: the only element of resolution(C) outside p's
// unmerged leaves.
func (t *ratchetTree) parentHashValidCount(p NodeIndex) (int, error) {
	pn := t.parentNode(p)
	l, _ := left(p)
	r, _ := right(p)
	valid := 0
	for _, side := range [2][2]NodeIndex{{l, r}, {r, l}} {
		c, s := side[0], side[1]
		lo, hi := subtreeLeaves(c)
		a := sort.Search(len(pn.UnmergedLeaves), func(i int) bool { return uint64(pn.UnmergedLeaves[i]) >= lo })
		b := sort.Search(len(pn.UnmergedLeaves), func(i int) bool { return uint64(pn.UnmergedLeaves[i]) >= hi })
		under := pn.UnmergedLeaves[a:b]
		res := t.resolution(c)
		if len(res) != len(under)+1 {
			continue
		}
		var d NodeIndex
		others := 0
		for _, x := range res {
			if isLeaf(x) {
				if _, found := slices.BinarySearch(under, uint32(x>>1)); found {
					continue
				}
			}
			d = x
			others++
		}
		if others != 1 {
			continue
		}
		var dph []byte
		if isLeaf(d) {
			ln := t.leaf(LeafIndex(d >> 1))
			if ln.Source != LeafNodeSourceCommit {
				continue
			}
			dph = ln.ParentHash
		} else {
			dph = t.parentNode(d).ParentHash
		}
		ph, err := t.parentHashOf(p, s)
		if err != nil {
			return 0, err
		}
		if bytes.Equal(dph, ph) {
			valid++
		}
	}
	return valid, nil
}

// keyIndex is a persistent hash map from public keys to node or leaf
// indices: a hash trie of 16-way nodes over a keyed 64-bit hash
// (hash/maphash with a per-process random seed, so keys chosen to collide
// cannot degrade it), with buckets of up to keyBucket entries at the
// bottom. An entry holds only the hash and the value (16 bytes): the key
// itself is read from the tree (keyOf) when a lookup must compare keys.
// It follows the tree's copy-on-write discipline: trie nodes carry the
// owner token of the tree that created them and are copied before a tree
// with another token writes, so a clone shares the whole index and an
// insertion or removal copies O(log n) small nodes.
//
// A tree's index maps every encryption key to the node holding it and every
// signature key to the leaf holding it; setLeaf/setParent keep it exact
// (removing a key before its node changes). In a tree with duplicate keys
// (which fails validate) one holder wins.
type keyIndex struct {
	root *keyNode
	size int
}

const (
	keyBits   = 4
	keyFan    = 1 << keyBits
	keyBucket = 8
)

type keyNode struct {
	owner uint64
	kids  []*keyNode // interior: keyFan entries; nil for a bucket
	ents  []keyEntry // bucket entries
}

type keyEntry struct {
	hash uint64
	val  uint32
}

var keyIndexSeed = maphash.MakeSeed()

func keyHash(key []byte) uint64 { return maphash.Bytes(keyIndexSeed, key) }

func (n *keyNode) copyFor(owner uint64) *keyNode {
	c := &keyNode{owner: owner}
	if n.kids != nil {
		c.kids = slices.Clone(n.kids)
	} else {
		c.ents = slices.Clone(n.ents)
	}
	return c
}

// get returns the value stored for key; keyOf returns the key a value
// stands for.
func (ix *keyIndex) get(key []byte, keyOf func(uint32) []byte) (uint32, bool) {
	h := keyHash(key)
	n := ix.root
	for depth := uint(0); n != nil && n.kids != nil; depth++ {
		treeOps.indexOps.Add(1)
		n = n.kids[(h>>(keyBits*depth))&(keyFan-1)]
	}
	if n == nil {
		return 0, false
	}
	for _, e := range n.ents {
		if e.hash == h && bytes.Equal(keyOf(e.val), key) {
			return e.val, true
		}
	}
	return 0, false
}

// put stores key → val as owner, replacing the entry of an equal key.
func (ix *keyIndex) put(key []byte, val uint32, keyOf func(uint32) []byte, owner uint64) {
	h := keyHash(key)
	p := &ix.root
	for depth := uint(0); ; depth++ {
		treeOps.indexOps.Add(1)
		n := *p
		if n == nil {
			*p = &keyNode{owner: owner, ents: []keyEntry{{h, val}}}
			ix.size++
			return
		}
		if n.owner != owner {
			n = n.copyFor(owner)
			*p = n
		}
		if n.kids != nil {
			p = &n.kids[(h>>(keyBits*depth))&(keyFan-1)]
			continue
		}
		for i := range n.ents {
			if e := &n.ents[i]; e.hash == h && (e.val == val || bytes.Equal(keyOf(e.val), key)) {
				e.val = val
				return
			}
		}
		n.ents = append(n.ents, keyEntry{h, val})
		ix.size++
		if len(n.ents) > keyBucket && depth*keyBits < 64 {
			// Turn the bucket into an interior node over hash digit depth.
			ents := n.ents
			n.ents, n.kids = nil, make([]*keyNode, keyFan)
			for _, e := range ents {
				i := (e.hash >> (keyBits * depth)) & (keyFan - 1)
				if n.kids[i] == nil {
					n.kids[i] = &keyNode{owner: owner, ents: make([]keyEntry, 0, keyBucket/2)}
				}
				n.kids[i].ents = append(n.kids[i].ents, e)
			}
		}
		return
	}
}

// remove deletes the entry of key with value val, if any, as owner. It
// must be called while val still stands for key.
func (ix *keyIndex) remove(key []byte, val uint32, owner uint64) {
	h := keyHash(key)
	match := func(e keyEntry) bool { return e.hash == h && e.val == val }
	// Find it first: nothing is copied for an absent key.
	n := ix.root
	for depth := uint(0); n != nil && n.kids != nil; depth++ {
		n = n.kids[(h>>(keyBits*depth))&(keyFan-1)]
	}
	if n == nil || !slices.ContainsFunc(n.ents, match) {
		return
	}
	p := &ix.root
	for depth := uint(0); ; depth++ {
		treeOps.indexOps.Add(1)
		n := *p
		if n.owner != owner {
			n = n.copyFor(owner)
			*p = n
		}
		if n.kids != nil {
			p = &n.kids[(h>>(keyBits*depth))&(keyFan-1)]
			continue
		}
		n.ents = slices.DeleteFunc(n.ents, match)
		ix.size--
		if len(n.ents) == 0 {
			*p = nil
		}
		return
	}
}

// encKeyOf and sigKeyOf resolve the values of the tree's key indices.
func (t *ratchetTree) encKeyOf(v uint32) []byte { return t.encryptionKey(NodeIndex(v)) }

func (t *ratchetTree) sigKeyOf(v uint32) []byte {
	if ln := t.leaf(LeafIndex(v)); ln != nil {
		return ln.SignatureKey
	}
	return nil
}

// ensureKeyIndex builds the key index if there is none: O(n), once per
// tree that was not validated (restored states, fixtures); clones share it.
func (t *ratchetTree) ensureKeyIndex() {
	if t.indexed {
		return
	}
	var enc, sig keyIndex
	t.nodes.chunks(uint64(t.width()), func(base NodeIndex, slots []treeSlot) bool {
		for i := range slots {
			x := base + NodeIndex(i)
			var key []byte
			switch s := &slots[i]; {
			case s.leaf != nil:
				key = s.leaf.EncryptionKey
				if _, dup := sig.get(s.leaf.SignatureKey, t.sigKeyOf); !dup {
					sig.put(s.leaf.SignatureKey, uint32(x>>1), t.sigKeyOf, t.owner)
				}
			case s.parent != nil:
				key = s.parent.EncryptionKey
			default:
				continue
			}
			if _, dup := enc.get(key, t.encKeyOf); !dup {
				enc.put(key, uint32(x), t.encKeyOf, t.owner)
			}
		}
		return true
	})
	t.encIdx, t.sigIdx, t.indexed = enc, sig, true
}

// lookupEncryptionKey returns a node whose encryption key is key.
func (t *ratchetTree) lookupEncryptionKey(key []byte) (NodeIndex, bool) {
	t.ensureKeyIndex()
	v, ok := t.encIdx.get(key, t.encKeyOf)
	if !ok || !bytes.Equal(t.encryptionKey(NodeIndex(v)), key) {
		return 0, false
	}
	return NodeIndex(v), true
}

// lookupSignatureKey returns a leaf whose signature key is key.
func (t *ratchetTree) lookupSignatureKey(key []byte) (LeafIndex, bool) {
	t.ensureKeyIndex()
	v, ok := t.sigIdx.get(key, t.sigKeyOf)
	if !ok {
		return 0, false
	}
	if ln := t.leaf(LeafIndex(v)); ln == nil || !bytes.Equal(ln.SignatureKey, key) {
		return 0, false
	}
	return LeafIndex(v), true
}

// leafStats counts, over the non-blank leaves, the members, the members
// using each credential type, and for each type in use the members whose
// capabilities list it. Only basic and x509 credentials decode, so the maps
// hold at most two entries and clone in O(1).
type leafStats struct {
	members     int
	credInUse   map[CredentialType]int
	credSupport map[CredentialType]int // keys: exactly those of credInUse
}

func newLeafStats() leafStats {
	return leafStats{credInUse: map[CredentialType]int{}, credSupport: map[CredentialType]int{}}
}

func (s *leafStats) clone() leafStats {
	c := leafStats{members: s.members, credInUse: make(map[CredentialType]int, len(s.credInUse)),
		credSupport: make(map[CredentialType]int, len(s.credSupport))}
	for k, v := range s.credInUse {
		c.credInUse[k] = v
	}
	for k, v := range s.credSupport {
		c.credSupport[k] = v
	}
	return c
}

// add counts ln (a no-op for nil). scan enumerates the tree's non-blank
// leaves; it is called only when ln brings a credential type into use for
// the first time.
func (s *leafStats) add(ln *LeafNode, scan func(func(*LeafNode))) {
	if ln == nil {
		return
	}
	if s.credInUse == nil {
		*s = newLeafStats()
	}
	s.members++
	for ct := range s.credInUse {
		if ln.Capabilities.SupportsCredential(ct) {
			s.credSupport[ct]++
		}
	}
	ct := ln.Credential.Type
	if s.credInUse[ct] == 0 {
		// A new type: count its supporters among all members (ln included
		// if it is already stored in leaves; otherwise add it).
		sup := 0
		self := false
		scan(func(m *LeafNode) {
			if m == ln {
				self = true
			}
			if m.Capabilities.SupportsCredential(ct) {
				sup++
			}
		})
		if !self && ln.Capabilities.SupportsCredential(ct) {
			sup++
		}
		s.credSupport[ct] = sup
	}
	s.credInUse[ct]++
}

// remove uncounts ln (a no-op for nil).
func (s *leafStats) remove(ln *LeafNode) {
	if ln == nil {
		return
	}
	s.members--
	for ct := range s.credInUse {
		if ln.Capabilities.SupportsCredential(ct) {
			s.credSupport[ct]--
		}
	}
	ct := ln.Credential.Type
	s.credInUse[ct]--
	if s.credInUse[ct] <= 0 {
		delete(s.credInUse, ct)
		delete(s.credSupport, ct)
	}
}
