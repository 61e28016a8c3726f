package mls

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// BENCHMARK AND TEST FIXTURE — NOT FOR PRODUCTION USE.
//
// ScaleFixture builds, deterministically and without running n Commits, the
// state of a large group as it looks after every member has committed once:
// the "full" ratchet tree that MLS groups converge to. Every key of the
// group (signature keys, HPKE keys, the epoch secret) is derived from a
// public seed, so anyone who knows the seed can read and forge every message
// of the group. It exists for the scale benchmarks of this package and the
// mlsbench command (mls/cmd/mlsbench), which reproduce the performance
// numbers of the package; nothing else should use it.
//
// What the fixture is. The members are leaves 0..n-1 of a tree of
// N = 2^⌈log2 n⌉ leaves, created by leaf 0, who added everyone with one
// Commit; then members 0, 1, …, n-1 each committed once with an UpdatePath,
// in that order. The resulting tree is computed directly:
//
//   - A parent node P is non-blank iff its right subtree holds a member
//     (the left subtrees of such nodes are full); its value is the one set
//     by its last committer c(P) = min(n-1, rightmost leaf under P), with
//     no unmerged leaves.
//   - Parent hashes are genuine (§7.9): along c's chain (the nodes c set
//     that no later committer overwrote), each parent_hash links to the
//     node above it, computed with the current tree hashes of the copath
//     subtrees, which no later Commit touched. A parent_hash that linked to
//     a node later overwritten (the top of each chain, the leaves whose
//     parent was overwritten) is, as in a real group, a hash of a node that
//     no longer exists: here a pseudo-random Nh-byte value.
//   - Leaves have source commit, DefaultCapabilities, a basic credential
//     "member-i", and a valid signature over the group id and leaf index.
//
// The tree passes every check a joiner makes (§12.4.3.1): a member can
// add a new client and the client joins from the Welcome. Construction
// costs about one signature key generation, one HPKE DeriveKeyPair and one
// signature per member plus one DeriveKeyPair per parent node, spread over
// GOMAXPROCS goroutines; hashing is linear. Every member's private state
// (its leaf key and the keys of the parent nodes on its direct path, which
// it learnt from the Commits) is derivable, so Member returns the Group of
// any member, all in the same epoch.
type ScaleFixture struct {
	cs          CipherSuite
	n           int
	seed        uint64
	groupID     []byte
	tree        ratchetTree // read-only; members get clones
	sigPrivs    [][]byte    // by leaf
	leafPrivs   [][]byte    // by leaf
	nodePrivs   [][]byte    // parent node x at x>>1; nil when blank
	ctx         GroupContext
	epochSecret []byte
	confTag     []byte
	interim     []byte

	mu sync.Mutex // clone modifies the tree it copies (its owner token)
}

// maxFixtureMembers bounds NewScaleFixture (2^24 members would need tens
// of gigabytes).
const maxFixtureMembers = 1 << 24

// NewScaleFixture builds the n-member fixture group of cipher suite cs from
// seed (see ScaleFixture). The same (cs, n, seed) always gives the same
// group, byte for byte. BENCHMARK AND TEST FIXTURE: its keys are public.
func NewScaleFixture(cs CipherSuite, n int, seed uint64) (*ScaleFixture, error) {
	return newScaleFixture(cs, n, seed, nil)
}

// fixtureOptions are internal knobs of the fixture for tests.
type fixtureOptions struct {
	// realKeys, if non-nil, makes only the listed members (and the parent
	// nodes on their direct paths) get real keys and signatures; every
	// other key is a pseudo-random byte string of the right length and every
	// other signature a placeholder. Such a tree is NOT valid (a joiner
	// rejects it) but is built in a fraction of the time: the operation
	// counting tests use it, where only the listed members commit and
	// process Commits.
	realKeys []LeafIndex
}

