// Package p2ptest holds the contract tests of p2p's relay storage
// interfaces (p2p.TopicLog, p2p.Mailbox, p2p.KeyPackageCache,
// p2p.LeaseStore): the one contract every implementation meets, p2p's
// in-memory stores and package relay's SQLite ones alike. Each function
// takes fresh, empty stores and checks the behaviour relays rely on; run
// all of them against a new implementation:
//
//	func TestSQLiteTopicLog(t *testing.T) { p2ptest.TopicLog(t, newSQLiteTopicLog(t)) }
//
// Partition cuts real nodes apart, for tests of packages above p2p, which
// name no libp2p type.
package p2ptest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newID(t *testing.T) (peer.ID, error) {
	t.Helper()
	k, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return p2p.PeerIDOf(k)
}

// TopicLog checks a TopicLog: sequence numbers, idempotent appends, quota
// eviction (per topic, and from the largest topic for the total),
// cursor/epoch/limit queries and pruning. Most calls pass 64 bytes per
// topic and 96 in all; the last ones count entries instead.
func TopicLog(t *testing.T, l p2p.TopicLog) {
	ctx := context.Background()
	t0 := time.Unix(1e9, 0)
	entry := func(i int) p2p.LogEntry {
		data := []byte(fmt.Sprintf("frame %02d", i)) // 8 bytes each
		return p2p.LogEntry{ID: p2p.IDOf(data), Epoch: uint64(i / 2), Data: data, Received: t0.Add(time.Duration(i) * time.Minute)}
	}
	q := p2p.LogQuota{PerTopic: p2p.Quota{Bytes: 8 * 8}, Total: p2p.Quota{Bytes: 12 * 8}}
	var seqs []uint64
	for i := 0; i < 10; i++ {
		seq, err := l.Append(ctx, "t", entry(i), q)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("sequence numbers not increasing: %v", seqs)
		}
	}
	// Idempotent append (entry 9 is still stored).
	if seq, err := l.Append(ctx, "t", entry(9), q); err != nil || seq != seqs[9] {
		t.Fatalf("re-append: %d %v, want %d", seq, err, seqs[9])
	}
	// The quota (8 entries) evicted the two oldest.
	all, err := l.List(ctx, "t", p2p.LogQuery{Limit: 100})
	if err != nil || len(all) != 8 || string(all[0].Data) != "frame 02" {
		t.Fatalf("after eviction: %d entries, %v", len(all), err)
	}
	got, _ := l.List(ctx, "t", p2p.LogQuery{After: seqs[4], MinEpoch: 3, Limit: 2})
	if len(got) != 2 || string(got[0].Data) != "frame 06" || string(got[1].Data) != "frame 07" {
		t.Fatalf("List(after, epoch, limit) = %v", got)
	}
	if got, _ := l.List(ctx, "other", p2p.LogQuery{Limit: 10}); len(got) != 0 {
		t.Fatal("topics not separated")
	}
	if _, err := l.Append(ctx, "t", p2p.LogEntry{ID: p2p.IDOf(make([]byte, 100)), Data: make([]byte, 100)}, q); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("entry larger than the quota: %v", err)
	}
	if err := l.Prune(ctx, t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ = l.List(ctx, "t", p2p.LogQuery{Limit: 100})
	if len(got) != 5 || string(got[0].Data) != "frame 05" {
		t.Fatalf("after prune: %v", got)
	}
	// Sequence numbers keep increasing after pruning.
	if seq, _ := l.Append(ctx, "t", entry(10), q); seq <= seqs[9] {
		t.Fatalf("sequence reused: %d", seq)
	}

	// The total quota evicts from the largest topic: "t" holds 6 entries
	// (48 bytes); "quiet" gets 2, "flood" 20 within a total of 12 entries.
	for i := 20; i < 22; i++ {
		if _, err := l.Append(ctx, "quiet", entry(i), q); err != nil {
			t.Fatal(err)
		}
	}
	for i := 30; i < 50; i++ {
		if _, err := l.Append(ctx, "flood", entry(i), q); err != nil {
			t.Fatal(err)
		}
	}
	count := func(topic string) int {
		es, err := l.List(ctx, topic, p2p.LogQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	if a, b, c := count("t"), count("quiet"), count("flood"); b != 2 || a+b+c > 12 || c < 3 {
		t.Fatalf("after the total quota: t %d, quiet %d, flood %d entries", a, b, c)
	}
	if _, err := l.Append(ctx, "quiet", p2p.LogEntry{ID: p2p.IDOf(make([]byte, 200)), Data: make([]byte, 200)}, q); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("entry larger than the total: %v", err)
	}

	// Count quotas evict like byte quotas: 3 entries per topic, 5 in all
	// (the other topics are pruned first).
	if err := l.Prune(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	qc := p2p.LogQuota{PerTopic: p2p.Quota{Count: 3}, Total: p2p.Quota{Count: 5}}
	for i := 60; i < 65; i++ {
		if _, err := l.Append(ctx, "counted", entry(i), qc); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := l.List(ctx, "counted", p2p.LogQuery{Limit: 100}); len(got) != 3 || string(got[0].Data) != "frame 62" {
		t.Fatalf("a topic of at most 3 entries holds %d", len(got))
	}
	for i := 70; i < 73; i++ {
		if _, err := l.Append(ctx, "second", entry(i), qc); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := count("counted"), count("second"); a+b > 5 || b != 3 {
		t.Fatalf("after the total count quota: %d and %d entries", a, b)
	}
	// An entry is named by its content: any other id is a bad request.
	bad := entry(80)
	bad.ID[0] ^= 1
	if _, err := l.Append(ctx, "second", bad, qc); !errors.Is(err, p2p.ErrBadRequest) {
		t.Fatalf("entry whose id is not its content hash: %v", err)
	}
}

// Mailbox checks a Mailbox: idempotent deposits, per-recipient, per-sender
// (items and bytes) and total quotas, fetch without delete, delete, expiry
// and pruning.
func Mailbox(t *testing.T, m p2p.Mailbox) {
	ctx := context.Background()
	now := time.Unix(1e9, 0)
	alice, _ := newID(t)
	bob, _ := newID(t)
	carol, _ := newID(t)
	item := func(from string, data string, ttl time.Duration) p2p.MailItem {
		f := alice
		if from == "carol" {
			f = carol
		}
		return p2p.MailItem{ID: p2p.IDOf([]byte(data)), Recipient: bob, From: f, Data: []byte(data), Deposited: now, Expires: now.Add(ttl)}
	}
	q := p2p.MailQuota{PerRecipient: p2p.Quota{Count: 3}, PerSender: p2p.Quota{Count: 2}}
	for _, d := range []string{"w1", "w2"} {
		if err := m.Deposit(ctx, item("alice", d, time.Hour), q); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Deposit(ctx, item("alice", "w1", time.Hour), q); err != nil {
		t.Fatalf("duplicate deposit: %v", err)
	}
	bad := item("alice", "w9", time.Hour)
	bad.ID = p2p.IDOf([]byte("w8"))
	if err := m.Deposit(ctx, bad, q); !errors.Is(err, p2p.ErrBadRequest) {
		t.Fatalf("mail whose id is not its content hash: %v", err)
	}
	if err := m.Deposit(ctx, item("alice", "w3", time.Hour), q); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("sender share: %v", err)
	}
	if err := m.Deposit(ctx, item("carol", "c1", time.Minute), q); err != nil {
		t.Fatal(err)
	}
	if err := m.Deposit(ctx, item("carol", "c2", time.Hour), q); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("recipient quota: %v", err)
	}
	got, err := m.Fetch(ctx, bob, now, 10)
	if err != nil || len(got) != 3 || string(got[0].Data) != "w1" {
		t.Fatalf("Fetch: %v %v", got, err)
	}
	if got, _ := m.Fetch(ctx, alice, now, 10); len(got) != 0 {
		t.Fatal("mail of another recipient returned")
	}
	// Fetch does not delete; Delete does.
	if err := m.Delete(ctx, bob, []p2p.MessageID{got[0].ID, p2p.IDOf([]byte("unknown"))}); err != nil {
		t.Fatal(err)
	}
	later := now.Add(2 * time.Minute)
	got, _ = m.Fetch(ctx, bob, later, 10)
	if len(got) != 1 || string(got[0].Data) != "w2" {
		t.Fatalf("after delete and expiry: %v", got)
	}
	if err := m.Prune(ctx, later); err != nil {
		t.Fatal(err)
	}
	if err := m.Deposit(ctx, item("carol", "c2", time.Hour), q); err != nil {
		t.Fatalf("deposit after prune: %v", err)
	}

	// The byte share of one sender, and the bound on all mailboxes: what
	// bob holds (w2, c2: 4 bytes) counts against the total.
	dave, _ := newID(t)
	to := func(r peer.ID, data string) p2p.MailItem {
		return p2p.MailItem{ID: p2p.IDOf([]byte(data)), Recipient: r, From: carol, Data: []byte(data), Deposited: later, Expires: later.Add(time.Hour)}
	}
	qb := p2p.MailQuota{PerSender: p2p.Quota{Bytes: 8}, Total: p2p.Quota{Count: 5, Bytes: 14}}
	if err := m.Deposit(ctx, to(dave, "12345678"), qb); err != nil {
		t.Fatal(err)
	}
	if err := m.Deposit(ctx, to(dave, "9"), qb); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("sender's byte share: %v", err)
	}
	if err := m.Deposit(ctx, to(alice, "abc"), qb); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("total bytes (4+8+3 > 14): %v", err)
	}
	if err := m.Deposit(ctx, to(alice, "ab"), qb); err != nil {
		t.Fatalf("within the total: %v", err)
	}
	// Deleting frees room in the total.
	if err := m.Delete(ctx, dave, []p2p.MessageID{p2p.IDOf([]byte("12345678"))}); err != nil {
		t.Fatal(err)
	}
	if err := m.Deposit(ctx, to(alice, "abcdef"), qb); err != nil {
		t.Fatalf("after delete: %v", err)
	}
	// What one sender has waiting in all mailboxes (carol: c2, ab, abcdef).
	eve, _ := newID(t)
	qs := p2p.MailQuota{SenderTotal: p2p.Quota{Count: 5, Bytes: 12}}
	if err := m.Deposit(ctx, to(eve, "xyz"), qs); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("sender's total (10+3 > 12): %v", err)
	}
	if err := m.Deposit(ctx, to(eve, "xy"), qs); err != nil {
		t.Fatalf("within the sender's total: %v", err)
	}
}

