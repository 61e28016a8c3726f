package mls

import "errors"

// This file declares every sentinel error of the package, grouped by the
// layer that returns it. Every error the package returns starts with
// "mls: " and wraps the most specific sentinel that applies; test for them
// with errors.Is. Typed errors that carry details (*RatchetError,
// *UnsupportedCipherSuiteError, *MembersLackCipherSuiteError) are declared
// beside the code that builds them.

// Errors of the cryptographic primitives.
var (
	// ErrInvalidSignature: a signature did not verify.
	ErrInvalidSignature = errors.New("mls: invalid signature")
	// ErrDecryption: an AEAD or HPKE ciphertext did not open.
	ErrDecryption = errors.New("mls: decryption failed")
	// ErrInvalidKey: a public or private key is not a valid encoding for the suite.
	ErrInvalidKey = errors.New("mls: invalid key")
)

// Errors of Group operations. Every error of a Group method starts with
// "mls: " and wraps one of these (or a sentinel of the lower layers:
// ErrMalformed, ErrInvalidSignature, ErrDecryption, ErrInvalidMembershipTag,
// ErrEpochMismatch, *RatchetError, ErrInvalidTree, ...) where one applies.
var (
	// ErrInvalidProposal: a proposal, or a Commit's proposal list, is
	// invalid (§12.1, §12.2).
	ErrInvalidProposal = errors.New("mls: invalid proposal")
	// ErrInvalidCommit: a Commit fails a check of §12.4.2.
	ErrInvalidCommit = errors.New("mls: invalid commit")
	// ErrInvalidConfirmationTag: the confirmation tag of a Commit or
	// GroupInfo does not verify.
	ErrInvalidConfirmationTag = errors.New("mls: invalid confirmation tag")
	// ErrWrongEpoch: a handshake message is not for the current epoch, or
	// an application message for an epoch outside the window.
	ErrWrongEpoch = errors.New("mls: message is for another epoch")
	// ErrWrongGroup: a message is for another group.
	ErrWrongGroup = errors.New("mls: message is for another group")
	// ErrUnknownProposal: a Commit references a proposal that was not
	// received in this epoch.
	ErrUnknownProposal = errors.New("mls: unknown proposal reference")
	// ErrUnknownSender: the sender is not a member (blank or out-of-range
	// leaf) or not a configured external sender.
	ErrUnknownSender = errors.New("mls: unknown sender")
	// ErrMissingPSK: a PSK named by a proposal or Welcome is not available.
	ErrMissingPSK = errors.New("mls: pre-shared key not available")
	// ErrInvalidWelcome: a Welcome cannot be used to join (§12.4.3.1).
	ErrInvalidWelcome = errors.New("mls: invalid welcome")
	// ErrNoMatchingKeyPackage: no entry of the Welcome is for one of the
	// given KeyPackages.
	ErrNoMatchingKeyPackage = errors.New("mls: welcome is not for any of the key packages")
	// ErrInvalidGroupInfo: a GroupInfo fails validation.
	ErrInvalidGroupInfo = errors.New("mls: invalid group info")
	// ErrGroupClosed: the group was reinitialized (a Commit with a ReInit
	// was applied, §11.2) or this member was removed; it can no longer send.
	ErrGroupClosed = errors.New("mls: group is closed")
	// ErrOwnMessage: the message is this member's own (its key was consumed
	// when it was sent); own Commits are recognised and merged instead.
	ErrOwnMessage = errors.New("mls: message was sent by this member")
	// ErrNotPending: MergePendingCommit was given a commit that this group
	// did not create in its current epoch.
	ErrNotPending = errors.New("mls: not a pending commit of this group and epoch")
	// ErrInvalidState: MarshalState output that cannot be restored.
	ErrInvalidState = errors.New("mls: invalid group state")
)

var errInvalidPSKType = errors.New("mls: invalid PSK type")

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("mls: malformed encoding")

