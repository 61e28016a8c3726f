package tui

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/canopy-chat/canopy/chat"
)

// fakeClient is a deterministic chat.Client for the tests: fixed data with
// wide characters, an event channel the test feeds, and a record of every
// call that changes something. Safe for concurrent use (the pty test runs
// the real program against it).
type fakeClient struct {
	mu          sync.Mutex
	events      chan chat.Event
	self        chat.Self
	groups      []chat.GroupView
	members     map[chat.GroupID][]chat.Member
	history     map[chat.GroupID][]chat.Message
	invitations []chat.Invitation
	status      chat.NetStatus

	executed    []execCall
	marked      []chat.GroupID
	typed       []chat.GroupID // Typing calls
	historyReqs []historyReq
	// execute, when set, decides the result of Execute.
	execute func(group chat.GroupID, line string) (string, error)
	// executed is signalled on every Execute (for the pty test)
	execCh chan execCall
}

type execCall struct {
	Group chat.GroupID
	Line  string
}

type historyReq struct {
	Group  chat.GroupID
	Before chat.MessageID
	Limit  int
}

// t0 is "now" in the tests: Tuesday 3 March 2026, 10:30 UTC.
var t0 = time.Date(2026, 3, 3, 10, 30, 0, 0, time.UTC)

func at(hhmm string) time.Time {
	var h, m int
	fmt.Sscanf(hhmm, "%d:%d", &h, &m)
	return time.Date(2026, 3, 3, h, m, 0, 0, time.UTC)
}

const (
	fpAlice = "3F2A 91C4 0B7E 55D1 C0DE 7A11 9E4B 2F60"
	fpBob   = "B0B0 1111 2222 3333 4444 5555 6666 7777"
	fpCarol = "CA20 9999 8888 7777 6666 5555 4444 3333"
	fpLi    = "4C49 0000 1111 2222 3333 4444 5555 6666"
)

func newFake() *fakeClient {
	f := &fakeClient{
		events: make(chan chat.Event, 64),
		execCh: make(chan execCall, 64),
		self: chat.Self{
			Nick:        "alice",
			PeerID:      "12D3KooWAlice",
			Fingerprint: fpAlice,
			Card:        "canopy1qalice8f3k2j5h7g9d0s8a7f6g5h4j3k2l1zxcvbnm0987654321qwertyuiop",
		},
		groups: []chat.GroupView{
			{ID: "g1", Name: "general", Epoch: 12, Members: 4, LastAt: at("10:05")},
			{ID: "g2", Name: "日本語チーム", Epoch: 3, Members: 3, Unread: 2, Mentions: 1, LastAt: at("09:40")},
			{ID: "g3", Name: "ops 🚀 launch crew", Epoch: 41, Members: 2, LastAt: at("08:00")},
		},
		members: map[chat.GroupID][]chat.Member{
			"g1": {
				{Nick: "alice", Fingerprint: fpAlice, Self: true, Verified: true},
				{Nick: "bob", Fingerprint: fpBob, Verified: true},
				{Nick: "carol", Fingerprint: fpCarol},
				{Nick: "李小龙", Fingerprint: fpLi},
			},
			"g2": {
				{Nick: "alice", Fingerprint: fpAlice, Self: true},
				{Nick: "bob", Fingerprint: fpBob, Verified: true},
				{Nick: "李小龙", Fingerprint: fpLi},
			},
			"g3": {
				{Nick: "alice", Fingerprint: fpAlice, Self: true},
				{Nick: "carol", Fingerprint: fpCarol},
			},
		},
		history: map[chat.GroupID][]chat.Message{
			"g1": {
				{ID: "m0", Group: "g1", Kind: chat.KindText, Sender: "carol", SenderFP: fpCarol, Body: "night all", SentAt: time.Date(2026, 3, 2, 23, 50, 0, 0, time.UTC), Epoch: 11},
				{ID: "m1", Group: "g1", Kind: chat.KindText, Sender: "bob", SenderFP: fpBob, Body: "good morning! 🌅", SentAt: at("09:58"), Epoch: 12},
				{ID: "m2", Group: "g1", Kind: chat.KindText, Sender: "carol", SenderFP: fpCarol, Body: "こんにちは、世界。これは長いメッセージで、折り返しが必要です。", SentAt: at("09:59"), Epoch: 12},
				{ID: "m3", Group: "g1", Kind: chat.KindSystem, Body: "李小龙 joined the group (added by bob)", SentAt: at("10:00"), Epoch: 12},
				{ID: "m4", Group: "g1", Kind: chat.KindText, Sender: "alice", SenderFP: fpAlice, Own: true, Body: "hi all, the new relay is up", SentAt: at("10:01"), Epoch: 12, Delivery: chat.Delivered},
				{ID: "m5", Group: "g1", Kind: chat.KindText, Sender: "李小龙", SenderFP: fpLi, Body: "你好！@alice 看看这个", SentAt: at("10:02"), Epoch: 12, Mentions: true},
				{ID: "m6", Group: "g1", Kind: chat.KindText, Sender: "bob", SenderFP: fpBob, Body: "nice, thanks", ReplyTo: "m4", SentAt: at("10:03"), Epoch: 12},
				{ID: "m6e", Group: "g1", Kind: chat.KindEdit, Sender: "bob", SenderFP: fpBob, Body: "nice, thanks!", ReplyTo: "m6", SentAt: at("10:03"), Epoch: 12},
				{ID: "m6r", Group: "g1", Kind: chat.KindReaction, Sender: "carol", SenderFP: fpCarol, Body: "👍", ReplyTo: "m4", SentAt: at("10:03"), Epoch: 12},
				{ID: "m7", Group: "g1", Kind: chat.KindText, Sender: "alice", SenderFP: fpAlice, Own: true, Body: "sending…\nsecond line", SentAt: at("10:05"), Epoch: 12, Delivery: chat.Pending},
			},
			"g2": {
				{ID: "n1", Group: "g2", Kind: chat.KindText, Sender: "bob", SenderFP: fpBob, Body: "ラーメン食べに行こう", SentAt: at("09:30"), Epoch: 3},
				{ID: "n2", Group: "g2", Kind: chat.KindText, Sender: "李小龙", SenderFP: fpLi, Body: "@alice 来吗？", SentAt: at("09:40"), Epoch: 3, Mentions: true},
			},
			"g3": {},
		},
		invitations: []chat.Invitation{
			{ID: "inv-7f3a", GroupName: "design crew", From: "dave", At: at("08:15")},
		},
		status: chat.NetStatus{Peers: 4, Relays: 2, RelaysConfigured: 2, Reachability: "private"},
	}
	return f
}

