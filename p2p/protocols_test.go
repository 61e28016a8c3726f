package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// pair returns two connected nodes; the server gets the given options.
func pair(t *testing.T, serverOpts ...Option) (client, server *Node) {
	t.Helper()
	server = newTestNode(t, serverOpts...)
	client = newTestNode(t)
	connect(t, client, server)
	return client, server
}

func wantRemote(t *testing.T, err error, code Code, sentinel error) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) || pe.Op != "remote" || pe.Code != code || !errors.Is(err, sentinel) {
		t.Fatalf("got %v (%#v), want remote %s", err, pe, code)
	}
}

func TestKeyPackageProtocol(t *testing.T) {
	kp := KeyPackage{Data: []byte("a key package")}
	var calls sync.Map
	client, server := pair(t, WithHandlers(Handlers{
		KeyPackage: func(ctx context.Context, from peer.ID) (KeyPackage, error) {
			if _, again := calls.LoadOrStore(from, true); again {
				return KeyPackage{}, fmt.Errorf("%w: used up", ErrNotFound)
			}
			return kp, nil
		},
	}))
	ctx := testCtx(t, 10*time.Second)
	got, err := client.FetchKeyPackage(ctx, server.ID(), server.ID())
	if err != nil || !bytes.Equal(got.Data, kp.Data) || got.LastResort {
		t.Fatalf("FetchKeyPackage: %+v %v", got, err)
	}
	_, err = client.FetchKeyPackage(ctx, server.ID(), "")
	wantRemote(t, err, CodeNotFound, ErrNotFound)
	// A member does not serve other users' packages.
	_, err = client.FetchKeyPackage(ctx, server.ID(), client.ID())
	wantRemote(t, err, CodeNotFound, ErrNotFound)
	// A suite-aware handler is told the suite asked for.
	server.SetHandlers(Handlers{KeyPackageForSuite: func(_ context.Context, _ peer.ID, suite uint16) (KeyPackage, error) {
		return KeyPackage{Data: []byte("kp"), CipherSuite: suite}, nil
	}})
	if got, err := client.FetchKeyPackageForSuite(ctx, server.ID(), "", 3); err != nil || got.CipherSuite != 3 {
		t.Fatalf("suite-aware fetch: %+v %v", got, err)
	}
	// A server answering with another suite is caught.
	server.SetHandlers(Handlers{KeyPackage: func(context.Context, peer.ID) (KeyPackage, error) {
		return KeyPackage{Data: []byte("kp"), CipherSuite: 2}, nil
	}})
	_, err = client.FetchKeyPackageForSuite(ctx, server.ID(), "", 3)
	wantRemote(t, err, CodeNotFound, ErrNotFound)
	// Oversize packages are refused by the server rather than sent.
	server.SetHandlers(Handlers{KeyPackage: func(context.Context, peer.ID) (KeyPackage, error) {
		return KeyPackage{Data: make([]byte, MaxKeyPackageSize+1)}, nil
	}})
	_, err = client.FetchKeyPackage(ctx, server.ID(), "")
	wantRemote(t, err, CodeTooLarge, ErrFrameTooLarge)
}

func TestInboxProtocol(t *testing.T) {
	got := make(chan InboxMessage, 1)
	var sender peer.ID
	client, server := pair(t, WithMaxMessageSize(4096), WithHandlers(Handlers{
		Inbox: func(ctx context.Context, from peer.ID, m InboxMessage) error {
			if m.Kind == InboxDirect {
				return fmt.Errorf("%w: not from strangers", ErrDenied)
			}
			sender = from
			got <- m
			return nil
		},
	}))
	ctx := testCtx(t, 10*time.Second)
	topic := TopicName([]byte("g"))
	welcome := InboxMessage{Kind: InboxWelcome, Topic: topic, Data: []byte("welcome!")}
	if err := client.SendInbox(ctx, server.ID(), welcome); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m.Kind != InboxWelcome || m.Topic != topic || !bytes.Equal(m.Data, welcome.Data) || sender != client.ID() {
		t.Fatalf("received %+v from %s", m, sender)
	}
	err := client.SendInbox(ctx, server.ID(), InboxMessage{Kind: InboxDirect, Data: []byte("hi")})
	wantRemote(t, err, CodeDenied, ErrDenied)
	// A topic frame for a topic the server has not joined.
	err = client.SendInbox(ctx, server.ID(), InboxMessage{Kind: InboxTopic, Topic: topic, Data: mlsFrame([]byte("g"), 1, "x")})
	wantRemote(t, err, CodeNotFound, ErrNotFound)
	// The server's cap (4 KiB + envelope) is enforced before reading the body.
	err = client.SendInbox(ctx, server.ID(), InboxMessage{Kind: InboxWelcome, Data: make([]byte, 8000)})
	wantRemote(t, err, CodeTooLarge, ErrFrameTooLarge)
	// No handler: unavailable.
	server.SetHandlers(Handlers{})
	err = client.SendInbox(ctx, server.ID(), welcome)
	wantRemote(t, err, CodeUnavailable, ErrUnavailable)
}

