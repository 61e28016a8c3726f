package chat

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/p2p"
)

func testCard(t testing.TB) *Card {
	t.Helper()
	key, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	id, err := p2p.PeerIDOf(key)
	if err != nil {
		t.Fatal(err)
	}
	return &Card{
		PeerID:      id,
		Fingerprint: Fingerprint(1, []byte("key")),
		Nick:        "alice",
		Addrs:       []p2p.Multiaddr{p2p.MustParseMultiaddr("/ip4/127.0.0.1/tcp/4001"), p2p.MustParseMultiaddr("/ip4/127.0.0.1/udp/4001/quic-v1")},
	}
}

func TestCardRoundTrip(t *testing.T) {
	c := testCard(t)
	s := c.String()
	if !strings.HasPrefix(s, CardPrefix) {
		t.Fatalf("card %q lacks prefix", s)
	}
	got, err := ParseCard("  " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.PeerID != c.PeerID || got.Nick != c.Nick || !bytes.Equal(got.Fingerprint, c.Fingerprint) || len(got.Addrs) != 2 || !got.Addrs[1].Equal(c.Addrs[1]) {
		t.Fatalf("got %+v", got)
	}
	if !strings.Contains(c.Text(), c.PeerID.String()) {
		t.Error("text form lacks peer id")
	}
}

func TestCardRejects(t *testing.T) {
	c := testCard(t)
	s := c.String()
	for name, in := range map[string]string{
		"no prefix": strings.TrimPrefix(s, CardPrefix),
		"padding":   s + "=",
		"truncated": s[:len(s)-3],
		"garbage":   CardPrefix + "!!!!",
	} {
		if _, err := ParseCard(in); !errors.Is(err, ErrBadCard) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	bad := *c
	bad.Nick = "/evil"
	if _, err := bad.Marshal(); err == nil {
		t.Error("nick starting with / accepted")
	}
	bad = *c
	other := testCard(t)
	bad.Addrs = []p2p.Multiaddr{p2p.MustParseMultiaddr("/ip4/1.2.3.4/tcp/1/p2p/" + other.PeerID.String())}
	if _, err := bad.Marshal(); err == nil {
		t.Error("address of another peer accepted")
	}
}

func TestSafetyNumberSymmetric(t *testing.T) {
	a, b := Fingerprint(1, []byte("a")), Fingerprint(1, []byte("b"))
	n1, n2 := SafetyNumber(a, b), SafetyNumber(b, a)
	if n1 != n2 {
		t.Fatalf("%q != %q", n1, n2)
	}
	if len(strings.Fields(n1)) != 12 || len(n1) != 12*5+11 {
		t.Fatalf("bad format %q", n1)
	}
	if n1 == SafetyNumber(a, Fingerprint(1, []byte("c"))) {
		t.Fatal("different keys, same number")
	}
}

func FuzzCard(f *testing.F) {
	c := testCard(f)
	b, _ := c.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := UnmarshalCard(data)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed card does not marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("not canonical:\n in  %x\n out %x", data, out)
		}
		if _, err := ParseCard(c.String()); err != nil {
			t.Fatalf("compact form does not parse: %v", err)
		}
	})
}
