package chat

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
)

func testSigner(t testing.TB) (p2p.PeerID, []byte, []byte) {
	t.Helper()
	priv, pub, err := suite.GenerateSignatureKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	lkey, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	id, err := p2p.PeerIDOf(lkey)
	if err != nil {
		t.Fatal(err)
	}
	return id, priv, pub
}

func signedControlFor(t testing.TB, id p2p.PeerID, priv, pub []byte, kind byte, topic string, body []byte) *signedControl {
	t.Helper()
	c := &signedControl{Kind: kind, Sender: id, SigKey: pub, Topic: topic, Body: body}
	tbs, err := c.tbs()
	if err != nil {
		t.Fatal(err)
	}
	if c.Signature, err = suite.SignWithLabel(priv, controlLabel, tbs, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// A signed control message round-trips, verifies, and any change to a
// signed field (sender, key, topic, body, kind) breaks the signature.
func TestSignedControlRoundTrip(t *testing.T) {
	id, priv, pub := testSigner(t)
	c := signedControlFor(t, id, priv, pub, dmDecline, "canopy/g/abc", []byte("leaf key"))
	b, err := c.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseSignedControl(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.verify(); err != nil {
		t.Fatal(err)
	}
	if got.Sender != id || got.Topic != c.Topic || !bytes.Equal(got.Body, c.Body) || got.Kind != dmDecline {
		t.Fatalf("round trip: %+v", got)
	}
	other, _, _ := testSigner(t)
	_, priv2, pub2 := testSigner(t)
	for name, mut := range map[string]func(c *signedControl){
		"sender": func(c *signedControl) { c.Sender = other },
		"key":    func(c *signedControl) { c.SigKey = pub2 },
		"topic":  func(c *signedControl) { c.Topic = "canopy/g/other" },
		"body":   func(c *signedControl) { c.Body = []byte("other leaf") },
		"kind":   func(c *signedControl) { c.Kind = dmClaim },
	} {
		x := *got
		mut(&x)
		if err := x.verify(); !errors.Is(err, ErrControlSignature) {
			t.Errorf("%s changed: verify = %v, want ErrControlSignature", name, err)
		}
	}
	// Signed by another key than the one it carries.
	x := signedControlFor(t, id, priv2, pub, dmHello, "", nil)
	if err := x.verify(); !errors.Is(err, ErrControlSignature) {
		t.Errorf("signed by another key: %v", err)
	}
}

func TestSignedControlRejects(t *testing.T) {
	id, priv, pub := testSigner(t)
	good, err := signedControlFor(t, id, priv, pub, dmClaim, "t", []byte("x")).marshal()
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"version":   append([]byte{2}, good[1:]...),
		"kind":      append([]byte{controlVersion, 9}, good[2:]...),
	}
	noSig := signedControlFor(t, id, priv, pub, dmClaim, "t", []byte("x"))
	noSig.Signature = nil
	bad["no signature"], _ = noSig.marshal()
	badSender := &signedControl{Kind: dmHello, Sender: p2p.PeerID("not a peer id"), SigKey: pub, Signature: []byte{1}}
	bad["sender"], _ = badSender.marshal()
	for name, b := range bad {
		if _, err := parseSignedControl(b); !errors.Is(err, ErrControlMalformed) {
			t.Errorf("%s: %v, want ErrControlMalformed", name, err)
		}
	}
}

func FuzzSignedControl(f *testing.F) {
	id, priv, pub := testSigner(f)
	for _, kind := range []byte{dmHello, dmDecline, dmClaim} {
		b, _ := signedControlFor(f, id, priv, pub, kind, "canopy/g/seed", []byte("seed")).marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseSignedControl(data)
		if err != nil {
			return
		}
		_ = c.verify()
		out, err := c.marshal()
		if err != nil {
			t.Fatalf("parsed message does not marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("not canonical:\n in  %x\n out %x", data, out)
		}
	})
}

func testEnvelope() *welcomeEnvelope {
	var h ordering.Hash
	h[0] = 1
	return &welcomeEnvelope{
		Welcome:   []byte{0, 1, 0, 3, 9, 9},
		History:   []ordering.Entry{{Epoch: 0, Class: 1, Ticket: 7, Hash: h}, {Epoch: 3, Class: 0, Hash: h}},
		AdderLeaf: 2,
		AdderSig:  bytes.Repeat([]byte{5}, 64),
		Proofs:    []continuityProof{{Epoch: 3, Leaf: 1, Sig: bytes.Repeat([]byte{6}, 64)}},
	}
}

func TestWelcomeEnvelopeRoundTripAndRejects(t *testing.T) {
	env := testEnvelope()
	b, err := env.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeWelcome(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Welcome, env.Welcome) || len(got.History) != 2 || got.History[1] != env.History[1] ||
		got.AdderLeaf != 2 || !bytes.Equal(got.AdderSig, env.AdderSig) || len(got.Proofs) != 1 || got.Proofs[0].Epoch != 3 {
		t.Fatalf("round trip: %+v", got)
	}
	tooMany := testEnvelope()
	for range maxContinuityProofs {
		tooMany.Proofs = append(tooMany.Proofs, tooMany.Proofs[0])
	}
	unsorted := testEnvelope()
	unsorted.History[0].Epoch = 5
	noSig := testEnvelope()
	noSig.AdderSig = nil
	bad := map[string][]byte{"trailing": append(append([]byte(nil), b...), 0), "truncated": b[:len(b)-1], "tag": append([]byte{0xC3}, b[1:]...)}
	bad["too many proofs"], _ = tooMany.marshal()
	bad["history out of order"], _ = unsorted.marshal()
	bad["no signature"], _ = noSig.marshal()
	for name, data := range bad {
		if _, err := decodeWelcome(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzWelcomeEnvelope(f *testing.F) {
	b, _ := testEnvelope().marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := decodeWelcome(data)
		if err != nil || len(data) == 0 || data[0] != welcomeTag {
			return
		}
		out, err := env.marshal()
		if err != nil {
			t.Fatalf("parsed envelope does not marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("not canonical:\n in  %x\n out %x", data, out)
		}
	})
}
