package ordering

import (
	"errors"
	"time"
)

// MessageID is the application-level id of a chat message (carried inside
// the encrypted payload): a re-sent message keeps its id, and receivers
// de-duplicate by it.
type MessageID string

// ContentType is the content type in an MLSMessage's clear header (both
// PublicMessage and PrivateMessage carry it).
type ContentType uint8

const (
	// Application is an application message.
	Application ContentType = 1
	// Proposal is a proposal sent on its own (by reference).
	Proposal ContentType = 2
	// Commit is a Commit.
	Commit ContentType = 3
)

// Processor runs MLS for the machine. It is the only way the machine
// touches group state, and it must be deterministic: the same state and
// bytes give the same result on every member (no local clock in the
// validity of a Commit). The machine never calls it concurrently.
type Processor[S any] interface {
	// ProcessCommit validates msg, a Commit sent in base's epoch, and
	// returns the state of the next epoch. It must not change base (clone
	// first). It returns ErrLater (wrapped or not) when the Commit might
	// become valid later on this same state (it references a proposal not
	// received yet); any other error means invalid on this state.
	ProcessCommit(base S, msg []byte) (next S, info CommitInfo, err error)
	// Open processes an application message (decrypts it) or a proposal
	// (verifies and caches it in st) sent in st's epoch. It may change st
	// (ratchets advance, the proposal is cached). For a proposal, Opened.ID
	// is empty.
	Open(st S, msg []byte, ct ContentType) (Opened, error)
}

// Releaser is implemented by Processors that must wipe a state's secrets
// when the machine drops it (forward secrecy): Release is called once for
// every state the machine lets go of.
type Releaser[S any] interface {
	Release(st S)
}

// ErrLater is returned by a Processor when a Commit cannot be judged yet.
var ErrLater = errors.New("ordering: cannot judge yet")

// Opened is an opened application message or proposal.
type Opened struct {
	ID      MessageID
	Sender  string
	Payload []byte
}

// ChangeKind is the kind of a membership change.
type ChangeKind uint8

const (
	// Add adds Target.
	Add ChangeKind = iota + 1
	// Remove removes Target.
	Remove
	// Update refreshes the member's own leaf (Target is ignored).
	Update
)

func (k ChangeKind) String() string {
	switch k {
	case Add:
		return "add"
	case Remove:
		return "remove"
	case Update:
		return "update"
	}
	return "?"
}

// Intent is a membership change this member wants: it is tracked until a
// canonical Commit applied it or made it moot, and re-proposed whenever the
// Commit carrying it lost.
type Intent struct {
	ID     string
	Kind   ChangeKind
	Target string
}

// Decision is an instruction to the engine, returned by the machine's event
// methods. The concrete types are below; execute them in order.
type Decision interface{ isDecision() }

// Advanced: the canonical tip moved forward from From to To (a Commit was
// applied at once). Persist Current() as the group state.
type Advanced struct {
	From, To Hash
	Epoch    uint64 // the new epoch
	Member   bool   // this member is in the group at To
}

// Switched: a better Commit was found for ForkEpoch: the machine rolled
// back RolledBack canonical Commits and applied the winning branch. Persist
// Current(); tell the user a fork healed.
type Switched struct {
	From, To   Hash
	ForkEpoch  uint64 // epoch of the first differing Commit
	Epoch      uint64 // the new epoch
	RolledBack int
	Member     bool
}

// Deliver: a new application message (its id not seen before). Canonical
// is false when it was read on a losing branch: it is kept all the same.
type Deliver struct {
	ID        MessageID
	Sender    string
	Epoch     uint64
	Node      Hash
	Payload   []byte
	Canonical bool
}

// Discarded reports a message that changed nothing. Informational.
type Discarded struct {
	Hash   Hash
	Epoch  uint64
	Reason Reason
}

// Reason says why a message was discarded.
type Reason uint8

const (
	// Duplicate: already processed (gossip duplicate, echo, replay).
	Duplicate Reason = iota + 1
	// Stale: for an epoch older than the retention window, and not the
	// canonical Commit of that epoch. It cannot be judged any more.
	Stale
	// Invalid: no retained state accepts it.
	Invalid
	// Overflow: the buffer is full, or the epoch is too far ahead.
	Overflow
	// NotAdmitted: an external commit from a credential that is not a
	// member (AdmitExternal).
	NotAdmitted
	// Unreadable: an application message that no retained state opens.
	Unreadable
)

func (r Reason) String() string {
	switch r {
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	case Invalid:
		return "invalid"
	case Overflow:
		return "overflow"
	case NotAdmitted:
		return "not admitted"
	case Unreadable:
		return "unreadable"
	}
	return "?"
}

// Released: the state of Node (epoch Epoch) left the retention window and
// was released (Releaser.Release was called). Delete any stored copy.
type Released struct {
	Node  Hash
	Epoch uint64
}

// Resend: these own messages were sent on a branch that lost. Encrypt each
// again, with the same message id, in the current epoch (At zero) or with
// the retained canonical state At of epoch Epoch (StateAt), and report it
// with Sent.
//
// At is set when the lost branch had removed a member that is in the group
// at the canonical tip (its removal was undone by a later re-add): the
// message is re-sent in a canonical epoch where that member is out, so that
// it never reads what was written without it (README.md "Re-sending
// safely").
type Resend struct {
	IDs   []MessageID
	At    Hash
	Epoch uint64
}

// ResendSince: after a rejoin, re-send every own message sent in an epoch
// after Epoch and before Until (the time of the rejoin), with the same ids.
// The machine only tracks messages inside the window; the engine's outbox
// holds the rest.
//
// At and AtEpoch, when set, name the retained canonical state to encrypt
// with instead of the current one (StateAt), as for Resend.
type ResendSince struct {
	Epoch   uint64
	Until   time.Time
	At      Hash
	AtEpoch uint64
}

// Repropose: these own changes are not applied on the canonical branch:
// commit them again (report the Commit with OwnCommit, listing the ids).
type Repropose struct {
	Intents []Intent
}

// SendWelcome: the own Commit Commit is canonical and settled: send its
// Welcome now (RFC 9420 §14: not before the Commit is accepted).
type SendWelcome struct {
	Commit Hash
}

// DropWelcome: the own Commit lost before its Welcome was sent: discard the
// Welcome (the adds are re-proposed).
type DropWelcome struct {
	Commit Hash
}

// Announce: publish this claim on the group (the engine adds the signer's
// identity and a signed GroupInfo of Current(), and protects it for the
// members of any branch; see README.md "Deep forks").
type Announce struct {
	Claim Claim
}

// Rejoin: this member's branch lost a fork older than the window. Join the
// claimant's branch with an external commit (resync) built from GroupInfo,
// then report it with Rejoined.
type Rejoin struct {
	GroupInfo []byte
	Signer    string
	ForkEpoch uint64
	Epoch     uint64 // the claimant's epoch
}

// CatchUp: messages are missing (future epochs were buffered for long, or
// dropped): fetch the group's stored messages since epoch From (sync
// protocol) and feed them to Receive.
type CatchUp struct {
	From uint64
}

func (Advanced) isDecision()    {}
func (Switched) isDecision()    {}
func (Deliver) isDecision()     {}
func (Discarded) isDecision()   {}
func (Released) isDecision()    {}
func (Resend) isDecision()      {}
func (ResendSince) isDecision() {}
func (Repropose) isDecision()   {}
func (SendWelcome) isDecision() {}
func (DropWelcome) isDecision() {}
func (Announce) isDecision()    {}
func (Rejoin) isDecision()      {}
func (CatchUp) isDecision()     {}
