package p2p

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Relay quotas under attack by strangers minting peer ids (issue 13, item
// 6). Attackers connect from 127.0.0.1; honest peers listen (and so, with
// libp2p's port reuse, dial) from 127.0.0.2, a separate source address.

func newHonestNode(t *testing.T, opts ...Option) *Node {
	t.Helper()
	n := newTestNode(t, append(opts, WithListenAddrs("/ip4/127.0.0.2/tcp/0"))...)
	return n
}

// sourceAt returns the source address relay r sees for peer p.
func sourceAt(t *testing.T, r *Relay, p peer.ID) string {
	t.Helper()
	conns := r.n.h.Network().ConnsToPeer(p)
	if len(conns) == 0 {
		t.Fatalf("relay has no connection to %s", p)
	}
	return sourceOf(conns[0])
}

func welcomeMsg(group []byte, body string) InboxMessage {
	return InboxMessage{Kind: InboxWelcome, Topic: TopicName(group), Data: []byte(body)}
}

// TestRelayMailboxStrangerCannotCrowdOut: one stranger fills a victim's
// mailbox as far as it can (before: 32 items of up to 8 MiB each against a
// 64 MiB mailbox, so the victim's next Welcome was refused), and deposits
// for made-up recipients until refused (before: no cap across mailboxes).
// Its share of the mailbox, its total and the item size are bounded; the
// victim's Welcome from an honest inviter is still accepted and fetched.
func TestRelayMailboxStrangerCannotCrowdOut(t *testing.T) {
	const kib = 1 << 10
	mb := NewMemoryMailbox()
	r := newTestRelay(t, RelayConfig{Mailbox: mb, Quotas: Quotas{
		MailboxBytes:          1024 * kib,
		MailboxBytesPerSender: 256 * kib,
		MaxMailItem:           128 * kib,
		MailBytesPerSender:    768 * kib,
		MailBytes:             4096 * kib,
		RequestRate:           RateLimit{Rate: 1000, Burst: 1000},
	}})
	stranger := newTestNode(t)
	connect(t, stranger, r.Node())
	victim := newTestNode(t)
	connect(t, victim, r.Node())
	inviter := newHonestNode(t)
	connect(t, inviter, r.Node())
	ctx := testCtx(t, 60*time.Second)
	group := newGroupID()

	// Oversize items are refused outright.
	big := welcomeMsg(group, string(make([]byte, 129*kib)))
	if err := stranger.Deposit(ctx, r.Node().ID(), victim.ID(), big, time.Hour); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversize deposit: %v", err)
	}
	deposit := func(to peer.ID, i int) error {
		return stranger.Deposit(ctx, r.Node().ID(), to, welcomeMsg(group, fmt.Sprintf("%06d%s", i, make([]byte, 100*kib))), time.Hour)
	}
	into := 0
	for ; into < 100; into++ {
		if err := deposit(victim.ID(), into); err != nil {
			if !errors.Is(err, ErrQuotaExceeded) {
				t.Fatal(err)
			}
			break
		}
	}
	if into != 2 { // 2 × ~100 KiB within a 256 KiB share
		t.Fatalf("stranger left %d items in the victim's mailbox, want 2", into)
	}
	made := 0
	for ; made < 100; made++ {
		fake, _ := newTestIdentity(t)
		if err := deposit(fake, 1000+made); err != nil {
			if !errors.Is(err, ErrQuotaExceeded) {
				t.Fatal(err)
			}
			break
		}
	}
	if into+made > 7 { // 768 KiB in all
		t.Fatalf("stranger stored %d items in all", into+made)
	}
	mb.mu.Lock()
	stored := mb.bytes
	mb.mu.Unlock()
	t.Logf("stranger stored %d items (%d KiB) for the victim and %d for made-up recipients; relay mail: %d KiB", into, into*100, made, stored/kib)
	if stored > 768*kib+8*kib {
		t.Fatalf("relay holds %d bytes of the stranger's mail", stored)
	}

	w := welcomeMsg(group, "the real Welcome")
	if err := inviter.Deposit(ctx, r.Node().ID(), victim.ID(), w, time.Hour); err != nil {
		t.Fatalf("honest Welcome refused: %v", err)
	}
	mail, err := victim.FetchMailbox(ctx, r.Node().ID())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(mail, func(m Mail) bool { return bytes.Equal(m.Message.Data, w.Data) && m.From == inviter.ID() }) {
		t.Fatalf("victim's mailbox lacks the Welcome: %d items", len(mail))
	}
}