// Sentinel errors of the ratchet tree. Errors wrap the most specific one;
// every failure of whole-tree validation also wraps ErrInvalidTree.
var (
	// ErrInvalidTree: a ratchet tree (received in a Welcome, fetched over
	// p2p, or restored) is not valid.
	ErrInvalidTree = errors.New("mls: invalid ratchet tree")
	// ErrTreeHashMismatch: the tree hash does not match the expected one.
	ErrTreeHashMismatch = errors.New("mls: tree hash mismatch")
	// ErrInvalidParentHash: a parent hash (in a tree or an UpdatePath) does
	// not verify (§7.9.2).
	ErrInvalidParentHash = errors.New("mls: invalid parent hash")
	// ErrDuplicateKey: an encryption or signature key appears twice in the
	// tree, or a new key is already in use (§7.3, §12.4.2).
	ErrDuplicateKey = errors.New("mls: duplicate key")
	// ErrInvalidUnmergedLeaves: an unmerged_leaves list is inconsistent
	// (§12.4.3.1).
	ErrInvalidUnmergedLeaves = errors.New("mls: invalid unmerged leaves")
	// ErrInvalidUpdatePath: an UpdatePath does not fit the tree (§7.5, §7.6).
	ErrInvalidUpdatePath = errors.New("mls: invalid update path")
	// ErrNoPathKey: the receiver holds no private key for any node the
	// UpdatePath is encrypted to (§7.5).
	ErrNoPathKey = errors.New("mls: no private key for the update path")
	// ErrBlankLeaf: an operation names a blank or nonexistent leaf.
	ErrBlankLeaf = errors.New("mls: blank or nonexistent leaf")
)

// Errors of the ratchets, wrapped in a *RatchetError.
var (
	// ErrKeyConsumed: the key of this generation was already handed out
	// (a replayed or duplicated message, or an echo of one's own message).
	ErrKeyConsumed = errors.New("mls: ratchet key already consumed")
	// ErrGenerationExpired: the generation is older than the retention
	// window and its key was deleted unused.
	ErrGenerationExpired = errors.New("mls: ratchet generation older than the retention window")
	// ErrGenerationTooFar: the generation is more than MaxForwardDistance
	// ahead of the ratchet.
	ErrGenerationTooFar = errors.New("mls: ratchet generation too far ahead")
	// ErrRatchetExhausted: the ratchet reached generation 2^32-1.
	ErrRatchetExhausted = errors.New("mls: ratchet exhausted")
	// ErrUnknownLeaf: the leaf index is not in the tree.
	ErrUnknownLeaf = errors.New("mls: leaf index outside the secret tree")
)

// Errors of message protection. Decryption failures wrap ErrDecryption,
// signature failures ErrInvalidSignature, membership tag failures
// ErrInvalidMembershipTag, undecodable plaintexts (non-zero padding, bad
// content) ErrMalformed, and key-schedule failures a *RatchetError.
var (
	// ErrEpochMismatch: the message's group_id or epoch is not the one of
	// the epoch it is being protected or opened in.
	ErrEpochMismatch = errors.New("mls: message is not for this group and epoch")
	// ErrInvalidFraming: the combination of wire format, sender type and
	// content type is not allowed (§6, §6.1, §6.3.2): e.g. application data
	// in a PublicMessage, a non-member sender in a PrivateMessage, a commit
	// from an external sender.
	ErrInvalidFraming = errors.New("mls: sender, content type and wire format not allowed together")
)

// ErrInvalidMembershipTag reports a PublicMessage whose membership_tag does
// not verify. Signatures and membership tags are computed by epochFraming
// (protect.go), which holds the epoch's encoded GroupContext and keys.
var ErrInvalidMembershipTag = errors.New("mls: invalid membership tag")

// ErrUnauthenticated: a frame whose sender the epoch's secrets cannot
// vouch for cheaply (see FrameAuthenticator).
var ErrUnauthenticated = errors.New("mls: frame not authenticated by this epoch")

// ErrInvalidKeyPackage is wrapped by every KeyPackage validation failure
// (§10.1).
var ErrInvalidKeyPackage = errors.New("mls: invalid key package")

// ErrInvalidLeafNode is wrapped by every LeafNode validation failure (§7.3).
var ErrInvalidLeafNode = errors.New("mls: invalid leaf node")

// ErrLifetime is wrapped when a leaf's lifetime does not contain the
// current time (§7.3): an expired or not yet valid KeyPackage.
var ErrLifetime = errors.New("mls: lifetime does not contain the current time")
