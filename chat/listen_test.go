package chat

import (
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/p2p"
)

func TestParseListenFile(t *testing.T) {
	got, err := parseListenFile([]byte("/ip4/0.0.0.0/tcp/0 /ip4/0.0.0.0/tcp/41237\n\n/ip6/::/udp/0/quic-v1 /ip6/::/udp/40001/quic-v1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got["/ip4/0.0.0.0/tcp/0"] != "/ip4/0.0.0.0/tcp/41237" || got["/ip6/::/udp/0/quic-v1"] != "/ip6/::/udp/40001/quic-v1" || len(got) != 2 {
		t.Fatalf("parsed %v", got)
	}
	for _, bad := range []string{
		"/ip4/0.0.0.0/tcp/0",                         // no bound address
		"/ip4/0.0.0.0/tcp/0 /ip4/127.0.0.1/tcp/4001", // another interface
		"/ip4/0.0.0.0/tcp/0 /ip4/0.0.0.0/udp/4001",   // another transport
		"/ip4/0.0.0.0/tcp/0 /ip4/0.0.0.0/tcp/0",      // no port kept
		"nonsense /ip4/0.0.0.0/tcp/1",
	} {
		if _, err := parseListenFile([]byte(bad)); err == nil {
			t.Errorf("parseListenFile(%q) accepted", bad)
		}
	}
}

func FuzzParseListenFile(f *testing.F) {
	f.Add([]byte("/ip4/0.0.0.0/tcp/0 /ip4/0.0.0.0/tcp/41237\n/ip4/0.0.0.0/udp/0/quic-v1 /ip4/0.0.0.0/udp/41237/quic-v1\n"))
	f.Add([]byte("/ip6/::/tcp/0 /ip6/::/tcp/1\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseListenFile(b)
		if err != nil {
			return
		}
		for spec, bound := range m {
			// Every kept address is a port-0 spec's own address with a port.
			if p2p.ZeroPort(p2p.MustParseMultiaddr(bound)) != spec || spec == bound || strings.Contains(bound, " ") {
				t.Fatalf("kept %q for %q", bound, spec)
			}
		}
	})
}