// TestRelayMailboxPerAddressAndTotal: peer ids minted at one address share
// the address's deposit budget, so an inviter at another address still
// gets its Welcome in; sybils at further addresses then run into the cap
// on all mailboxes together, which holds.
func TestRelayMailboxPerAddressAndTotal(t *testing.T) {
	const kib = 1 << 10
	mb := NewMemoryMailbox()
	r := newTestRelay(t, RelayConfig{Mailbox: mb, Quotas: Quotas{
		MaxMailItem:       128 * kib,
		MailBytes:         2048 * kib,
		DepositBytesPerIP: RateLimit{Rate: 1, Burst: 1024 * kib},
		RequestRate:       RateLimit{Rate: 1000, Burst: 1000},
	}})
	ctx := testCtx(t, 60*time.Second)
	group := newGroupID()
	var refused error
	stored := 0
	for i := 0; i < 20 && refused == nil; i++ {
		sybil := newTestNode(t)
		connect(t, sybil, r.Node())
		fake, _ := newTestIdentity(t)
		refused = sybil.Deposit(ctx, r.Node().ID(), fake, welcomeMsg(group, fmt.Sprintf("%03d%s", i, make([]byte, 100*kib))), time.Hour)
		if refused == nil {
			stored++
		}
	}
	if !errors.Is(refused, ErrRateLimited) || stored > 10 {
		t.Fatalf("sybils at one address stored %d items; last: %v", stored, refused)
	}
	victim := newTestNode(t)
	inviter := newHonestNode(t)
	connect(t, inviter, r.Node())
	if src := sourceAt(t, r, inviter.ID()); src != "127.0.0.2" {
		t.Fatalf("inviter's source address is %s", src)
	}
	if err := inviter.Deposit(ctx, r.Node().ID(), victim.ID(), welcomeMsg(group, "welcome"), time.Hour); err != nil {
		t.Fatalf("honest Welcome from another address: %v", err)
	}
	// More addresses: the global cap (2 MiB) stops them.
	refused = nil
	for i := 0; i < 40 && refused == nil; i++ {
		sybil := newTestNode(t, WithListenAddrs(fmt.Sprintf("/ip4/127.0.1.%d/tcp/0", i+1)))
		connect(t, sybil, r.Node())
		fake, _ := newTestIdentity(t)
		refused = sybil.Deposit(ctx, r.Node().ID(), fake, welcomeMsg(group, fmt.Sprintf("x%03d%s", i, make([]byte, 100*kib))), time.Hour)
	}
	if !errors.Is(refused, ErrQuotaExceeded) {
		t.Fatalf("sybils at many addresses: %v", refused)
	}
	mb.mu.Lock()
	total := mb.bytes
	mb.mu.Unlock()
	t.Logf("mailboxes hold %d KiB of a 2048 KiB cap", total/kib)
	if total > 2048*kib {
		t.Fatalf("mailboxes hold %d bytes", total)
	}
}

// TestRelayTopicKeepSybils: five fresh peer ids at one address lease
// topics until refused (before: 5 ids kept 320 topics, for 24 h after
// they left). They get no more than the address's share, and short leases;
// a member at another address still has its topic kept.
func TestRelayTopicKeepSybils(t *testing.T) {
	r := newTestRelay(t, RelayConfig{Quotas: Quotas{
		Topics:        50,
		TopicsPerPeer: 8,
		TopicsPerIP:   12,
		NewPeerLease:  time.Hour,
		RequestRate:   RateLimit{Rate: 1000, Burst: 1000},
	}})
	ctx := testCtx(t, 60*time.Second)
	kept := 0
	for i := 0; i < 5; i++ {
		sybil := newTestNode(t)
		connect(t, sybil, r.Node())
		for j := 0; j < 8; j++ {
			granted, err := sybil.KeepTopic(ctx, r.Node().ID(), TopicName(newGroupID()), 24*time.Hour)
			if errors.Is(err, ErrQuotaExceeded) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if granted > time.Hour {
				t.Fatalf("fresh peer id granted a %v lease", granted)
			}
			kept++
		}
	}
	if kept != 12 || len(r.KeptTopics()) != 12 {
		t.Fatalf("sybils at one address keep %d topics (relay: %d), want 12", kept, len(r.KeptTopics()))
	}
	member := newHonestNode(t)
	connect(t, member, r.Node())
	topic := TopicName(newGroupID())
	if _, err := member.KeepTopic(ctx, r.Node().ID(), topic, 24*time.Hour); err != nil {
		t.Fatalf("member's keep request: %v", err)
	}
	if !slices.Contains(r.KeptTopics(), topic) {
		t.Fatal("member's topic is not kept")
	}
}

