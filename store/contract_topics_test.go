package store

// The contract of what a relay and a member keep for others: topic
// frame logs and their quotas, mailboxes, the KeyPackage cache.

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func u64p(v uint64) *uint64 { return &v }

func testTopicLog(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	var seqs []int64
	for i := range 5 {
		var ep *uint64
		if i != 2 {
			ep = u64p(uint64(i))
		}
		seq, ins, err := s.AppendFrame(ctx, Frame{Topic: "t1", Peer: "p1", Data: []byte(fmt.Sprint("frame", i)), Epoch: ep, ReceivedAt: t0.Add(time.Duration(i) * time.Hour)}, FrameQuota{})
		ok(t, err)
		if !ins || (len(seqs) > 0 && seq <= seqs[len(seqs)-1]) {
			t.Fatalf("append %d: seq %d inserted %v", i, seq, ins)
		}
		seqs = append(seqs, seq)
	}
	// Idempotent on content.
	seq, ins, err := s.AppendFrame(ctx, Frame{Topic: "t1", Peer: "p2", Data: []byte("frame1")}, FrameQuota{})
	ok(t, err)
	if ins || seq != seqs[1] {
		t.Fatalf("re-append: seq %d inserted %v", seq, ins)
	}
	// The same bytes on another topic are another frame.
	must[int64](t)(func() (int64, error) {
		s, _, e := s.AppendFrame(ctx, Frame{Topic: "t2", Data: []byte("frame1")}, FrameQuota{})
		return s, e
	}())
	fs := must[[]Frame](t)(s.Frames(ctx, "t1", FrameQuery{AfterSeq: seqs[0], Limit: 2}))
	if len(fs) != 2 || fs[0].Seq != seqs[1] || string(fs[1].Data) != "frame2" || fs[1].Epoch != nil || *fs[0].Epoch != 1 ||
		fs[0].Peer != "p1" || len(fs[0].Hash) != 32 || !fs[0].ReceivedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("frames: %+v", fs)
	}
	fs = must[[]Frame](t)(s.Frames(ctx, "t1", FrameQuery{MinEpoch: u64p(3)}))
	if len(fs) != 3 || string(fs[0].Data) != "frame2" { // unknown epoch included
		t.Fatalf("since epoch: %+v", fs)
	}
	u := must[Usage](t)(s.TopicUsage(ctx, "t1"))
	if u.Items != 5 || u.Bytes != 30 {
		t.Fatalf("usage %+v", u)
	}
	if n := must[int64](t)(s.PruneFrames(ctx, t0.Add(150*time.Minute))); n != 3 {
		t.Fatalf("pruned %d", n)
	}
	if u = must[Usage](t)(s.TopicUsage(ctx, "t1")); u.Items != 2 || u.Bytes != 12 {
		t.Fatalf("usage after prune %+v", u)
	}
	if u = must[Usage](t)(s.PeerUsage(ctx, "p1")); u.Items != 2 {
		t.Fatalf("peer usage after prune %+v", u)
	}
	// Cursors never go back, even when the newest frame was deleted.
	must[int64](t)(s.PruneFrames(ctx, t0.Add(100*time.Hour)))
	seq, _, err = s.AppendFrame(ctx, Frame{Topic: "t1", Data: []byte("new")}, FrameQuota{})
	ok(t, err)
	if seq <= seqs[4] {
		t.Fatalf("seq reused: %d <= %d", seq, seqs[4])
	}
	_, _, err = s.AppendFrame(ctx, Frame{Topic: "", Data: []byte("x")}, FrameQuota{})
	wantErr(t, err, ErrInvalid)
	_, _, err = s.AppendFrame(ctx, Frame{Topic: "t"}, FrameQuota{})
	wantErr(t, err, ErrInvalid)

	ok(t, s.KeepTopic(ctx, TopicKeep{Topic: "t1", Peer: "a", Until: t0.Add(time.Hour)}))
	ok(t, s.KeepTopic(ctx, TopicKeep{Topic: "t1", Peer: "b", Until: t0.Add(3 * time.Hour)}))
	ok(t, s.KeepTopic(ctx, TopicKeep{Topic: "t1", Peer: "a", Until: t0.Add(2 * time.Hour)}))
	if k := must[[]TopicKeep](t)(s.KeptTopics(ctx, t0.Add(90*time.Minute))); len(k) != 2 {
		t.Fatalf("kept: %+v", k)
	}
	if n := must[int64](t)(s.PruneTopicKeeps(ctx, t0.Add(150*time.Minute))); n != 1 {
		t.Fatalf("pruned keeps %d", n)
	}
	if k := must[[]TopicKeep](t)(s.KeptTopics(ctx, t0)); len(k) != 1 || k[0].Peer != "b" {
		t.Fatalf("kept: %+v", k)
	}
	// A keep ending at now is over (the same bound as p2p.LeaseStore):
	// not listed, and pruned.
	if k := must[[]TopicKeep](t)(s.KeptTopics(ctx, t0.Add(3*time.Hour-time.Nanosecond))); len(k) != 1 {
		t.Fatalf("kept just before the end: %+v", k)
	}
	if k := must[[]TopicKeep](t)(s.KeptTopics(ctx, t0.Add(3*time.Hour))); len(k) != 0 {
		t.Fatalf("kept at the end: %+v", k)
	}
	if n := must[int64](t)(s.PruneTopicKeeps(ctx, t0.Add(3*time.Hour))); n != 1 {
		t.Fatalf("pruned keeps ending at now: %d", n)
	}
}

