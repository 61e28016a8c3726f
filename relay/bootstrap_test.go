package relay

import (
	"bytes"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/p2p"
	ma "github.com/multiformats/go-multiaddr"
)

// TestPrintBootstrapArg: the relay prints one --bootstrap argument, with
// the public addresses when it has any, and that argument parses as peers'
// --bootstrap does.
func TestPrintBootstrapArg(t *testing.T) {
	const id = "12D3KooWH2kkQtKxUZ26W1kJjYrdASk4cFjyXLqhSD2xNpWne5KQ"
	all := []ma.Multiaddr{
		ma.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/" + id),
		ma.StringCast("/ip4/192.168.1.7/tcp/4001/p2p/" + id),
		ma.StringCast("/ip4/1.2.3.4/tcp/4001/p2p/" + id), // only printed, never dialled
		ma.StringCast("/ip4/1.2.3.4/udp/4001/quic-v1/p2p/" + id),
	}
	for _, tc := range []struct {
		addrs []ma.Multiaddr
		want  string
		note  string
	}{
		{all, "/ip4/1.2.3.4/tcp/4001/p2p/" + id + ",/ip4/1.2.3.4/udp/4001/quic-v1/p2p/" + id, "internet"},
		{all[:2], "/ip4/192.168.1.7/tcp/4001/p2p/" + id, "this network only"},
		{all[:1], "/ip4/127.0.0.1/tcp/4001/p2p/" + id, "this machine only"},
	} {
		var b bytes.Buffer
		printBootstrapArg(&b, tc.addrs)
		out := b.String()
		if !strings.Contains(out, tc.note) || !strings.Contains(out, "\n  --bootstrap "+tc.want+"\n") {
			t.Errorf("printed %q, want --bootstrap %s (%s)", out, tc.want, tc.note)
		}
		arg := strings.TrimPrefix(strings.TrimSpace(strings.Split(out, "\n")[1]), "--bootstrap ")
		if infos, err := p2p.ParseAddrInfos(strings.Split(arg, ",")); err != nil || len(infos) != 1 {
			t.Errorf("printed argument %q does not parse: %v", arg, err)
		}
	}
}
