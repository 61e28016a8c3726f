package ordering

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Hash is the SHA-256 of a message's full MLSMessage bytes. A Commit's hash
// names it, and the node (group state) it creates, everywhere in this
// package.
type Hash [32]byte

// HashOf returns the hash of an encoded MLSMessage.
func HashOf(msg []byte) Hash { return sha256.Sum256(msg) }

// String returns the first 8 bytes in hex, for logs.
func (h Hash) String() string { return hex.EncodeToString(h[:8]) }

// IsZero reports the zero hash (no commit: a group's creation).
func (h Hash) IsZero() bool { return h == Hash{} }

// Class is the first criterion of the fork choice after the epoch: Commits
// that remove a member come first, so that a member who grinds hashes (or
// wins lotteries) with ordinary Commits cannot starve a removal.
type Class uint8

const (
	// ClassRemove is the class of a Commit that carries a Remove proposal.
	ClassRemove Class = 0
	// ClassOther is the class of every other Commit.
	ClassOther Class = 1
)

// Key orders the Commits of one epoch: the valid Commit with the smallest
// key is canonical (README.md, "The rule"). Keys compare by Epoch, then
// Class, then Ticket, then Hash.
//
// Ticket is the sender's lottery ticket for the epoch (see Ticket): it
// depends only on the group, the epoch and the committer's identity, all
// fixed before any Commit of the epoch exists, so no amount of hash
// grinding changes who wins a race between two committers. Hash only
// breaks ties between two Commits of the same sender.
type Key struct {
	Epoch  uint64
	Class  Class
	Ticket uint64
	Hash   Hash
}

// Compare returns -1, 0 or +1 as k sorts before, equal to or after o.
func (k Key) Compare(o Key) int {
	if c := cmp.Compare(k.Epoch, o.Epoch); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Class, o.Class); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Ticket, o.Ticket); c != 0 {
		return c
	}
	return bytes.Compare(k.Hash[:], o.Hash[:])
}

// Less reports k < o.
func (k Key) Less(o Key) bool { return k.Compare(o) < 0 }

func (k Key) String() string {
	return fmt.Sprintf("(%d,%d,%016x,%s)", k.Epoch, k.Class, k.Ticket, k.Hash)
}

// ticketLabel separates lottery tickets from every other use of SHA-256.
const ticketLabel = "canopy ordering v1 ticket"

// Ticket returns the lottery ticket of sender (a credential identity) for
// the Commits it sends in epoch of the group groupID:
//
//	first 8 bytes, big endian, of SHA-256(label || len(groupID) || groupID || epoch || len(sender) || sender)
//
// Everyone computes the same value, nobody can bias it once the group
// exists (it does not depend on any secret or on the Commit's bytes), and
// it changes from epoch to epoch, so among concurrent committers each has
// the same chance per epoch of winning however much it grinds.
func Ticket(groupID []byte, epoch uint64, sender string) uint64 {
	h := sha256.New()
	var b [8]byte
	h.Write([]byte(ticketLabel))
	binary.BigEndian.PutUint64(b[:], uint64(len(groupID)))
	h.Write(b[:])
	h.Write(groupID)
	binary.BigEndian.PutUint64(b[:], epoch)
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(len(sender)))
	h.Write(b[:])
	h.Write([]byte(sender))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return binary.BigEndian.Uint64(sum[:8])
}

// CommitInfo is what the engine learns by processing a Commit against the
// state it was sent in. Every field must be a deterministic function of
// that state and the Commit's bytes (never of the local clock), so that
// every member computes the same key.
type CommitInfo struct {
	// Sender is the committer's credential identity (for an external
	// commit, the joiner's).
	Sender string
	// External reports an external commit (a join or resync, RFC 9420
	// §12.4.3.2).
	External bool
	// Added lists the identities added (an external commit lists its
	// joiner).
	Added []string
	// Removed lists the identities removed (a resync lists its joiner's
	// prior leaf).
	Removed []string
	// Updated lists the identities whose leaf was refreshed by an Update
	// proposal; the committer of a Commit with a path refreshes its own
	// leaf too (PathSelf).
	Updated []string
	// Path reports an UpdatePath: the committer's own leaf was refreshed.
	Path bool
}

// Class returns ClassRemove when the Commit removes a member.
func (ci *CommitInfo) Class() Class {
	if len(ci.Removed) > 0 {
		return ClassRemove
	}
	return ClassOther
}

// refreshes reports that the Commit refreshed id's leaf.
func (ci *CommitInfo) refreshes(id string) bool {
	if ci.Path && ci.Sender == id {
		return true
	}
	for _, u := range ci.Updated {
		if u == id {
			return true
		}
	}
	return false
}

// Entry is one line of the compact history: the canonical Commit of an
// epoch, by its key.
type Entry = Key