func newScaleFixture(cs CipherSuite, n int, seed uint64, fo *fixtureOptions) (*ScaleFixture, error) {
	if !cs.Supported() {
		return nil, &UnsupportedCipherSuiteError{cs}
	}
	if n < 1 || n > maxFixtureMembers {
		return nil, fmt.Errorf("mls: fixture of %d members (1 to %d)", n, maxFixtureMembers)
	}
	nl := 1
	for nl < n {
		nl <<= 1
	}
	f := &ScaleFixture{
		cs:        cs,
		n:         n,
		seed:      seed,
		groupID:   fmt.Appendf(nil, "canopy-fixture-%d-%d", n, seed),
		sigPrivs:  make([][]byte, n),
		leafPrivs: make([][]byte, n),
		nodePrivs: make([][]byte, nl-1),
	}
	b := &fixtureBuilder{
		f:       f,
		cs:      cs,
		n:       n,
		nl:      nl,
		leaves:  make([]*LeafNode, nl),
		encs:    make([][]byte, nl),
		parents: make([]*ParentNode, nl-1),
		hashes:  make([][]byte, 2*nl-1),
	}
	if fo != nil && fo.realKeys != nil {
		b.real = map[NodeIndex]bool{}
		for _, l := range fo.realKeys {
			if int(l) >= n {
				return nil, fmt.Errorf("mls: fixture member %d of %d", l, n)
			}
			b.real[l.nodeIndex()] = true
			for _, x := range directPath(l.nodeIndex(), uint32(nl)) {
				b.real[x] = true
			}
		}
	}
	if err := b.build(); err != nil {
		return nil, err
	}
	f.tree = treeFromArrays(cs, b.leaves, b.parents, b.hashes, b.encs)
	f.tree.ensureKeyIndex() // built once, shared by every member's clone

	th, err := f.tree.treeHash()
	if err != nil {
		return nil, err
	}
	// Epoch n+1: the creator's epoch 0, the Commit adding everyone, then one
	// Commit per member.
	f.ctx = GroupContext{
		Version:                 ProtocolMLS10,
		CipherSuite:             cs,
		GroupID:                 slices.Clone(f.groupID),
		Epoch:                   uint64(n) + 1,
		TreeHash:                th,
		ConfirmedTranscriptHash: f.derive("confirmed_transcript_hash", 0)[:cs.Nh()],
		Extensions:              []Extension{},
	}
	f.epochSecret = f.derive("epoch_secret", 0)[:cs.Nh()]
	secrets, err := epochSecretsFromEpochSecret(cs, f.epochSecret)
	if err != nil {
		return nil, err
	}
	f.confTag = secrets.confirmationTag(f.ctx.ConfirmedTranscriptHash)
	if f.interim, err = interimTranscriptHash(cs, f.ctx.ConfirmedTranscriptHash, f.confTag); err != nil {
		return nil, err
	}
	secrets.wipe()
	return f, nil
}

// Size returns the number of members.
func (f *ScaleFixture) Size() int { return f.n }

// CipherSuite returns the group's cipher suite.
func (f *ScaleFixture) CipherSuite() CipherSuite { return f.cs }

// GroupID returns the group id.
func (f *ScaleFixture) GroupID() []byte { return slices.Clone(f.groupID) }

// Member returns the state of member l (0 ≤ l < Size) in the fixture's
// epoch, with local policy opts (pass WithRandom for deterministic
// Commits). Every call returns an independent Group; all members' groups
// are in the same epoch and can exchange messages. The members share the
// fixture's immutable tree nodes. Safe for concurrent use.
func (f *ScaleFixture) Member(l LeafIndex, opts ...Option) (*Group, error) {
	if uint64(l) >= uint64(f.n) {
		return nil, fmt.Errorf("mls: fixture member %d of %d", l, f.n)
	}
	if f.sigPrivs[l] == nil {
		return nil, fmt.Errorf("mls: fixture member %d has no keys (reduced fixture)", l)
	}
	cs := f.cs
	cfg := newConfig(opts)
	f.mu.Lock()
	tree := f.tree.clone()
	f.mu.Unlock()
	g := &Group{
		ctx:     cloneGroupContext(&f.ctx),
		tree:    tree,
		myLeaf:  l,
		sigPriv: slices.Clone(f.sigPrivs[l]),
		confTag: slices.Clone(f.confTag),
		interim: slices.Clone(f.interim),
	}
	g.adoptConfig(cfg)
	var err error
	if g.priv, err = newPrivateTree(cs, l, slices.Clone(f.leafPrivs[l])); err != nil {
		return nil, err
	}
	for _, x := range directPath(l.nodeIndex(), g.tree.numLeaves()) {
		if pub := g.tree.encryptionKey(x); pub != nil {
			g.priv.put(x, pub, slices.Clone(f.nodePrivs[x>>1]))
		}
	}
	if g.secrets, err = epochSecretsFromEpochSecret(cs, f.epochSecret); err != nil {
		return nil, err
	}
	if g.stree, err = g.secrets.newSecretTree(g.tree.numLeaves(), g.cfg.treeOpts); err != nil {
		return nil, err
	}
	return g, nil
}

// NewKeyPackage returns the KeyPackage of a client that is not yet a member
// (number i: distinct i give distinct clients), with keys derived from the
// fixture's seed; opts apply as for the package's NewKeyPackage.
func (f *ScaleFixture) NewKeyPackage(i uint64, opts ...Option) (*KeyPackageBundle, error) {
	sigPriv, _, err := f.cs.GenerateSignatureKeyPair(f.reader("joiner-signature", i))
	if err != nil {
		return nil, err
	}
	opts = append([]Option{WithRandom(f.reader("joiner-keys", i))}, opts...)
	return NewKeyPackage(f.cs, sigPriv, NewBasicCredential(fmt.Appendf(nil, "joiner-%d", i)), opts...)
}

