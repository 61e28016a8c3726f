package p2p

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ErrAddrInUse is wrapped by the error New returns when an explicit listen
// address (one with a port other than 0) is taken by another program.
var ErrAddrInUse = errors.New("address in use")

// AddrInUseError names the listen address that is taken.
type AddrInUseError struct {
	Addr ma.Multiaddr
	Err  error // the bind error
}

func (e *AddrInUseError) Error() string {
	return fmt.Sprintf("p2p: listen address %s: address in use (another canopy or another program listens there): %v", e.Addr, e.Err)
}

func (e *AddrInUseError) Unwrap() []error { return []error{ErrAddrInUse, e.Err} }

// checkListenFree binds every listen address with a fixed port once, without
// SO_REUSEPORT, and closes it again.
//
// Why: libp2p's TCP transport listens with SO_REUSEPORT so that outgoing
// dials leave from the listen port (NATs then map them to the same public
// port, which TCP hole punching needs). The price is that a second process
// of the same user binds the same port silently and the kernel splits the
// incoming connections between the two. tcp.DisableReuseport would close
// that hole but also lose the port reuse for dials; a plain bind first
// fails with EADDRINUSE when anyone listens there, with or without
// SO_REUSEPORT, and keeps reuse for our own dials. QUIC listens with a
// plain UDP socket (quic-go's reuse means sharing that one socket for dials),
// so a taken UDP port fails in libp2p already, but only with one warning
// among several listen addresses: it is checked here too.
//
// Between the check and libp2p's own bind another process can still take
// the port; that race needs two programs starting in the same milliseconds.
// Addresses the machine cannot bind at all (no IPv6) are left to libp2p,
// which skips them.
func checkListenFree(addrs []ma.Multiaddr) error {
	for _, a := range addrs {
		network, hostport, ok := listenNetAddr(a)
		if !ok {
			continue
		}
		var err error
		switch network {
		case "tcp4", "tcp6":
			var l net.Listener
			if l, err = net.Listen(network, hostport); err == nil {
				err = l.Close()
			}
		default:
			var c net.PacketConn
			if c, err = net.ListenPacket(network, hostport); err == nil {
				err = c.Close()
			}
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return &AddrInUseError{Addr: a, Err: err}
		}
	}
	return nil
}

// listenNetAddr returns the network and host:port of an IP listen address
// with a fixed TCP or UDP port (manet.DialArgs, restricted to addresses
// that start with an IP: a DNS name is not something to bind).
func listenNetAddr(a ma.Multiaddr) (network, hostport string, ok bool) {
	if len(a) < 2 {
		return "", "", false
	}
	if c := a[0].Protocol().Code; c != ma.P_IP4 && c != ma.P_IP6 {
		return "", "", false
	}
	network, hostport, err := manet.DialArgs(a)
	if err != nil || !strings.HasPrefix(network, "tcp") && !strings.HasPrefix(network, "udp") {
		return "", "", false
	}
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "0" {
		return "", "", false
	}
	return network, hostport, true
}

// ListenPorts returns the listen addresses the node is bound to, with the
// ports the system chose for port 0 filled in (unexpanded: 0.0.0.0 stays
// 0.0.0.0). Passed back to WithListenAddrs, they listen on the same ports
// again.
func (n *Node) ListenPorts() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range n.h.Network().ListenAddresses() {
		if _, _, ok := listenNetAddr(a); ok && !isCircuitAddr(a) {
			out = append(out, a)
		}
	}
	return out
}

// CheckListenAddrs parses listen multiaddrs as WithListenAddrs does and
// fails with ErrAddrInUse if one with a fixed port is taken, so that
// commands can refuse bad flags before they create anything on disk.
func CheckListenAddrs(addrs []string) error {
	a, err := parseAddrs(addrs)
	if err != nil {
		return err
	}
	return checkListenFree(a)
}
