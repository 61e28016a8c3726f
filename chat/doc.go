// Package chat is canopy's messenger engine: profile, contacts, groups,
// invitations, the outbox and the application message format, tying mls,
// ordering, p2p and store together behind a typed event stream (DESIGN.md
// §6). The TUI and `canopy headless` are its two front ends; both program
// against Client (api.go).
//
// # Using the engine
//
//	e, err := chat.Open(ctx, chat.Config{ProfileDir: dir, Nick: "alice", MDNS: true})
//	defer e.Close()
//	for ev := range e.Events() { … }            // MessageEvent, GroupEvent, …
//	res, err := e.Run(ctx, group, "/create team "+card)
//	_, err = e.Execute(ctx, res.Group, "hello") // plain text is sent
//
// Open creates the profile on first use (MLS signature key, basic
// credential naming the libp2p peer id, libp2p key, all sealed by the
// store), starts the p2p node (listen addresses, mDNS, --bootstrap relays),
// keeps a pool of KeyPackages (served over /canopy/keypackage/1, uploaded to
// relays) and starts every stored group. Execute runs the slash commands of
// Commands, the one registry that help and dispatch share; Run returns a
// Result that also names the group a command created or joined. Close
// stops everything and closes Events.
//
// # Concurrency
//
// Engine is safe for concurrent use. Each group is owned by one goroutine,
// its loop (group.go), in the style of pubsub's processLoop: the MLS states
// (held by the group's ordering.Machine), queued changes, held messages and
// receipts are touched only there; everything else posts closures to it.
// What front ends read (GroupView, members) is a snapshot the loop
// publishes under a mutex. Engine-wide state (contacts cache, invitations,
// nearby peers) is guarded by Engine.mu. Events are queued without bound
// so that a slow front end never stalls a group (events.go).
//
// # Messages
//
// The application payload inside MLS is a versioned, extensible struct
// (appmsg.go: id, kind, sender time, reply-to, body, extensions), parsed
// strictly and fuzzed (FuzzAppMessage); unknown kinds and versions are
// ignored, never fatal. Own messages go pending (stored) → sent (published)
// → delivered (a member's receipt, kind receipt, batched). A message that
// cannot be sent yet because proposals are pending (RFC 9420 §12.4) is
// held until the designated member's Commit arrives. Members send their
// contact card inside the group (kind profile, authenticated by MLS and
// checked against the sender's leaf) to learn nicks and addresses.
//
// Each sender's messages are shown in the order it sent them (MLS epoch,
// then generation; senderorder.go): a later one waits up to 2 s while an
// earlier one is provably missing, then is shown with Placement AfterGap;
// one that arrives after later ones were shown is shown at once, Late.
// A gap that outlasts the hold proves a frame lost on the way (gossip
// loses one now and then), so it starts a catch-up from the topic's peers
// (at most every 5 s; of every retained epoch at most every 30 s, else of
// what they stored since the last sync), which brings the missing message
// back, Late. When 32 messages wait behind gaps, a catch-up of what the
// peers stored since the last sync from them starts at once (at most
// every second): the missing frames must come back while their senders'
// ratchets still hold the keys, which a member keeps for 1,000 skipped
// generations (maxSkippedKeys; MLS's default is 128). Senders stay under
// gossip's per-neighbour flood limit themselves (p2p paces Publish at 80%
// of it), so that an honest burst is slowed down, visibly ("sending N…"),
// rather than dropped by every receiver.
// Under load the loop takes the queued frames in batches (batch.go): the
// gossip validator's verdict travels with each frame so it is
// authenticated once, and a batch's frames are logged in the transaction
// that writes what they opened (an own message's frame, in the one that
// writes the state protecting it). Receipts go out at most once a
// second per group. NetStatus.Sending and CatchingUp tell front ends when
// the engine is behind (backpressure.go); both queues are bounded in bytes.
//
// # Files
//
// /send PATH seals a file into the profile's blob store (package blob) and
// sends a file message (kind 8) whose body is the blob announcement; the
// row keeps the announcement, key included, so the key goes when the
// message goes. Receivers fetch over /canopy/blob/1 from the sender,
// members and relays (transfers.go), under a per-group auto-fetch limit,
// and report TransferEvents; /transfers lists, fetches, pauses, resumes
// and cancels, /open hands a saved file to the system's opener. File
// transfer needs a ProfileDir (ciphertext in blobs/, received files in
// downloads/ or Config.DownloadDir).
//
// # Groups and ordering
//
// Before that, every frame passes the frame gate (framegate.go): it is
// accepted by gossip (and so forwarded), written to the frame log and
// given to the fork choice only once it authenticates against the
// retained state of its epoch (sender data or membership tag); frames
// that cannot be judged yet are held in bounded memory, never stored,
// and judged again when the states change. Frames are at most 64 KiB for
// application messages and proposals.
//
// Every frame of a group goes through its ordering.Machine
// (forkchoice.go): the fork choice decides which Commit of an epoch is
// canonical, buffers what cannot be read yet and returns decisions that
// the loop executes (decisions.go): persist the new tip
// (store.CommitEpoch, one transaction with the messages it decrypted),
// deliver, re-send own messages whose epoch lost (same id: receivers
// de-duplicate), re-commit own changes whose Commit lost, send a Welcome
// only once its Commit settled, announce claims to members
// (/canopy/inbox/1), rejoin by external commit, catch up (/canopy/sync/1
// from members and relays). Membership changes are batched: /create with
// several members is one Commit and one Welcome, and invites, kicks and
// updates issued within Config.BatchDelay are committed together. A member
// leaves with a Remove proposal that another member commits (designated by
// leaf order, with staggered timers). Protocol decisions use epochs and
// generations, never clocks; sender times are only displayed.
//
// Key rotation: /update, and automatically after Config.RotateAfter or
// Config.RotateMessages own messages, commits a fresh path. Group settings
// (name, disappearing-messages retention) travel in an application
// GroupContext extension (ext.go), so every member agrees on them.
//
// # Invitations
//
// invite.go: the inviter fetches the invitee's KeyPackage (from the
// invitee, else a relay), checks it against the pasted card's fingerprint,
// commits the Add and, once the Commit settled, delivers the Welcome
// directly or into relay mailboxes (else retried when the invitee
// connects). The invitee opens and validates it at once (fetching the
// ratchet tree over /canopy/tree/1 when the Welcome leaves it out), keeps
// it as a pending invitation (sealed in the store), and /accept joins (then catches up), while
// /decline discards it and asks the inviter to remove the leaf. A Welcome
// finds its KeyPackage by reference; handed-out one-time KeyPackages are
// bounded per requester and in total (identity.go), and pending
// invitations per inviter and in total (invitecap.go).
//
// /dm (direct.go) is an invitation into a two-member group flagged direct
// in its settings extension: each side names it after the other, every
// member rejects a Commit that adds a third member or changes the flag,
// and a second /dm to the same key reopens it.
//
// Welcomes travel in a signed envelope (welcome.go): the adder's leaf
// signs it, so the inviter shown is never a relay's word, and for a
// joiner that may already be in the group the adder adds continuity
// proofs. A Welcome into a group the member is in continues that group
// only with a proof that verifies against a state of the member's own
// canonical chain; anything else (a stranger's group with the same id)
// is a separate invitation with a plain-words warning. Hellos, declines
// and claims are signed control messages (control.go); a relay's sender
// field authenticates nothing.
//
// # Post-quantum groups
//
// `/create NAME --pq` puts a group on the hybrid X-Wing suite 0x004D
// (pq.go), and `/reinit --pq` moves a suite-1 group there by an MLS ReInit
// (reinit.go): a new group with the same members, the old one closed.
// Profiles keep KeyPackages of both suites; GroupView.CipherSuite says
// which suite a group is on.
//
// # Identity and verification
//
// card.go: a contact card carries the peer id, addresses, the signature-key
// fingerprint and the nick; its compact form "canopy1:…" is parsed
// strictly (FuzzCard). Safety numbers are derived from both fingerprints,
// independently of order. Contacts (contacts.go) remember the key last seen
// per peer; a change is flagged loudly (NoticeWarning, Member.KeyChanged)
// until the user verifies again. Identity is the key: a member whose leaf
// key is not the contact's known key is KeyChanged in that group, and
// joining a group does not overwrite a known contact's key.
//
// # Headless
//
// The JSON event stream of `canopy headless` is the front end's own: it is
// encoded and documented in headless_json.go in package main.
//
// # Logging
//
// The engine logs with log/slog to ProfileDir/canopy.log ($CANOPY_LOG sets
// the level); secrets (keys, epoch secrets, message text) are never
// logged.
package chat
