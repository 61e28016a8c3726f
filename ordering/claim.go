package ordering

import (
	"encoding/binary"
	"errors"
	"fmt"
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
func MarshalClaim(c *Claim) ([]byte, error) {
	if len(c.Signer) > MaxClaimSigner || len(c.Entries) > MaxClaimEntries || len(c.GroupInfo) > MaxClaimGroupInfo || len(c.Stale) > MaxClaimStale {
		return nil, fmt.Errorf("%w: too large", ErrMalformedClaim)
	}
	b := make([]byte, 0, 32+len(c.Signer)+len(c.GroupInfo)+len(c.Entries)*(entrySize+2))
	b = append(b, claimVersion)
	b = binary.AppendUvarint(b, uint64(len(c.Signer)))
	b = append(b, c.Signer...)
	b = binary.AppendUvarint(b, c.Tip)
	if c.Want != nil {
		if c.Want.From > c.Want.To {
			return nil, fmt.Errorf("%w: empty want range", ErrMalformedClaim)
		}
		b = append(b, 1)
		b = binary.AppendUvarint(b, c.Want.From)
		b = binary.AppendUvarint(b, c.Want.To)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(c.Entries)))
	var prev uint64
	for i, e := range c.Entries {
		if e.Class > ClassOther || (i > 0 && e.Epoch <= prev) {
			return nil, fmt.Errorf("%w: entries not strictly ascending or bad class", ErrMalformedClaim)
		}
		b = binary.AppendUvarint(b, e.Epoch-prev)
		prev = e.Epoch
		b = append(b, byte(e.Class))
		b = binary.BigEndian.AppendUint64(b, e.Ticket)
		b = append(b, e.Hash[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(c.GroupInfo)))
	b = append(b, c.GroupInfo...)
	b = binary.AppendUvarint(b, uint64(len(c.Stale)))
	for _, h := range c.Stale {
		b = append(b, h[:]...)
	}
	return b, nil
}

// ParseClaim decodes a claim. It rejects trailing bytes, non-minimal
// varints, unknown versions, out-of-range lengths, unknown classes and
// epochs that are not strictly ascending, and never allocates more than
// the input's size warrants.
func ParseClaim(data []byte) (*Claim, error) {
	r := reader{b: data}
	if v := r.byte(); v != claimVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformedClaim, v)
	}
	c := &Claim{}
	c.Signer = string(r.bytes(MaxClaimSigner))
	c.Tip = r.uvarint()
	switch r.byte() {
	case 0:
	case 1:
		w := Range{From: r.uvarint(), To: r.uvarint()}
		if w.From > w.To {
			r.fail()
		}
		c.Want = &w
	default:
		r.fail()
	}
	n := r.uvarint()
	if n > MaxClaimEntries || n > uint64(len(r.b))/entrySize {
		r.fail()
		n = 0
	}
	if n > 0 {
		c.Entries = make([]Entry, 0, n)
	}
	var prev uint64
	for i := uint64(0); i < n && r.err == nil; i++ {
		d := r.uvarint()
		if (i > 0 && d == 0) || prev+d < prev {
			r.fail()
			break
		}
		e := Entry{Epoch: prev + d}
		prev = e.Epoch
		e.Class = Class(r.byte())
		if e.Class > ClassOther {
			r.fail()
		}
		e.Ticket = binary.BigEndian.Uint64(r.take(8))
		copy(e.Hash[:], r.take(32))
		c.Entries = append(c.Entries, e)
	}
	c.GroupInfo = r.bytes(MaxClaimGroupInfo)
	if ns := r.uvarint(); ns > MaxClaimStale || ns > uint64(len(r.b))/32 {
		r.fail()
	} else if ns > 0 {
		c.Stale = make([]Hash, ns)
		for i := range c.Stale {
			copy(c.Stale[i][:], r.take(32))
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}

// reader is a tiny sticky-error decoder.
type reader struct {
	b   []byte
	err error
}

var zeros [32]byte

func (r *reader) fail() {
	if r.err == nil {
		r.err = ErrMalformedClaim
	}
	r.b = nil
}

func (r *reader) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.fail()
		return zeros[:n]
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte { return r.take(1)[0] }

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(max int) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	return append([]byte(nil), r.take(int(n))...)
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
