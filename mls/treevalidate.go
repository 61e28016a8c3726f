package mls

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"
)

// LeafNode validation against a group (§7.3) and whole-tree validation on
// joining (§12.4.3.1), with no O(n²) step:
//
//   - key uniqueness uses maps (keyIndex below), never pairwise comparison;
//   - credential-type compatibility uses per-type counters kept by the tree
//     (leafStats), so validating one new leaf is O(1) in the group size;
//   - parent-hash validity is checked top down, each non-blank parent node
//     once, in O(n + Σ|unmerged_leaves|) node visits plus the hashes;
//   - leaf signatures, the dominant cost when joining a large group, are
//     verified in parallel on GOMAXPROCS goroutines.

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
	if err := ln.Validate(cs, source, v.GroupID, uint32(at)); err != nil {
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
			for _, m := range t.leaves {
				if m != nil && m.Capabilities.SupportsCredential(ct) {
					supporters++
				}
			}
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
// ErrInvalidUnmergedLeaves, ErrInvalidParentHash). On success the maps built
// for the uniqueness check become the tree's key index.
func (t *ratchetTree) validate(treeHash []byte, v *leafValidation) error {
	if v == nil {
		v = &leafValidation{}
	}
	if len(t.leaves) == 0 || t.memberCount() == 0 {
		return treeErr([]error{ErrInvalidTree}, nil, "tree has no members")
	}
	if treeHash != nil {
		got, err := t.treeHash()
		if err != nil {
			return treeErr([]error{ErrInvalidTree}, err, "computing the tree hash")
		}
		if !bytes.Equal(got, treeHash) {
			return treeErr([]error{ErrInvalidTree, ErrTreeHashMismatch}, nil, "tree hash %x, expected %x", got, treeHash)
		}
	}
	idx, err := t.checkUniqueKeys()
	if err != nil {
		return err
	}
	if err := t.checkLeaves(v); err != nil {
		return err
	}
	if err := t.checkUnmergedLeaves(); err != nil {
		return err
	}
	if err := t.checkParentHashes(); err != nil {
		return err
	}
	t.keyBase, t.encAdded, t.sigAdded, t.overlayed = idx, nil, nil, 0
	return nil
}

// checkLeaves validates every non-blank leaf, in parallel for large trees,
// reporting the failure with the lowest leaf index.
func (t *ratchetTree) checkLeaves(v *leafValidation) error {
	checkOne := func(i int) error {
		ln := t.leaves[i]
		if ln == nil {
			return nil
		}
		if err := v.checkLeafContent(t.cs, ln, LeafIndex(i), ln.Source); err != nil {
			return err
		}
		for used := range t.stats.credInUse {
			if !ln.Capabilities.SupportsCredential(used) {
				return fmt.Errorf("%w: does not support credential type %v used in the group", ErrInvalidLeafNode, used)
			}
		}
		return nil
	}
	n := len(t.leaves)
	workers := min(runtime.GOMAXPROCS(0), n/32)
	firstErr := func(lo, hi int) (int, error) {
		for i := lo; i < hi; i++ {
			if err := checkOne(i); err != nil {
				return i, err
			}
		}
		return -1, nil
	}
	var at int
	var err error
	if workers <= 1 {
		at, err = firstErr(0, n)
	} else {
		type result struct {
			at  int
			err error
		}
		results := make([]result, workers)
		var wg sync.WaitGroup
		chunk := (n + workers - 1) / workers
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				i, e := firstErr(min(w*chunk, n), min((w+1)*chunk, n))
				results[w] = result{i, e}
			}()
		}
		wg.Wait()
		for _, r := range results {
			if r.err != nil {
				at, err = r.at, r.err
				break
			}
		}
	}
	if err != nil {
		return treeErr([]error{ErrInvalidTree}, err, "leaf %d", at)
	}
	return nil
}