// derive returns 64 pseudo-random bytes from (seed, label, i).
func (f *ScaleFixture) derive(label string, i uint64) []byte {
	var buf [8 + 8]byte
	binary.BigEndian.PutUint64(buf[:8], f.seed)
	binary.BigEndian.PutUint64(buf[8:], i)
	out := make([]byte, 0, 64)
	for c := byte(0); c < 2; c++ {
		h := sha256.New()
		h.Write([]byte("canopy scale fixture\x00"))
		h.Write([]byte(label))
		h.Write([]byte{0, c})
		h.Write(buf[:])
		out = h.Sum(out)
	}
	return out
}

// reader returns a deterministic random stream for (label, i).
func (f *ScaleFixture) reader(label string, i uint64) *rand.ChaCha8 {
	var s [32]byte
	copy(s[:], f.derive(label, i))
	return rand.NewChaCha8(s)
}

// fixtureBuilder computes the fixture's tree (see ScaleFixture).
type fixtureBuilder struct {
	f       *ScaleFixture
	cs      CipherSuite
	n, nl   int
	leaves  []*LeafNode
	encs    [][]byte // encodings of the leaves, once final
	parents []*ParentNode
	hashes  [][]byte
	real    map[NodeIndex]bool // nil: every node is real

	encKeySize, sigKeySize int // of fake keys
}

// nonBlank reports whether parent node x is non-blank in the final tree:
// its right subtree holds a member.
func (b *fixtureBuilder) nonBlank(x NodeIndex) bool {
	lo, hi := subtreeLeaves(x)
	return (lo+hi)/2 < uint64(b.n)
}

// committer is c(x), the member whose Commit set parent node x last.
func (b *fixtureBuilder) committer(x NodeIndex) int {
	_, hi := subtreeLeaves(x)
	return int(min(hi, uint64(b.n)) - 1)
}

func (b *fixtureBuilder) isReal(x NodeIndex) bool { return b.real == nil || b.real[x] }

func (b *fixtureBuilder) build() error {
	cs, f := b.cs, b.f
	if b.real != nil {
		_, pub, err := cs.DeriveKeyPair(make([]byte, cs.Nh()))
		if err != nil {
			return err
		}
		b.encKeySize = len(pub)
		if _, pub, err = cs.GenerateSignatureKeyPair(f.reader("size", 0)); err != nil {
			return err
		}
		b.sigKeySize = len(pub)
	}
	// Phase 1: keys and leaf contents, in parallel.
	err := parallelFor(b.n, func(i int) error {
		x := LeafIndex(i).nodeIndex()
		ln := &LeafNode{
			Credential:   NewBasicCredential(fmt.Appendf(nil, "member-%d", i)),
			Capabilities: DefaultCapabilities(),
			Source:       LeafNodeSourceCommit,
			Extensions:   []Extension{},
		}
		if b.isReal(x) {
			sigPriv, sigPub, err := cs.GenerateSignatureKeyPair(f.reader("signature", uint64(i)))
			if err != nil {
				return err
			}
			encPriv, encPub, err := cs.DeriveKeyPair(f.derive("leaf", uint64(i))[:cs.Nh()])
			if err != nil {
				return err
			}
			f.sigPrivs[i], f.leafPrivs[i] = sigPriv, encPriv
			ln.SignatureKey, ln.EncryptionKey = sigPub, encPub
		} else {
			ln.SignatureKey = b.fakeKey("fake-signature-key", uint64(i), b.sigKeySize)
			ln.EncryptionKey = b.fakeKey("fake-leaf-key", uint64(i), b.encKeySize)
		}
		b.leaves[i] = ln
		return nil
	})
	if err != nil {
		return err
	}
	err = parallelFor(b.nl-1, func(j int) error {
		x := NodeIndex(2*j + 1)
		if !b.nonBlank(x) {
			return nil
		}
		pn := &ParentNode{UnmergedLeaves: []uint32{}}
		if b.isReal(x) {
			priv, pub, err := cs.DeriveKeyPair(f.derive("node", uint64(x))[:cs.Nh()])
			if err != nil {
				return err
			}
			f.nodePrivs[j], pn.EncryptionKey = priv, pub
		} else {
			pn.EncryptionKey = b.fakeKey("fake-node-key", uint64(x), b.encKeySize)
		}
		b.parents[j] = pn
		return nil
	})
	if err != nil {
		return err
	}

	// Phase 2: parent hashes and leaf signatures, in Commit order. A member
	// c < n-1 whose index ends in k one bits set exactly the k lowest nodes
	// of its direct path (it is the rightmost leaf under them); their copath
	// subtrees hold only leaves c+1-2^k .. c-1, whose own chains end in
	// fewer one bits. So the members are processed in rounds of k, each
	// round in parallel (disjoint subtrees), and member n-1, whose chain
	// climbs to the root, last.
	rounds := bits.Len(uint(b.nl))
	for k := 0; k <= rounds; k++ {
		var members []int
		for c := (1 << k) - 1; c < b.n-1; c += 1 << (k + 1) {
			members = append(members, c)
		}
		if err := parallelFor(len(members), func(i int) error { return b.commit(members[i]) }); err != nil {
			return err
		}
	}
	if err := b.commit(b.n - 1); err != nil {
		return err
	}
	_, err = b.hash(root(uint32(b.nl)))
	return err
}

