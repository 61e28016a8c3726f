package p2p

import (
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Peer ids and addresses cross p2p's boundary as type aliases, not wrapper
// types: they are libp2p's own types under p2p's names, so values flow to
// and from libp2p (and between packages) without conversions, their
// methods (String, Bytes, Encapsulate, …) stay available, and existing
// encodings (store columns, cards, MLS credentials) are unchanged. What
// the aliases buy is that packages above p2p name only p2p, so the layout
// test can hold them to it; a wrapper would add copying and a second
// spelling of every method for no gain in safety.
type (
	// PeerID is a libp2p peer id (the multihash of a peer's public key).
	PeerID = peer.ID
	// AddrInfo is a peer id with the addresses it may be dialled on.
	AddrInfo = peer.AddrInfo
	// Multiaddr is a libp2p multiaddress.
	Multiaddr = ma.Multiaddr
)

// DecodePeerID parses the text form of a peer id (as PeerID.String gives).
func DecodePeerID(s string) (PeerID, error) { return peer.Decode(s) }

// PeerIDFromBytes parses the binary form of a peer id (PeerID's bytes, as
// string(id) holds them).
func PeerIDFromBytes(b []byte) (PeerID, error) { return peer.IDFromBytes(b) }

// PeerIDFromP2PAddr returns the peer id that a multiaddr ending in
// /p2p/<id> names (an error if it names none).
func PeerIDFromP2PAddr(a Multiaddr) (PeerID, error) {
	return peer.IDFromP2PAddr(a)
}

// ParseMultiaddr parses the text form of a multiaddr.
func ParseMultiaddr(s string) (Multiaddr, error) {
	return ma.NewMultiaddr(s)
}

// MultiaddrFromBytes parses the binary form of a multiaddr (Bytes). The
// result may share b.
func MultiaddrFromBytes(b []byte) (Multiaddr, error) {
	return ma.NewMultiaddrBytes(b)
}

// MustParseMultiaddr parses s and panics if it is not a multiaddr: for
// constants, tests and strings that an earlier ParseMultiaddr accepted.
func MustParseMultiaddr(s string) Multiaddr {
	return ma.StringCast(s)
}

// IsCircuitAddr reports whether a is a relay circuit address
// (…/p2p-circuit…).
func IsCircuitAddr(a Multiaddr) bool { return isCircuitAddr(a) }

// CircuitAddrs returns the circuit addresses through relay
// (…/p2p/RELAY/p2p-circuit), one per direct address of the relay: they
// reach a peer that holds a reservation there.
func CircuitAddrs(relay AddrInfo) []Multiaddr {
	var out []Multiaddr
	for _, a := range relay.Addrs {
		if isCircuitAddr(a) {
			continue
		}
		full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: relay.ID, Addrs: []ma.Multiaddr{a}})
		if err != nil || len(full) != 1 {
			continue
		}
		out = append(out, full[0].Encapsulate(ma.StringCast("/p2p-circuit")))
	}
	return out
}

// ZeroPort returns the text form of a with its TCP or UDP port
// replaced by 0 ("" if that fails): the listen spec that a bound address
// came from.
func ZeroPort(a Multiaddr) string {
	var out ma.Multiaddr
	for _, c := range a {
		if code := c.Protocol().Code; code == ma.P_TCP || code == ma.P_UDP {
			z, err := ma.NewComponent(c.Protocol().Name, "0")
			if err != nil {
				return ""
			}
			c = *z
		}
		out = append(out, c)
	}
	return out.String()
}
