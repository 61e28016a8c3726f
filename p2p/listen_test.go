package p2p

import (
	"context"
	"errors"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// TestListenAddrInUse: a second node given the TCP or the QUIC port of a
// running one fails with ErrAddrInUse naming the address, although libp2p
// listens on TCP with SO_REUSEPORT (which would let both bind).
func TestListenAddrInUse(t *testing.T) {
	a := newTestNode(t, WithListenAddrs(loopTCP, "/ip4/127.0.0.1/udp/0/quic-v1"))
	ports := a.ListenPorts()
	if len(ports) != 2 {
		t.Fatalf("ListenPorts = %v, want the TCP and the QUIC address", ports)
	}
	for _, p := range ports {
		if strings.HasSuffix(p.String(), "/0") || strings.Contains(p.String(), "/0/") {
			t.Fatalf("ListenPorts %s still has port 0", p)
		}
		_, err := New(context.Background(), nil, append(baseOpts(t), WithListenAddrs(p.String()))...)
		if !errors.Is(err, ErrAddrInUse) {
			t.Fatalf("second node on %s: err = %v, want ErrAddrInUse", p, err)
		}
		var inUse *AddrInUseError
		if !errors.As(err, &inUse) || !inUse.Addr.Equal(p) || !strings.Contains(err.Error(), "address in use") {
			t.Fatalf("error %q does not name %s", err, p)
		}
	}
	// The same ports are free again once a is closed: a restarted node
	// gets them back.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	var again []string
	for _, p := range ports {
		again = append(again, p.String())
	}
	b := newTestNode(t, WithListenAddrs(again...))
	if got := b.ListenPorts(); !sameMultiaddrs(got, ports) {
		t.Fatalf("restarted node listens on %v, want %v", got, ports)
	}
}

func sameMultiaddrs(a, b []ma.Multiaddr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			found = found || x.Equal(y)
		}
		if !found {
			return false
		}
	}
	return true
}

func TestListenNetAddr(t *testing.T) {
	for _, tc := range []struct{ addr, network, hostport string }{
		{"/ip4/127.0.0.1/tcp/4001", "tcp4", "127.0.0.1:4001"},
		{"/ip4/0.0.0.0/udp/4001/quic-v1", "udp4", "0.0.0.0:4001"},
		{"/ip6/::/tcp/4001", "tcp6", "[::]:4001"},
		{"/ip4/127.0.0.1/tcp/0", "", ""},
		{"/dns4/example.com/tcp/4001", "", ""},
	} {
		n, hp, ok := listenNetAddr(ma.StringCast(tc.addr))
		if n != tc.network || hp != tc.hostport || ok != (tc.network != "") {
			t.Errorf("listenNetAddr(%s) = %q %q %v", tc.addr, n, hp, ok)
		}
	}
}
