package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
)

func init() { registerVector("secret-tree", checkSecretTree) }

type secretTreeVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	SenderData  struct {
		SenderDataSecret hexBytes `json:"sender_data_secret"`
		Ciphertext       hexBytes `json:"ciphertext"`
		Key              hexBytes `json:"key"`
		Nonce            hexBytes `json:"nonce"`
	} `json:"sender_data"`
	EncryptionSecret hexBytes `json:"encryption_secret"`
	Leaves           [][]struct {
		Generation       uint32   `json:"generation"`
		HandshakeKey     hexBytes `json:"handshake_key"`
		HandshakeNonce   hexBytes `json:"handshake_nonce"`
		ApplicationKey   hexBytes `json:"application_key"`
		ApplicationNonce hexBytes `json:"application_nonce"`
	} `json:"leaves"`
}

func checkSecretTree(t *testing.T, data []byte) {
	cases := decodeVectors[secretTreeVector](t, data)
	runPerSuite(t, cases, func(tc secretTreeVector) uint16 { return tc.CipherSuite }, func(t *testing.T, cs CipherSuite, tc secretTreeVector) {
		sd := tc.SenderData
		key, nonce, err := senderDataKeyNonce(cs, sd.SenderDataSecret, sd.Ciphertext)
		if err != nil {
			t.Fatal(err)
		}
		mustEqualBytes(t, "sender data key", key, sd.Key)
		mustEqualBytes(t, "sender data nonce", nonce, sd.Nonce)

		n := uint32(len(tc.Leaves))
		tree, err := newSecretTree(cs, tc.EncryptionSecret, n, SecretTreeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Two more views of the same epoch: a clone and a restored snapshot
		// taken before any derivation must give the same keys.
		clone := tree.clone()
		snapshot, err := tree.marshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		restored, err := unmarshalSecretTree(snapshot, SecretTreeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for name, st := range map[string]*secretTree{"tree": tree, "clone": clone, "restored": restored} {
			for i, gens := range tc.Leaves {
				leaf := LeafIndex(i)
				for _, g := range gens {
					what := fmt.Sprintf("%s: leaf %d generation %d", name, i, g.Generation)
					k, nn, err := st.receiveKey(leaf, HandshakeRatchet, g.Generation)
					if err != nil {
						t.Fatalf("%s: handshake: %v", what, err)
					}
					mustEqualBytes(t, what+" handshake key", k, g.HandshakeKey)
					mustEqualBytes(t, what+" handshake nonce", nn, g.HandshakeNonce)
					k, nn, err = st.receiveKey(leaf, ApplicationRatchet, g.Generation)
					if err != nil {
						t.Fatalf("%s: application: %v", what, err)
					}
					mustEqualBytes(t, what+" application key", k, g.ApplicationKey)
					mustEqualBytes(t, what+" application nonce", nn, g.ApplicationNonce)
				}
			}
		}
		// Every leaf was used: only ratchets remain, no node secrets.
		if len(tree.nodes) != 0 || uint32(len(tree.ratchet)) != n {
			t.Errorf("after using every leaf: %d node secrets, %d ratchets", len(tree.nodes), len(tree.ratchet))
		}
		// Mid-life snapshot round trip is canonical and restores the state.
		enc, err := tree.marshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := unmarshalSecretTree(enc, SecretTreeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		enc2, err := back.marshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		mustEqualBytes(t, "re-encoded snapshot", enc2, enc)
	})
}

var testSuite = MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

func testTree(t testing.TB, n uint32, opts SecretTreeOptions) *secretTree {
	t.Helper()
	secret := bytes.Repeat([]byte{0x42}, testSuite.Nh())
	tree, err := newSecretTree(testSuite, secret, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// expectedKeys returns the keys of generations 0..count-1 of a ratchet,
// obtained in order from a fresh tree.
func expectedKeys(t *testing.T, n uint32, leaf LeafIndex, rt RatchetType, count int) [][]byte {
	t.Helper()
	tree := testTree(t, n, SecretTreeOptions{MaxForwardDistance: count + 1})
	keys := make([][]byte, count)
	for g := range keys {
		gen, k, _, err := tree.nextSendKey(leaf, rt)
		if err != nil || gen != uint32(g) {
			t.Fatalf("nextSendKey: generation %d, %v", gen, err)
		}
		keys[g] = k
	}
	return keys
}

func wantRatchetErr(t *testing.T, err, want error) *RatchetError {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	var re *RatchetError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a *RatchetError", err)
	}
	return re
}

func TestSecretTreeSendReceive(t *testing.T) {
	want := expectedKeys(t, 8, 5, ApplicationRatchet, 3)
	recv := testTree(t, 8, SecretTreeOptions{})
	for g, k := range want {
		got, _, err := recv.receiveKey(5, ApplicationRatchet, uint32(g))
		if err != nil {
			t.Fatal(err)
		}
		mustEqualBytes(t, "key", got, k)
	}
	// The handshake ratchet is independent.
	hs, _, err := recv.receiveKey(5, HandshakeRatchet, 0)
	if err != nil || bytes.Equal(hs, want[0]) {
		t.Fatalf("handshake ratchet: %x, %v", hs, err)
	}
	// A sender's own generation cannot be received again (echo/replay).
	send := testTree(t, 8, SecretTreeOptions{})
	g, _, _, err := send.nextSendKey(2, HandshakeRatchet)
	if err != nil || g != 0 {
		t.Fatal(g, err)
	}
	_, _, err = send.receiveKey(2, HandshakeRatchet, 0)
	wantRatchetErr(t, err, ErrKeyConsumed)
}

func TestSecretTreeOutOfOrder(t *testing.T) {
	want := expectedKeys(t, 4, 3, ApplicationRatchet, 20)
	tree := testTree(t, 4, SecretTreeOptions{})
	for _, g := range []uint32{5, 2, 9, 0, 1, 3, 4, 8, 6, 7, 19, 10} {
		got, _, err := tree.receiveKey(3, ApplicationRatchet, g)
		if err != nil {
			t.Fatalf("generation %d: %v", g, err)
		}
		mustEqualBytes(t, fmt.Sprintf("generation %d", g), got, want[g])
	}
	r := &tree.ratchet[3].application
	if r.next != 20 || len(r.skipped) != 8 { // 11..18 remain
		t.Fatalf("ratchet at %d with %d skipped keys", r.next, len(r.skipped))
	}
	for g := uint32(11); g < 19; g++ {
		if _, ok := r.skipped[g]; !ok {
			t.Fatalf("skipped key %d missing", g)
		}
	}
}

func TestSecretTreeReplay(t *testing.T) {
	tree := testTree(t, 2, SecretTreeOptions{})
	for _, g := range []uint32{3, 1} { // one ahead, one skipped
		if _, _, err := tree.receiveKey(1, HandshakeRatchet, g); err != nil {
			t.Fatal(err)
		}
		_, _, err := tree.receiveKey(1, HandshakeRatchet, g)
		re := wantRatchetErr(t, err, ErrKeyConsumed)
		if re.Leaf != 1 || re.Ratchet != HandshakeRatchet || re.Generation != g || re.Next != 4 {
			t.Fatalf("RatchetError = %+v", re)
		}
	}
}

func TestSecretTreeWindow(t *testing.T) {
	want := expectedKeys(t, 2, 0, ApplicationRatchet, 40)
	tree := testTree(t, 2, SecretTreeOptions{MaxSkippedKeys: 8, MaxForwardDistance: 30})

	// Jumping to 20 keeps only the 8 generations 13..20 minus 20 itself.
	if _, _, err := tree.receiveKey(0, ApplicationRatchet, 20); err != nil {
		t.Fatal(err)
	}
	r := &tree.ratchet[0].application
	if len(r.skipped) != 7 {
		t.Fatalf("%d skipped keys retained, want 7", len(r.skipped))
	}
	_, _, err := tree.receiveKey(0, ApplicationRatchet, 12)
	wantRatchetErr(t, err, ErrGenerationExpired)
	got, _, err := tree.receiveKey(0, ApplicationRatchet, 13)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "oldest retained key", got, want[13])

	// Moving on slides the window: 14..16 fall out when the ratchet reaches 25.
	if _, _, err := tree.receiveKey(0, ApplicationRatchet, 24); err != nil {
		t.Fatal(err)
	}
	for g := uint32(14); g < 17; g++ {
		_, _, err := tree.receiveKey(0, ApplicationRatchet, g)
		wantRatchetErr(t, err, ErrGenerationExpired)
	}
	for _, g := range []uint32{17, 19, 21, 23} {
		got, _, err := tree.receiveKey(0, ApplicationRatchet, g)
		if err != nil {
			t.Fatalf("generation %d: %v", g, err)
		}
		mustEqualBytes(t, "key", got, want[g])
	}
	// Left: 18 and 22 (17, 19, 21, 23 consumed, 20 and 24 received).
	if _, ok18 := r.skipped[18]; !ok18 || len(r.skipped) != 2 {
		t.Fatalf("retained generations: %d keys", len(r.skipped))
	}

	// No key is retained with MaxSkippedKeys < 0.
	strict := testTree(t, 2, SecretTreeOptions{MaxSkippedKeys: -1})
	if _, _, err := strict.receiveKey(0, ApplicationRatchet, 3); err != nil {
		t.Fatal(err)
	}
	if n := len(strict.ratchet[0].application.skipped); n != 0 {
		t.Fatalf("strict ratchet kept %d keys", n)
	}
	_, _, err = strict.receiveKey(0, ApplicationRatchet, 2)
	wantRatchetErr(t, err, ErrGenerationExpired)
}

func TestSecretTreeForwardCap(t *testing.T) {
	tree := testTree(t, 2, SecretTreeOptions{MaxForwardDistance: 10})
	_, _, err := tree.receiveKey(1, ApplicationRatchet, 11)
	re := wantRatchetErr(t, err, ErrGenerationTooFar)
	if re.Next != 0 || re.Generation != 11 {
		t.Fatalf("RatchetError = %+v", re)
	}
	if lr, ok := tree.ratchet[1]; ok && lr.application.next != 0 {
		t.Fatal("a refused generation moved the ratchet")
	}
	if _, _, err := tree.receiveKey(1, ApplicationRatchet, 10); err != nil {
		t.Fatalf("generation at the cap: %v", err)
	}
	// The cap is relative to the ratchet's position.
	if _, _, err := tree.receiveKey(1, ApplicationRatchet, 21); err != nil {
		t.Fatalf("generation 21 after 10: %v", err)
	}
	_, _, err = tree.receiveKey(1, ApplicationRatchet, 33)
	wantRatchetErr(t, err, ErrGenerationTooFar)

	// The default cap.
	def := testTree(t, 2, SecretTreeOptions{})
	_, _, err = def.receiveKey(0, HandshakeRatchet, DefaultMaxForwardDistance+1)
	wantRatchetErr(t, err, ErrGenerationTooFar)
	if _, _, err := def.receiveKey(0, HandshakeRatchet, DefaultMaxForwardDistance); err != nil {
		t.Fatal(err)
	}
	if n := len(def.ratchet[0].handshake.skipped); n != DefaultMaxSkippedKeys-1 {
		t.Fatalf("%d skipped keys retained, want %d", n, DefaultMaxSkippedKeys-1)
	}

	// Strict mode accepts only the next generation.
	strict := testTree(t, 2, SecretTreeOptions{MaxForwardDistance: -1})
	_, _, err = strict.receiveKey(0, HandshakeRatchet, 1)
	wantRatchetErr(t, err, ErrGenerationTooFar)
	if _, _, err := strict.receiveKey(0, HandshakeRatchet, 0); err != nil {
		t.Fatal(err)
	}
}

func TestSecretTreeOpenFailureKeepsKey(t *testing.T) {
	want := expectedKeys(t, 2, 1, ApplicationRatchet, 6)
	tree := testTree(t, 2, SecretTreeOptions{})
	forged := errors.New("forged")
	fail := func(key, nonce []byte) error { return forged }
	// A failed open from a sender heard from for the first time does not
	// even derive the sender's leaf: the tree is byte for byte unchanged…
	before, err := tree.marshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.openWithKey(1, ApplicationRatchet, 5, fail); !errors.Is(err, forged) {
		t.Fatal(err)
	}
	if _, ok := tree.ratchet[1]; ok {
		t.Fatal("a failed open derived the leaf")
	}
	if after, _ := tree.marshalBinary(); !bytes.Equal(before, after) {
		t.Fatal("a failed open changed the tree")
	}
	// …and once the leaf is derived, a failed open of a generation ahead
	// neither moves the ratchet nor consumes anything…
	if _, _, err := tree.receiveKey(1, HandshakeRatchet, 0); err != nil {
		t.Fatal(err)
	}
	if err := tree.openWithKey(1, ApplicationRatchet, 5, fail); !errors.Is(err, forged) {
		t.Fatal(err)
	}
	r := &tree.ratchet[1].application
	if r.next != 0 || len(r.skipped) != 0 {
		t.Fatalf("failed open changed the ratchet: next %d, %d skipped", r.next, len(r.skipped))
	}
	// …nor does a failed open of a retained key.
	if _, _, err := tree.receiveKey(1, ApplicationRatchet, 5); err != nil {
		t.Fatal(err)
	}
	if err := tree.openWithKey(1, ApplicationRatchet, 2, fail); !errors.Is(err, forged) {
		t.Fatal(err)
	}
	var got []byte
	if err := tree.openWithKey(1, ApplicationRatchet, 2, func(k, _ []byte) error { got = k; return nil }); err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "key 2 after a failed attempt", got, want[2])
}

// TestSecretTreeFailedOpensInvisible: a tree that sees failed opens (for
// cold and warm leaves, behind, at and ahead of the ratchets) ends up
// byte for byte equal to one that saw only the successful ones.
func TestSecretTreeFailedOpensInvisible(t *testing.T) {
	const n = 37
	a := testTree(t, n, SecretTreeOptions{MaxSkippedKeys: 8, MaxForwardDistance: 30})
	b := testTree(t, n, SecretTreeOptions{MaxSkippedKeys: 8, MaxForwardDistance: 30})
	forged := errors.New("forged")
	fail := func(key, nonce []byte) error { return forged }
	var ka, kb []byte
	seed := uint64(1)
	next := func(m uint64) uint64 { // xorshift: deterministic, no imports
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return seed % m
	}
	for i := range 2000 {
		leaf := LeafIndex(next(n))
		rt := RatchetType(1 + next(2))
		g := uint32(next(40))
		if next(2) == 0 {
			if err := a.openWithKey(leaf, rt, g, fail); err == nil {
				t.Fatalf("step %d: failing open succeeded", i)
			}
		} else {
			ea := a.openWithKey(leaf, rt, g, func(k, _ []byte) error { ka = bytes.Clone(k); return nil })
			eb := b.openWithKey(leaf, rt, g, func(k, _ []byte) error { kb = bytes.Clone(k); return nil })
			if (ea == nil) != (eb == nil) || (ea == nil && !bytes.Equal(ka, kb)) {
				t.Fatalf("step %d: %v / %v", i, ea, eb)
			}
		}
		sa, _ := a.marshalBinary()
		sb, _ := b.marshalBinary()
		if !bytes.Equal(sa, sb) {
			t.Fatalf("step %d: failed opens changed the tree", i)
		}
	}
}

func TestSecretTreeErrors(t *testing.T) {
	tree := testTree(t, 5, SecretTreeOptions{})
	_, _, err := tree.receiveKey(5, HandshakeRatchet, 0)
	wantRatchetErr(t, err, ErrUnknownLeaf)
	if _, _, _, err := tree.nextSendKey(0, RatchetType(0)); err == nil {
		t.Fatal("ratchet type 0 accepted")
	}
	if _, err := newSecretTree(testSuite, make([]byte, 31), 4, SecretTreeOptions{}); err == nil {
		t.Fatal("short encryption_secret accepted")
	}
	if _, err := newSecretTree(testSuite, make([]byte, 32), 0, SecretTreeOptions{}); err == nil {
		t.Fatal("empty tree accepted")
	}
	if _, err := newSecretTree(CipherSuite(0x99), make([]byte, 32), 4, SecretTreeOptions{}); err == nil {
		t.Fatal("unknown suite accepted")
	}
	// An exhausted ratchet.
	r := tree.ratchetFor
	hr, err := r(0, HandshakeRatchet)
	if err != nil {
		t.Fatal(err)
	}
	hr.next = 1<<32 - 1
	_, _, _, err = tree.nextSendKey(0, HandshakeRatchet)
	wantRatchetErr(t, err, ErrRatchetExhausted)
	_, _, err = tree.receiveKey(0, HandshakeRatchet, 1<<32-1)
	wantRatchetErr(t, err, ErrRatchetExhausted)
	for _, e := range []error{ErrKeyConsumed, ErrGenerationExpired, ErrGenerationTooFar, ErrRatchetExhausted, ErrUnknownLeaf,
		&RatchetError{Err: ErrKeyConsumed}} {
		if msg := e.Error(); len(msg) < 5 || msg[:5] != "mls: " {
			t.Errorf("error %q does not start with \"mls: \"", msg)
		}
	}
}

// TestSecretTreeLazy checks that a large tree derives only the path to the
// leaves it is asked about, and deletes what it consumed (§9.2).
func TestSecretTreeLazy(t *testing.T) {
	const n = 100_000
	tree := testTree(t, n, SecretTreeOptions{})
	if len(tree.nodes) != 1 {
		t.Fatalf("fresh tree holds %d node secrets", len(tree.nodes))
	}
	depth := int(level(root(n)))
	if _, _, _, err := tree.nextSendKey(77_777, ApplicationRatchet); err != nil {
		t.Fatal(err)
	}
	// One off-path sibling per level at most (padding-only subtrees dropped).
	if len(tree.nodes) > depth || len(tree.ratchet) != 1 {
		t.Fatalf("after one leaf: %d node secrets (depth %d), %d ratchets", len(tree.nodes), depth, len(tree.ratchet))
	}
	if _, ok := tree.nodes[root(n)]; ok {
		t.Fatal("root secret not deleted after use")
	}
	for _, x := range directPath(LeafIndex(77_777).nodeIndex(), n) {
		if _, ok := tree.nodes[x]; ok {
			t.Fatalf("node %d on the used path still holds a secret", x)
		}
	}
	if !tree.checkCover() {
		t.Fatal("node secrets and ratchets do not partition the leaves")
	}
	// The ratchet secret is overwritten as it advances.
	r := &tree.ratchet[77_777].application
	old := r.secret
	if _, _, _, err := tree.nextSendKey(77_777, ApplicationRatchet); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, make([]byte, len(old))) || r.next != 2 {
		t.Fatal("previous ratchet secret not wiped")
	}
	// A neighbour reuses the stored sibling: still O(log n) in total.
	if _, _, err := tree.receiveKey(77_776, HandshakeRatchet, 0); err != nil {
		t.Fatal(err)
	}
	if len(tree.nodes) > depth || !tree.checkCover() {
		t.Fatalf("after two leaves: %d node secrets", len(tree.nodes))
	}
	// Non-power-of-two trees derive like the full tree that contains them.
	full := testTree(t, 1<<17, SecretTreeOptions{})
	_, k1, n1, _ := tree.nextSendKey(99_999, HandshakeRatchet)
	_, k2, n2, _ := full.nextSendKey(99_999, HandshakeRatchet)
	mustEqualBytes(t, "key in 100,000-leaf tree vs 2^17-leaf tree", k1, k2)
	mustEqualBytes(t, "nonce", n1, n2)
}

func TestSecretTreeCloneIndependent(t *testing.T) {
	tree := testTree(t, 16, SecretTreeOptions{})
	if _, _, err := tree.receiveKey(3, ApplicationRatchet, 4); err != nil {
		t.Fatal(err)
	}
	c := tree.clone()
	k1, _, err := tree.receiveKey(3, ApplicationRatchet, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Consuming (and wiping) in the original leaves the clone intact.
	k2, _, err := c.receiveKey(3, ApplicationRatchet, 2)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "clone key", k2, k1)
	tree.wipe()
	if _, _, _, err := c.nextSendKey(9, HandshakeRatchet); err != nil {
		t.Fatalf("clone after wiping the original: %v", err)
	}
	if len(tree.nodes) != 0 || len(tree.ratchet) != 0 {
		t.Fatal("wipe left secrets")
	}
}

func TestSecretTreeSerialization(t *testing.T) {
	opts := SecretTreeOptions{MaxSkippedKeys: 16, MaxForwardDistance: 100}
	tree := testTree(t, 37, opts)
	for _, step := range []struct {
		leaf LeafIndex
		rt   RatchetType
		gen  uint32
	}{{0, ApplicationRatchet, 5}, {36, HandshakeRatchet, 0}, {17, ApplicationRatchet, 40}, {17, ApplicationRatchet, 30}} {
		if _, _, err := tree.receiveKey(step.leaf, step.rt, step.gen); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := tree.marshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := unmarshalSecretTree(enc, opts)
	if err != nil {
		t.Fatal(err)
	}
	enc2, _ := back.marshalBinary()
	mustEqualBytes(t, "round trip", enc2, enc)

	// Both behave the same from here on, including the replay memory.
	for _, st := range []*secretTree{tree, back} {
		_, _, err := st.receiveKey(17, ApplicationRatchet, 30)
		wantRatchetErr(t, err, ErrKeyConsumed)
		_, _, err = st.receiveKey(17, ApplicationRatchet, 24)
		wantRatchetErr(t, err, ErrGenerationExpired)
	}
	a, _, _ := tree.receiveKey(17, ApplicationRatchet, 31)
	b, _, _ := back.receiveKey(17, ApplicationRatchet, 31)
	mustEqualBytes(t, "restored skipped key", b, a)
	_, a, _, _ = tree.nextSendKey(20, HandshakeRatchet)
	_, b, _, _ = back.nextSendKey(20, HandshakeRatchet)
	mustEqualBytes(t, "restored lazy node", b, a)

	// Restoring with a smaller window drops the keys outside it.
	small, err := unmarshalSecretTree(enc, SecretTreeOptions{MaxSkippedKeys: 4})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(small.ratchet[17].application.skipped); n != 3 { // 37, 38, 39
		t.Fatalf("%d keys kept under a window of 4", n)
	}

	// Corrupted snapshots are rejected, never accepted half-way.
	bad := map[string][]byte{
		"empty":     nil,
		"trailing":  append(append([]byte{}, enc...), 0),
		"version":   append([]byte{2}, enc[1:]...),
		"suite":     append([]byte{1, 0, 0x99}, enc[3:]...),
		"truncated": enc[:len(enc)-1],
	}
	for name, data := range bad {
		if _, err := unmarshalSecretTree(data, opts); err == nil {
			t.Errorf("%s snapshot accepted", name)
		}
	}
	// Structural corruption: a node secret that overlaps a used leaf, a
	// missing subtree, a skipped key ahead of the ratchet.
	fresh := testTree(t, 4, opts)
	fresh.nodes[1] = make([]byte, 32) // node 1 lies under the root
	if data, _ := fresh.marshalBinary(); mustFail(t, data) {
		t.Error("overlapping node secrets accepted")
	}
	fresh = testTree(t, 4, opts)
	fresh.receiveKey(0, HandshakeRatchet, 0)
	delete(fresh.nodes, 5)
	if data, _ := fresh.marshalBinary(); mustFail(t, data) {
		t.Error("uncovered leaves accepted")
	}
	fresh = testTree(t, 4, opts)
	fresh.receiveKey(0, HandshakeRatchet, 3)
	fresh.ratchet[0].handshake.skipped[7] = ratchetKey{make([]byte, 16), make([]byte, 12)}
	if data, _ := fresh.marshalBinary(); mustFail(t, data) {
		t.Error("skipped key ahead of the ratchet accepted")
	}
}

func mustFail(t *testing.T, data []byte) bool {
	t.Helper()
	_, err := unmarshalSecretTree(data, SecretTreeOptions{})
	return err == nil
}

func FuzzSecretTreeUnmarshal(f *testing.F) {
	tree := testTree(f, 6, SecretTreeOptions{})
	tree.receiveKey(4, ApplicationRatchet, 3)
	enc, _ := tree.marshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := unmarshalSecretTree(data, SecretTreeOptions{})
		if err != nil {
			return
		}
		// Restoring may drop keys outside the window, after which the
		// encoding is a fixed point.
		enc, err := st.marshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) > len(data) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(data), len(enc))
		}
		again, err := unmarshalSecretTree(enc, SecretTreeOptions{})
		if err != nil {
			t.Fatalf("re-encoded snapshot rejected: %v", err)
		}
		if enc2, _ := again.marshalBinary(); !bytes.Equal(enc2, enc) {
			t.Fatal("re-encoding is not canonical")
		}
		for l := LeafIndex(0); uint32(l) < min(st.n, 8); l++ {
			r, err := st.ratchetFor(l, ApplicationRatchet)
			if err != nil {
				t.Fatalf("accepted snapshot has no ratchet for leaf %d: %v", l, err)
			}
			// A ratchet that used generation 2^32-2 is exhausted: a state
			// a snapshot must be able to keep, and the one state that
			// derives nothing.
			exhausted := r.next == math.MaxUint32
			_, _, _, err = st.nextSendKey(l, ApplicationRatchet)
			if exhausted && !errors.Is(err, ErrRatchetExhausted) {
				t.Fatalf("leaf %d's ratchet at generation %d: %v, want %v", l, r.next, err, ErrRatchetExhausted)
			}
			if !exhausted && err != nil {
				t.Fatalf("accepted snapshot cannot derive leaf %d: %v", l, err)
			}
		}
	})
}
