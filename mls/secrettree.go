package mls

import (
	"fmt"
	"math"
	"slices"
)

// The secret tree (RFC 9420 §9) and its per-leaf hash ratchets (§9.1), with
// the deletion schedule of §9.2 and a bounded tolerance for out-of-order and
// late messages.
//
// Lazy derivation. The tree starts as a single secret, encryption_secret at
// the root. Asking for a leaf's ratchet walks down from the lowest node that
// still holds a secret to the leaf, splitting each node on the way into its
// two children ("tree" / "left", "right") and deleting it at once; the
// children off the path are kept for later. A leaf secret is split into the
// handshake and application ratchet secrets and deleted. At any time the
// tree therefore holds an antichain of node secrets plus the ratchets of the
// leaves already used, and reaching a leaf costs O(log n) derivations: a
// 100,000-member group never computes n node secrets up front.
//
// Ratchets. Each ratchet holds the secret of its next generation. Handing
// out generation g advances the secret to g+1 and overwrites the old one;
// the key and nonce of g are deleted as soon as they are handed out, so a
// second request for g fails with ErrKeyConsumed (replay protection).
// Receiving generation g ahead of the ratchet derives and keeps the keys of
// the skipped generations, but only the last MaxSkippedKeys of them, and g
// may be at most MaxForwardDistance past the ratchet (ErrGenerationTooFar):
// the cost a single forged or far-future message can impose is bounded.
//
// Non-power-of-two leaf counts: the derivation walks down from root(n) with
// the structural left/right children, which is exactly the derivation in the
// full tree of the next power of two, i.e. in the ratchet tree of §7.7.
//
// A secretTree is not safe for concurrent use; its group's goroutine owns it.
// clone deep-copies it (cost proportional to the secrets it holds, O(log n +
// ratchets in use × (1 + skipped keys)), never to the group size), and
// marshal/unmarshal give a canonical byte encoding for state snapshots.

// RatchetType selects one of the two hash ratchets of a leaf (§9): the
// handshake ratchet protects proposals and commits, the application ratchet
// application data.
type RatchetType uint8

const (
	HandshakeRatchet   RatchetType = 1
	ApplicationRatchet RatchetType = 2
)

func (rt RatchetType) String() string {
	switch rt {
	case HandshakeRatchet:
		return "handshake"
	case ApplicationRatchet:
		return "application"
	}
	return fmt.Sprintf("RatchetType(%d)", uint8(rt))
}

// Defaults of SecretTreeOptions.
//
// 1,000 generations forward matches what deployed MLS stacks accept and
// covers a sender whose messages were all lost for a long burst, while
// bounding a forged generation's cost to ~3,000 HKDF calls. 128 retained
// skipped keys per ratchet (~3.5 KiB with AES-128, ~5.6 KiB with 256-bit
// keys) tolerates heavy reordering by gossipsub and late deliveries during
// catch-up; older gaps are given up (ErrGenerationExpired).
const (
	DefaultMaxSkippedKeys     = 128
	DefaultMaxForwardDistance = 1000
)

// SecretTreeOptions bound the out-of-order handling of every ratchet.
// They are local policy, not group state: they are not serialized and are
// passed again when a snapshot is restored.
type SecretTreeOptions struct {
	// MaxSkippedKeys is the retention window: the keys of generations
	// g with g ≥ next-MaxSkippedKeys that were skipped and not yet used are
	// kept, where next is the ratchet's next underived generation. A message
	// older than the window fails with ErrGenerationExpired. 0 selects
	// DefaultMaxSkippedKeys; a negative value keeps no skipped keys (strict
	// in-order delivery).
	MaxSkippedKeys int
	// MaxForwardDistance is the largest gap g-next accepted when receiving
	// generation g; beyond it ErrGenerationTooFar. 0 selects
	// DefaultMaxForwardDistance; a negative value accepts only g == next.
	MaxForwardDistance int
}

