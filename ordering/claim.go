package ordering

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Range is an inclusive range of epochs.
type Range struct{ From, To uint64 }

// Claim is a member's statement about its branch, exchanged to heal forks
// older than the retention window (README.md, "Deep forks"): the keys of
// its canonical Commits (a sample: dense near the tip and exponentially
// sparser before), and a GroupInfo of its current epoch so that losers can
// rejoin. The engine signs it (Signer is the verified credential identity)
// and protects it; the machine only compares the entries.
type Claim struct {
	Signer    string
	Tip       uint64  // the claimant's current epoch
	Entries   []Entry // ascending by epoch
	Want      *Range  // asks the receivers for their dense entries in this range
	GroupInfo []byte  // opaque: a signed GroupInfo of the claimant's epoch Tip
	// Stale lists the hashes of application messages the claimant received
	// too late to read (their epoch had left its window): their senders
	// send them again (README.md "No lost messages").
	Stale []Hash
}

// Limits of the claim encoding.
const (
	MaxClaimEntries   = 1 << 15
	MaxClaimSigner    = 1 << 10
	MaxClaimGroupInfo = 1 << 20
	MaxClaimStale     = 256
	claimVersion      = 1
	entrySize         = 1 + 8 + 32 // class, ticket, hash (the epoch is a varint)
)

// ErrMalformedClaim is returned by ParseClaim.
var ErrMalformedClaim = errors.New("ordering: malformed claim")

// MarshalClaim encodes c:
//
//	version(1) signer(uvarint len, bytes) tip(uvarint) want-flag(1) [from to (uvarint)]
//	n(uvarint) n×{epoch delta(uvarint) class(1) ticket(8) hash(32)} groupinfo(uvarint len, bytes)
//	k(uvarint) k×stale hash(32)
//
// Epochs are delta-encoded (the first from 0) and strictly ascending.
// Claims travel between members running different versions, so this
// layout (with its LEB128 varints, which cryptobyte does not offer: see
// addUvarint) is the wire format and stays as it is.
func MarshalClaim(c *Claim) ([]byte, error) {
	if len(c.Signer) > MaxClaimSigner || len(c.Entries) > MaxClaimEntries || len(c.GroupInfo) > MaxClaimGroupInfo || len(c.Stale) > MaxClaimStale {
		return nil, fmt.Errorf("%w: too large", ErrMalformedClaim)
	}
	if c.Want != nil && c.Want.From > c.Want.To {
		return nil, fmt.Errorf("%w: empty want range", ErrMalformedClaim)
	}
	for i, e := range c.Entries {
		if e.Class > ClassOther || (i > 0 && e.Epoch <= c.Entries[i-1].Epoch) {
			return nil, fmt.Errorf("%w: entries not strictly ascending or bad class", ErrMalformedClaim)
		}
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 32+len(c.Signer)+len(c.GroupInfo)+len(c.Entries)*(entrySize+2)+len(c.Stale)*len(Hash{})))
	b.AddUint8(claimVersion)
	addVarBytes(b, []byte(c.Signer))
	addUvarint(b, c.Tip)
	if c.Want != nil {
		b.AddUint8(1)
		addUvarint(b, c.Want.From)
		addUvarint(b, c.Want.To)
	} else {
		b.AddUint8(0)
	}
	addUvarint(b, uint64(len(c.Entries)))
	var prev uint64
	for _, e := range c.Entries {
		addUvarint(b, e.Epoch-prev)
		prev = e.Epoch
		b.AddUint8(uint8(e.Class))
		b.AddUint64(e.Ticket)
		b.AddBytes(e.Hash[:])
	}
	addVarBytes(b, c.GroupInfo)
	addUvarint(b, uint64(len(c.Stale)))
	for _, h := range c.Stale {
		b.AddBytes(h[:])
	}
	return b.Bytes()
}

// ParseClaim decodes a claim. It rejects trailing bytes, non-minimal
// varints, unknown versions, out-of-range lengths, unknown classes and
// epochs that are not strictly ascending, and never allocates more than
// the input's size warrants.
func ParseClaim(data []byte) (*Claim, error) {
	s := cryptobyte.String(data)
	var v uint8
	if !s.ReadUint8(&v) || v != claimVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformedClaim, v)
	}
	bad := func(what string) (*Claim, error) { return nil, fmt.Errorf("%w: %s", ErrMalformedClaim, what) }
	c := &Claim{}
	var signer []byte
	var flag uint8
	if !readVarBytes(&s, MaxClaimSigner, &signer) || !readUvarint(&s, &c.Tip) || !s.ReadUint8(&flag) || flag > 1 {
		return bad("header")
	}
	c.Signer = string(signer)
	if flag == 1 {
		var w Range
		if !readUvarint(&s, &w.From) || !readUvarint(&s, &w.To) || w.From > w.To {
			return bad("want range")
		}
		c.Want = &w
	}
	var n uint64
	if !readUvarint(&s, &n) || n > MaxClaimEntries || n > uint64(len(s))/entrySize {
		return bad("entry count")
	}
	if n > 0 {
		c.Entries = make([]Entry, 0, n)
	}
	var prev uint64
	for i := uint64(0); i < n; i++ {
		var d uint64
		var class uint8
		var hash []byte
		e := Entry{}
		if !readUvarint(&s, &d) || (i > 0 && d == 0) || prev+d < prev ||
			!s.ReadUint8(&class) || Class(class) > ClassOther ||
			!s.ReadUint64(&e.Ticket) || !s.ReadBytes(&hash, len(e.Hash)) {
			return bad("entry")
		}
		e.Epoch, e.Class = prev+d, Class(class)
		copy(e.Hash[:], hash)
		prev = e.Epoch
		c.Entries = append(c.Entries, e)
	}
	var ns uint64
	if !readVarBytes(&s, MaxClaimGroupInfo, &c.GroupInfo) || !readUvarint(&s, &ns) ||
		ns > MaxClaimStale || ns > uint64(len(s))/uint64(len(Hash{})) {
		return bad("group info or stale count")
	}
	if ns > 0 {
		c.Stale = make([]Hash, ns)
		for i := range c.Stale {
			var h []byte
			s.ReadBytes(&h, len(Hash{})) // the count was checked against the length
			copy(c.Stale[i][:], h)
		}
	}
	if !s.Empty() {
		return bad("trailing bytes")
	}
	return c, nil
}

