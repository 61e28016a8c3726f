package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by the store. Every error the package returns begins with
// "store: "; test for these sentinels with errors.Is.
var (
	// ErrNotFound: the requested row does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrWrongPassphrase: the passphrase does not unlock this profile.
	// Nothing in the database was changed.
	ErrWrongPassphrase = errors.New("store: wrong passphrase")
	// ErrPassphraseRequired: the profile is protected by a passphrase and
	// none was given.
	ErrPassphraseRequired = errors.New("store: this profile is protected by a passphrase; none was given")
	// ErrProfileInUse: another process (or another Open in this process)
	// holds the profile's lock file.
	ErrProfileInUse = errors.New("store: profile in use")
	// ErrSchemaTooNew: the database was written by a newer canopy.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary supports")
	// ErrCorrupt: the database file is damaged, truncated or not a canopy
	// database.
	ErrCorrupt = errors.New("store: database is corrupt")
	// ErrKeyFile: the key file is missing, unreadable or too widely readable.
	ErrKeyFile = errors.New("store: key file unusable")
	// ErrQuotaExceeded: a relay quota would be exceeded; nothing was stored.
	ErrQuotaExceeded = errors.New("store: quota exceeded")
	// ErrConflict: the write contradicts the stored data (for example a
	// petname already in use, or a verification for a key that is no
	// longer the contact's key).
	ErrConflict = errors.New("store: conflict")
	// ErrInvalid: an argument is malformed (empty id, oversized value...).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("store: database is closed")
)

// ---------------------------------------------------------------------------
// Identity

// Identity is the profile's own long-term key material. One per profile.
// Private fields are sealed at rest.
type Identity struct {
	SignaturePublic  []byte // MLS signature public key
	SignaturePrivate []byte // MLS signature private key (sealed at rest)
	Credential       []byte // serialized MLS Credential
	CipherSuite      uint16 // MLS cipher suite the signature key belongs to
	P2PPrivateKey    []byte // marshaled libp2p private key (sealed at rest)
	CreatedAt        time.Time
	UpdatedAt        time.Time // set by the store
}

// IdentityStore keeps the profile's identity.
type IdentityStore interface {
	// Identity returns the stored identity or ErrNotFound.
	Identity(ctx context.Context) (Identity, error)
	// PutIdentity stores id, replacing any previous identity.
	PutIdentity(ctx context.Context, id Identity) error
}

// ---------------------------------------------------------------------------
// Own KeyPackages

// KeyPackage is one of our own KeyPackages together with its private keys.
type KeyPackage struct {
	Ref         []byte // KeyPackageRef (RFC 9420 §5.2); primary key
	CipherSuite uint16
	Data        []byte // serialized public KeyPackage (MLSMessage)
	Private     []byte // serialized init + leaf encryption private keys (sealed at rest)
	LastResort  bool   // kept after use (RFC 9420 last_resort extension)
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
}

// KeyPackageStore keeps our own KeyPackages until they are used.
type KeyPackageStore interface {
	// PutKeyPackage stores kp; an existing package with the same Ref is replaced.
	PutKeyPackage(ctx context.Context, kp KeyPackage) error
	// KeyPackage returns the package with ref, or ErrNotFound.
	KeyPackage(ctx context.Context, ref []byte) (KeyPackage, error)
	// ConsumeKeyPackage returns the package with ref and, unless it is a
	// last-resort package, deletes it in the same transaction. Prefer
	// EpochTransition.ConsumedKeyPackage, which deletes it atomically with
	// the joined group's first state.
	ConsumeKeyPackage(ctx context.Context, ref []byte) (KeyPackage, error)
	// ListKeyPackages returns all packages, oldest first.
	ListKeyPackages(ctx context.Context) ([]KeyPackage, error)
	// DeleteKeyPackage deletes the package (no error if absent).
	DeleteKeyPackage(ctx context.Context, ref []byte) error
	// DeleteExpiredKeyPackages deletes packages whose ExpiresAt is before now.
	DeleteExpiredKeyPackages(ctx context.Context, now time.Time) (int64, error)
}

// ---------------------------------------------------------------------------
// Contacts