func (o SecretTreeOptions) limits() (maxSkipped, maxForward uint32) {
	pick := func(v, def int) uint32 {
		switch {
		case v == 0:
			return uint32(def)
		case v < 0:
			return 0
		case uint64(v) > math.MaxUint32:
			return math.MaxUint32
		}
		return uint32(v)
	}
	return pick(o.MaxSkippedKeys, DefaultMaxSkippedKeys), pick(o.MaxForwardDistance, DefaultMaxForwardDistance)
}

// RatchetError reports why a ratchet could not give out a key. Use
// errors.Is with the ratchet sentinels (ErrKeyConsumed, ..., errors.go) to
// branch on the reason.
type RatchetError struct {
	Leaf       LeafIndex
	Ratchet    RatchetType
	Generation uint32 // the generation asked for
	Next       uint32 // the ratchet's next underived generation at the time
	Err        error  // one of the sentinels above
}

func (e *RatchetError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("mls: ratchet error (leaf %d, %v ratchet, generation %d)", e.Leaf, e.Ratchet, e.Generation)
	}
	return fmt.Sprintf("%v (leaf %d, %v ratchet, generation %d, ratchet at %d)",
		e.Err, e.Leaf, e.Ratchet, e.Generation, e.Next)
}

func (e *RatchetError) Unwrap() error { return e.Err }

// ratchetKey is the AEAD key and nonce of one generation (§9.1).
type ratchetKey struct{ key, nonce []byte }

func (k ratchetKey) wipe() { clear(k.key); clear(k.nonce) }

// hashRatchet is one sender ratchet (§9.1).
type hashRatchet struct {
	next    uint32                // generation of secret
	secret  []byte                // ratchet_secret_[next]
	skipped map[uint32]ratchetKey // unused keys of generations < next, within the window
}

// leafRatchets are the two ratchets rooted at one leaf secret.
type leafRatchets struct {
	handshake, application hashRatchet
}

type secretTree struct {
	cs         CipherSuite
	n          uint32
	maxSkipped uint32
	maxForward uint32
	limitsSet  bool // maxSkipped and maxForward were set by setOptions
	// nodes holds the secrets of nodes not yet split: an antichain that,
	// with the leaves of ratchets, covers every leaf exactly once.
	nodes   map[NodeIndex][]byte
	ratchet map[LeafIndex]*leafRatchets
}

// newSecretTree creates the secret tree of an epoch with n leaves rooted at
// encryptionSecret (copied; the caller should wipe its copy, §9.2).
func newSecretTree(cs CipherSuite, encryptionSecret []byte, n uint32, opts SecretTreeOptions) (*secretTree, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	if !validLeafCount(n) {
		return nil, fmt.Errorf("mls: secret tree of %d leaves", n)
	}
	if len(encryptionSecret) != cs.Nh() {
		return nil, fmt.Errorf("mls: encryption_secret is %d bytes, want %d", len(encryptionSecret), cs.Nh())
	}
	t := &secretTree{
		cs:      cs,
		n:       n,
		nodes:   map[NodeIndex][]byte{root(n): slices.Clone(encryptionSecret)},
		ratchet: map[LeafIndex]*leafRatchets{},
	}
	t.setOptions(opts)
	return t, nil
}

// setOptions changes the out-of-order limits. Retained keys outside a
// smaller window are deleted at once. (After the window grows, a generation
// that was dropped under the old window reports ErrKeyConsumed rather than
// ErrGenerationExpired; either way it is refused.)
func (t *secretTree) setOptions(opts SecretTreeOptions) {
	t.maxSkipped, t.maxForward = opts.limits()
	t.limitsSet = true
	t.enforceWindows()
}

// enforceWindows deletes every retained key older than the window, so that
// pruneSkipped only has to look at the generations the window slides past.
func (t *secretTree) enforceWindows() {
	for _, lr := range t.ratchet {
		for _, r := range []*hashRatchet{&lr.handshake, &lr.application} {
			for g, k := range r.skipped {
				if uint64(g)+uint64(t.maxSkipped) < uint64(r.next) {
					k.wipe()
					delete(r.skipped, g)
				}
			}
		}
	}
}