func testTopicQuotas(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	q := FrameQuota{MaxFrameBytes: 100, PerTopic: Limit{Bytes: 250}, PerPeer: Limit{Bytes: 200}}
	_, _, err := s.AppendFrame(ctx, Frame{Topic: "t", Peer: "p", Data: make([]byte, 101)}, q)
	wantErr(t, err, ErrQuotaExceeded)
	frame := func(peer string, i int) Frame {
		d := bytes.Repeat([]byte{byte(i)}, 100)
		return Frame{Topic: "t", Peer: peer, Data: d}
	}
	for i := range 2 {
		_, _, err := s.AppendFrame(ctx, frame("p", i), q)
		ok(t, err)
	}
	// Peer p has 200 bytes stored: refused, nothing stored.
	_, _, err = s.AppendFrame(ctx, frame("p", 2), q)
	wantErr(t, err, ErrQuotaExceeded)
	// Another peer: the topic (250 bytes) evicts its oldest frame.
	_, _, err = s.AppendFrame(ctx, frame("q", 3), q)
	ok(t, err)
	fs := must[[]Frame](t)(s.Frames(ctx, "t", FrameQuery{}))
	if len(fs) != 2 || fs[0].Data[0] != 1 || fs[1].Data[0] != 3 {
		t.Fatalf("after eviction: %d frames", len(fs))
	}
	if u := must[Usage](t)(s.PeerUsage(ctx, "p")); u.Bytes != 100 {
		t.Fatalf("peer usage after eviction: %+v", u)
	}
	// p has room again.
	_, _, err = s.AppendFrame(ctx, frame("p", 4), q)
	ok(t, err)
}

func testMailbox(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	q := MailQuota{MaxItemBytes: 10, PerRecipient: Limit{Items: 3, Bytes: 25}, SenderTotal: Limit{Bytes: 20}}
	id1 := must[int64](t)(s.Deposit(ctx, MailItem{Recipient: "r", Sender: "a", Data: []byte("welcome1"), DepositedAt: t0, ExpiresAt: t0.Add(time.Hour)}, q))
	if id := must[int64](t)(s.Deposit(ctx, MailItem{Recipient: "r", Sender: "a", Data: []byte("welcome1"), DepositedAt: t0}, q)); id != id1 {
		t.Fatal("deposit not idempotent")
	}
	_, err := s.Deposit(ctx, MailItem{Recipient: "r", Data: make([]byte, 11)}, q)
	wantErr(t, err, ErrQuotaExceeded)
	must[int64](t)(s.Deposit(ctx, MailItem{Recipient: "r", Sender: "a", Data: []byte("welcome2"), DepositedAt: t0}, q))
	// sender a: 16 bytes waiting, 20 allowed.
	_, err = s.Deposit(ctx, MailItem{Recipient: "r2", Sender: "a", Data: []byte("welcome3")}, q)
	wantErr(t, err, ErrQuotaExceeded)
	// recipient r: 16 bytes, 25 allowed.
	_, err = s.Deposit(ctx, MailItem{Recipient: "r", Sender: "b", Data: []byte("1234567890")}, q)
	wantErr(t, err, ErrQuotaExceeded)
	must[int64](t)(s.Deposit(ctx, MailItem{Recipient: "r", Sender: "b", Data: []byte("x"), DepositedAt: t0, ExpiresAt: t0.Add(5 * time.Hour)}, q))
	_, err = s.Deposit(ctx, MailItem{Recipient: "r", Sender: "b", Data: []byte("y")}, q)
	wantErr(t, err, ErrQuotaExceeded) // 3 items
	if u := must[Usage](t)(s.MailboxUsage(ctx, "r")); u.Items != 3 || u.Bytes != 17 {
		t.Fatalf("usage %+v", u)
	}
	items := must[[]MailItem](t)(s.PeekMail(ctx, "r", t0, 0))
	if len(items) != 3 || string(items[0].Data) != "welcome1" || items[0].Sender != "a" || !items[0].ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("peek: %+v", items)
	}
	ok(t, s.AckMail(ctx, "r", items[0].ID))
	ok(t, s.AckMail(ctx, "someone-else", items[1].ID)) // not theirs: no effect
	// welcome2 was deposited without an expiry: it never expires; x did
	// at 5h.
	if items := must[[]MailItem](t)(s.PeekMail(ctx, "r", t0.Add(100*time.Hour), 10)); len(items) != 1 || string(items[0].Data) != "welcome2" || !items[0].ExpiresAt.IsZero() {
		t.Fatalf("peek much later: %+v", items)
	}
	taken := must[[]MailItem](t)(s.TakeMail(ctx, "r", t0, 1))
	if len(taken) != 1 || string(taken[0].Data) != "welcome2" {
		t.Fatalf("take: %+v", taken)
	}
	// Expired items are not handed out, and are pruned.
	if items = must[[]MailItem](t)(s.TakeMail(ctx, "r", t0.Add(6*time.Hour), 10)); len(items) != 0 {
		t.Fatalf("expired handed out: %+v", items)
	}
	if n := must[int64](t)(s.PruneMail(ctx, t0.Add(6*time.Hour))); n != 1 {
		t.Fatalf("pruned %d", n)
	}
	if u := must[Usage](t)(s.MailboxUsage(ctx, "r")); u.Items != 0 {
		t.Fatalf("usage after prune %+v", u)
	}
}

