package chat

import (
	"context"
	"time"
)

// This file is the surface the front ends (tui, headless mode) program
// against. The engine implements Client; tests of the front ends use a fake.

// Client is what a front end needs from the engine. Its methods are safe to
// call from any goroutine; the engine's own goroutines own the state.
type Client interface {
	// Events delivers engine events in order. The channel is closed when
	// the engine stops.
	Events() <-chan Event
	// Self describes the local profile.
	Self() Self
	// Groups lists the groups this profile is in, most recently active first.
	Groups() []GroupView
	// Members lists a group's members with their verification state.
	Members(group GroupID) []Member
	// History returns up to limit messages of a group before the given
	// message id (zero: the newest), oldest first.
	History(group GroupID, before MessageID, limit int) []Message
	// Invitations lists pending invitations.
	Invitations() []Invitation
	// Status is the network status shown in the status bar.
	Status() NetStatus
	// Execute runs one input line typed in the context of a group (which
	// may be empty when no group is selected): a slash command from
	// Commands, or plain text, which is sent as a message. The result is a
	// short text for the user (empty for plain messages).
	Execute(ctx context.Context, group GroupID, line string) (string, error)
	// MarkRead clears a group's unread and mention counters.
	MarkRead(group GroupID)
	// Typing tells a group's members that the user is typing (a KindTyping
	// message, never stored). Best effort; front ends throttle it (the TUI
	// sends at most one every few seconds per group).
	Typing(ctx context.Context, group GroupID) error
}

// GroupID identifies a group (the MLS group id, hex encoded).
type GroupID string

// MessageID identifies an application message; re-sends keep it.
type MessageID string

// Self is the local profile.
type Self struct {
	Nick        string
	PeerID      string
	Fingerprint string // signature-key fingerprint, grouped for reading aloud
	Card        string // the compact contact card to paste
}

// GroupView is a group as a list shows it.
type GroupView struct {
	ID       GroupID
	Name     string
	Epoch    uint64
	Members  int
	Unread   int
	Mentions int
	LastAt   time.Time
	// Left is set when this profile is no longer a member (it left or was
	// removed); the history stays readable.
	Left bool
	// RemovedBy is set with Left when another member removed this profile
	// (empty after /leave): that member's name as this profile knows it,
	// or "someone" when the Commit is not at hand.
	RemovedBy string
	// Direct marks a two-person conversation (/dm); Name is then the
	// other member's name, as Peer, and PeerKeyChanged flags that their
	// key is not the one known for them.
	Direct         bool
	Peer           string
	PeerKeyChanged bool
	// CipherSuite is the group's MLS cipher suite (0x004D: post-quantum,
	// see PostQuantum).
	CipherSuite uint16
}

// Member is one member of a group.
type Member struct {
	Nick        string
	Fingerprint string
	Self        bool
	Verified    bool
	// KeyChanged is set when this member's signature key is not the key
	// known for that contact (identity is the key, not the nick or peer
	// id), or the contact's key changed since the user last verified it:
	// front ends flag it loudly.
	KeyChanged bool
}

// Kind is the kind of an application message.
type Kind string

const (
	KindText     Kind = "text"
	KindEdit     Kind = "edit"
	KindDelete   Kind = "delete"
	KindReaction Kind = "reaction"
	KindReceipt  Kind = "receipt"
	KindTyping   Kind = "typing"
	// KindSystem marks timeline lines the engine writes itself (joins,
	// leaves, forks healed); they are never sent.
	KindSystem Kind = "system"
)

// Delivery is the delivery state of one's own message.
type Delivery int

const (
	Pending   Delivery = iota // written locally, not yet published
	Sent                      // published to the group topic
	Delivered                 // settled on the canonical branch and seen by a member
	Failed                    // could not be sent; will be retried
)

