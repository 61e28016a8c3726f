package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/peer"
)

// kpQuota is the per-owner KeyPackage quota the tests pass.
var kpQuota = p2p.Quota{Count: 5, Bytes: 100}

// logQuota is the topic log quota of a relay with the default quotas.
var logQuota = p2p.LogQuota{PerTopic: p2p.Quota{Bytes: p2p.DefaultQuotas().TopicBytes}, Total: p2p.Quota{Bytes: p2p.DefaultQuotas().TopicLogBytes}}

func openTestStore(t *testing.T, dir string) *sqlStore {
	t.Helper()
	rs, err := openSQLStore(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	return rs
}

// TestRelayStoreContract runs p2p's store contract tests against the
// SQLite adapters, each on a fresh database file.
func TestRelayStoreContract(t *testing.T) {
	t.Run("TopicLog", func(t *testing.T) {
		p2ptest.TopicLog(t, openTestStore(t, t.TempDir()).topicLog)
	})
	t.Run("Mailbox", func(t *testing.T) {
		p2ptest.Mailbox(t, openTestStore(t, t.TempDir()).mailbox)
	})
	t.Run("KeyPackageCache", func(t *testing.T) {
		p2ptest.KeyPackageCache(t, openTestStore(t, t.TempDir()).keyPackages)
	})
	t.Run("LastResortRefresh", func(t *testing.T) {
		p2ptest.LastResortRefresh(t, openTestStore(t, t.TempDir()).keyPackages)
	})
	t.Run("Concurrent", func(t *testing.T) {
		rs := openTestStore(t, t.TempDir())
		p2ptest.Concurrent(t, rs.mailbox, rs.keyPackages)
	})
	t.Run("LeaseStore", func(t *testing.T) {
		p2ptest.LeaseStore(t, openTestStore(t, t.TempDir()).leases)
	})
}

func testPeer(t *testing.T) peer.ID {
	t.Helper()
	k, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	id, err := p2p.PeerIDOf(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func logEntry(data string, epoch uint64, at time.Time) p2p.LogEntry {
	return p2p.LogEntry{ID: p2p.IDOf([]byte(data)), Epoch: epoch, Data: []byte(data), Received: at}
}

func mailItem(from, to peer.ID, data string, now time.Time) p2p.MailItem {
	return p2p.MailItem{ID: p2p.IDOf([]byte(data)), Recipient: to, From: from, Data: []byte(data), Deposited: now, Expires: now.Add(time.Hour)}
}

// TestRelayStoreReopen: what a relay stored is there, with the same
// cursors, after the database is closed and opened again; sequence numbers
// keep growing; leases are kept; a one-time KeyPackage handed out before is
// still refused when uploaded again.
func TestRelayStoreReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q := p2p.DefaultQuotas()
	now := time.Now().Truncate(time.Second)
	alice, bob := testPeer(t), testPeer(t)

	rs, err := openSQLStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := range 4 {
		seq, err := rs.topicLog.Append(ctx, "topic", logEntry(fmt.Sprintf("frame %d", i), uint64(i), now), logQuota)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if err := rs.mailbox.Deposit(ctx, mailItem(alice, bob, "welcome", now), p2p.MailQuota{}); err != nil {
		t.Fatal(err)
	}
	kpq := p2p.Quota{Count: q.KeyPackages, Bytes: q.KeyPackageBytes}
	kps := []p2p.KeyPackage{{Data: []byte("kp1"), CipherSuite: 1}, {Data: []byte("kp2"), CipherSuite: 1}, {Data: []byte("lr"), CipherSuite: 1, LastResort: true}}
	if n, err := rs.keyPackages.Put(ctx, bob, kps, now.Add(time.Hour), kpq); err != nil || n != 3 {
		t.Fatalf("Put: %d %v", n, err)
	}
	if kp, err := rs.keyPackages.Take(ctx, bob, 1, now); err != nil || string(kp.Data) != "kp1" {
		t.Fatalf("Take: %q %v", kp.Data, err)
	}
	lease := p2p.Lease{Topic: p2p.TopicName([]byte("group")), Peer: alice, Until: now.Add(time.Hour)}
	if err := rs.leases.PutLease(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if err := rs.Close(); err != nil {
		t.Fatal(err)
	}

	rs = openTestStore(t, dir)
	got, err := rs.topicLog.List(ctx, "topic", p2p.LogQuery{MinEpoch: 2, Limit: 10})
	if err != nil || len(got) != 2 {
		t.Fatalf("List after reopen: %v %v", got, err)
	}
	for i, e := range got {
		want := logEntry(fmt.Sprintf("frame %d", i+2), uint64(i+2), now)
		if e.Seq != seqs[i+2] || e.ID != want.ID || e.Epoch != want.Epoch || !bytes.Equal(e.Data, want.Data) || !e.Received.Equal(now) {
			t.Fatalf("entry %d after reopen: %+v", i, e)
		}
	}
	if seq, err := rs.topicLog.Append(ctx, "topic", logEntry("frame 1", 1, now), logQuota); err != nil || seq != seqs[1] {
		t.Fatalf("re-append after reopen: %d %v, want %d", seq, err, seqs[1])
	}
	if seq, err := rs.topicLog.Append(ctx, "topic", logEntry("frame 4", 4, now), logQuota); err != nil || seq <= seqs[3] {
		t.Fatalf("append after reopen: %d %v", seq, err)
	}
	mail, err := rs.mailbox.Fetch(ctx, bob, now, 10)
	if err != nil || len(mail) != 1 || string(mail[0].Data) != "welcome" || mail[0].From != alice || mail[0].Recipient != bob ||
		mail[0].ID != p2p.IDOf([]byte("welcome")) || !mail[0].Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("mail after reopen: %+v %v", mail, err)
	}
	if err := rs.mailbox.Delete(ctx, bob, []p2p.MessageID{mail[0].ID}); err != nil {
		t.Fatal(err)
	}
	if mail, _ := rs.mailbox.Fetch(ctx, bob, now, 10); len(mail) != 0 {
		t.Fatalf("acknowledged mail still there: %+v", mail)
	}
	// kp1 was handed out: its re-upload is ignored.
	if n, err := rs.keyPackages.Put(ctx, bob, kps[:1], now.Add(time.Hour), kpq); err != nil || n != 2 {
		t.Fatalf("re-upload of a handed-out package after reopen: %d %v, want 2 packages", n, err)
	}
	for _, want := range []string{"kp2", "lr", "lr"} {
		if kp, err := rs.keyPackages.Take(ctx, bob, 0, now); err != nil || string(kp.Data) != want {
			t.Fatalf("Take after reopen: %q %v, want %s", kp.Data, err, want)
		}
	}
	leases, err := rs.leases.Leases(ctx, now)
	if err != nil || len(leases) != 1 || leases[0].Topic != lease.Topic || leases[0].Peer != alice || !leases[0].Until.Equal(lease.Until) {
		t.Fatalf("leases after reopen: %+v %v", leases, err)
	}
}

// TestRelayStoreQuotas: per-call mailbox quotas in bytes, the per-owner
// KeyPackage byte quota (across uploads), and that every call's quota is
// the one enforced.
func TestRelayStoreQuotas(t *testing.T) {
	ctx := context.Background()
	rs := openTestStore(t, t.TempDir())
	now := time.Unix(1e9, 0)
	alice, bob, carol := testPeer(t), testPeer(t), testPeer(t)

	perRecipient, perSender := p2p.Quota{Bytes: 10}, p2p.Quota{Bytes: 6}
	if err := rs.mailbox.Deposit(ctx, mailItem(alice, bob, "aaaa", now), p2p.MailQuota{PerRecipient: perRecipient, PerSender: perSender}); err != nil {
		t.Fatal(err)
	}
	if err := rs.mailbox.Deposit(ctx, mailItem(alice, bob, "bbb", now), p2p.MailQuota{PerRecipient: perRecipient, PerSender: perSender}); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("sender bytes: %v", err)
	}
	if err := rs.mailbox.Deposit(ctx, mailItem(carol, bob, "cccccc", now), p2p.MailQuota{PerRecipient: perRecipient, PerSender: perSender}); err != nil {
		t.Fatal(err)
	}
	if err := rs.mailbox.Deposit(ctx, mailItem(carol, alice, "dd", now), p2p.MailQuota{PerRecipient: perRecipient, PerSender: perSender}); err != nil {
		t.Fatalf("another recipient: %v", err)
	}
	if err := rs.mailbox.Deposit(ctx, mailItem(bob, bob, "e", now), p2p.MailQuota{PerRecipient: perRecipient, PerSender: perSender}); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("recipient bytes: %v", err)
	}
	bad := mailItem(alice, carol, "x", now)
	bad.ID = p2p.IDOf([]byte("y"))
	if err := rs.mailbox.Deposit(ctx, bad, p2p.MailQuota{PerRecipient: perRecipient, PerSender: perSender}); !errors.Is(err, p2p.ErrBadRequest) {
		t.Fatalf("mail id not its content hash: %v", err)
	}

	kpq := kpQuota
	big := []p2p.KeyPackage{{Data: make([]byte, 60)}, {Data: make([]byte, 41)}}
	big[1].Data[0] = 1
	if _, err := rs.keyPackages.Put(ctx, bob, big, now.Add(time.Hour), kpq); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("KeyPackage bytes: %v", err)
	}
	if _, err := rs.keyPackages.Take(ctx, bob, 0, now); !errors.Is(err, p2p.ErrNotFound) {
		t.Fatalf("over-quota upload stored something: %v", err)
	}
	// The byte quota bounds what an owner holds, not one upload.
	if n, err := rs.keyPackages.Put(ctx, bob, big[:1], now.Add(time.Hour), kpq); err != nil || n != 1 {
		t.Fatalf("60 bytes of KeyPackages: %d %v", n, err)
	}
	if _, err := rs.keyPackages.Put(ctx, bob, big[1:], now.Add(time.Hour), kpq); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("KeyPackage bytes over two uploads: %v", err)
	}
	if n, err := rs.keyPackages.Put(ctx, carol, big[1:], now.Add(time.Hour), kpq); err != nil || n != 1 {
		t.Fatalf("another owner: %d %v", n, err)
	}
	// Handing a package out makes room again.
	if kp, err := rs.keyPackages.Take(ctx, bob, 0, now); err != nil || len(kp.Data) != 60 {
		t.Fatalf("Take: %d bytes, %v", len(kp.Data), err)
	}
	if n, err := rs.keyPackages.Put(ctx, bob, big[1:], now.Add(time.Hour), kpq); err != nil || n != 1 {
		t.Fatalf("upload after a hand-out: %d %v", n, err)
	}
	// Each call's quota is the one enforced; nothing is fixed when the
	// store is opened.
	if _, err := rs.keyPackages.Put(ctx, bob, []p2p.KeyPackage{{Data: []byte("one more")}}, now.Add(time.Hour), p2p.Quota{Count: 1}); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("a second KeyPackage under a quota of one: %v", err)
	}
	if n, err := rs.keyPackages.Put(ctx, bob, []p2p.KeyPackage{{Data: []byte("one more")}}, now.Add(time.Hour), p2p.Quota{Count: 2}); err != nil || n != 2 {
		t.Fatalf("a second KeyPackage under a quota of two: %d %v", n, err)
	}
	for i := range 3 {
		if _, err := rs.topicLog.Append(ctx, "t", logEntry(fmt.Sprint("frame ", i), 1, now), p2p.LogQuota{PerTopic: p2p.Quota{Count: 2}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := rs.topicLog.List(ctx, "t", p2p.LogQuery{Limit: 10}); len(got) != 2 || string(got[0].Data) != "frame 1" {
		t.Fatalf("a topic quota of two frames keeps %d", len(got))
	}
	if _, err := rs.topicLog.Append(ctx, "t", logEntry("big", 1, now), p2p.LogQuota{Total: p2p.Quota{Bytes: 2}}); !errors.Is(err, p2p.ErrQuotaExceeded) {
		t.Fatalf("a frame larger than the total quota: %v", err)
	}
}

// TestRelayStoreTopicLogEdges: paging through the store, ranges SQLite
// cannot hold, malformed entries, and the errors of a closed store.
func TestRelayStoreTopicLogEdges(t *testing.T) {
	ctx := context.Background()
	rs := openTestStore(t, t.TempDir())
	l := rs.topicLog
	defer func(n int) { frameBatch = n }(frameBatch)
	frameBatch = 3
	now := time.Now()
	for i := range 10 {
		if _, err := l.Append(ctx, "t", logEntry(fmt.Sprintf("f%d", i), uint64(i%3), now), logQuota); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.List(ctx, "t", p2p.LogQuery{MinEpoch: 1, Limit: 5})
	if err != nil || len(got) != 5 {
		t.Fatalf("paged List: %d %v", len(got), err)
	}
	for i, want := range []string{"f1", "f2", "f4", "f5", "f7"} {
		if string(got[i].Data) != want || (i > 0 && got[i].Seq <= got[i-1].Seq) {
			t.Fatalf("paged List: entry %d = %s (seq %d)", i, got[i].Data, got[i].Seq)
		}
	}
	if got, err := l.List(ctx, "t", p2p.LogQuery{MinEpoch: 1, Limit: 100}); err != nil || len(got) != 6 {
		t.Fatalf("List all: %d %v", len(got), err)
	}
	if got, err := l.List(ctx, "t", p2p.LogQuery{After: math.MaxUint64, Limit: 10}); err != nil || len(got) != 0 {
		t.Fatalf("cursor beyond int64: %v %v", got, err)
	}
	if got, err := l.List(ctx, "t", p2p.LogQuery{MinEpoch: math.MaxUint64, Limit: 10}); err != nil || len(got) != 0 {
		t.Fatalf("epoch beyond int64: %v %v", got, err)
	}
	if _, err := l.List(ctx, "t", p2p.LogQuery{}); !errors.Is(err, p2p.ErrBadRequest) {
		t.Fatalf("zero limit: %v", err)
	}
	if _, err := l.Append(ctx, "t", logEntry("huge epoch", math.MaxUint64, now), logQuota); !errors.Is(err, p2p.ErrBadRequest) {
		t.Fatalf("epoch beyond int64: %v", err)
	}
	e := logEntry("x", 1, now)
	e.ID[0] ^= 1
	if _, err := l.Append(ctx, "t", e, logQuota); !errors.Is(err, p2p.ErrBadRequest) {
		t.Fatalf("id not the content hash: %v", err)
	}
	if _, err := l.Append(ctx, "", logEntry("x", 1, now), logQuota); !errors.Is(err, p2p.ErrBadRequest) {
		t.Fatalf("empty topic: %v", err)
	}
	if err := rs.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.List(ctx, "t", p2p.LogQuery{Limit: 1}); !errors.Is(err, p2p.ErrUnavailable) {
		t.Fatalf("closed store: %v", err)
	}
}