func testKeyPackageCache(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	q := KeyPackageQuota{MaxBytes: 100, PerOwner: Limit{Items: 4}}
	kp := func(ref string, suite uint16, lr bool) CachedKeyPackage {
		return CachedKeyPackage{Ref: []byte(ref), CipherSuite: suite, Data: []byte("kp-" + ref), LastResort: lr, PublishedAt: t0}
	}
	ok(t, s.PublishKeyPackages(ctx, "alice", q, kp("a1", 1, false), kp("a2", 1, false), kp("a3", 2, false), kp("lr1", 1, true)))
	ok(t, s.PublishKeyPackages(ctx, "alice", q, kp("a1", 1, false))) // known: ignored, no quota hit
	wantErr(t, s.PublishKeyPackages(ctx, "alice", q, kp("a4", 1, false)), ErrQuotaExceeded)
	wantErr(t, s.PublishKeyPackages(ctx, "bob", q, CachedKeyPackage{Ref: []byte("b"), Data: make([]byte, 101)}), ErrQuotaExceeded)
	wantErr(t, s.PublishKeyPackages(ctx, "bob", q, CachedKeyPackage{Owner: "alice", Ref: []byte("b"), Data: []byte("x")}), ErrInvalid)
	if o, l, err := s.CountKeyPackages(ctx, "alice", t0); o != 3 || l != 1 || err != nil {
		t.Fatalf("count %d %d %v", o, l, err)
	}
	got := must[CachedKeyPackage](t)(s.TakeKeyPackage(ctx, "alice", 1, t0))
	if string(got.Ref) != "a1" || got.Owner != "alice" || got.LastResort {
		t.Fatalf("take: %+v", got)
	}
	got = must[CachedKeyPackage](t)(s.TakeKeyPackage(ctx, "alice", 1, t0))
	if string(got.Ref) != "a2" {
		t.Fatalf("take 2: %+v", got)
	}
	// One-time packages of suite 1 are used up: the last-resort one is
	// handed out, again and again.
	for range 3 {
		if got = must[CachedKeyPackage](t)(s.TakeKeyPackage(ctx, "alice", 1, t0)); !got.LastResort {
			t.Fatalf("want last resort: %+v", got)
		}
	}
	if got = must[CachedKeyPackage](t)(s.TakeKeyPackage(ctx, "alice", 0, t0)); string(got.Ref) != "a3" {
		t.Fatalf("any suite: %+v", got)
	}
	_, err := s.TakeKeyPackage(ctx, "alice", 7, t0)
	wantErr(t, err, ErrNotFound)
	// A new last-resort package replaces the old one of its suite.
	ok(t, s.PublishKeyPackages(ctx, "alice", q, kp("lr2", 1, true)))
	if o, l, _ := s.CountKeyPackages(ctx, "alice", t0); o != 0 || l != 1 {
		t.Fatalf("count after replace %d %d", o, l)
	}
	// Expiry.
	exp := kp("e1", 1, false)
	exp.ExpiresAt = t0.Add(time.Hour)
	ok(t, s.PublishKeyPackages(ctx, "carol", q, exp))
	_, err = s.TakeKeyPackage(ctx, "carol", 1, t0.Add(2*time.Hour))
	wantErr(t, err, ErrNotFound)
	if n := must[int64](t)(s.PruneKeyPackages(ctx, t0.Add(2*time.Hour))); n != 1 {
		t.Fatalf("pruned %d", n)
	}
}