// TestRelayKeyPackageHandoutsBounded: sybils at one address fetch a user's
// KeyPackages over and over (before: they took every one-time package).
// They get the address's share of one-time packages and then only the
// last-resort one; the user's other one-time packages stay for inviters
// elsewhere, and the total handed out is bounded too.
func TestRelayKeyPackageHandoutsBounded(t *testing.T) {
	kps := NewMemoryKeyPackageCache()
	r := newTestRelay(t, RelayConfig{KeyPackages: kps, Quotas: Quotas{
		KeyPackageHandouts:      RateLimit{Rate: 1e-6, Burst: 6},
		KeyPackageHandoutsPerIP: RateLimit{Rate: 1e-6, Burst: 3},
		RequestRate:             RateLimit{Rate: 1000, Burst: 1000},
	}})
	ctx := testCtx(t, 60*time.Second)
	owner := newTestNode(t)
	connect(t, owner, r.Node())
	var up []KeyPackage
	for i := 0; i < 20; i++ {
		up = append(up, KeyPackage{Data: []byte(fmt.Sprintf("one-time %d", i)), CipherSuite: 1})
	}
	up = append(up, KeyPackage{Data: []byte("last resort"), CipherSuite: 1, LastResort: true})
	if _, err := owner.PutKeyPackages(ctx, r.Node().ID(), up); err != nil {
		t.Fatal(err)
	}
	oneTime := 0
	for i := 0; i < 4; i++ {
		sybil := newTestNode(t)
		connect(t, sybil, r.Node())
		for j := 0; j < 10; j++ {
			kp, err := sybil.FetchKeyPackage(ctx, r.Node().ID(), owner.ID())
			if err != nil {
				t.Fatal(err)
			}
			if !kp.LastResort {
				oneTime++
			} else if string(kp.Data) != "last resort" {
				t.Fatalf("last-resort package %q", kp.Data)
			}
		}
	}
	if oneTime != 3 {
		t.Fatalf("sybils at one address took %d one-time packages, want 3", oneTime)
	}
	inviter := newHonestNode(t)
	connect(t, inviter, r.Node())
	served := 0
	for i := 0; i < 5; i++ {
		kp, err := inviter.FetchKeyPackage(ctx, r.Node().ID(), owner.ID())
		if err != nil {
			t.Fatal(err)
		}
		if !kp.LastResort {
			served++
		}
	}
	if served != 3 { // the owner's total of 6, less the sybils' 3
		t.Fatalf("inviter got %d one-time packages, want 3", served)
	}
	kps.mu.Lock()
	left := len(kps.owners[owner.ID()].oneTime)
	kps.mu.Unlock()
	if left != 14 {
		t.Fatalf("%d one-time packages left, want 14", left)
	}
}

// TestRelayTopicLogFloodEvictsItself: a stranger keeps a topic of its own
// on a relay and floods it with well-formed frames (a relay cannot tell
// them from a member's). The relay's logs stay within their total, and the
// flood evicts its own topic's frames, not a quiet group's history, which
// a member catching up still gets whole.
func TestRelayTopicLogFloodEvictsItself(t *testing.T) {
	const kib = 1 << 10
	logs := NewMemoryTopicLog()
	r := newTestRelay(t, RelayConfig{TopicLog: logs, Quotas: Quotas{
		TopicBytes:    256 * kib,
		TopicLogBytes: 128 * kib,
		RequestRate:   RateLimit{Rate: 1000, Burst: 1000},
	}})
	ctx := testCtx(t, 60*time.Second)
	quiet, loud := newGroupID(), newGroupID()

	member := newHonestNode(t, WithRelays(r.Node().AddrInfo()))
	tm, err := member.JoinGroup(quiet)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "relay keeping the quiet topic", func() bool { return slices.Contains(r.KeptTopics(), tm.Name()) })
	if err := tm.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var history [][]byte
	for i := 0; i < 5; i++ {
		f := mlsFrame(quiet, 1, fmt.Sprintf("quiet message %d %s", i, make([]byte, 4*kib)))
		history = append(history, f)
		if _, err := tm.Publish(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "relay storing the quiet history", func() bool { return logLen(t, r, tm.Name()) == len(history) })

	stranger := newTestNode(t, WithRelays(r.Node().AddrInfo()), WithGossipRateLimit(RateLimit{}, RateLimit{}))
	ts, err := stranger.JoinGroup(loud)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "relay keeping the loud topic", func() bool { return slices.Contains(r.KeptTopics(), ts.Name()) })
	if err := ts.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const flood = 100 // 100 × 4 KiB against a 128 KiB total
	for i := 0; i < flood; i++ {
		if _, err := ts.Publish(ctx, mlsFrame(loud, 1, fmt.Sprintf("flood %d %s", i, make([]byte, 4*kib)))); err != nil {
			t.Fatal(err)
		}
	}
	// Every frame of both topics appended (5 quiet + the flood).
	waitFor(t, 30*time.Second, "relay storing the flood", func() bool {
		return counterValue(t, r.Registry(), metricsNS+"_relay_log_appends_total", map[string]string{"result": "ok"}) >= float64(len(history)+flood)
	})
	logs.mu.Lock()
	total := logs.bytes
	logs.mu.Unlock()
	t.Logf("relay logs hold %d KiB of a 128 KiB total; loud topic %d frames, quiet %d", total/kib, logLen(t, r, ts.Name()), logLen(t, r, tm.Name()))
	if total > 128*kib {
		t.Fatalf("relay logs hold %d bytes", total)
	}

	late := newHonestNode(t, WithBootstrapPeers(r.Node().AddrInfo()))
	connect(t, late, r.Node())
	var got [][]byte
	if err := late.SyncAll(ctx, r.Node().ID(), tm.Name(), 0, func(e SyncEntry) error {
		got = append(got, e.Data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(history) {
		t.Fatalf("catch-up after the flood: %d of %d quiet frames", len(got), len(history))
	}
	for _, h := range history {
		if !containsBytes(got, h) {
			t.Fatal("a quiet frame was evicted")
		}
	}
}
