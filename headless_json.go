package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/canopy-chat/canopy/chat"
)

// Headless mode.
//
// `canopy headless [--profile NAME] [--data DIR] [--nick NICK]
// [--passphrase-file FILE] [--listen MADDR,…] [--bootstrap MADDR,…]
// [--no-mdns] [--group NAME|ID] [--timeout 2m]` runs the engine without a
// screen. Each line on stdin is what a user would type: a slash command
// (/create NAME [CARD|NICK…], /invite, /accept [ID], /decline [ID], /kick,
// /leave, /members, /verify NICK [confirm], /nick, /update, /search,
// /retention, /send PATH, /transfers, /open N, /card, /groups, /invitations, /help, /quit) or text, sent to
// the selected group. Headless adds /switch NAME|ID to select the group;
// /create and /accept select theirs. Lines run one after the other; end of
// input quits.
//
// Stdout carries one JSON object per line. Every object
// has a "type"; times are RFC 3339 with nanoseconds; ids are lower-case hex.
// Fields may be added in later versions (readers must ignore unknown
// fields and unknown types); none will be removed or change meaning.
//
//	{"type":"ready","self":SELF,"addrs":[MULTIADDR…]}
//	    once, first: the engine runs. SELF = {"nick","peer_id",
//	    "fingerprint","card"}; addrs are full multiaddrs (…/p2p/<id>).
//	{"type":"result","line":N,"input":"…","ok":true,"text":"…","group":"ID"}
//	{"type":"result","line":N,"input":"…","ok":false,"error":"…"}
//	    the outcome of input line N (1-based). "group" is set by commands
//	    that create, join or select a group.
//	{"type":"message","message":MESSAGE}
//	    a message arrived or one of ours was created. MESSAGE = {"id",
//	    "group","kind","sender","sender_fp","own","body","reply_to",
//	    "sent_at","epoch","delivery","mentions","placement"}; kind is
//	    text, edit, delete, reaction, receipt, typing, file or system;
//	    delivery (own messages) is pending, sent, delivered or failed.
//	    Each sender's messages come in the order it sent them; placement
//	    (omitted when so) is "after-gap" for one shown after a 2 s hold
//	    while an earlier one of its sender is missing, "late" for one
//	    that arrived after later ones of its sender were shown.
//	{"type":"delivery","group":"ID","id":"MSGID","delivery":"sent"}
//	{"type":"group","group":GROUP}
//	    GROUP = {"id","name","epoch","members","unread","mentions",
//	    "last_at","left","direct","peer","cipher_suite","pq"}; direct and
//	    peer (omitted otherwise) mark a direct conversation (/dm) and name
//	    the other member, as name does then; cipher_suite is the MLS suite
//	    number (1, or 77 = 0x004D), pq is true on 0x004D.
//	{"type":"members","group":"ID","members":[MEMBER…]}
//	    MEMBER = {"nick","fingerprint","self","verified","key_changed"}
//	{"type":"invitation","invitation":{"id","group_name","from","at","warning","direct"}}
//	    direct (omitted when false): a request for a direct conversation
//	    from the inviter, whose name group_name then is.
//	    warning (omitted when empty): what is not as it seems, in plain
//	    words (an inviter using a known name with another key, a group
//	    that claims the id of one you are in without continuing it).
//	{"type":"status","status":{"peers","relays","reachability","addrs",
//	    "nearby":[PEER…],"sending","catching_up"}}   PEER = {"nick",
//	    "peer_id","card"}; sending and catching_up count own frames not
//	    yet handed to the network and received frames not yet shown (0
//	    when caught up); while either is not zero the status is repeated
//	    every 0.5 s.
//	{"type":"peer","peer":PEER,"online":true}
//	{"type":"notice","group":"ID","level":"info|warning|error","text":"…"}
//	{"type":"transfer","transfer":{"group","message","file":FILE,"own",
//	    "status","done","total","path","error"}}
//	    a file transfer started, progressed (at most 4 a second) or
//	    changed status: offered (over the group's auto-fetch limit; /transfers
//	    get N), queued, fetching, paused, done (path: where it was saved),
//	    failed (error: why), canceled, sharing (one's own file). done and
//	    total count verified ciphertext bytes. FILE = {"id","name","size",
//	    "media_type","width","height"}; messages of kind "file" carry it
//	    as "file" too.
//	{"type":"bye"}
//	    last: the engine stopped.

