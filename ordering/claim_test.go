package ordering

import (
	"bytes"
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
