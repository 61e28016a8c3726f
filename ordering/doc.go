// Package ordering is canopy's serverless fork choice (DESIGN.md §3): it
// decides, the same way on every member, which of several competing MLS
// Commits of an epoch is canonical, and tells the chat engine when to roll
// back, re-apply, re-send, re-propose or rejoin. README.md beside this file
// gives the rule, the retention policy, the convergence argument and the
// attacks considered.
//
// It is pure: no I/O, no clock, no randomness. Group state is opaque (the
// type parameter S, a *mls.Group in canopy); the engine supplies a
// Processor that runs MLS on states the machine holds, passes time in, and
// executes the Decisions the machine returns.
//
// # Driving a Machine
//
// One Machine per group, owned by the group's goroutine (a Machine is not
// safe for concurrent use):
//
//	m := ordering.New(cfg, state, epoch, rootKey, roster, now)
//	// joiners: m.AdoptHistory(historySentWithTheWelcome)
//	// after a restart, from the oldest stored canonical state:
//	//   m.AdoptHistory(storedHistory); m.Restore(next, key, info, now) for each later one
//
//	ds := m.Receive(proc, msg, epoch, contentType, now) // every group message
//	ds  = m.Tick(proc, now)                             // every few seconds
//	ds  = m.OwnCommit(proc, msg, next, info, intentIDs, hasWelcome, now)
//	ds  = m.Sent(id, msg, now)                          // after Protect with Current()
//	ds  = m.Intend(intent, now)                         // /invite, /kick, /update
//	ds  = m.ClaimReceived(proc, claim, now)             // a peer's verified claim
//	ds  = m.Rejoined(proc, result, now)                 // after a Rejoin or a late Welcome
//	ds  = m.RejoinRefused(now)                          // Rejoin impossible: not a member there
//
// and execute every returned Decision in order: Advanced and Switched
// (persist Current()), Deliver, Released (delete the stored state),
// Resend and ResendSince (re-encrypt own messages with the same ids),
// Repropose (commit the changes again), SendWelcome and DropWelcome,
// Announce (publish a Claim with a GroupInfo), Rejoin (external commit from
// the claim's GroupInfo), CatchUp (sync messages since an epoch).
// Discarded is informational.
//
// Own Commits and messages are always made from Current(). A Commit is
// applied at once (OwnCommit); its Welcome is held until SendWelcome.
// A Resend or ResendSince that names a state (At) is encrypted with
// StateAt(At) instead of Current(). Before joining from a Welcome into a
// group it already has, the engine asks CheckWelcome with the adder's
// verified identity and the history the adder sent along: nil means take
// it; ErrNotForward means keep it and ask again later; any other error
// (ErrNoSharedHistory, ErrAdderNotMember, ErrAdderRemoved,
// ErrUnknownCommitter, in a *WelcomeError) means it does not continue this
// member's group and is at most a new invitation for the user to accept.
// Claim.Signer must be the claim sender's verified identity: the machine
// trusts it (TrustClaim) and ignores claims of members its chain removed
// for branches it barred (README.md "Removed members").
package ordering