// jsonSelf is chat.Self in the headless stream.
type jsonSelf struct {
	Nick        string `json:"nick"`
	PeerID      string `json:"peer_id"`
	Fingerprint string `json:"fingerprint"`
	Card        string `json:"card"`
}

type jsonMessage struct {
	ID       chat.MessageID `json:"id"`
	Group    chat.GroupID   `json:"group"`
	Kind     chat.Kind      `json:"kind"`
	Sender   string         `json:"sender"`
	SenderFP string         `json:"sender_fp,omitempty"`
	Own      bool           `json:"own"`
	Body     string         `json:"body"`
	ReplyTo  chat.MessageID `json:"reply_to,omitempty"`
	SentAt   time.Time      `json:"sent_at"`
	Epoch    uint64         `json:"epoch"`
	Delivery string         `json:"delivery,omitempty"`
	Mentions bool           `json:"mentions,omitempty"`
	File     *jsonFile      `json:"file,omitempty"`
	// Placement: "after-gap" or "late" when shown out of its sender's
	// order (omitted when in order).
	Placement string `json:"placement,omitempty"`
}

type jsonFile struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
}

type jsonTransfer struct {
	Group   chat.GroupID   `json:"group"`
	Message chat.MessageID `json:"message"`
	File    jsonFile       `json:"file"`
	Own     bool           `json:"own"`
	Status  string         `json:"status"`
	Done    int64          `json:"done"`
	Total   int64          `json:"total"`
	Path    string         `json:"path,omitempty"`
	Error   string         `json:"error,omitempty"`
}

type jsonGroup struct {
	ID       chat.GroupID `json:"id"`
	Name     string       `json:"name"`
	Epoch    uint64       `json:"epoch"`
	Members  int          `json:"members"`
	Unread   int          `json:"unread"`
	Mentions int          `json:"mentions"`
	LastAt   time.Time    `json:"last_at"`
	Left     bool         `json:"left"`
	Direct   bool         `json:"direct,omitempty"`
	Peer     string       `json:"peer,omitempty"`
	Suite    uint16       `json:"cipher_suite"`
	PQ       bool         `json:"pq"`
}

type jsonMember struct {
	Nick        string `json:"nick"`
	Fingerprint string `json:"fingerprint"`
	Self        bool   `json:"self"`
	Verified    bool   `json:"verified"`
	KeyChanged  bool   `json:"key_changed"`
}

type jsonPeer struct {
	Nick   string `json:"nick"`
	PeerID string `json:"peer_id"`
	Card   string `json:"card"`
}

type jsonStatus struct {
	Peers        int        `json:"peers"`
	Relays       int        `json:"relays"`
	Reachability string     `json:"reachability"`
	Addrs        []string   `json:"addrs"`
	Nearby       []jsonPeer `json:"nearby"`
	// Sending and CatchingUp: the backlog (chat.NetStatus), 0 when none.
	Sending    int `json:"sending"`
	CatchingUp int `json:"catching_up"`
}

func toJSONMessage(m chat.Message) jsonMessage {
	j := jsonMessage{
		ID: m.ID, Group: m.Group, Kind: m.Kind, Sender: m.Sender, SenderFP: m.SenderFP, Own: m.Own,
		Body: m.Body, ReplyTo: m.ReplyTo, SentAt: m.SentAt, Epoch: m.Epoch, Mentions: m.Mentions,
	}
	if m.Own {
		j.Delivery = m.Delivery.String()
	}
	if m.File != nil {
		f := jsonFile(*m.File)
		j.File = &f
	}
	if m.Placement != chat.InOrder {
		j.Placement = m.Placement.String()
	}
	return j
}

func toJSONGroup(g chat.GroupView) jsonGroup {
	return jsonGroup{ID: g.ID, Name: g.Name, Epoch: g.Epoch, Members: g.Members, Unread: g.Unread, Mentions: g.Mentions, LastAt: g.LastAt, Left: g.Left, Direct: g.Direct, Peer: g.Peer,
		Suite: g.CipherSuite, PQ: g.PostQuantum()}
}

func toJSONPeer(p chat.Peer) jsonPeer { return jsonPeer(p) }

func levelName(l chat.NoticeLevel) string {
	switch l {
	case chat.NoticeWarning:
		return "warning"
	case chat.NoticeError:
		return "error"
	}
	return "info"
}

