// Package chat is canopy's messenger engine: profile, contacts, groups,
// invitations, the outbox and the application message format, tying mls,
// ordering, p2p and store together behind a typed event stream (DESIGN.md §6).
//
// It is not built yet (issue 8).
package chat