func TestSyncProtocol(t *testing.T) {
	group := newGroupID()
	topic := TopicName(group)
	var stored []SyncEntry
	for i := 1; i <= 7; i++ {
		stored = append(stored, SyncEntry{Seq: uint64(i * 10), Epoch: uint64(i), Data: mlsFrame(group, uint64(i), fmt.Sprint(i))})
	}
	handler := func(ctx context.Context, from peer.ID, req SyncRequest) (SyncPage, error) {
		if req.Topic != topic {
			return SyncPage{}, ErrNotFound
		}
		var page SyncPage
		for _, e := range stored {
			if e.Seq <= req.After || e.Epoch < req.SinceEpoch {
				continue
			}
			if len(page.Entries) == req.Limit {
				page.More = true
				break
			}
			page.Entries = append(page.Entries, e)
		}
		return page, nil
	}
	client, server := pair(t, WithHandlers(Handlers{Sync: handler}))
	ctx := testCtx(t, 10*time.Second)

	page, err := client.Sync(ctx, server.ID(), SyncRequest{Topic: topic, SinceEpoch: 3, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 2 || page.Entries[0].Epoch != 3 || !page.More || page.Next != 40 {
		t.Fatalf("page %+v", page)
	}
	var all []uint64
	err = client.SyncAll(ctx, server.ID(), topic, 2, func(e SyncEntry) error {
		all = append(all, e.Epoch)
		return nil
	})
	if err != nil || fmt.Sprint(all) != "[2 3 4 5 6 7]" {
		t.Fatalf("SyncAll: %v %v", all, err)
	}
	_, err = client.Sync(ctx, server.ID(), SyncRequest{Topic: TopicName([]byte("unknown"))})
	wantRemote(t, err, CodeNotFound, ErrNotFound)

	// A server handing out frames of another group is caught by the client.
	stored = append(stored, SyncEntry{Seq: 100, Epoch: 9, Data: mlsFrame([]byte("other"), 9, "x")})
	_, err = client.Sync(ctx, server.ID(), SyncRequest{Topic: topic, SinceEpoch: 9})
	if !errors.Is(err, ErrBadResponse) {
		t.Fatalf("foreign frame accepted: %v", err)
	}
}

func TestTreeProtocol(t *testing.T) {
	group := newGroupID()
	tree := bytes.Repeat([]byte("ratchet tree "), 200_000) // 2.6 MB: three chunks
	client, server := pair(t, WithHandlers(Handlers{
		Tree: func(ctx context.Context, from peer.ID, req TreeRequest) ([]byte, error) {
			if req.Epoch != 5 || !bytes.Equal(req.TreeHash, []byte("hash")) {
				return nil, ErrNotFound
			}
			return tree, nil
		},
	}))
	ctx := testCtx(t, 20*time.Second)
	got, err := client.FetchTree(ctx, server.ID(), TreeRequest{Topic: TopicName(group), Epoch: 5, TreeHash: []byte("hash")})
	if err != nil || !bytes.Equal(got, tree) {
		t.Fatalf("FetchTree: %d bytes, %v", len(got), err)
	}
	_, err = client.FetchTree(ctx, server.ID(), TreeRequest{Topic: TopicName(group), Epoch: 4})
	wantRemote(t, err, CodeNotFound, ErrNotFound)
	if _, err := client.FetchTree(ctx, server.ID(), TreeRequest{Topic: "nope"}); err == nil {
		t.Fatal("bad topic accepted")
	}

	// A server announcing more than MaxTreeSize is cut off by the client.
	liar := newTestNode(t)
	liar.Host().SetStreamHandler(ProtocolTree, func(s network.Stream) {
		defer s.Close()
		f := newFrameStream(s, time.Second, time.Time{})
		if _, err := f.read(smallFrame); err != nil {
			return
		}
		var e enc
		e.uvarint(MaxTreeSize + 1)
		_ = f.writeStatus(CodeOK, "", e.body(), 16)
	})
	connect(t, client, liar)
	_, err = client.FetchTree(ctx, liar.ID(), TreeRequest{Topic: TopicName(group)})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversize tree: %v", err)
	}
}

// TestProtocolDeadlines: a server that never answers makes the client fail
// with ErrTimeout by the ctx deadline; a client that never sends its request
// is cut off by the server's read deadline.
func TestProtocolDeadlines(t *testing.T) {
	client := newTestNode(t)
	mute := newTestNode(t, WithTimeouts(time.Second, 200*time.Millisecond, time.Second))
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	mute.Host().SetStreamHandler(ProtocolKeyPackage, func(s network.Stream) {
		<-block
		_ = s.Reset()
	})
	connect(t, client, mute)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client.FetchKeyPackage(ctx, mute.ID(), "")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Protocol != ProtocolKeyPackage || pe.Peer != mute.ID() {
		t.Fatalf("error lacks context: %#v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("timeout took %v", d)
	}

	// Server side: open a sync stream and send nothing.
	s, err := client.Host().NewStream(testCtx(t, 5*time.Second), mute.ID(), ProtocolSync)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	start = time.Now()
	if _, err := io.ReadAll(s); errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("server did not close the idle stream: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("server kept an idle stream for %v", d)
	}
	_ = s.Reset()
}

func TestProtocolRateLimit(t *testing.T) {
	client, server := pair(t, WithRequestRateLimit(RateLimit{Rate: 0.001, Burst: 2}), WithHandlers(Handlers{
		KeyPackage: func(context.Context, peer.ID) (KeyPackage, error) { return KeyPackage{Data: []byte("kp")}, nil },
	}))
	ctx := testCtx(t, 10*time.Second)
	for i := 0; i < 2; i++ {
		if _, err := client.FetchKeyPackage(ctx, server.ID(), ""); err != nil {
			t.Fatal(err)
		}
	}
	_, err := client.FetchKeyPackage(ctx, server.ID(), "")
	wantRemote(t, err, CodeRateLimited, ErrRateLimited)
}

// TestRawFrameCaps drives servers with hand-made frames.
func TestRawFrameCaps(t *testing.T) {
	client, server := pair(t)
	for _, tc := range []struct {
		proto protocol.ID
		req   []byte
		code  Code
		reset bool
	}{
		{ProtocolSync, appendFrame(nil, make([]byte, smallFrame+1)), CodeTooLarge, false},
		{ProtocolSync, []byte{0x85}, 0, true},                                             // truncated length
		{ProtocolSync, appendFrame(nil, []byte{1, 2, 3}), CodeBadRequest, false},          // garbage body
		{ProtocolKeyPackage, appendFrame(nil, []byte{3, 1, 2, 3}), CodeBadRequest, false}, // bad peer id
		{ProtocolTree, appendFrame(nil, encodeTreeRequest(TreeRequest{Topic: "x"})), CodeBadRequest, false},
		{ProtocolInbox, appendFrame(nil, []byte{9, 0, 0}), CodeBadRequest, false}, // unknown kind
	} {
		s, err := client.Host().NewStream(testCtx(t, 5*time.Second), server.ID(), tc.proto)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Write(tc.req); err != nil {
			t.Fatal(err)
		}
		_ = s.CloseWrite()
		f := newFrameStream(s, 5*time.Second, time.Time{})
		code, msg, _, err := f.readStatus(0)
		if tc.reset {
			// A malformed length is answered with a reset.
			if err == nil {
				t.Errorf("%s %x: status %v, want reset", tc.proto, tc.req, code)
			}
			_ = s.Reset()
			continue
		}
		if err != nil || code != tc.code {
			t.Errorf("%s %x: code %v (%s), err %v; want %v", tc.proto, tc.req[:min(8, len(tc.req))], code, msg, err, tc.code)
		}
		_ = s.Close()
	}
}

// TestProtocolsOverQUIC runs the request/response protocols over QUIC
// only. A QUIC stream's Close also stops reading, so a server that closes
// its stream after answering cancels the client's send side: the client
// must take the response it read as the outcome, not the error its own
// Close then reports ("close called for canceled stream").
func TestProtocolsOverQUIC(t *testing.T) {
	const quic = "/ip4/127.0.0.1/udp/0/quic-v1"
	group := newGroupID()
	inbox := make(chan InboxMessage, 32)
	server := newTestNode(t, WithListenAddrs(quic), WithHandlers(Handlers{
		KeyPackage: func(context.Context, peer.ID) (KeyPackage, error) {
			return KeyPackage{Data: []byte("a key package")}, nil
		},
		Inbox: func(_ context.Context, _ peer.ID, m InboxMessage) error {
			inbox <- m
			return nil
		},
		Tree: func(context.Context, peer.ID, TreeRequest) ([]byte, error) {
			return []byte("a tree"), nil
		},
	}))
	client := newTestNode(t, WithListenAddrs(quic))
	connect(t, client, server)
	for _, c := range client.Host().Network().ConnsToPeer(server.ID()) {
		if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_QUIC_V1); err != nil {
			t.Fatalf("not a QUIC connection: %s", c.RemoteMultiaddr())
		}
	}
	ctx := testCtx(t, 20*time.Second)
	for i := range 20 {
		if kp, err := client.FetchKeyPackage(ctx, server.ID(), server.ID()); err != nil || string(kp.Data) != "a key package" {
			t.Fatalf("FetchKeyPackage #%d: %+v %v", i, kp, err)
		}
		if err := client.SendInbox(ctx, server.ID(), InboxMessage{Kind: InboxWelcome, Data: []byte("w")}); err != nil {
			t.Fatalf("SendInbox #%d: %v", i, err)
		}
		if tree, err := client.FetchTree(ctx, server.ID(), TreeRequest{Topic: TopicName(group)}); err != nil || string(tree) != "a tree" {
			t.Fatalf("FetchTree #%d: %q %v", i, tree, err)
		}
	}
}
