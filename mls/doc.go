// Package mls is canopy's implementation of Messaging Layer Security
// (RFC 9420): end-to-end encrypted groups with forward secrecy,
// post-compromise security and membership changes in O(log n).
//
// The package is pure: it does no I/O and reads no clock. Randomness comes
// from an io.Reader (WithRandom, default crypto/rand) and time from a
// function (WithClock); messages are byte slices the caller carries.
// All seven cipher suites of the RFC are supported, and the draft hybrid
// post-quantum suite MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519 (0x004D)
// (CipherSuites).
//
// # Groups
//
// A Group is one member's state of a group in one epoch. It is not safe
// for concurrent use: one goroutine owns each group.
//
// A client that creates a group makes it with itself as the only member,
// then adds the others with one Commit and one Welcome:
//
//	g, err := mls.CreateGroup(cs, groupID, sigPriv, mls.NewBasicCredential(id))
//	pc, err := g.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{
//		{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *bobKP}},
//		{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *carolKP}},
//	}})
//	// send pc.Message to the group; once it is accepted:
//	_, err = g.MergePendingCommit(pc)
//	// send pc.Welcome to bob and carol
//
// A client that wants to be added publishes a KeyPackage (NewKeyPackage,
// KeyPackageBundle.Marshal), keeps the bundle with its private keys, and
// joins from the Welcome:
//
//	g, err := mls.JoinFromWelcome(welcome, bundle, nil)
//
// When the Welcome leaves the ratchet tree out (CommitOptions.ExternalTree),
// the joiner opens it first to learn the group, fetches the tree from any
// member (Group.RatchetTree), and joins; the tree is trusted only through
// the tree hash in the signed GroupInfo:
//
//	sw, err := mls.OpenWelcome(welcome, bundles)
//	tree := fetch(sw.GroupID())
//	g, err := sw.Join(tree)
//
// A client holding a GroupInfo with the external_pub extension
// (Group.GroupInfo) can join by itself with an external Commit
// (JoinExternal), optionally replacing its own earlier appearance.
//
// # Messages
//
// Protect encrypts application data; Process handles every message of the
// group (PublicMessage or PrivateMessage) and says what it was:
//
//	ct, err := g.Protect([]byte("hello"), nil)
//	r, err := g.Process(msg)
//	switch r.ContentType {
//	case mls.ContentTypeApplication: // r.ApplicationData
//	case mls.ContentTypeProposal:    // cached for this epoch's Commit
//	case mls.ContentTypeCommit:      // r.Commit: the group is in a new epoch
//	}
//
// Application messages of the last few epochs are still decrypted
// (WithPastEpochs), out of order within a window (WithOutOfOrder); every
// key is deleted once used. Proposals are made with ProposeAdd,
// ProposeUpdate, ProposeRemove, ProposeExternalPSK, ProposeResumptionPSK,
// ProposeReInit and ProposeGroupContextExtensions; external parties use
// ExternalProposal and NewMemberAddProposal. A member that has seen
// proposals must commit before sending application data (§12.4).
//
// A transport that must decide whether to forward or store a frame before
// the group processes it takes a FrameAuthenticator of the epoch: an
// immutable, concurrency-safe check that a PrivateMessage's sender data
// opens under the epoch's sender_data_secret or a PublicMessage's
// membership tag verifies, without deriving or consuming any key.
//
// # Commits, forks and rollback
//
// Creating a Commit does not change the group's epoch: Commit returns a
// PendingCommit that is merged (MergePendingCommit, or Process when the
// network echoes it back) or discarded (DiscardPendingCommit) when another
// Commit wins the epoch. Processing a Commit checks everything §12.4.2
// requires on a copy and swaps it in only on success: a failed Process
// leaves the group exactly as it was, so a Commit that arrives before the
// proposals it references can be retried.
//
// To keep an epoch to roll back to, take Clone (cheap: the ratchet tree
// shares its immutable nodes) before processing the next Commit, or store
// MarshalState; UnmarshalState restores it byte for byte. Local policy
// (the Options) is not part of the state and is passed again.
//
// # Reinitialization and branching
//
// After a Commit with a ReInit the group is closed (Closed, PendingReInit):
// one member creates the new group with ReInitGroup and the others join it
// from its Welcome with WithResumptionGroups(oldGroup). Branch creates a
// subgroup with a subset of the members in the same way.
//
// # Scale
//
// Creating and processing a Commit costs O(log n) in the group size n:
// the ratchet tree and its key index are copy-on-write structures (a clone
// is O(1), a Commit copies O(log n) small chunks), tree hashes are cached
// per node and recomputed along changed paths only, and the subtree counts
// the tree keeps make resolutions, the leftmost free leaf and truncation
// O(log n) in any tree. Joining is O(n): every leaf signature is verified,
// on all cores. TestScaleGrowth counts the work per Commit at two sizes;
// the scale benchmarks (scale_bench_test.go) and the command
// mls/cmd/mlsbench measure the package on ScaleFixture groups of 10 to
// 100,000 members (ScaleFixture is a benchmark fixture with public keys).
//
// # Errors
//
// Errors start with "mls: " and wrap sentinels to branch on with
// errors.Is: ErrInvalidCommit, ErrInvalidProposal,
// ErrInvalidConfirmationTag, ErrWrongEpoch, ErrUnknownProposal,
// ErrUnknownSender, ErrMissingPSK, ErrOwnMessage, ErrGroupClosed,
// ErrInvalidWelcome, ErrInvalidGroupInfo, ErrInvalidTree,
// ErrInvalidSignature, ErrDecryption, ErrMalformed and *RatchetError among
// them.
package mls