// leafCount is the number of leaves the tree was created for.
func (t *secretTree) leafCount() uint32 { return t.n }

// nextSendKey hands out the key and nonce of the next unused generation of
// one of leaf's ratchets, for encrypting a message as that leaf. The
// generation is consumed at once.
func (t *secretTree) nextSendKey(leaf LeafIndex, rt RatchetType) (generation uint32, key, nonce []byte, err error) {
	r, err := t.ratchetFor(leaf, rt)
	if err != nil {
		return 0, nil, nil, err
	}
	g := r.next
	rerr := func(e error) error {
		return &RatchetError{Leaf: leaf, Ratchet: rt, Generation: g, Next: r.next, Err: e}
	}
	if g == math.MaxUint32 {
		return 0, nil, nil, rerr(ErrRatchetExhausted)
	}
	k, nextSecret, err := t.ratchetStep(r.secret, g)
	if err != nil {
		return 0, nil, nil, err
	}
	clear(r.secret)
	r.secret, r.next = nextSecret, g+1
	t.pruneSkipped(r, g)
	return g, k.key, k.nonce, nil
}

// receiveKey hands out the key and nonce of generation g of one of leaf's
// ratchets, for decrypting a message from that leaf, and deletes them.
// Prefer openWithKey, which deletes them only if decryption succeeds.
func (t *secretTree) receiveKey(leaf LeafIndex, rt RatchetType, g uint32) (key, nonce []byte, err error) {
	err = t.openWithKey(leaf, rt, g, func(k, n []byte) error {
		key, nonce = k, n
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return key, nonce, nil
}

// openWithKey derives the key and nonce of generation g of one of leaf's
// ratchets and calls open with them. If open succeeds the generation is
// consumed (§9.2: a value is consumed once it has successfully decrypted a
// message): its key is deleted, the ratchet moves past g and the keys of the
// generations it skipped are kept within the window. If open fails, the
// ratchet is left as it was, so a forged message cannot burn a key or move
// the ratchet. When open returns an error it must neither modify nor
// retain key and nonce (they may still be stored in the tree); after
// success they belong to open, which should wipe them once used.
//
// The first message from a sender also derives the sender's leaf secret
// from the tree (deriveLeaf): that derivation is done on the side as well
// and kept only if open succeeds, so a failed open leaves the tree exactly
// as it was (byte for byte in marshal).
func (t *secretTree) openWithKey(leaf LeafIndex, rt RatchetType, g uint32, open func(key, nonce []byte) error) (err error) {
	if err := t.checkRatchet(leaf, rt); err != nil {
		return err
	}
	lr, ok := t.ratchet[leaf]
	if !ok {
		side, err := t.deriveLeafSide(leaf)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				side.wipe()
			}
		}()
		lr = side.ratchets
		// Installed before open's result is known only in this copy of
		// the pointers: commit happens below, after open succeeded.
		open0 := open
		open = func(key, nonce []byte) error {
			if err := open0(key, nonce); err != nil {
				return err
			}
			side.commit(t, leaf)
			return nil
		}
	}
	r := &lr.handshake
	if rt == ApplicationRatchet {
		r = &lr.application
	}
	rerr := func(e error) error {
		return &RatchetError{Leaf: leaf, Ratchet: rt, Generation: g, Next: r.next, Err: e}
	}

	// A generation behind the ratchet: only a retained skipped key serves.
	if g < r.next {
		k, ok := r.skipped[g]
		switch {
		case ok:
		case uint64(g)+uint64(t.maxSkipped) < uint64(r.next):
			return rerr(ErrGenerationExpired)
		default:
			return rerr(ErrKeyConsumed)
		}
		if err := open(k.key, k.nonce); err != nil {
			return err
		}
		delete(r.skipped, g)
		return nil
	}

	// Generation g at or ahead of the ratchet: derive up to it on the side
	// and commit only if open succeeds.
	if g-r.next > t.maxForward {
		return rerr(ErrGenerationTooFar)
	}
	if g == math.MaxUint32 {
		return rerr(ErrRatchetExhausted)
	}
	k, nextSecret, kept, firstKept, err := t.deriveForward(r, g)
	if err != nil {
		return err
	}
	if err := open(k.key, k.nonce); err != nil {
		k.wipe()
		clear(nextSecret)
		for _, k := range kept {
			k.wipe()
		}
		return err
	}

	// Commit: the old secret is consumed, the skipped keys are retained and
	// those that fell out of the window are deleted.
	clear(r.secret)
	oldNext := r.next
	r.secret, r.next = nextSecret, g+1
	if len(kept) > 0 && r.skipped == nil {
		r.skipped = make(map[uint32]ratchetKey, len(kept))
	}
	for i, k := range kept {
		r.skipped[uint32(firstKept)+uint32(i)] = k
	}
	t.pruneSkipped(r, oldNext)
	return nil
}