// addUvarint appends v as an unsigned LEB128 varint (the claim's wire
// format predates its cryptobyte codec, which has no varints).
func addUvarint(b *cryptobyte.Builder, v uint64) {
	b.AddBytes(binary.AppendUvarint(nil, v))
}

// readUvarint reads a minimally encoded unsigned LEB128 varint.
func readUvarint(s *cryptobyte.String, out *uint64) bool {
	v, n := binary.Uvarint(*s)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		return false
	}
	*out = v
	return s.Skip(n)
}

// addVarBytes appends a varint length and the bytes.
func addVarBytes(b *cryptobyte.Builder, v []byte) {
	addUvarint(b, uint64(len(v)))
	b.AddBytes(v)
}

// readVarBytes reads a varint length of at most max and that many bytes
// (copied: the claim outlives the input; nil when empty).
func readVarBytes(s *cryptobyte.String, max int, out *[]byte) bool {
	var n uint64
	if !readUvarint(s, &n) || n > uint64(max) || n > uint64(len(*s)) {
		return false
	}
	var b []byte
	if !s.ReadBytes(&b, int(n)) {
		return false
	}
	*out = nil
	if n > 0 {
		*out = bytes.Clone(b)
	}
	return true
}

// VerdictKind is the outcome of CompareHistories.
type VerdictKind uint8

const (
	// Unknown: the histories share no epoch, or the difference falls in a
	// gap of ours.
	Unknown VerdictKind = iota
	// Agree: every epoch both list has the same Commit.
	Agree
	// Fork: the first differing Commit is at Epoch; Ours and Theirs are
	// the two keys and the smaller one's branch is canonical.
	Fork
	// NeedTheirs: the first difference lies in Gap, where theirs is
	// sparse: ask for their dense entries (Claim.Want).
	NeedTheirs
)

// Verdict is the comparison of two compact histories.
type Verdict struct {
	Kind         VerdictKind
	Epoch        uint64 // Fork: epoch of the first differing Commit
	Ours, Theirs Key    // Fork
	Gap          Range  // NeedTheirs
	Common       uint64 // the last epoch both list with the same Commit (valid if HasCommon)
	HasCommon    bool
}

// CompareHistories finds the first epoch at which two compact histories
// (ascending by epoch, possibly sparse) list different Commits. It is the
// whole fork choice for forks older than the retention window: the branch
// whose Commit at that epoch has the smaller key is canonical (README.md).
func CompareHistories(ours, theirs []Entry) Verdict {
	var v Verdict
	if len(ours) == 0 || len(theirs) == 0 {
		return v
	}
	// Before the later of the two first entries one side knows nothing:
	// each history starts where its owner joined (or rejoined) a state
	// that descends from the group's common past.
	lo := max(ours[0].Epoch, theirs[0].Epoch)
	i, j := 0, 0
	for i < len(ours) && j < len(theirs) {
		a, b := ours[i], theirs[j]
		switch {
		case a.Epoch < lo || a.Epoch < b.Epoch:
			i++
		case b.Epoch < lo || a.Epoch > b.Epoch:
			j++
		case a.Hash == b.Hash:
			v.Common, v.HasCommon = a.Epoch, true
			i++
			j++
		default:
			// The first difference among the epochs both list; an earlier
			// one may hide in epochs only one side lists.
			start := lo
			if v.HasCommon {
				start = v.Common + 1
			}
			if !dense(ours, start, a.Epoch) {
				return Verdict{Kind: Unknown, Common: v.Common, HasCommon: v.HasCommon}
			}
			if !dense(theirs, start, a.Epoch) {
				return Verdict{Kind: NeedTheirs, Gap: Range{From: start, To: a.Epoch}, Common: v.Common, HasCommon: v.HasCommon}
			}
			v.Kind, v.Epoch, v.Ours, v.Theirs = Fork, a.Epoch, a, b
			return v
		}
	}
	if v.HasCommon {
		v.Kind = Agree
	}
	return v
}

func first(es []Entry) uint64 {
	if len(es) == 0 {
		return 0
	}
	return es[0].Epoch
}

// dense reports whether es lists every epoch in [lo, hi) that lies at or
// after its first entry (before its first entry it knows nothing, which is
// "dense" only when lo is at or after the first entry).
func dense(es []Entry, lo, hi uint64) bool {
	if lo >= hi {
		return true
	}
	// Binary search the first entry >= lo.
	k, n := 0, len(es)
	for k < n {
		mid := (k + n) / 2
		if es[mid].Epoch < lo {
			k = mid + 1
		} else {
			n = mid
		}
	}
	want := lo
	for ; k < len(es) && es[k].Epoch < hi; k++ {
		if es[k].Epoch != want {
			return false
		}
		want++
	}
	return want == hi
}
