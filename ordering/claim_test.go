package ordering

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"
)

func sampleClaim() *Claim {
	return &Claim{Signer: "alice", Tip: 42, Want: &Range{From: 3, To: 9}, GroupInfo: []byte("gi"), Stale: []Hash{{9}, {8}},
		Entries: []Entry{{Epoch: 1, Class: ClassOther, Ticket: 7, Hash: Hash{1}}, {Epoch: 5, Class: ClassRemove, Ticket: 1 << 60, Hash: Hash{2}}}}
}

func TestClaimRoundTrip(t *testing.T) {
	for _, c := range []*Claim{sampleClaim(), {}} {
		b, err := MarshalClaim(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseClaim(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: %+v != %+v", got, c)
		}
		if _, err := ParseClaim(append(b, 0)); err == nil {
			t.Fatal("trailing byte accepted")
		}
		for i := range b {
			ParseClaim(b[:i]) // must not panic
		}
	}
	bad := sampleClaim()
	bad.Entries[1].Epoch = 1
	if _, err := MarshalClaim(bad); err == nil {
		t.Fatal("non-ascending entries accepted")
	}
}

// TestClaimWireFormat pins the bytes of two claims as the encoder before
// the cryptobyte codec wrote them: claims travel between members running
// different versions.
func TestClaimWireFormat(t *testing.T) {
	bare := sampleClaim()
	bare.Want, bare.Stale, bare.GroupInfo = nil, nil, nil
	for _, tc := range []struct {
		c    *Claim
		want string
	}{
		{sampleClaim(), "0105616c6963652a010309020101000000000000000701000000000000000000000000000000000000000000000000000000000000000400100000000000000002000000000000000000000000000000000000000000000000000000000000000267690209000000000000000000000000000000000000000000000000000000000000000800000000000000000000000000000000000000000000000000000000000000"},
		{bare, "0105616c6963652a00020101000000000000000701000000000000000000000000000000000000000000000000000000000000000400100000000000000002000000000000000000000000000000000000000000000000000000000000000000"},
	} {
		b, err := MarshalClaim(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != tc.want {
			t.Fatalf("wire format changed:\n got %s\nwant %s", got, tc.want)
		}
		w, _ := hex.DecodeString(tc.want)
		if c, err := ParseClaim(w); err != nil || !reflect.DeepEqual(c, tc.c) {
			t.Fatalf("parse of the pinned bytes: %v, %+v", err, c)
		}
	}
	// A non-minimal varint (the tip 42 as two bytes) is refused.
	if _, err := ParseClaim([]byte{1, 0, 0xaa, 0x00, 0, 0, 0, 0}); err == nil {
		t.Fatal("non-minimal varint accepted")
	}
}

func FuzzParseClaim(f *testing.F) {
	b, _ := MarshalClaim(sampleClaim())
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseClaim(data)
		if err != nil {
			return
		}
		again, err := MarshalClaim(c)
		if err != nil {
			t.Fatalf("parsed claim does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("not canonical: %x vs %x", again, data)
		}
	})
}

func entries(epochs ...uint64) []Entry {
	var out []Entry
	for _, e := range epochs {
		out = append(out, Entry{Epoch: e, Class: ClassOther, Hash: Hash{byte(e)}})
	}
	return out
}

func TestCompareHistories(t *testing.T) {
	ours := entries(0, 1, 2, 3, 4, 5)
	theirs := entries(0, 1, 2, 3, 4, 5, 6, 7)
	if v := CompareHistories(ours, theirs); v.Kind != Agree || v.Common != 5 {
		t.Fatalf("prefix: %+v", v)
	}
	theirs[4].Hash, theirs[4].Class = Hash{0xff}, ClassRemove
	v := CompareHistories(ours, theirs)
	if v.Kind != Fork || v.Epoch != 4 || !v.Theirs.Less(v.Ours) {
		t.Fatalf("fork: %+v", v)
	}
	// Sparse theirs around the fork: ask for the dense range.
	// (A branch that differs at 4 differs at 5 too.)
	d5 := theirs[5]
	d5.Hash = Hash{0xee}
	sparse := []Entry{theirs[0], theirs[1], d5}
	if v := CompareHistories(ours, sparse); v.Kind != NeedTheirs || v.Gap != (Range{From: 2, To: 5}) {
		t.Fatalf("sparse: %+v", v)
	}
	// Disjoint ranges know nothing.
	if v := CompareHistories(entries(0, 1), entries(5, 6)); v.Kind != Unknown {
		t.Fatalf("disjoint: %+v", v)
	}
}
