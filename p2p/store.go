package p2p

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Persistence for relays sits behind the four small interfaces below: the
// one relay storage contract. p2p ships in-memory implementations
// (memstore.go); package relay implements them on the SQLite store. p2ptest
// checks every implementation against the contract. Quotas are passed
// with every call, so an implementation holds no quota policy (see
// Quotas.WithDefaults).
// Implementations must be safe for concurrent use: the relay calls them from
// stream handlers and from its topic goroutines at the same time.

// MessageID identifies a message by content: SHA-256 of its bytes. It is the
// gossipsub message id, the TopicLog de-duplication key and the id of mail
// and KeyPackages.
type MessageID [32]byte

// IDOf returns the content id of data.
func IDOf(data []byte) MessageID { return sha256.Sum256(data) }

func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// Quota bounds a set of stored items. Zero fields mean "no limit".
type Quota struct {
	Count int
	Bytes int64
}

// exceeds reports whether count items of bytes total break the quota.
func (q Quota) exceeds(count int, bytes int64) bool {
	return (q.Count > 0 && count > q.Count) || (q.Bytes > 0 && bytes > q.Bytes)
}

// LogEntry is one message of a topic as a relay stored it.
type LogEntry struct {
	// Seq is the position in the topic's log, assigned by Append: it
	// increases and is never reused, but may have gaps and need not start
	// at 1 (the SQLite log counts all topics together). It is the opaque
	// cursor of sync requests; it is local to one relay.
	Seq uint64
	ID  MessageID
	// Epoch is the MLS epoch of the message, from its header.
	Epoch    uint64
	Data     []byte
	Received time.Time
}

// LogQuery selects entries of a topic log.
type LogQuery struct {
	// After is a cursor: only entries with Seq > After are returned.
	After uint64
	// MinEpoch drops entries of earlier epochs.
	MinEpoch uint64
	// Limit caps the number of entries returned (required, > 0).
	Limit int
}

// LogQuota bounds the topic logs.
type LogQuota struct {
	// PerTopic bounds one topic's log.
	PerTopic Quota
	// Total bounds all topics' logs together.
	Total Quota
}

// TopicLog keeps the messages of the topics a relay was asked to keep.
type TopicLog interface {
	// Append stores e (e.Seq is ignored) and returns its sequence number.
	// e.ID must be IDOf(e.Data), else ErrBadRequest.
	// It is idempotent: appending an id the topic already holds returns the
	// existing sequence number and stores nothing. To stay within
	// q.PerTopic it evicts the topic's oldest entries; to stay within
	// q.Total, the oldest entries of the largest topic (by bytes), so that
	// a flooded topic pays for the flood, not the quiet ones. An entry
	// larger than either byte quota on its own fails with
	// ErrQuotaExceeded.
	Append(ctx context.Context, topic string, e LogEntry, q LogQuota) (seq uint64, err error)
	// List returns entries in sequence order.
	List(ctx context.Context, topic string, q LogQuery) ([]LogEntry, error)
	// Prune deletes entries received before the given time.
	Prune(ctx context.Context, before time.Time) error
}

// MailItem is a message waiting in a relay mailbox for an offline peer.
type MailItem struct {
	ID        MessageID
	Recipient peer.ID
	From      peer.ID
	// Data is an encoded InboxMessage (see DecodeInboxMessage).
	Data      []byte
	Deposited time.Time
	Expires   time.Time
}

// MailQuota bounds a deposit.
type MailQuota struct {
	// PerRecipient bounds one recipient's mailbox.
	PerRecipient Quota
	// PerSender bounds one depositor's share of a mailbox (items of the
	// recipient with the same From).
	PerSender Quota
	// SenderTotal bounds what one depositor has waiting in all mailboxes
	// together, so that deposits for made-up recipients are bounded per
	// sender, not only by Total.
	SenderTotal Quota
	// Total bounds all mailboxes together, so that deposits for made-up
	// recipients cannot fill the disk.
	Total Quota
}

// Mailbox holds mail for offline peers. Reading is two-step (Fetch, then
// Delete of what the recipient acknowledged) so that a Welcome is never lost
// when a stream breaks halfway through a delivery.
type Mailbox interface {
	// Deposit stores item for item.Recipient; item.ID must be
	// IDOf(item.Data), else ErrBadRequest. Depositing an id the mailbox
	// already holds is a no-op. It fails with ErrQuotaExceeded when any
	// bound of q would break.
	Deposit(ctx context.Context, item MailItem, q MailQuota) error
	// Fetch returns up to limit unexpired items, oldest first, without
	// deleting them.
	Fetch(ctx context.Context, recipient peer.ID, now time.Time, limit int) ([]MailItem, error)
	// Delete removes the given items of recipient; unknown ids are ignored.
	Delete(ctx context.Context, recipient peer.ID, ids []MessageID) error
	// Prune deletes expired items.
	Prune(ctx context.Context, now time.Time) error
}

// KeyPackage is an MLS KeyPackage as p2p carries it: opaque bytes, its
// cipher suite as the owner declares it (0: unspecified), and whether the
// owner marked it last-resort (RFC 9420 §16.8: a last-resort package may be
// handed out more than once; all others exactly once).
type KeyPackage struct {
	Data        []byte
	CipherSuite uint16
	LastResort  bool
}

// KeyPackageCache holds KeyPackages that users uploaded to a relay, so that
// others can add them to groups while they are offline.
type KeyPackageCache interface {
	// Put adds packages of owner, expiring at expires. Duplicates (same
	// content) and one-time packages that were already handed out are
	// ignored; a last-resort package replaces the owner's previous one of
	// the same cipher suite. If the owner's packages would break q nothing
	// is stored and Put fails with ErrQuotaExceeded. It returns how many
	// packages the owner has.
	Put(ctx context.Context, owner peer.ID, kps []KeyPackage, expires time.Time, q Quota) (available int, err error)
	// Take hands out one package of owner of the given cipher suite (0:
	// any): the oldest one-time package if any is left, which is then
	// deleted and never handed out again; otherwise the last-resort package,
	// which stays. ErrNotFound if there is neither.
	Take(ctx context.Context, owner peer.ID, suite uint16, now time.Time) (KeyPackage, error)
	// LastResort returns owner's unexpired last-resort package of the given
	// cipher suite (0: any; the lowest suite wins) without handing out any
	// one-time package. ErrNotFound if there is none.
	LastResort(ctx context.Context, owner peer.ID, suite uint16, now time.Time) (KeyPackage, error)
	// Prune deletes expired packages.
	Prune(ctx context.Context, now time.Time) error
}

// Lease is a peer's request that a relay keep a topic, valid until Until.
type Lease struct {
	Topic string
	Peer  peer.ID
	Until time.Time
}

// LeaseStore persists the keep-topic leases a relay grants, so that a
// restarted relay rejoins the topics its members asked it to keep and goes
// on storing their frames without waiting for the members to renew (which
// they do at half the lease term). A relay is its store's only writer.
type LeaseStore interface {
	// PutLease records l, replacing any lease of the same topic and peer.
	PutLease(ctx context.Context, l Lease) error
	// DeleteLease removes peer p's lease on topic; unknown leases are
	// ignored.
	DeleteLease(ctx context.Context, topic string, p peer.ID) error
	// Leases returns the leases still valid at now (Until after now),
	// ordered by topic, then peer (as text).
	Leases(ctx context.Context, now time.Time) ([]Lease, error)
	// Prune deletes leases that ended at or before now.
	Prune(ctx context.Context, now time.Time) error
}