func (f *fakeClient) Events() <-chan chat.Event { return f.events }

func (f *fakeClient) Self() chat.Self {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.self
}

func (f *fakeClient) Groups() []chat.GroupView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chat.GroupView(nil), f.groups...)
}

func (f *fakeClient) Members(g chat.GroupID) []chat.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chat.Member(nil), f.members[g]...)
}

// History pages backwards through f.history the way the engine does.
func (f *fakeClient) History(g chat.GroupID, before chat.MessageID, limit int) []chat.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.historyReqs = append(f.historyReqs, historyReq{g, before, limit})
	all := f.history[g]
	end := len(all)
	if before != "" {
		end = 0
		for i, m := range all {
			if m.ID == before {
				end = i
				break
			}
		}
	}
	start := max(0, end-limit)
	return append([]chat.Message(nil), all[start:end]...)
}

func (f *fakeClient) Invitations() []chat.Invitation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chat.Invitation(nil), f.invitations...)
}

func (f *fakeClient) Status() chat.NetStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeClient) Execute(ctx context.Context, g chat.GroupID, line string) (string, error) {
	f.mu.Lock()
	f.executed = append(f.executed, execCall{g, line})
	exec := f.execute
	f.mu.Unlock()
	select {
	case f.execCh <- execCall{g, line}:
	default:
	}
	if exec != nil {
		return exec(g, line)
	}
	if strings.HasPrefix(line, "/") {
		return "ok: " + line, nil
	}
	return "", nil
}

func (f *fakeClient) MarkRead(g chat.GroupID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.marked = append(f.marked, g)
	for i := range f.groups {
		if f.groups[i].ID == g {
			f.groups[i].Unread, f.groups[i].Mentions = 0, 0
		}
	}
}

func (f *fakeClient) Typing(_ context.Context, g chat.GroupID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.typed = append(f.typed, g)
	return nil
}

func (f *fakeClient) typingCalls() []chat.GroupID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chat.GroupID(nil), f.typed...)
}

func (f *fakeClient) calls() []execCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]execCall(nil), f.executed...)
}

func (f *fakeClient) markedGroups() []chat.GroupID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chat.GroupID(nil), f.marked...)
}

var _ chat.Client = (*fakeClient)(nil)