// KeyPackageCache checks a KeyPackageCache: one-time packages handed out
// once and never re-accepted, last-resort replacement and reuse per cipher
// suite, suite selection, quotas, expiry and pruning.
func KeyPackageCache(t *testing.T, c p2p.KeyPackageCache) {
	ctx := context.Background()
	now := time.Unix(1e9, 0)
	bob, _ := newID(t)
	q := p2p.Quota{Count: 5, Bytes: 100}
	kp := func(s string, suite uint16, lr bool) p2p.KeyPackage {
		return p2p.KeyPackage{Data: []byte(s), CipherSuite: suite, LastResort: lr}
	}
	n, err := c.Put(ctx, bob, []p2p.KeyPackage{kp("a", 1, false), kp("b", 1, false), kp("a", 1, false), kp("x", 2, false), kp("lr1", 1, true)}, now.Add(time.Hour), q)
	if err != nil || n != 4 {
		t.Fatalf("Put: %d %v", n, err)
	}
	// Over quota: nothing stored.
	if _, err := c.Put(ctx, bob, []p2p.KeyPackage{kp("c", 1, false), kp("d", 1, false)}, now.Add(time.Hour), q); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("quota: %v", err)
	}
	take := func(suite uint16) string {
		k, err := c.Take(ctx, bob, suite, now)
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%s/%d/%v", k.Data, k.CipherSuite, k.LastResort)
	}
	if got := take(2); got != "x/2/false" {
		t.Fatalf("suite 2: %s", got)
	}
	if a, b := take(0), take(1); a != "a/1/false" || b != "b/1/false" {
		t.Fatalf("one-time packages: %s %s", a, b)
	}
	if got := take(2); !strings.Contains(got, "not found") {
		t.Fatalf("suite 2 exhausted: %s", got)
	}
	// A handed-out package cannot be uploaded again; a new last-resort
	// package replaces the old one of its suite.
	if n, err := c.Put(ctx, bob, []p2p.KeyPackage{kp("a", 1, false), kp("lr2", 1, true)}, now.Add(time.Hour), q); err != nil || n != 1 {
		t.Fatalf("re-upload: %d %v", n, err)
	}
	if a, b := take(1), take(0); a != "lr2/1/true" || b != "lr2/1/true" {
		t.Fatalf("last resort: %s %s", a, b)
	}
	// LastResort serves the last-resort package and leaves one-time
	// packages alone.
	if _, err := c.Put(ctx, bob, []p2p.KeyPackage{kp("f", 1, false)}, now.Add(time.Hour), q); err != nil {
		t.Fatal(err)
	}
	if k, err := c.LastResort(ctx, bob, 0, now); err != nil || string(k.Data) != "lr2" || !k.LastResort {
		t.Fatalf("LastResort: %q %v", k.Data, err)
	}
	if _, err := c.LastResort(ctx, bob, 2, now); !errors.Is(err, p2p.ErrNotFound) {
		t.Fatalf("LastResort of a suite without one: %v", err)
	}
	if got := take(1); got != "f/1/false" {
		t.Fatalf("one-time package after LastResort: %s", got)
	}
	// Expired packages are not handed out.
	if _, err := c.Put(ctx, bob, []p2p.KeyPackage{kp("e", 1, false)}, now.Add(time.Minute), q); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := c.Take(ctx, bob, 0, now); !errors.Is(err, p2p.ErrNotFound) {
		t.Fatalf("expired: %v", err)
	}
	if err := c.Prune(ctx, now); err != nil {
		t.Fatal(err)
	}
	stranger, _ := newID(t)
	if _, err := c.Take(ctx, stranger, 0, now); !errors.Is(err, p2p.ErrNotFound) {
		t.Fatalf("unknown owner: %v", err)
	}
	// The byte quota bounds what an owner holds, across uploads.
	big := strings.Repeat("x", 60)
	if _, err := c.Put(ctx, stranger, []p2p.KeyPackage{kp(big, 1, false)}, now.Add(time.Hour), q); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, stranger, []p2p.KeyPackage{kp(big[:41]+"y", 1, false)}, now.Add(time.Hour), q); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("bytes over two uploads: %v", err)
	}
	// Under a quota lowered below what an owner holds, re-uploading what
	// is held changes nothing and is fine; anything new is refused.
	low := p2p.Quota{Count: 1, Bytes: 50}
	if n, err := c.Put(ctx, stranger, []p2p.KeyPackage{kp(big, 1, false)}, now.Add(time.Hour), low); err != nil || n != 1 {
		t.Fatalf("re-upload under a lowered quota: %d %v", n, err)
	}
	if _, err := c.Put(ctx, stranger, []p2p.KeyPackage{kp("z", 1, false)}, now.Add(time.Hour), low); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("new package under a lowered quota: %v", err)
	}
}

