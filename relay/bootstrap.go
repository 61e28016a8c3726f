package relay

import (
	"fmt"
	"io"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// printBootstrapArg prints the argument peers pass to reach this relay, so
// that the operator can copy it as it is: the public addresses when the
// relay has any (listening on a public interface, or -announce), else the
// LAN ones, else loopback (a relay for this machine only). It says which
// of these it is, since only public addresses work across the internet.
func printBootstrapArg(w io.Writer, addrs []ma.Multiaddr) {
	var public, lan, loop []string
	for _, a := range addrs {
		switch {
		case manet.IsIPLoopback(a):
			loop = append(loop, a.String())
		case manet.IsPublicAddr(a):
			public = append(public, a.String())
		default:
			lan = append(lan, a.String())
		}
	}
	pick, note := public, "peers anywhere on the internet"
	switch {
	case len(public) > 0:
	case len(lan) > 0:
		pick, note = lan, "peers on this network only: no public address is known (run the relay on a public host, or give -announce /ip4/PUBLIC-IP/tcp/PORT,/ip4/PUBLIC-IP/udp/PORT/quic-v1 behind port forwarding)"
	default:
		pick, note = loop, "peers on this machine only: the relay listens on loopback"
	}
	if len(pick) == 0 {
		return
	}
	fmt.Fprintf(w, "Give this to peers (%s):\n  --bootstrap %s\n", note, strings.Join(pick, ","))
}