func (b *fixtureBuilder) fakeKey(label string, i uint64, size int) []byte {
	out := make([]byte, 0, size)
	for c := uint64(0); len(out) < size; c++ {
		out = append(out, b.f.derive(label, i<<8|c)...)
	}
	return out[:size]
}

// commit finalizes member c: the parent hashes of the chain of nodes it set
// that are still in the tree, its leaf's parent hash, and its signature.
func (b *fixtureBuilder) commit(c int) error {
	cs, f := b.cs, b.f
	nl := uint32(b.nl)
	var chain []NodeIndex
	above := NodeIndex(0) // the non-blank node above the chain, if any
	hasAbove := false
	for x, ok := parent(LeafIndex(c).nodeIndex(), nl); ok; x, ok = parent(x, nl) {
		if !b.nonBlank(x) {
			continue
		}
		if b.committer(x) != c {
			above, hasAbove = x, true
			break
		}
		chain = append(chain, x)
	}
	ph := []byte{}
	if hasAbove {
		ph = f.derive("stale-parent-hash", uint64(c)<<32|uint64(above))[:cs.Nh()]
	}
	for i := len(chain) - 1; i >= 0; i-- {
		p := chain[i]
		pn := b.parents[p>>1]
		pn.ParentHash = ph
		l, _ := left(p) // c is in the right subtree: the copath child is the left one
		lh, err := b.hash(l)
		if err != nil {
			return err
		}
		ph = parentHashValue(cs, pn.EncryptionKey, ph, lh)
	}
	ln := b.leaves[c]
	lowest, hasLowest := NodeIndex(0), false
	for x, ok := parent(LeafIndex(c).nodeIndex(), nl); ok; x, ok = parent(x, nl) {
		if b.nonBlank(x) {
			lowest, hasLowest = x, true
			break
		}
	}
	switch {
	case len(chain) > 0 && chain[0] == lowest:
		ln.ParentHash = ph
	case hasLowest:
		ln.ParentHash = f.derive("stale-parent-hash", uint64(c)<<32|uint64(lowest))[:cs.Nh()]
	default:
		ln.ParentHash = []byte{}
	}
	if !b.isReal(LeafIndex(c).nodeIndex()) {
		ln.Signature = make([]byte, 64) // placeholder
		return nil
	}
	return ln.Sign(cs, f.sigPrivs[c], f.groupID, uint32(c), nil)
}

// hash returns the tree hash of node x of the final tree, caching it. Only
// called on subtrees that are final; concurrent calls work on disjoint
// subtrees.
func (b *fixtureBuilder) hash(x NodeIndex) ([]byte, error) {
	if h := b.hashes[x]; h != nil {
		return h, nil
	}
	var in []byte
	var err error
	if isLeaf(x) {
		if ln := b.leaves[x>>1]; ln != nil {
			if b.encs[x>>1], err = ln.Marshal(); err != nil {
				return nil, err
			}
		}
		in, err = leafHashInputEnc(LeafIndex(x>>1), b.leaves[x>>1], b.encs[x>>1])
	} else {
		l, _ := left(x)
		r, _ := right(x)
		var lh, rh []byte
		if lh, err = b.hash(l); err != nil {
			return nil, err
		}
		if rh, err = b.hash(r); err != nil {
			return nil, err
		}
		in, err = parentHashInputTH(b.parents[x>>1], lh, rh)
	}
	if err != nil {
		return nil, err
	}
	h := b.cs.Hash(in)
	b.hashes[x] = h
	return h, nil
}

// parallelFor runs f(0..n-1) on GOMAXPROCS goroutines and returns the
// first error (by index) if any.
func parallelFor(n int, f func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	errs := make([]error, n)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if errs[i] = f(i); errs[i] != nil {
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(slices.DeleteFunc(errs, func(e error) bool { return e == nil })...)
}