// LastResortRefresh checks that re-uploading the same last-resort package
// of a KeyPackageCache extends its expiry and counts it once, and that of
// several last-resort packages of one suite in one upload the last wins.
func LastResortRefresh(t *testing.T, c p2p.KeyPackageCache) {
	ctx := context.Background()
	q := p2p.Quota{Count: 5, Bytes: 100}
	bob, _ := newID(t)
	t0 := time.Unix(1e9, 0)
	lr := []p2p.KeyPackage{{Data: []byte("lr"), LastResort: true}}
	if n, err := c.Put(ctx, bob, lr, t0.Add(time.Hour), q); err != nil || n != 1 {
		t.Fatalf("Put: %d %v", n, err)
	}
	if n, err := c.Put(ctx, bob, append(lr, p2p.KeyPackage{Data: []byte("one")}), t0.Add(3*time.Hour), q); err != nil || n != 2 {
		t.Fatalf("re-upload: %d %v", n, err)
	}
	later := t0.Add(2 * time.Hour)
	if err := c.Prune(ctx, later); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one/false", "lr/true", "lr/true"} {
		kp, err := c.Take(ctx, bob, 0, later)
		if got := fmt.Sprintf("%s/%v", kp.Data, kp.LastResort); err != nil || got != want {
			t.Fatalf("Take: %s %v, want %s", got, err, want)
		}
	}
	// Several last-resort packages of one suite in one upload: the last wins.
	two := []p2p.KeyPackage{{Data: []byte("lr-a"), LastResort: true}, {Data: []byte("lr-b"), LastResort: true}}
	if n, err := c.Put(ctx, bob, two, t0.Add(3*time.Hour), q); err != nil || n != 1 {
		t.Fatalf("two last-resort packages: %d %v", n, err)
	}
	if kp, err := c.Take(ctx, bob, 0, later); err != nil || string(kp.Data) != "lr-b" {
		t.Fatalf("Take: %q %v", kp.Data, err)
	}
}