// checkUniqueKeys builds the encryption-key map over all nodes and the
// signature-key map over all leaves, failing on any duplicate.
func (t *ratchetTree) checkUniqueKeys() (*keyIndex, error) {
	idx := &keyIndex{
		enc: make(map[string]NodeIndex, int(t.width())),
		sig: make(map[string]LeafIndex, len(t.leaves)),
	}
	for x := NodeIndex(0); uint32(x) < t.width(); x++ {
		if t.blank(x) {
			continue
		}
		key := t.encryptionKey(x)
		if y, dup := idx.enc[string(key)]; dup {
			return nil, treeErr([]error{ErrInvalidTree, ErrDuplicateKey}, nil, "nodes %d and %d have the same encryption key", y, x)
		}
		idx.enc[string(key)] = x
		if !isLeaf(x) {
			if err := t.cs.ValidateHPKEPublicKey(key); err != nil {
				return nil, treeErr([]error{ErrInvalidTree}, err, "encryption key of parent node %d", x)
			}
		}
	}
	for i, ln := range t.leaves {
		if ln == nil {
			continue
		}
		if j, dup := idx.sig[string(ln.SignatureKey)]; dup {
			return nil, treeErr([]error{ErrInvalidTree, ErrDuplicateKey}, nil, "leaves %d and %d have the same signature key", j, i)
		}
		idx.sig[string(ln.SignatureKey)] = LeafIndex(i)
	}
	return idx, nil
}

// checkUnmergedLeaves enforces the unmerged_leaves rules of §7.1 and
// §12.4.3.1. O(Σ|unmerged_leaves| · log n · log k).
func (t *ratchetTree) checkUnmergedLeaves() error {
	fail := func(format string, args ...any) error {
		return treeErr([]error{ErrInvalidTree, ErrInvalidUnmergedLeaves}, nil, format, args...)
	}
	for i, pn := range t.parents {
		if pn == nil {
			continue
		}
		for j := 1; j < len(pn.UnmergedLeaves); j++ {
			if pn.UnmergedLeaves[j-1] >= pn.UnmergedLeaves[j] {
				return fail("unmerged leaves of node %d are not strictly increasing", 2*i+1)
			}
		}
	}
	n := t.numLeaves()
	for i, pn := range t.parents {
		if pn == nil {
			continue
		}
		p := NodeIndex(2*i + 1)
		lo, hi := subtreeLeaves(p)
		for _, u := range pn.UnmergedLeaves {
			if uint64(u) < lo || uint64(u) >= hi || u >= n {
				return fail("node %d lists leaf %d, which is not below it", p, u)
			}
			if t.leaves[u] == nil {
				return fail("node %d lists blank leaf %d", p, u)
			}
			for x, _ := parent(LeafIndex(u).nodeIndex(), n); x != p; x, _ = parent(x, n) {
				if in := t.parents[x>>1]; in != nil {
					if _, found := slices.BinarySearch(in.UnmergedLeaves, u); !found {
						return fail("node %d lists leaf %d but node %d between them does not", p, u, x)
					}
				}
			}
		}
	}
	return nil
}

// checkParentHashes verifies that every non-blank parent node is
// parent-hash valid (§7.9.2), top down: a non-blank parent P is valid iff
// exactly one of its descendants D has a parent hash valid with respect to
// P. Validity of P's descendants is checked when they are visited as P, so
// every node is chained back to a leaf.
func (t *ratchetTree) checkParentHashes() error {
	for i, pn := range t.parents {
		if pn == nil {
			continue
		}
		p := NodeIndex(2*i + 1)
		valid, err := t.parentHashValidCount(p)
		if err != nil {
			return treeErr([]error{ErrInvalidTree}, err, "parent hash of node %d", p)
		}
		if valid != 1 {
			return treeErr([]error{ErrInvalidTree, ErrInvalidParentHash}, nil, "parent node %d is not parent-hash valid (%d matching descendants)", p, valid)
		}
	}
	return nil
}

