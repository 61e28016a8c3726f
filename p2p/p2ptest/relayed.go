package p2ptest

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Helpers for tests of relayed connections in packages that cannot name
// libp2p's types: a reservation, the circuit address, a forced direct
// connection, a request that keeps a connection busy, and a TCP link that
// can fall silent.

// Reserve takes a reservation for n on relay (circuit relay v2), as
// autorelay does behind NAT.
func Reserve(ctx context.Context, n *p2p.Node, relay p2p.AddrInfo) error {
	_, err := client.Reserve(ctx, n.Host(), relay)
	return err
}

// CircuitAddr is the address of target through relay, reached at relayAddr.
func CircuitAddr(relayAddr p2p.Multiaddr, relay p2p.PeerID) p2p.Multiaddr {
	return relayAddr.Encapsulate(ma.StringCast("/p2p/" + relay.String() + "/p2p-circuit"))
}

// ConnKinds counts from's open relayed and direct connections to p.
func ConnKinds(from *p2p.Node, p p2p.PeerID) (relayed, direct int) {
	for _, c := range from.Host().Network().ConnsToPeer(p) {
		switch {
		case c.IsClosed():
		case isCircuit(c.RemoteMultiaddr()):
			relayed++
		default:
			direct++
		}
	}
	return relayed, direct
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// DialDirect opens a direct connection from from to to next to a relayed
// one, as hole punching does.
func DialDirect(ctx context.Context, from, to *p2p.Node) error {
	from.Host().Peerstore().AddAddrs(to.ID(), to.Addrs(), time.Hour)
	_, err := from.Host().Network().DialPeer(network.WithForceDirectDial(ctx, "p2ptest"), to.ID())
	return err
}

const holdProtocol = "/canopy-test/hold/1"

// Hold opens a stream of a protocol nobody moves to another connection
// from from to to, on the connection new streams take now, and keeps it
// open until release: a request in progress. The relayed connection it
// runs on is not retired meanwhile.
func Hold(t *testing.T, from, to *p2p.Node) (release func()) {
	t.Helper()
	held, opened := make(chan struct{}), make(chan struct{})
	var once sync.Once
	to.Host().SetStreamHandler(holdProtocol, func(s network.Stream) {
		close(opened)
		<-held
		_ = s.Reset()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := from.Host().NewStream(ctx, to.ID(), holdProtocol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatal("the held stream did not open")
	}
	release = func() {
		once.Do(func() {
			close(held)
			_ = s.Reset()
		})
	}
	t.Cleanup(release)
	return release
}

// SilentLink forwards TCP connections to a target until it falls silent;
// then it forwards nothing and closes nothing, like a relay that vanished
// from the network.
type SilentLink struct {
	ln     net.Listener
	target string
	silent atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

// NewSilentLink forwards to target (a TCP multiaddr) until Silence.
func NewSilentLink(t *testing.T, target p2p.Multiaddr) *SilentLink {
	t.Helper()
	_, hostport, err := manet.DialArgs(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &SilentLink{ln: ln, target: hostport}
	t.Cleanup(l.close)
	go l.serve()
	return l
}

// Addr is the link's address: dial it instead of the target.
func (l *SilentLink) Addr() p2p.Multiaddr {
	a, _ := manet.FromNetAddr(l.ln.Addr())
	return a
}

// Silence stops all forwarding for good.
func (l *SilentLink) Silence() { l.silent.Store(true) }

func (l *SilentLink) serve() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", l.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, in, out)
		l.mu.Unlock()
		go l.pipe(out, in)
		go l.pipe(in, out)
	}
}

func (l *SilentLink) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.silent.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !l.silent.Load() {
				_ = dst.Close()
			}
			return
		}
	}
}

func (l *SilentLink) close() {
	_ = l.ln.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
}
