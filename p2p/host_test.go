package p2p

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

func TestNodeStartStop(t *testing.T) {
	key, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(context.Background(), key, baseOpts(t)...)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := PeerIDOf(key)
	if n.ID() != id {
		t.Fatalf("node id %s, key id %s", n.ID(), id)
	}
	addrs := n.Addrs()
	if len(addrs) == 0 {
		t.Fatal("no addresses")
	}
	for _, a := range addrs {
		if !strings.HasPrefix(a.String(), "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(a.String(), "/p2p/"+id.String()) {
			t.Errorf("unexpected address %s", a)
		}
	}
	if _, err := n.JoinGroup(newGroupID()); err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); st.ID != id || st.Topics != 1 || st.Peers != 0 || st.Reachability != network.ReachabilityUnknown {
		t.Fatalf("status %+v", st)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := n.JoinGroup(newGroupID()); !errors.Is(err, ErrClosed) {
		t.Fatalf("JoinGroup after Close: %v, want ErrClosed", err)
	}
	if err := n.SendInbox(context.Background(), id, InboxMessage{Kind: InboxDirect}); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendInbox after Close: %v, want ErrClosed", err)
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	key, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalIdentity(key)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalIdentity(b)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equals(back) {
		t.Fatal("identity changed in round trip")
	}
	if _, err := UnmarshalIdentity(b[:len(b)-1]); err == nil {
		t.Fatal("truncated identity accepted")
	}
	// A node started twice from the stored key keeps its peer id.
	n1 := newTestNode(t)
	n2, err := New(context.Background(), back, baseOpts(t)...)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	id, _ := PeerIDOf(key)
	if n2.ID() != id || n1.ID() == id {
		t.Fatal("peer id not derived from the identity key")
	}
}

// QUIC carries connections, and a dialer that knows a peer's QUIC and TCP
// addresses prefers QUIC; TCP connections negotiate TLS or Noise and yamux.
// Which of two racing dials wins is the scheduler's call (on loopback the
// TCP dial starts only 30 ms after the QUIC one, and a loaded machine once
// finished it first), so the preference is checked on libp2p's dial
// ranking, which the node keeps, and the QUIC connection by dialling b's
// QUIC addresses alone.
func TestQUICAndTLSNoise(t *testing.T) {
	const loopQUIC = "/ip4/127.0.0.1/udp/0/quic-v1"
	a := newTestNode(t, WithListenAddrs(loopQUIC))
	b := newTestNode(t, WithListenAddrs(loopQUIC, loopTCP))
	var quicAddrs, tcpAddrs []ma.Multiaddr
	for _, addr := range b.Host().Addrs() {
		if _, err := addr.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			quicAddrs = append(quicAddrs, addr)
		} else if _, err := addr.ValueForProtocol(ma.P_TCP); err == nil {
			tcpAddrs = append(tcpAddrs, addr)
		}
	}
	if len(quicAddrs) == 0 || len(tcpAddrs) == 0 {
		t.Fatalf("b listens on %v, want QUIC and TCP", b.Host().Addrs())
	}
	delay := map[string]time.Duration{}
	for _, ad := range swarm.DefaultDialRanker(b.Host().Addrs()) {
		delay[ad.Addr.String()] = ad.Delay
	}
	for _, q := range quicAddrs {
		for _, c := range tcpAddrs {
			if delay[q.String()] >= delay[c.String()] {
				t.Errorf("QUIC %s dialled after %v, TCP %s after %v: QUIC not preferred", q, delay[q.String()], c, delay[c.String()])
			}
		}
	}

	if err := a.Connect(testCtx(t, 10*time.Second), peer.AddrInfo{ID: b.ID(), Addrs: quicAddrs}); err != nil {
		t.Fatal(err)
	}
	conns := a.Host().Network().ConnsToPeer(b.ID())
	if len(conns) == 0 {
		t.Fatal("no connection")
	}
	for _, conn := range conns {
		if _, err := conn.RemoteMultiaddr().ValueForProtocol(ma.P_QUIC_V1); err != nil {
			t.Fatalf("expected a QUIC connection, got %s", conn.RemoteMultiaddr())
		}
	}
	// TCP connections negotiate TLS or Noise and yamux.
	c := newTestNode(t)
	if err := c.Connect(testCtx(t, 10*time.Second), peer.AddrInfo{ID: b.ID(), Addrs: tcpAddrs}); err != nil {
		t.Fatal(err)
	}
	for _, conn := range c.Host().Network().ConnsToPeer(b.ID()) {
		st := conn.ConnState()
		if st.Security != "/tls/1.0.0" && st.Security != "/noise" {
			t.Errorf("security %q", st.Security)
		}
		if st.StreamMultiplexer != "/yamux/1.0.0" {
			t.Errorf("muxer %q", st.StreamMultiplexer)
		}
	}
	if b.Host().Network().Connectedness(c.ID()) != network.Connected {
		t.Fatal("not connected")
	}
}

func TestOptionsValidation(t *testing.T) {
	ctx := context.Background()
	for name, opt := range map[string]Option{
		"listen":     WithListenAddrs("not-a-multiaddr"),
		"conn":       WithConnLimits(10, 5),
		"msgsize":    WithMaxMessageSize(10),
		"dht":        WithDHT(DHTMode(42)),
		"resources":  WithResourceLimits(0, 0),
		"timeouts":   WithTimeouts(0, time.Second, time.Second),
		"discovery":  WithDiscoveryInterval(0),
		"listenNone": WithListenAddrs(),
	} {
		if _, err := New(ctx, nil, opt); err == nil {
			t.Errorf("%s: invalid option accepted", name)
		}
	}
	infos, err := ParseAddrInfos([]string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", ""})
	if err != nil || len(infos) != 1 || len(infos[0].Addrs) != 1 {
		t.Fatalf("ParseAddrInfos: %v %v", infos, err)
	}
	if _, err := ParseAddrInfos([]string{"/ip4/127.0.0.1/tcp/4001"}); err == nil {
		t.Fatal("address without peer id accepted")
	}
}
