package p2p

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

func logLen(t *testing.T, r *Relay, topic string) int {
	t.Helper()
	es, err := r.cfg.TopicLog.List(context.Background(), topic, LogQuery{Limit: MaxSyncLimit})
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestOfflineCatchUpViaRelay: A keeps its group's topic on a relay and
// publishes while B is offline; B comes online later, knowing only the relay,
// and catches up from the relay's log with /canopy/sync/1.
func TestOfflineCatchUpViaRelay(t *testing.T) {
	r := newTestRelay(t, RelayConfig{})
	group := newGroupID()
	topic := TopicName(group)

	a := newTestNode(t, WithRelays(r.Node().AddrInfo()))
	ta, err := a.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	// The topic asks the relay to keep it by itself (WithRelays).
	waitFor(t, 10*time.Second, "relay keeping the topic", func() bool { return slices.Contains(r.KeptTopics(), topic) })
	if err := ta.WaitMesh(testCtx(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	var sent [][]byte
	for epoch := uint64(1); epoch <= 4; epoch++ {
		f := mlsFrame(group, epoch, fmt.Sprintf("message of epoch %d", epoch))
		sent = append(sent, f)
		if _, err := ta.Publish(testCtx(t, 5*time.Second), f); err != nil {
			t.Fatal(err)
		}
	}
	// Re-publishing a frame does not store it twice (content ids).
	if _, err := ta.Publish(testCtx(t, 5*time.Second), sent[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "relay storing 4 frames", func() bool { return logLen(t, r, topic) == 4 })

	// B was offline: it comes up knowing only the relay.
	b := newTestNode(t, WithBootstrapPeers(r.Node().AddrInfo()))
	waitFor(t, 10*time.Second, "B connected to the relay", func() bool {
		return b.Host().Network().Connectedness(r.Node().ID()) == network.Connected
	})
	var got [][]byte
	err = b.SyncAll(testCtx(t, 10*time.Second), r.Node().ID(), topic, 2, func(e SyncEntry) error {
		got = append(got, e.Data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Gossip does not preserve order (MLS epochs do): compare as sets.
	if len(got) != 3 || !containsBytes(got, sent[1]) || !containsBytes(got, sent[2]) || !containsBytes(got, sent[3]) {
		t.Fatalf("caught up on %d frames", len(got))
	}
	// Paging with a cursor.
	page, err := b.Sync(testCtx(t, 10*time.Second), r.Node().ID(), SyncRequest{Topic: topic, Limit: 3})
	if err != nil || len(page.Entries) != 3 || !page.More {
		t.Fatalf("page 1: %+v %v", page, err)
	}
	page2, err := b.Sync(testCtx(t, 10*time.Second), r.Node().ID(), SyncRequest{Topic: topic, After: page.Next, Limit: 3})
	if err != nil || len(page2.Entries) != 1 || page2.More || containsBytes(entriesData(page.Entries), page2.Entries[0].Data) {
		t.Fatalf("page 2: %+v %v", page2, err)
	}
	// The relay holds no key: it serves frames of any kept group to anyone
	// who asks, and they are ciphertext.
	if r.Node().topic(topic).val.user != nil {
		t.Fatal("relay runs an MLS validator")
	}
}

// TestWelcomeViaRelayMailbox: a Welcome for a peer that is offline waits in
// the relay's mailbox until the peer fetches it, and is then gone.
func TestWelcomeViaRelayMailbox(t *testing.T) {
	r := newTestRelay(t, RelayConfig{Quotas: Quotas{MailboxItemsPerSender: 2}})
	a := newTestNode(t, WithRelays(r.Node().AddrInfo()))
	waitFor(t, 10*time.Second, "A connected to the relay", func() bool {
		return a.Host().Network().Connectedness(r.Node().ID()) == network.Connected
	})
	bKey, _ := GenerateIdentity()
	bID, _ := PeerIDOf(bKey)

	welcome := InboxMessage{Kind: InboxWelcome, Topic: TopicName([]byte("g")), Data: []byte("welcome to g")}
	d, err := a.SendOrDeposit(testCtx(t, 10*time.Second), bID, welcome, 500*time.Millisecond, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d.Direct || len(d.Relays) != 1 || d.Relays[0] != r.Node().ID() {
		t.Fatalf("delivery %+v", d)
	}
	// Depositing the same message again is idempotent; a sender's share of
	// a mailbox is bounded.
	ctx := testCtx(t, 10*time.Second)
	if err := a.Deposit(ctx, r.Node().ID(), bID, welcome, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := a.Deposit(ctx, r.Node().ID(), bID, InboxMessage{Kind: InboxDirect, Data: []byte("2")}, time.Hour); err != nil {
		t.Fatal(err)
	}
	err = a.Deposit(ctx, r.Node().ID(), bID, InboxMessage{Kind: InboxDirect, Data: []byte("3")}, time.Hour)
	wantRemote(t, err, CodeQuotaExceeded, ErrQuotaExceeded)

	// Only the recipient can fetch its mail.
	if mail, err := a.FetchMailbox(ctx, r.Node().ID()); err != nil || len(mail) != 0 {
		t.Fatalf("A fetched B's mail: %v %v", mail, err)
	}

	b, err := New(context.Background(), bKey, append(baseOpts(t), WithBootstrapPeers(r.Node().AddrInfo()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mail, err := b.FetchMailbox(ctx, r.Node().ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(mail) != 2 || mail[0].From != a.ID() || mail[0].Message.Kind != InboxWelcome ||
		!bytes.Equal(mail[0].Message.Data, welcome.Data) || mail[0].Message.Topic != welcome.Topic {
		t.Fatalf("mail %+v", mail)
	}
	if mail, err := b.FetchMailbox(ctx, r.Node().ID()); err != nil || len(mail) != 0 {
		t.Fatalf("mail not deleted after delivery: %v %v", mail, err)
	}

	// Online recipients get direct delivery.
	got := make(chan InboxMessage, 1)
	b.SetHandlers(Handlers{Inbox: func(ctx context.Context, from peer.ID, m InboxMessage) error { got <- m; return nil }})
	connect(t, a, b)
	d, err = a.SendOrDeposit(ctx, b.ID(), welcome, 5*time.Second, time.Hour)
	if err != nil || !d.Direct {
		t.Fatalf("direct delivery: %+v %v", d, err)
	}
	<-got
}

// TestKeyPackagesViaRelay: one-time KeyPackages are handed out once, the
// last-resort package as often as asked.
func TestKeyPackagesViaRelay(t *testing.T) {
	r := newTestRelay(t, RelayConfig{Quotas: Quotas{KeyPackages: 4}})
	b := newTestNode(t)
	connect(t, b, r.Node())
	ctx := testCtx(t, 10*time.Second)
	kps := []KeyPackage{{Data: []byte("kp1"), CipherSuite: 1}, {Data: []byte("kp2"), CipherSuite: 1}, {Data: []byte("last resort"), CipherSuite: 1, LastResort: true}}
	n, err := b.PutKeyPackages(ctx, r.Node().ID(), kps)
	if err != nil || n != 3 {
		t.Fatalf("PutKeyPackages: %d %v", n, err)
	}
	_, err = b.PutKeyPackages(ctx, r.Node().ID(), []KeyPackage{{Data: []byte("kp3")}, {Data: []byte("kp4")}})
	wantRemote(t, err, CodeQuotaExceeded, ErrQuotaExceeded)
	bID := b.ID()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	a := newTestNode(t)
	connect(t, a, r.Node())
	var got []string
	for i := 0; i < 4; i++ {
		kp, err := a.FetchKeyPackage(ctx, r.Node().ID(), bID)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s/%v", kp.Data, kp.LastResort))
	}
	if want := "[kp1/false kp2/false last resort/true last resort/true]"; fmt.Sprint(got) != want {
		t.Fatalf("handed out %v, want %s", got, want)
	}
	// Packages of another cipher suite are not handed out for suite 7.
	_, err = a.FetchKeyPackageForSuite(ctx, r.Node().ID(), bID, 7)
	wantRemote(t, err, CodeNotFound, ErrNotFound)
	_, err = a.FetchKeyPackage(ctx, r.Node().ID(), a.ID())
	wantRemote(t, err, CodeNotFound, ErrNotFound)
}

func TestRelayKeepQuotaAndRelease(t *testing.T) {
	r := newTestRelay(t, RelayConfig{Quotas: Quotas{TopicsPerPeer: 1}, MaxLease: time.Hour})
	a := newTestNode(t)
	connect(t, a, r.Node())
	ctx := testCtx(t, 10*time.Second)
	t1, t2 := TopicName([]byte("one")), TopicName([]byte("two"))
	granted, err := a.KeepTopic(ctx, r.Node().ID(), t1, 48*time.Hour)
	if err != nil || granted != time.Hour {
		t.Fatalf("KeepTopic: %v %v", granted, err)
	}
	_, err = a.KeepTopic(ctx, r.Node().ID(), t2, time.Hour)
	wantRemote(t, err, CodeQuotaExceeded, ErrQuotaExceeded)
	if _, err := a.KeepTopic(ctx, r.Node().ID(), t1, 0); err != nil {
		t.Fatal(err)
	}
	if got := r.KeptTopics(); len(got) != 0 {
		t.Fatalf("released topic still kept: %v", got)
	}
	if _, err := a.KeepTopic(ctx, r.Node().ID(), t2, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := a.KeepTopic(ctx, r.Node().ID(), "/not/a/topic", time.Hour); err == nil {
		t.Fatal("bad topic kept")
	}
}

func TestRelayHealthAndMetrics(t *testing.T) {
	r := newTestRelay(t, RelayConfig{})
	a := newTestNode(t, WithRelays(r.Node().AddrInfo()))
	if _, err := a.JoinGroup(newGroupID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a kept topic", func() bool { return len(r.KeptTopics()) == 1 })
	h := r.Health(context.Background())
	if !h.OK || h.KeptTopics != 1 || h.PeerID != r.Node().ID().String() {
		t.Fatalf("health %+v", h)
	}
	if _, err := json.Marshal(h); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.MetricsHandler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("metric families: %d", strings.Count(string(body), "# TYPE"))
	for _, want := range []string{
		"canopy_p2p_relay_kept_topics 1",
		`canopy_p2p_stream_requests_total{code="ok",protocol="/canopy/relay/1"}`,
		"libp2p_rcmgr_",    // go-libp2p's resource manager
		"libp2p_relaysvc_", // go-libp2p's circuit relay service
		"go_goroutines",    // Go runtime

	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestDHTProviderDiscovery: two members that know only a bootstrap relay
// (no mDNS, no shared relay topic) find each other through DHT provider
// records of their group's topic and exchange a frame.
func TestDHTProviderDiscovery(t *testing.T) {
	r := newTestRelay(t, RelayConfig{})
	boot := WithBootstrapPeers(r.Node().AddrInfo())
	opts := []Option{boot, WithDHT(DHTAuto), WithDiscoveryInterval(200 * time.Millisecond)}
	a := newTestNode(t, opts...)
	b := newTestNode(t, opts...)
	if a.kad == nil || b.kad == nil {
		t.Fatal("DHT not running")
	}
	group := newGroupID()
	ta, err := a.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	if err := ta.WaitPeers(testCtx(t, 30*time.Second), 1); err != nil {
		t.Fatalf("A did not find B: %v", err)
	}
	if ta.Peers()[0] != b.ID() {
		t.Fatalf("A's topic peer is %s, not B", ta.Peers()[0])
	}
	if err := tb.WaitMesh(testCtx(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	f := mlsFrame(group, 1, "found you")
	if _, err := ta.Publish(testCtx(t, 5*time.Second), f); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, tb, 10*time.Second); !bytes.Equal(m.Data, f) {
		t.Fatalf("B got %q", m.Data)
	}
}

// TestCircuitRelayCarriesGossip: B reserves a slot on the relay; A reaches B
// only through a /p2p-circuit address. The relayed connection is not
// limited, so gossipsub runs over it.
func TestCircuitRelayCarriesGossip(t *testing.T) {
	r := newTestRelay(t, RelayConfig{})
	a, b := newTestNode(t), newTestNode(t)
	ctx := testCtx(t, 20*time.Second)
	rsvp, err := client.Reserve(ctx, b.Host(), r.Node().AddrInfo())
	if err != nil {
		t.Fatal(err)
	}
	if rsvp.LimitDuration != 0 || rsvp.LimitData != 0 {
		t.Fatalf("reservation is limited: %v / %d bytes", rsvp.LimitDuration, rsvp.LimitData)
	}
	circuit, err := ma.NewMultiaddr(r.Node().Host().Addrs()[0].String() + "/p2p/" + r.Node().ID().String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatal(err)
	}
	conns := a.Host().Network().ConnsToPeer(b.ID())
	if len(conns) != 1 || !isCircuitAddr(conns[0].RemoteMultiaddr()) || conns[0].Stat().Limited {
		t.Fatalf("expected one unlimited relayed connection, got %v", conns)
	}

	group := newGroupID()
	ta, _ := a.JoinGroup(group)
	tb, _ := b.JoinGroup(group)
	if err := ta.WaitMesh(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f := mlsFrame(group, 3, "through the relay")
	if _, err := ta.Publish(ctx, f); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, tb, 10*time.Second); !bytes.Equal(m.Data, f) {
		t.Fatalf("B got %q", m.Data)
	}
	// Stream protocols work over the circuit too.
	b.SetHandlers(Handlers{KeyPackage: func(context.Context, peer.ID) (KeyPackage, error) {
		return KeyPackage{Data: []byte("kp over circuit")}, nil
	}})
	if kp, err := a.FetchKeyPackage(ctx, b.ID(), ""); err != nil || string(kp.Data) != "kp over circuit" {
		t.Fatalf("%v %v", kp, err)
	}
}

func TestRelayRejectsBadRequests(t *testing.T) {
	r := newTestRelay(t, RelayConfig{})
	a := newTestNode(t)
	connect(t, a, r.Node())
	for name, req := range map[string][]byte{
		"unknown op":     {99},
		"empty":          {},
		"trailing":       {relayOpFetch, 1, 0},
		"bad recipient":  append([]byte{relayOpDeposit, 2, 0xff, 0xff, 0}, 0),
		"too many kps":   {relayOpPutKPs, 0xff, 0x0f},
		"empty kp":       {relayOpPutKPs, 1, 0, 0},
		"bad topic name": append([]byte{relayOpKeep, 3}, "abc\x01"...),
	} {
		err := a.call(testCtx(t, 5*time.Second), r.Node().ID(), ProtocolRelay, func(f *frameStream) error {
			if err := writeReq(f, req, smallFrame); err != nil {
				return err
			}
			_, err := expectOK(f, 64)
			return err
		})
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want bad request", name, err)
		}
	}
}

func containsBytes(set [][]byte, b []byte) bool {
	return slices.ContainsFunc(set, func(x []byte) bool { return bytes.Equal(x, b) })
}

func entriesData(es []SyncEntry) [][]byte {
	var out [][]byte
	for _, e := range es {
		out = append(out, e.Data)
	}
	return out
}