// LeaseStore checks a LeaseStore: put and replace, listing of unexpired
// leases in (topic, peer) order with their peers and times intact, delete,
// and pruning of leases that ended at or before a time.
func LeaseStore(t *testing.T, s p2p.LeaseStore) {
	ctx := context.Background()
	t0 := time.Unix(1e9, 0)
	alice, _ := newID(t)
	bob, _ := newID(t)
	if alice.String() > bob.String() {
		alice, bob = bob, alice
	}
	t1, t2 := p2p.TopicName([]byte("one")), p2p.TopicName([]byte("two"))
	if t1 > t2 {
		t1, t2 = t2, t1
	}
	put := func(topic string, p peer.ID, d time.Duration) {
		t.Helper()
		if err := s.PutLease(ctx, p2p.Lease{Topic: topic, Peer: p, Until: t0.Add(d)}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(now time.Time) string {
		t.Helper()
		ls, err := s.Leases(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range ls {
			name := "?"
			switch l.Peer {
			case alice:
				name = "alice"
			case bob:
				name = "bob"
			}
			topic := "t1"
			if l.Topic == t2 {
				topic = "t2"
			} else if l.Topic != t1 {
				topic = l.Topic
			}
			out = append(out, fmt.Sprintf("%s/%s/%v", topic, name, l.Until.Sub(t0)))
		}
		return strings.Join(out, " ")
	}
	if got := list(t0); got != "" {
		t.Fatalf("empty store lists %q", got)
	}
	put(t2, alice, 2*time.Hour)
	put(t1, bob, 3*time.Hour)
	put(t1, alice, time.Hour)
	put(t1, alice, 90*time.Minute) // replaces
	if got, want := list(t0), "t1/alice/1h30m0s t1/bob/3h0m0s t2/alice/2h0m0s"; got != want {
		t.Fatalf("Leases = %q, want %q", got, want)
	}
	// A lease ending at now is over.
	if got, want := list(t0.Add(90*time.Minute)), "t1/bob/3h0m0s t2/alice/2h0m0s"; got != want {
		t.Fatalf("Leases at the end of one = %q, want %q", got, want)
	}
	if err := s.DeleteLease(ctx, t2, alice); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLease(ctx, t2, bob); err != nil {
		t.Fatalf("deleting an unknown lease: %v", err)
	}
	if got, want := list(t0), "t1/alice/1h30m0s t1/bob/3h0m0s"; got != want {
		t.Fatalf("after delete: %q, want %q", got, want)
	}
	if err := s.Prune(ctx, t0.Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := list(t0), "t1/bob/3h0m0s"; got != want {
		t.Fatalf("after prune: %q, want %q", got, want)
	}
	// A pruned lease can be granted again.
	put(t1, alice, 4*time.Hour)
	if got, want := list(t0.Add(2*time.Hour)), "t1/alice/4h0m0s t1/bob/3h0m0s"; got != want {
		t.Fatalf("after a new lease: %q, want %q", got, want)
	}
}

// Concurrent checks that mailbox quotas and the one-time hand-out of
// KeyPackages hold when a relay's stream handlers call the stores at the
// same time.
func Concurrent(t *testing.T, m p2p.Mailbox, c p2p.KeyPackageCache) {
	ctx := context.Background()
	now := time.Unix(1e9, 0)
	alice, _ := newID(t)
	bob, _ := newID(t)
	mailItem := func(data string) p2p.MailItem {
		return p2p.MailItem{ID: p2p.IDOf([]byte(data)), Recipient: bob, From: alice, Data: []byte(data), Deposited: now, Expires: now.Add(time.Hour)}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			errs <- m.Deposit(ctx, mailItem(fmt.Sprintf("mail %d", i)), p2p.MailQuota{PerRecipient: p2p.Quota{Count: 10}, PerSender: p2p.Quota{Count: 5}})
		})
	}
	wg.Wait()
	close(errs)
	var ok int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, p2p.ErrQuotaExceeded):
			t.Fatal(err)
		}
	}
	if mail, _ := m.Fetch(ctx, bob, now, 100); ok != 5 || len(mail) != 5 {
		t.Fatalf("%d deposits accepted, %d stored; want 5", ok, len(mail))
	}

	kpq := p2p.Quota{Count: 5, Bytes: 100}
	var kps []p2p.KeyPackage
	for i := range 5 {
		kps = append(kps, p2p.KeyPackage{Data: fmt.Appendf(nil, "kp%d", i)})
	}
	if _, err := c.Put(ctx, bob, kps, now.Add(time.Hour), kpq); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	taken := map[string]int{}
	for range 10 {
		wg.Go(func() {
			kp, err := c.Take(ctx, bob, 0, now)
			if err != nil && !errors.Is(err, p2p.ErrNotFound) {
				t.Error(err)
			}
			if err == nil {
				mu.Lock()
				taken[string(kp.Data)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(taken) != 5 {
		t.Fatalf("handed out %v", taken)
	}
	for d, n := range taken {
		if n != 1 {
			t.Fatalf("one-time package %s handed out %d times", d, n)
		}
	}
}