func (d Delivery) String() string {
	switch d {
	case Pending:
		return "pending"
	case Sent:
		return "sent"
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Message is one timeline entry.
type Message struct {
	ID       MessageID
	Group    GroupID
	Kind     Kind
	Sender   string // nick as the reader knows it
	SenderFP string // sender's fingerprint: the stable key for nick colours
	Own      bool
	Body     string
	ReplyTo  MessageID
	// SentAt is the sender's clock, for display only; protocol decisions
	// never use it.
	SentAt   time.Time
	Epoch    uint64
	Delivery Delivery
	Mentions bool // mentions the local user
	// File describes the file of a KindFile message (nil otherwise).
	File *FileInfo
	// Placement says where a received message stands in its sender's
	// order (InOrder unless something was missing or late).
	Placement Placement
}

// Placement is where a received message stands in its sender's order:
// members show each sender's messages in the order it sent them (MLS
// epoch, then generation), holding a later one up to 2 s while an
// earlier one is provably missing.
type Placement uint8

const (
	InOrder  Placement = iota
	AfterGap           // shown after the hold although an earlier message of its sender is missing
	Late               // arrived after later messages of its sender were shown
)

func (p Placement) String() string {
	switch p {
	case AfterGap:
		return "after-gap"
	case Late:
		return "late"
	}
	return "in-order"
}

// Invitation is a pending invitation to a group.
type Invitation struct {
	ID        string
	GroupName string
	From      string
	At        time.Time
	// Warning, when set, says in plain words what is not as it seems (an
	// inviter whose key is not the one known for that name, a group that
	// claims the id of one the user is in without continuing it): front
	// ends show it with the invitation.
	Warning string
	// Direct: the inviter wants to message the user directly (/dm);
	// GroupName is then the inviter's name.
	Direct bool
}

// NetStatus is the status bar's view of the network.
type NetStatus struct {
	Peers  int
	Relays int // configured relays currently connected
	// RelaysConfigured is how many relays the profile uses (--bootstrap);
	// front ends hide the relay count when there are none.
	RelaysConfigured int
	Reachability     string // "public", "private", "unknown"
	Addrs            []string
	// Nearby lists the canopy peers currently connected (LAN peers found
	// by mDNS among them) that introduced themselves: /invite accepts
	// their nick.
	Nearby []Peer
	// Sending counts own frames accepted but not yet handed to the
	// network, CatchingUp received frames not yet shown, across groups:
	// front ends show them when not zero ("sending 40…", "catching up
	// 1,200"). The engine re-announces its status while either is not
	// zero.
	Sending, CatchingUp int
}

// Peer is a canopy peer the engine is connected to.
type Peer struct {
	Nick   string
	PeerID string
	Card   string // compact contact card
}

// Event is something the engine reports to a front end.
type Event interface{ event() }

type (
	// MessageEvent: a message arrived, or one of ours was created.
	MessageEvent struct{ Message Message }
	// DeliveryEvent: the delivery state of our own message changed.
	DeliveryEvent struct {
		Group    GroupID
		ID       MessageID
		Delivery Delivery
	}
	// GroupEvent: a group was created, joined, renamed or changed epoch or
	// membership; front ends refresh their view of it.
	GroupEvent struct{ Group GroupView }
	// MembersEvent: a group's membership or verification state changed.
	MembersEvent struct {
		Group   GroupID
		Members []Member
	}
	// InvitationEvent: a new invitation is waiting for /accept.
	InvitationEvent struct{ Invitation Invitation }
	// StatusEvent: the network status changed.
	StatusEvent struct{ Status NetStatus }
	// NoticeEvent: a one-line notice for the user (errors in background
	// work, forks healed, key changes), optionally tied to a group.
	NoticeEvent struct {
		Group GroupID
		Text  string
		Level NoticeLevel
	}
	// PeerEvent: a canopy peer connected (Online) or disconnected.
	PeerEvent struct {
		Peer   Peer
		Online bool
	}
)

// NoticeLevel grades a NoticeEvent.
type NoticeLevel int

const (
	NoticeInfo NoticeLevel = iota
	NoticeWarning
	NoticeError
)

func (MessageEvent) event()    {}
func (DeliveryEvent) event()   {}
func (GroupEvent) event()      {}
func (MembersEvent) event()    {}
func (InvitationEvent) event() {}
func (StatusEvent) event()     {}
func (NoticeEvent) event()     {}
func (PeerEvent) event()       {}

// Command is one slash command of the engine's registry (Commands): its
// name, argument synopsis and summary for help screens and completion, and,
// unexported, how Run dispatches it.
type Command struct {
	Name    string // without the slash
	Args    string // argument synopsis
	Summary string

	aliases []string // other names Run accepts
	inGroup bool     // runs in the selected group: Run refuses it without one
	run     cmdHandler
}