// Verification is a contact's verification state.
type Verification uint8

const (
	Unverified Verification = iota // never compared
	Verified                       // the user compared safety numbers for Fingerprint
	KeyChanged                     // was verified, then the key changed
)

func (v Verification) String() string {
	switch v {
	case Unverified:
		return "unverified"
	case Verified:
		return "verified"
	case KeyChanged:
		return "key-changed"
	}
	return "unknown"
}

// Contact is a person the user knows.
type Contact struct {
	ID           string // stable id chosen by the caller (canopy: the peer id)
	Petname      string // local name; unique (ASCII case-insensitive) when not empty
	Fingerprint  []byte // fingerprint of the current signature key
	Verification Verification
	VerifiedAt   time.Time
	Card         []byte // opaque contact card (addresses, keys...)
	CreatedAt    time.Time
	UpdatedAt    time.Time // set by the store
}

// KeyRecord is one signature key a contact has used.
type KeyRecord struct {
	Fingerprint []byte
	FirstSeen   time.Time
	LastSeen    time.Time
}

// ContactStore keeps contacts and the history of their keys.
type ContactStore interface {
	// PutContact inserts or updates c (by ID). Verification and VerifiedAt
	// are taken from c only for a new contact; use SetVerification after.
	// When the fingerprint differs from the stored one, keyChanged is true,
	// the new key is added to the key history and a Verified contact becomes
	// KeyChanged, all in one transaction. A petname used by another contact
	// gives ErrConflict.
	PutContact(ctx context.Context, c Contact) (keyChanged bool, err error)
	Contact(ctx context.Context, id string) (Contact, error)
	ContactByPetname(ctx context.Context, petname string) (Contact, error)
	ListContacts(ctx context.Context) ([]Contact, error)
	// SetVerification sets the state for the contact's key fingerprint; if
	// fingerprint is no longer the contact's key it gives ErrConflict.
	SetVerification(ctx context.Context, id string, fingerprint []byte, v Verification, at time.Time) error
	// KeyHistory lists every key seen for the contact, oldest first.
	KeyHistory(ctx context.Context, id string) ([]KeyRecord, error)
	DeleteContact(ctx context.Context, id string) error
}

// ---------------------------------------------------------------------------
// Groups and epochs

// Group is a group's row. Epoch and CommitHash name the group's current
// state and are changed only by CommitEpoch.
type Group struct {
	ID         []byte // MLS group id
	Name       string
	Retention  time.Duration // disappearing messages: delete after this age; 0 keeps forever
	Left       bool          // we left or were removed; kept for history
	Meta       []byte        // opaque engine settings
	Epoch      uint64        // current epoch (read-only)
	CommitHash []byte        // commit that created the current epoch (read-only; empty for creation/join)
	CreatedAt  time.Time
	UpdatedAt  time.Time // set by the store
}

