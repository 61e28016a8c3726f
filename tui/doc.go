// Package tui is canopy's Bubble Tea terminal interface. It talks only to
// package chat (DESIGN.md §7).
//
// It is not built yet (issue 8).
package tui