// parentHashValidCount counts the descendants D of the non-blank parent p
// whose parent hash is valid with respect to p (§7.9.2): with C the child of
// p above D and S the other child, D.parent_hash is the parent hash of p
// with copath child S, D is in the resolution of C, and p's unmerged leaves
// under C are exactly the rest of that resolution. There is at most one
// candidate D per side: the only element of resolution(C) outside p's
// unmerged leaves.
func (t *ratchetTree) parentHashValidCount(p NodeIndex) (int, error) {
	pn := t.parents[p>>1]
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
			ln := t.leaves[d>>1]
			if ln.Source != LeafNodeSourceCommit {
				continue
			}
			dph = ln.ParentHash
		} else {
			dph = t.parents[d>>1].ParentHash
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

// keyIndex maps every encryption key of a tree to its node and every
// signature key to its leaf. It is immutable once built and shared by
// clones. A tree records keys stored after the index was built in a small
// overlay (encAdded/sigAdded); a hit in the base or the overlay counts only
// if the node still holds that key, so removed or replaced keys need no
// bookkeeping. When the overlay outgrows max(256, width/64) entries the
// index is dropped and rebuilt (O(n)) on the next lookup, which keeps both
// lookups and clones cheap: amortized O(1) per key change. If a tree holds
// duplicate keys (it then fails validate), lookups may miss one copy.
type keyIndex struct {
	enc map[string]NodeIndex
	sig map[string]LeafIndex
}

// noteKeys records keys stored at node x in the overlay.
func (t *ratchetTree) noteKeys(x NodeIndex, enc, sig []byte) {
	if t.keyBase == nil {
		return // no index yet: it will be built from the tree as it is then
	}
	if t.encAdded == nil {
		t.encAdded = map[string]NodeIndex{}
		t.sigAdded = map[string]LeafIndex{}
	}
	t.encAdded[string(enc)] = x
	if sig != nil {
		t.sigAdded[string(sig)] = LeafIndex(x >> 1)
	}
	t.overlayed++
	if t.overlayed > max(256, int(t.width()/64)) {
		t.keyBase, t.encAdded, t.sigAdded, t.overlayed = nil, nil, nil, 0
	}
}

// ensureKeyIndex builds the key index if there is none.
func (t *ratchetTree) ensureKeyIndex() {
	if t.keyBase != nil {
		return
	}
	idx := &keyIndex{
		enc: make(map[string]NodeIndex, int(t.width())),
		sig: make(map[string]LeafIndex, len(t.leaves)),
	}
	for i, ln := range t.leaves {
		if ln == nil {
			continue
		}
		x := LeafIndex(i).nodeIndex()
		if _, dup := idx.enc[string(ln.EncryptionKey)]; !dup {
			idx.enc[string(ln.EncryptionKey)] = x
		}
		if _, dup := idx.sig[string(ln.SignatureKey)]; !dup {
			idx.sig[string(ln.SignatureKey)] = LeafIndex(i)
		}
	}
	for i, pn := range t.parents {
		if pn == nil {
			continue
		}
		if _, dup := idx.enc[string(pn.EncryptionKey)]; !dup {
			idx.enc[string(pn.EncryptionKey)] = NodeIndex(2*i + 1)
		}
	}
	t.keyBase, t.encAdded, t.sigAdded, t.overlayed = idx, nil, nil, 0
}

// lookupEncryptionKey returns a node whose encryption key is key.
func (t *ratchetTree) lookupEncryptionKey(key []byte) (NodeIndex, bool) {
	t.ensureKeyIndex()
	holds := func(x NodeIndex) bool {
		return t.inRange(x) && !t.blank(x) && bytes.Equal(t.encryptionKey(x), key)
	}
	if x, ok := t.encAdded[string(key)]; ok && holds(x) {
		return x, true
	}
	if x, ok := t.keyBase.enc[string(key)]; ok && holds(x) {
		return x, true
	}
	return 0, false
}

// lookupSignatureKey returns a leaf whose signature key is key.
func (t *ratchetTree) lookupSignatureKey(key []byte) (LeafIndex, bool) {
	t.ensureKeyIndex()
	holds := func(l LeafIndex) bool {
		ln := t.leaf(l)
		return ln != nil && bytes.Equal(ln.SignatureKey, key)
	}
	if l, ok := t.sigAdded[string(key)]; ok && holds(l) {
		return l, true
	}
	if l, ok := t.keyBase.sig[string(key)]; ok && holds(l) {
		return l, true
	}
	return 0, false
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

// add counts ln (a no-op for nil). leaves is the tree's leaf slice, scanned
// only when ln brings a credential type into use for the first time.
func (s *leafStats) add(ln *LeafNode, leaves []*LeafNode) {
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
		for _, m := range leaves {
			if m == ln {
				self = true
			}
			if m != nil && m.Capabilities.SupportsCredential(ct) {
				sup++
			}
		}
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
