// Package ordering decides, the same way on every peer, which of several
// competing MLS Commits for one epoch is canonical, and tells the chat engine
// when to roll back, re-apply, re-send or rejoin (DESIGN.md §3).
//
// It is pure: no I/O, no clock, no randomness; inputs are events, outputs are
// decisions. It is not built yet (issue 5).
package ordering