// deriveForward derives, on the side, the ratchet r from r.next up to
// generation g: the key of g, the secret that follows it, and the keys of
// the skipped generations that stay within the retention window (kept[i]
// is generation firstKept+i). r is not changed; the caller commits the
// result or wipes it.
func (t *secretTree) deriveForward(r *hashRatchet, g uint32) (k ratchetKey, nextSecret []byte, kept []ratchetKey, firstKept uint64, err error) {
	// Keys of skipped generations ≥ keepFrom stay within the new window.
	var keepFrom uint64
	if uint64(g)+1 > uint64(t.maxSkipped) {
		keepFrom = uint64(g) + 1 - uint64(t.maxSkipped)
	}
	firstKept = max(uint64(r.next), keepFrom)
	secret := r.secret
	wipeKept := func() {
		for _, k := range kept {
			k.wipe()
		}
	}
	for j := r.next; j < g; j++ {
		var next []byte
		if uint64(j) >= keepFrom {
			k, s, err := t.ratchetStep(secret, j)
			if err != nil {
				wipeKept()
				return ratchetKey{}, nil, nil, 0, err
			}
			kept = append(kept, k)
			next = s
		} else {
			s, err := t.cs.DeriveTreeSecret(secret, "secret", j, t.cs.Nh())
			if err != nil {
				return ratchetKey{}, nil, nil, 0, err
			}
			next = s
		}
		if j != r.next {
			clear(secret) // intermediate secrets were never stored
		}
		secret = next
	}
	k, nextSecret, err = t.ratchetStep(secret, g)
	if g != r.next {
		clear(secret)
	}
	if err != nil {
		wipeKept()
		return ratchetKey{}, nil, nil, 0, err
	}
	return k, nextSecret, kept, firstKept, nil
}

// pruneSkipped deletes the retained keys that fell out of the window after
// the ratchet moved from generation oldNext to r.next.
func (t *secretTree) pruneSkipped(r *hashRatchet, oldNext uint32) {
	if len(r.skipped) == 0 {
		return
	}
	if uint64(r.next) <= uint64(t.maxSkipped) {
		return
	}
	limit := r.next - t.maxSkipped // keep generations ≥ limit
	from := uint32(0)
	if uint64(oldNext) > uint64(t.maxSkipped) {
		from = oldNext - t.maxSkipped
	}
	if uint64(limit-from) > uint64(len(r.skipped)) {
		// Cheaper to scan the map than the generation range.
		for g, k := range r.skipped {
			if g < limit {
				k.wipe()
				delete(r.skipped, g)
			}
		}
		return
	}
	for g := from; g < limit; g++ {
		if k, ok := r.skipped[g]; ok {
			k.wipe()
			delete(r.skipped, g)
		}
	}
}