// EpochState is a serialized MLS group state in one epoch on one branch.
type EpochState struct {
	GroupID    []byte
	Epoch      uint64
	CommitHash []byte // commit that created Epoch; empty for the group's first state
	State      []byte // opaque serialized state (sealed at rest)
	// Info is the engine's opaque description of the Commit that created
	// Epoch (EpochTransition.CommitInfo; sealed at rest), nil if none was
	// written (rows from before schema version 4).
	Info      []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// EpochRef names a retained state: (group, epoch, commit hash).
type EpochRef struct {
	Epoch      uint64
	CommitHash []byte
}

// EpochRecord is one entry of a group's canonical history, kept forever.
type EpochRecord struct {
	Epoch      uint64
	CommitHash []byte
	At         time.Time
}

// EpochTransition is everything that changes together when a group's state
// changes: the new state (a new epoch, or the same epoch after decrypting or
// encrypting a message advanced its secret tree), the messages decrypted or
// sent in that step, and the outbox and proposal changes. CommitEpoch writes
// it in one transaction: after a crash either all of it is there or none.
type EpochTransition struct {
	GroupID    []byte
	Epoch      uint64
	CommitHash []byte // commit that created Epoch; empty for creation or a Welcome join
	State      []byte // the new serialized state (required)
	// CommitInfo is the engine's opaque description of the Commit that
	// created Epoch (the chat engine: its ordering information), stored
	// sealed with the state (EpochState.Info, CanonicalChain). nil keeps
	// what the row has.
	CommitInfo []byte

	// Group, when set, creates the group (first transition) or updates its
	// Name, Retention, Left and Meta. It must be set when the group does
	// not exist yet.
	Group *Group

	// Messages decrypted (or sent) in this step. A message whose
	// (GroupID, ID) already exists is ignored: re-sent copies de-duplicate.
	Messages []Message

	OutboxAdd     []OutboxEntry // entries to enqueue (GroupID filled in when empty)
	OutboxDone    [][]byte      // outbox ids settled on the canonical branch: deleted
	ProposalsAdd  []Proposal    // pending proposals to keep
	ProposalsDone [][]byte      // proposal refs committed or obsolete: deleted

	// ConsumedKeyPackage is the ref of our KeyPackage a Welcome used; it is
	// deleted (unless last-resort) with the first state.
	ConsumedKeyPackage []byte

	// Retained stores State as a past, retained state without making it
	// current and without touching the history: for a late message
	// decrypted with an older epoch's secret tree.
	Retained bool

	// PruneBelow, when non-zero, deletes retained states with epoch <
	// PruneBelow (never the new current state).
	PruneBelow uint64

	// InvitationDone is the id of the pending invitation this transition
	// accepted (a Welcome join); it is deleted in the same transaction.
	InvitationDone string
	// Discard deletes specific retained states (e.g. a losing branch).
	Discard []EpochRef

	// Frames are appended to the frame log within FrameQuota, each as
	// AppendFrames would (a frame refused on its own gets its error in
	// TransitionResult.Frames and the rest is written regardless): the
	// frames a receiver opened, or an own frame the state protected, are
	// logged with that state. At most MaxAppendBatch.
	Frames     []Frame
	FrameQuota FrameQuota

	// HeldAdd keeps messages the engine holds back (HeldMessage), written
	// with the state that opened them; HeldDone deletes held messages by
	// id (shown since). An id in both is deleted.
	HeldAdd  []HeldMessage
	HeldDone [][]byte

	At time.Time // time of the transition; zero: now
}

// TransitionResult reports what CommitEpoch did.
type TransitionResult struct {
	MessagesInserted int // messages that were new (the rest were duplicates)
	// Inserted says, per EpochTransition.Messages, whether that message
	// was new: a caller shows only those, without looking each up first.
	Inserted []bool
	// Frames is, per EpochTransition.Frames, what appending it did.
	Frames []AppendResult
}

// GroupStore keeps groups, their retained epoch states and their canonical
// epoch history.
type GroupStore interface {
	// CommitEpoch makes t.State the group's current state and writes the
	// rest of t, all in one transaction. The state is stored under
	// (GroupID, Epoch, CommitHash); an existing state under that key is
	// replaced. The canonical history gets (Epoch, CommitHash), and entries
	// for later epochs (a losing branch) are removed.
	CommitEpoch(ctx context.Context, t EpochTransition) (TransitionResult, error)
	Group(ctx context.Context, id []byte) (Group, error)
	ListGroups(ctx context.Context) ([]Group, error)
	// UpdateGroup changes Name, Retention, Left and Meta.
	UpdateGroup(ctx context.Context, g Group) error
	// DeleteGroup deletes the group with its states, history, messages,
	// outbox and proposals.
	DeleteGroup(ctx context.Context, id []byte) error
	// CurrentState returns the group's current state.
	CurrentState(ctx context.Context, groupID []byte) (EpochState, error)
	// EpochState returns a retained state.
	EpochState(ctx context.Context, groupID []byte, ref EpochRef) (EpochState, error)
	// RetainedEpochs lists retained states (without their blobs), by epoch.
	RetainedEpochs(ctx context.Context, groupID []byte) ([]EpochRef, error)
	// DeleteEpochStates deletes retained states with epoch < below, except
	// the current one, for forward secrecy.
	DeleteEpochStates(ctx context.Context, groupID []byte, below uint64) (int64, error)
	// EpochHistory returns canonical history entries with epoch >= from.
	EpochHistory(ctx context.Context, groupID []byte, from uint64) ([]EpochRecord, error)
	// CanonicalChain returns the retained canonical states, oldest first:
	// the states whose (Epoch, CommitHash) is in the canonical history,
	// in consecutive epochs up to and including the group's current state
	// (the run stops at the first epoch missing below it). Each comes with
	// its Info. Consecutive epochs are not proof of parentage (a branch
	// switch that skipped epochs leaves older rows of the losing branch):
	// the engine checks that from Info.
	CanonicalChain(ctx context.Context, groupID []byte) ([]EpochState, error)
	// HeldMessages lists the group's held messages (EpochTransition.HeldAdd),
	// in the order they were held.
	HeldMessages(ctx context.Context, groupID []byte) ([]HeldMessage, error)
}

// HeldMessage is a received message the engine opened but holds back from
// showing (for its sender's order). Its key is consumed with the state
// written beside it, so it is stored in the same transaction: a restarted
// engine shows it instead of losing it. Payload is sealed at rest.
type HeldMessage struct {
	GroupID []byte // filled in from the transition when empty
	ID      []byte
	Sender  string
	Epoch   uint64
	Gen     uint32 // the sender's ratchet generation in Epoch
	Payload []byte // the decrypted application message
	At      time.Time
}

// ---------------------------------------------------------------------------
// Messages

// DeliveryState tracks a message's delivery.
type DeliveryState uint8

const (
	Received  DeliveryState = iota // incoming
	Pending                        // own, not yet sent
	Sent                           // own, published
	Delivered                      // own, settled on the canonical branch / receipted
	Read                           // read (own: receipt; incoming: by the user)
	Failed                         // own, gave up
)

func (s DeliveryState) String() string {
	switch s {
	case Received:
		return "received"
	case Pending:
		return "pending"
	case Sent:
		return "sent"
	case Delivered:
		return "delivered"
	case Read:
		return "read"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Message is one application message. (GroupID, ID) is unique: storing a
// message whose id is already in the group is a no-op.
type Message struct {
	Seq        int64  // local order, assigned by the store (read-only)
	GroupID    []byte // group
	ID         []byte // application message id, unique per group
	Sender     []byte // sender identity (opaque)
	Epoch      uint64 // epoch it was encrypted in
	Kind       uint16 // application kind (text, edit, reaction... defined by chat)
	Text       string // searchable text
	Payload    []byte // opaque extra payload
	ReplyTo    []byte // id of the message this refers to, if any
	SentAt     time.Time
	ReceivedAt time.Time // local time; retention uses it
	State      DeliveryState
}

// MessageQuery pages through a group's history, newest first.
type MessageQuery struct {
	BeforeSeq int64 // only messages with Seq < BeforeSeq; 0: from the newest
	Limit     int   // 0: 100
}

// SearchQuery is a full-text search. Text is split into words (letters and
// digits); a message matches when it contains every word. A word followed
// by '*' matches as a prefix; "double quotes" match a phrase.
type SearchQuery struct {
	Text      string
	GroupID   []byte // nil: all groups
	BeforeSeq int64  // paging: only Seq < BeforeSeq
	Limit     int    // 0: 50
}

// Snippet markers: SearchResult.Snippet surrounds matched words with these.
const (
	SnippetStart = "\x02"
	SnippetEnd   = "\x03"
)

// SearchResult is one search hit. Results are newest first.
type SearchResult struct {
	Message
	Snippet string // excerpt with SnippetStart/SnippetEnd around matches
}

// MessageStore keeps message history.
type MessageStore interface {
	// AddMessages stores messages that change no group state; duplicates
	// (same group and id) are ignored. It returns how many were new.
	AddMessages(ctx context.Context, msgs ...Message) (int, error)
	Message(ctx context.Context, groupID, id []byte) (Message, error)
	Messages(ctx context.Context, groupID []byte, q MessageQuery) ([]Message, error)
	// EditMessage replaces a message's text and payload.
	EditMessage(ctx context.Context, groupID, id []byte, text string, payload []byte) error
	SetDeliveryState(ctx context.Context, groupID, id []byte, s DeliveryState) error
	DeleteMessage(ctx context.Context, groupID, id []byte) error
	// DeleteMessagesBefore deletes a group's messages received before t.
	DeleteMessagesBefore(ctx context.Context, groupID []byte, t time.Time) (int64, error)
	// ApplyRetention deletes, in every group with a Retention, the messages
	// received more than Retention before now.
	ApplyRetention(ctx context.Context, now time.Time) (int64, error)
	Search(ctx context.Context, q SearchQuery) ([]SearchResult, error)
}

// ---------------------------------------------------------------------------
// Outbox and proposals

// OutboxEntry is something we sent that is not yet settled on the canonical
// branch: if its epoch loses, the engine re-sends it (same id).
type OutboxEntry struct {
	GroupID       []byte
	ID            []byte // e.g. the message id; unique per group
	Kind          uint16 // defined by the engine (application, commit, proposal...)
	Epoch         uint64 // epoch it was sent in
	Payload       []byte // plaintext to re-encrypt (sealed at rest)
	Wire          []byte // the MLSMessage as last sent
	Attempts      int
	CreatedAt     time.Time
	LastAttemptAt time.Time
}

// OutboxStore keeps unsettled outgoing items, oldest first.
type OutboxStore interface {
	// Enqueue adds e, or replaces the entry with the same (GroupID, ID).
	Enqueue(ctx context.Context, e OutboxEntry) error
	// Outbox lists a group's entries (nil groupID: all groups), oldest first.
	Outbox(ctx context.Context, groupID []byte) ([]OutboxEntry, error)
	// MarkAttempt records a send: Attempts+1, LastAttemptAt, and Wire/Epoch
	// when wire is not nil.
	MarkAttempt(ctx context.Context, groupID, id []byte, epoch uint64, wire []byte, at time.Time) error
	// Settle deletes entries (no error for absent ones).
	Settle(ctx context.Context, groupID []byte, ids ...[]byte) error
}

// Proposal is a pending proposal in a group, not yet committed.
type Proposal struct {
	GroupID   []byte
	Ref       []byte // ProposalRef; unique per group
	Epoch     uint64
	Sender    []byte
	Data      []byte // serialized MLSMessage carrying the proposal
	Private   []byte // our private data for own proposals, e.g. an Update's leaf key (sealed at rest)
	Own       bool
	CreatedAt time.Time
}

// ProposalStore keeps pending proposals.
type ProposalStore interface {
	PutProposal(ctx context.Context, p Proposal) error
	Proposals(ctx context.Context, groupID []byte) ([]Proposal, error)
	DeleteProposals(ctx context.Context, groupID []byte, refs ...[]byte) error
	// DeleteProposalsBefore deletes a group's proposals with epoch < epoch.
	DeleteProposalsBefore(ctx context.Context, groupID []byte, epoch uint64) (int64, error)
}

// ---------------------------------------------------------------------------
// Invitations

// Invitation is a pending invitation: a Welcome the user has not accepted
// or declined yet.
//
// The store keeps it as an opaque payload (the engine's encoding of the
// Welcome, inviter, group name, ratchet tree...) sealed at rest as a whole,
// rather than as columns: the store never needs to read those fields, and
// one envelope keeps all of them, including the group name, out of the
// file in clear. ID and CreatedAt stay in clear for lookup and ordering.
type Invitation struct {
	ID        string // chosen by the caller; primary key
	Payload   []byte // opaque invitation (sealed at rest); required
	CreatedAt time.Time
}

// InvitationStore keeps pending invitations until they are accepted
// (EpochTransition.InvitationDone) or declined (DeleteInvitation).
type InvitationStore interface {
	// PutInvitation stores inv, replacing the payload of an invitation
	// with the same ID (its CreatedAt, and so its place in the list, is
	// kept).
	PutInvitation(ctx context.Context, inv Invitation) error
	// Invitation returns the invitation with id, or ErrNotFound.
	Invitation(ctx context.Context, id string) (Invitation, error)
	// ListInvitations returns all pending invitations, oldest first.
	ListInvitations(ctx context.Context) ([]Invitation, error)
	// DeleteInvitation deletes the invitation (no error if absent).
	DeleteInvitation(ctx context.Context, id string) error
}

// ---------------------------------------------------------------------------
// Relay

// Frame is one ciphertext frame a relay keeps for a topic.
type Frame struct {
	Topic      string
	Seq        int64   // cursor assigned by the store, increasing, never reused
	Hash       []byte  // SHA-256 of Data, computed by the store
	Epoch      *uint64 // optional epoch, if the relay could read it from the frame header
	Peer       string  // peer that delivered the frame (quota accounting)
	Data       []byte
	ReceivedAt time.Time
}

// FrameQuery selects frames of a topic.
type FrameQuery struct {
	AfterSeq int64   // frames with Seq > AfterSeq
	MinEpoch *uint64 // only frames with a known epoch >= MinEpoch, plus frames with no epoch
	Limit    int     // 0: 100
}

// TopicKeep is a request to keep a topic, by a peer, until a time.
type TopicKeep struct {
	Topic string
	Peer  string
	Until time.Time
}

// Usage is stored bytes and items.
type Usage struct {
	Bytes int64
	Items int64
}

// Limit bounds a set of stored items. A zero field means no limit.
type Limit struct {
	Items int64
	Bytes int64
}

// exceeded reports whether holding items of bytes in total breaks l.
func (l Limit) exceeded(items, bytes int64) bool {
	return (l.Items > 0 && items > l.Items) || (l.Bytes > 0 && bytes > l.Bytes)
}

// The relay tables (frames, topic keeps, mailboxes, cached KeyPackages)
// hold no quota policy: every write takes the bounds it must keep as an
// argument, so a relay enforces the quotas it is configured with
// (p2p.Quotas, through package relay) and a member its own log's bounds,
// with nothing to keep in step when the store is opened. Expiry bounds are
// exclusive throughout: an item whose time is at or before now is over.

// FrameQuota bounds AppendFrame.
type FrameQuota struct {
	// MaxFrameBytes refuses larger frames.
	MaxFrameBytes int
	// PerTopic bounds one topic's frames; the oldest are evicted.
	PerTopic Limit
	// Total bounds all topics together; the oldest frames of the largest
	// topic (by bytes) are evicted, so a flood costs its own topic.
	Total Limit
	// PerPeer bounds the stored frames one peer delivered; beyond it a
	// frame is refused.
	PerPeer Limit
}

// MailQuota bounds Deposit. Beyond any bound the item is refused.
type MailQuota struct {
	// MaxItemBytes refuses larger items.
	MaxItemBytes int
	// PerRecipient bounds one recipient's mailbox.
	PerRecipient Limit
	// PerSender bounds one sender's share of one mailbox.
	PerSender Limit
	// SenderTotal bounds what one sender has waiting in all mailboxes.
	SenderTotal Limit
	// Total bounds all mailboxes together.
	Total Limit
}

// KeyPackageQuota bounds PublishKeyPackages.
type KeyPackageQuota struct {
	// MaxBytes refuses larger packages.
	MaxBytes int
	// PerOwner bounds the packages one owner holds, expired or not until
	// pruned.
	PerOwner Limit
}

// MailItem is a message deposited for an offline peer (e.g. a Welcome).
type MailItem struct {
	ID          int64 // assigned by the store
	Recipient   string
	Sender      string
	Data        []byte
	DepositedAt time.Time
	ExpiresAt   time.Time // zero: never
}

// CachedKeyPackage is a KeyPackage a relay holds for an offline owner.
type CachedKeyPackage struct {
	Owner       string // owner's peer id
	Ref         []byte // KeyPackageRef; unique per owner
	CipherSuite uint16
	Data        []byte
	LastResort  bool
	PublishedAt time.Time
	ExpiresAt   time.Time // zero: never
}

// ---------------------------------------------------------------------------
// Aggregates

// Store is everything the messenger needs.
type Store interface {
	IdentityStore
	KeyPackageStore
	ContactStore
	GroupStore
	MessageStore
	OutboxStore
	ProposalStore
	InvitationStore
	Close() error
}

var _ Store = (*DB)(nil)
