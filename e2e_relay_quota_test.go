package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/p2p"
)

// dirSize sums the sizes of the files under dir (the relay's database,
// WAL and key).
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func quotaTestNode(t *testing.T, listen string) *p2p.Node {
	t.Helper()
	n, err := p2p.New(context.Background(), nil,
		p2p.WithListenAddrs(listen), p2p.WithMDNS(false), p2p.WithDHT(p2p.DHTOff),
		p2p.WithAutoNAT(false), p2p.WithHolePunching(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// TestE2ERelayMailQuotas runs the real relay binary with small mail quotas
// and attacks it the way issue 13 found: a stranger fills a victim's
// mailbox, then deposits 1,000 × 100 KiB for made-up recipients (before:
// 270 × 1 MB took the data directory to 336 MB). The stranger's share of
// the victim's mailbox and the cap on all mailboxes hold on disk, and the
// victim still receives an honest inviter's Welcome.
func TestE2ERelayMailQuotas(t *testing.T) {
	bin := canopyBinary(t)
	dir := filepath.Join(t.TempDir(), "relay")
	const kib = 1 << 10
	addr := startRelay(t, bin, dir,
		"--quota-mail-bytes", "4MiB", "--quota-mailbox-sender-bytes", "256KiB", "--quota-mail-item", "128KiB",
		"--quota-rate", "1000", "--quota-burst", "1000", "--no-circuit")
	infos, err := p2p.ParseAddrInfos([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	relay := infos[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stranger := quotaTestNode(t, "/ip4/127.0.0.1/tcp/0")
	victim := quotaTestNode(t, "/ip4/127.0.0.1/tcp/0")
	inviter := quotaTestNode(t, "/ip4/127.0.0.2/tcp/0")
	for _, n := range []*p2p.Node{stranger, victim, inviter} {
		if err := n.Connect(ctx, relay); err != nil {
			t.Fatal(err)
		}
	}
	base := dirSize(t, dir)
	topic := p2p.TopicName([]byte("a group"))
	item := func(i int) p2p.InboxMessage {
		return p2p.InboxMessage{Kind: p2p.InboxWelcome, Topic: topic, Data: fmt.Appendf(nil, "%06d%s", i, make([]byte, 100*kib))}
	}

	into := 0
	for i := 0; i < 10; i++ {
		err := stranger.Deposit(ctx, relay.ID, victim.ID(), item(i), time.Hour)
		if err == nil {
			into++
		} else if !errors.Is(err, p2p.ErrQuotaExceeded) {
			t.Fatal(err)
		}
	}
	if into != 2 {
		t.Fatalf("stranger left %d items in the victim's mailbox, want 2 (256 KiB share)", into)
	}
	welcome := p2p.InboxMessage{Kind: p2p.InboxWelcome, Topic: topic, Data: []byte("the real Welcome")}
	if err := inviter.Deposit(ctx, relay.ID, victim.ID(), welcome, time.Hour); err != nil {
		t.Fatalf("honest Welcome refused: %v", err)
	}

	stored, refused := 0, 0
	for i := 0; i < 1000; i++ {
		fake, err := p2p.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		to, _ := p2p.PeerIDOf(fake)
		// Fresh sender ids too: the per-sender total is no obstacle.
		sender := stranger
		if i%100 == 0 && i > 0 {
			sender = quotaTestNode(t, "/ip4/127.0.0.1/tcp/0")
			if err := sender.Connect(ctx, relay); err != nil {
				t.Fatal(err)
			}
		}
		switch err := sender.Deposit(ctx, relay.ID, to, item(100+i), time.Hour); {
		case err == nil:
			stored++
		case errors.Is(err, p2p.ErrQuotaExceeded):
			refused++
		default:
			t.Fatal(err)
		}
		if refused >= 50 {
			break // the cap holds; no need to push 100 MB through
		}
	}
	grown := dirSize(t, dir) - base
	t.Logf("made-up recipients: %d deposits stored, %d refused; data dir grew %d KiB (mail cap 4096 KiB)", stored, refused, grown/kib)
	if refused == 0 || (stored+into)*100*kib > 4096*kib {
		t.Fatalf("global mail cap did not hold: %d stored", stored)
	}
	// The database and its WAL: the mail, plus SQLite's page overhead and
	// a WAL of at most its auto-checkpoint size (about 4 MiB).
	if grown > 16<<20 {
		t.Fatalf("relay data directory grew by %d MiB", grown>>20)
	}

	mail, err := victim.FetchMailbox(ctx, relay.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(mail, func(m p2p.Mail) bool { return bytes.Equal(m.Message.Data, welcome.Data) && m.From == inviter.ID() }) {
		t.Fatalf("victim's mailbox lacks the Welcome (%d items)", len(mail))
	}
}

// TestE2ERelayKeepAndKeyPackageQuotas runs the real relay binary against
// sybils at one address: fresh peer ids lease topics until refused (before:
// 5 ids kept 320 topics for 24 h after leaving) and fetch a user's
// KeyPackages over and over (before: they took every one-time package).
// They get the address's share of topics, with leases of at most an hour,
// and 4 one-time packages before only the last-resort one is served; a
// member at another address still has its topic kept and gets a one-time
// package.
func TestE2ERelayKeepAndKeyPackageQuotas(t *testing.T) {
	bin := canopyBinary(t)
	dir := filepath.Join(t.TempDir(), "relay")
	addr := startRelay(t, bin, dir, "--quota-topics-per-ip", "12", "--quota-topics-per-peer", "8",
		"--quota-rate", "1000", "--quota-burst", "1000", "--no-circuit")
	infos, err := p2p.ParseAddrInfos([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	relay := infos[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	join := func(listen string) *p2p.Node {
		n := quotaTestNode(t, listen)
		if err := n.Connect(ctx, relay); err != nil {
			t.Fatal(err)
		}
		return n
	}

	kept := 0
	for i := 0; i < 5; i++ {
		sybil := join("/ip4/127.0.0.1/tcp/0")
		for j := 0; j < 8; j++ {
			granted, err := sybil.KeepTopic(ctx, relay.ID, p2p.TopicName(fmt.Appendf(nil, "sybil group %d/%d", i, j)), 24*time.Hour)
			if errors.Is(err, p2p.ErrQuotaExceeded) {
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
	if kept != 12 {
		t.Fatalf("sybils at one address keep %d topics, want 12", kept)
	}
	member := join("/ip4/127.0.0.2/tcp/0")
	if _, err := member.KeepTopic(ctx, relay.ID, p2p.TopicName([]byte("the member's group")), 24*time.Hour); err != nil {
		t.Fatalf("member's keep request: %v", err)
	}

	owner := join("/ip4/127.0.0.3/tcp/0")
	var kps []p2p.KeyPackage
	for i := 0; i < 20; i++ {
		kps = append(kps, p2p.KeyPackage{Data: fmt.Appendf(nil, "one-time %d", i), CipherSuite: 1})
	}
	kps = append(kps, p2p.KeyPackage{Data: []byte("last resort"), CipherSuite: 1, LastResort: true})
	if _, err := owner.PutKeyPackages(ctx, relay.ID, kps); err != nil {
		t.Fatal(err)
	}
	oneTime := 0
	for i := 0; i < 4; i++ {
		sybil := join("/ip4/127.0.0.1/tcp/0")
		for j := 0; j < 10; j++ {
			kp, err := sybil.FetchKeyPackage(ctx, relay.ID, owner.ID())
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
	if float64(oneTime) != p2p.DefaultQuotas().KeyPackageHandoutsPerIP.Burst {
		t.Fatalf("40 fetches by sybils at one address took %d one-time packages, want %v", oneTime, p2p.DefaultQuotas().KeyPackageHandoutsPerIP.Burst)
	}
	kp, err := member.FetchKeyPackage(ctx, relay.ID, owner.ID())
	if err != nil || kp.LastResort {
		t.Fatalf("inviter at another address: last resort %v, %v", kp.LastResort, err)
	}
	t.Logf("sybils: %d topics kept of 40 asked, %d one-time KeyPackages of 40 fetches; member served", kept, oneTime)
}