// ratchetStep derives the key and nonce of generation g from
// ratchet_secret_[g], and ratchet_secret_[g+1] (§9.1).
func (t *secretTree) ratchetStep(secret []byte, g uint32) (ratchetKey, []byte, error) {
	cs := t.cs
	key, err := cs.DeriveTreeSecret(secret, "key", g, cs.Nk())
	if err != nil {
		return ratchetKey{}, nil, err
	}
	nonce, err := cs.DeriveTreeSecret(secret, "nonce", g, cs.Nn())
	if err != nil {
		return ratchetKey{}, nil, err
	}
	next, err := cs.DeriveTreeSecret(secret, "secret", g, cs.Nh())
	if err != nil {
		return ratchetKey{}, nil, err
	}
	return ratchetKey{key, nonce}, next, nil
}

// checkRatchet checks a ratchet type and leaf index.
func (t *secretTree) checkRatchet(leaf LeafIndex, rt RatchetType) error {
	if rt != HandshakeRatchet && rt != ApplicationRatchet {
		return fmt.Errorf("mls: unknown ratchet type %d", uint8(rt))
	}
	if uint32(leaf) >= t.n {
		return &RatchetError{Leaf: leaf, Ratchet: rt, Err: ErrUnknownLeaf}
	}
	return nil
}

// ratchetFor returns one of leaf's ratchets, deriving the path from the
// lowest stored ancestor down to the leaf the first time (§9).
func (t *secretTree) ratchetFor(leaf LeafIndex, rt RatchetType) (*hashRatchet, error) {
	if err := t.checkRatchet(leaf, rt); err != nil {
		return nil, err
	}
	lr, ok := t.ratchet[leaf]
	if !ok {
		var err error
		if lr, err = t.deriveLeaf(leaf); err != nil {
			return nil, err
		}
	}
	if rt == HandshakeRatchet {
		return &lr.handshake, nil
	}
	return &lr.application, nil
}

// deriveLeaf splits node secrets from the lowest stored ancestor of leaf
// down to the leaf, keeping the off-path children and deleting every node
// it splits, then turns the leaf secret into the two ratchets (§9, §9.2).
func (t *secretTree) deriveLeaf(leaf LeafIndex) (*leafRatchets, error) {
	d, err := t.deriveLeafSide(leaf)
	if err != nil {
		return nil, err
	}
	lr := d.ratchets
	d.commit(t, leaf)
	return lr, nil
}

// leafDerivation is the result of deriving a leaf's ratchets without
// changing the tree: commit applies it (the stored ancestor is deleted, the
// off-path children and the ratchets stored), wipe discards it.
type leafDerivation struct {
	from     NodeIndex // the stored ancestor that was split
	offPath  []NodeIndex
	secrets  [][]byte // secrets of offPath
	ratchets *leafRatchets
}

// deriveLeafSide derives leaf's ratchets from the lowest stored ancestor
// without modifying t (§9): O(log n) derivations.
func (t *secretTree) deriveLeafSide(leaf LeafIndex) (*leafDerivation, error) {
	cs := t.cs
	target := leaf.nodeIndex()
	x := root(t.n)
	secret, ok := t.nodes[x]
	for !ok {
		if x == target {
			return nil, fmt.Errorf("mls: internal error: secret tree has no secret for leaf %d", leaf)
		}
		x = childToward(x, target)
		secret, ok = t.nodes[x]
	}
	d := &leafDerivation{from: x}
	fail := func(err error) (*leafDerivation, error) {
		d.wipe()
		return nil, err
	}
	stored := true // secret is the stored one: not ours to clear
	for x != target {
		l, _ := left(x)
		r, _ := right(x)
		ls, err := cs.ExpandWithLabel(secret, "tree", []byte("left"), cs.Nh())
		if err != nil {
			return fail(err)
		}
		rs, err := cs.ExpandWithLabel(secret, "tree", []byte("right"), cs.Nh())
		if err != nil {
			return fail(err)
		}
		if !stored {
			clear(secret)
		}
		stored = false
		onPath, off, offSecret := l, r, rs
		secret = ls
		if target > x {
			onPath, off, offSecret = r, l, ls
			secret = rs
		}
		// A subtree made only of padding leaves (≥ n) is never used.
		if lo, _ := subtreeLeaves(off); lo < uint64(t.n) {
			d.offPath = append(d.offPath, off)
			d.secrets = append(d.secrets, offSecret)
		} else {
			clear(offSecret)
		}
		x = onPath
	}
	hs, err := cs.ExpandWithLabel(secret, "handshake", nil, cs.Nh())
	if err != nil {
		return fail(err)
	}
	as, err := cs.ExpandWithLabel(secret, "application", nil, cs.Nh())
	if err != nil {
		clear(hs)
		return fail(err)
	}
	if !stored {
		clear(secret)
	}
	d.ratchets = &leafRatchets{
		handshake:   hashRatchet{secret: hs},
		application: hashRatchet{secret: as},
	}
	return d, nil
}