// eventJSON encodes an event as one line of the headless stream (without
// the newline).
func eventJSON(ev chat.Event) ([]byte, error) {
	var v any
	switch ev := ev.(type) {
	case chat.MessageEvent:
		v = struct {
			Type    string      `json:"type"`
			Message jsonMessage `json:"message"`
		}{"message", toJSONMessage(ev.Message)}
	case chat.DeliveryEvent:
		v = struct {
			Type     string         `json:"type"`
			Group    chat.GroupID   `json:"group"`
			ID       chat.MessageID `json:"id"`
			Delivery string         `json:"delivery"`
		}{"delivery", ev.Group, ev.ID, ev.Delivery.String()}
	case chat.GroupEvent:
		v = struct {
			Type  string    `json:"type"`
			Group jsonGroup `json:"group"`
		}{"group", toJSONGroup(ev.Group)}
	case chat.MembersEvent:
		ms := make([]jsonMember, 0, len(ev.Members))
		for _, m := range ev.Members {
			ms = append(ms, jsonMember(m))
		}
		v = struct {
			Type    string       `json:"type"`
			Group   chat.GroupID `json:"group"`
			Members []jsonMember `json:"members"`
		}{"members", ev.Group, ms}
	case chat.InvitationEvent:
		type jsonInvitation struct {
			ID        string    `json:"id"`
			GroupName string    `json:"group_name"`
			From      string    `json:"from"`
			At        time.Time `json:"at"`
			Warning   string    `json:"warning,omitempty"`
			Direct    bool      `json:"direct,omitempty"`
		}
		v = struct {
			Type       string         `json:"type"`
			Invitation jsonInvitation `json:"invitation"`
		}{Type: "invitation", Invitation: jsonInvitation(ev.Invitation)}
	case chat.StatusEvent:
		v = struct {
			Type   string     `json:"type"`
			Status jsonStatus `json:"status"`
		}{"status", toJSONStatus(ev.Status)}
	case chat.PeerEvent:
		v = struct {
			Type   string   `json:"type"`
			Peer   jsonPeer `json:"peer"`
			Online bool     `json:"online"`
		}{"peer", toJSONPeer(ev.Peer), ev.Online}
	case chat.TransferEvent:
		t := ev.Transfer
		v = struct {
			Type     string       `json:"type"`
			Transfer jsonTransfer `json:"transfer"`
		}{"transfer", jsonTransfer{Group: t.Group, Message: t.Message, File: jsonFile(t.File), Own: t.Own,
			Status: t.Status.String(), Done: t.Done, Total: t.Total, Path: t.Path, Error: t.Err}}
	case chat.NoticeEvent:
		v = struct {
			Type  string       `json:"type"`
			Group chat.GroupID `json:"group,omitempty"`
			Level string       `json:"level"`
			Text  string       `json:"text"`
		}{"notice", ev.Group, levelName(ev.Level), ev.Text}
	default:
		return nil, fmt.Errorf("headless: no JSON form for %T", ev)
	}
	return json.Marshal(v)
}

func toJSONStatus(s chat.NetStatus) jsonStatus {
	j := jsonStatus{Peers: s.Peers, Relays: s.Relays, Reachability: s.Reachability, Addrs: s.Addrs, Nearby: []jsonPeer{},
		Sending: s.Sending, CatchingUp: s.CatchingUp}
	if j.Addrs == nil {
		j.Addrs = []string{}
	}
	for _, p := range s.Nearby {
		j.Nearby = append(j.Nearby, toJSONPeer(p))
	}
	return j
}

// readyJSON is the first line of the headless stream.
func readyJSON(e *chat.Engine) ([]byte, error) {
	s := e.Self()
	addrs := e.Status().Addrs
	if addrs == nil {
		addrs = []string{}
	}
	return json.Marshal(struct {
		Type  string   `json:"type"`
		Self  jsonSelf `json:"self"`
		Addrs []string `json:"addrs"`
	}{"ready", jsonSelf(s), addrs})
}

// resultJSON encodes the outcome of input line n.
func resultJSON(n int, input string, r chat.Result, err error) ([]byte, error) {
	type res struct {
		Type  string       `json:"type"`
		Line  int          `json:"line"`
		Input string       `json:"input"`
		OK    bool         `json:"ok"`
		Text  string       `json:"text,omitempty"`
		Group chat.GroupID `json:"group,omitempty"`
		Error string       `json:"error,omitempty"`
	}
	v := res{Type: "result", Line: n, Input: input, OK: err == nil, Text: r.Text, Group: r.Group}
	if err != nil {
		v.Error = err.Error()
	}
	return json.Marshal(v)
}
