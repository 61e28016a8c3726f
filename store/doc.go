// Package store persists everything canopy and canopy relay keep on disk:
// the identity, our KeyPackages, contacts, groups with their retained epoch
// states, message history with full-text search, the outbox, pending
// proposals, and for relays the per-topic ciphertext log, mailboxes and
// cached KeyPackages.
//
// It deals in bytes, ids and rows only and imports no other canopy package.
//
// # Opening a profile
//
// Each profile is one directory, by default $XDG_DATA_HOME/canopy/<name>/
// (~/.local/share/canopy/<name>/ when XDG_DATA_HOME is unset):
//
//	dir, err := store.ProfileDir(flagDataDir, flagProfile) // "" → defaults
//	db, err := store.Open(ctx, dir)                          // key file
//	db, err := store.Open(ctx, dir, store.WithPassphrase(p)) // or passphrase
//	defer db.Close()
//
// The directory holds canopy.db (with its -wal and -shm files), lock and,
// for a profile without passphrase, key. Open fails with
//
//   - ErrProfileInUse when another process has the profile open (an
//     exclusive flock on the lock file, released by the kernel if that
//     process dies, so there are no stale locks);
//   - ErrWrongPassphrase / ErrPassphraseRequired; nothing is written before
//     the key is verified, so a failed attempt changes nothing;
//   - ErrKeyFile when the key file is missing, belongs to another profile
//     or is readable by group or others (it must be mode 0600);
//   - ErrSchemaTooNew (a *SchemaTooNewError) when a newer canopy wrote the
//     database: "store: database schema version N is newer than this binary
//     supports (M)";
//   - ErrCorrupt when the file is not a canopy database, is truncated, or
//     SQLite finds it damaged. WithIntegrityCheck makes Open read the whole
//     file; DB.CheckIntegrity does the same (plus the search index) later.
//
// OpenMemory gives a throw-away in-memory database with the same code and
// schema, for tests of other packages.
//
// # Interfaces
//
// *DB implements one small context-first interface per concern:
// IdentityStore, KeyPackageStore, ContactStore, GroupStore, MessageStore,
// OutboxStore, ProposalStore, InvitationStore; Store bundles what the
// messenger needs. Depend on the narrowest interface you use. The relay
// tables have no interface of their own here: the relay's storage contract
// is p2p's (p2p.TopicLog, Mailbox, KeyPackageCache, LeaseStore), which
// package relay implements on *DB's relay methods. A
// missing row is ErrNotFound; a malformed argument ErrInvalid; every error
// starts with "store: ". *DB is safe for concurrent use.
//
// # State transitions are atomic
//
// GroupStore.CommitEpoch writes, in one SQLite transaction: the group's new
// state (a new epoch, or the same epoch after encrypting or decrypting a
// message advanced its secret tree) with the engine's description of the
// Commit that created it (GroupStore.CanonicalChain gives the retained
// canonical states back with it after a restart), the messages of that step, the
// messages it opened but holds back for their sender's order
// (HeldMessages), outbox and pending-proposal changes, the KeyPackage a
// Welcome consumed (and the pending invitation that Welcome came in), and
// pruning of old epoch states.
// After a crash all of it is there or none of it. The engine must therefore
// persist before it acts on a new state: commit the transition, then publish
// or acknowledge.
//
// States are kept per (group, epoch, commit hash) so that the ordering
// module can roll back to an earlier epoch and switch branch; the compact
// canonical history of (epoch, commit hash) is kept forever. Messages are
// unique per (group, message id): a re-sent or replayed message is ignored,
// which is how duplicates from fork healing disappear.
//
// # Search
//
// MessageStore.Search finds messages that contain every word typed, as a
// substring, across all groups or one, newest first: "ali" finds "alice",
// 本語 finds 日本語. Words of three characters or more are looked up in an
// FTS5 index with the trigram tokenizer (case and diacritics folded);
// shorter ones (common in CJK) are matched by LIKE (ASCII case folded).
// What the user types is never passed to FTS5 or LIKE as syntax: words are
// quoted or escaped and ANDed; "a phrase" is supported, and a trailing *
// is accepted (every word is a prefix anyway). The index is written in
// batches, not per inserted message (searchindex.go): a write that leaves
// 256 messages unindexed indexes them, and Search indexes the rest first,
// so results are always complete.
//
// # Secrets at rest
//
// Private keys, epoch states (and their Commits' descriptions), outbox payloads, the private parts of our own
// proposals and pending invitations (whole: Welcome, inviter, group name,
// ratchet tree) are sealed with XChaCha20-Poly1305 under a random data key;
// the associated data names table, column and row key, so a sealed value
// moved to another row fails to open. The data key is wrapped with a key
// derived from the passphrase by argon2id (salt and parameters recorded in
// the meta table, DefaultKDFParams unless WithKDFParams) or with the key
// file. ChangePassphrase re-wraps it. secure_delete is on: consumed
// KeyPackages and pruned epoch states are overwritten, not just unlinked.
//
// Not sealed: message text (the search index needs it), metadata such as the
// names of joined groups, contacts and timestamps, and relay ciphertexts
// (already encrypted end to end). The files are created 0600 in a 0700
// directory; full-disk encryption protects the rest.
//
// # Durability
//
// WAL with synchronous=FULL: a transaction that returned is on disk even
// after a power cut; a killed process never leaves a half-written
// transition (TestCrashSafety checks this with SIGKILL). Writes go through
// one connection (BEGIN IMMEDIATE); reads use a pool of read-only
// connections and do not block writes.
//
// # Schema changes
//
// Migrations are embedded files migrations/NNNN_name.sql starting with
// "-- version: N"; each is applied in its own transaction with its
// schema_version row. Add a new file for every change; never edit a
// released one.
//
// # Relays
//
// AppendFrame appends ciphertext frames per topic, idempotently by SHA-256,
// with a seq cursor that only grows (AUTOINCREMENT) and an optional epoch.
// Members keep their groups' frames this way too, to serve catch-up: with
// the state that opened or protected them, in CommitEpoch's transaction
// (EpochTransition.Frames), after asking LoggedFrames which of them an
// earlier run logged. Topic keeps (KeepTopic, KeptTopics) record which
// topics peers asked a relay to keep, until when. Deposit holds mail for
// offline peers (PeekMail and AckMail or AckMailByHash for at-least-once
// delivery, or TakeMail), with expiry. PublishKeyPackages and TakeKeyPackage hand each one-time
// KeyPackage out once (and remember it until its expiry, so a re-upload is
// not handed out again), then the owner's last-resort package.
//
// The store holds no quota policy: every write takes its bounds as an
// argument (FrameQuota, MailQuota, KeyPackageQuota, made of Limits of
// items and bytes) and enforces them in its transaction. A peer over its
// share is refused with ErrQuotaExceeded; a topic over its bound loses its
// oldest frames, and over the total bound the largest topic does. Expiry
// bounds are exclusive: an item whose time is at or before now is over,
// as in p2p.
package store