// commit applies d to t: the split ancestor's secret is deleted and the
// derived secrets and ratchets are stored.
func (d *leafDerivation) commit(t *secretTree, leaf LeafIndex) {
	clear(t.nodes[d.from])
	delete(t.nodes, d.from)
	for i, x := range d.offPath {
		t.nodes[x] = d.secrets[i]
	}
	t.ratchet[leaf] = d.ratchets
	d.offPath, d.secrets, d.ratchets = nil, nil, nil
}

// wipe discards an uncommitted derivation.
func (d *leafDerivation) wipe() {
	for _, s := range d.secrets {
		clear(s)
	}
	if d.ratchets != nil {
		d.ratchets.handshake.wipe()
		d.ratchets.application.wipe()
	}
	d.offPath, d.secrets, d.ratchets = nil, nil, nil
}

// clone returns an independent deep copy: consuming keys in one copy never
// affects the other, and wiping in one never corrupts the other.
func (t *secretTree) clone() *secretTree {
	c := &secretTree{
		cs:         t.cs,
		n:          t.n,
		maxSkipped: t.maxSkipped,
		maxForward: t.maxForward,
		limitsSet:  t.limitsSet,
		nodes:      make(map[NodeIndex][]byte, len(t.nodes)),
		ratchet:    make(map[LeafIndex]*leafRatchets, len(t.ratchet)),
	}
	for x, s := range t.nodes {
		c.nodes[x] = slices.Clone(s)
	}
	for l, lr := range t.ratchet {
		c.ratchet[l] = &leafRatchets{handshake: lr.handshake.clone(), application: lr.application.clone()}
	}
	return c
}

func (r *hashRatchet) clone() hashRatchet {
	c := hashRatchet{next: r.next, secret: slices.Clone(r.secret)}
	if len(r.skipped) > 0 {
		c.skipped = make(map[uint32]ratchetKey, len(r.skipped))
		for g, k := range r.skipped {
			c.skipped[g] = ratchetKey{slices.Clone(k.key), slices.Clone(k.nonce)}
		}
	}
	return c
}

// wipe overwrites every secret the tree holds and empties it.
func (t *secretTree) wipe() {
	for x, s := range t.nodes {
		clear(s)
		delete(t.nodes, x)
	}
	for l, lr := range t.ratchet {
		lr.handshake.wipe()
		lr.application.wipe()
		delete(t.ratchet, l)
	}
}

func (r *hashRatchet) wipe() {
	clear(r.secret)
	for _, k := range r.skipped {
		k.wipe()
	}
	r.skipped = nil
}

// senderDataKeyNonce derives the key and nonce that protect a
// PrivateMessage's SenderData (§6.3.2) from the epoch's sender_data_secret
// and the message ciphertext, whose first Nh bytes (or all of it if shorter)
// are the sample.
func senderDataKeyNonce(cs CipherSuite, senderDataSecret, ciphertext []byte) (key, nonce []byte, err error) {
	sample := ciphertext[:min(len(ciphertext), cs.Nh())]
	if key, err = cs.ExpandWithLabel(senderDataSecret, "key", sample, cs.Nk()); err != nil {
		return nil, nil, err
	}
	if nonce, err = cs.ExpandWithLabel(senderDataSecret, "nonce", sample, cs.Nn()); err != nil {
		return nil, nil, err
	}
	return key, nonce, nil
}
