package chat

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/canopy-chat/canopy/internal/atomicfile"
	"github.com/canopy-chat/canopy/p2p"
)

// A profile keeps its listen ports: the first start listens where the
// listen addresses (--listen, or p2p's defaults: all interfaces) say, on
// ports the system picks for port 0, and writes the ports it got to
// ProfileDir/listen (ListenFileName); every later start with the same
// listen addresses asks for the same ports again, so the direct addresses
// on a card stay right across restarts. Addresses with a fixed port are
// used as given. If a kept port is taken by another program the engine
// does not start (a card with a stale port helps nobody); the error says
// how to get out of it.

// ListenFileName is the file in the profile directory holding the ports
// the profile keeps: one "SPEC BOUND" pair of multiaddrs a line, e.g.
// "/ip4/0.0.0.0/tcp/0 /ip4/0.0.0.0/tcp/41237".
const ListenFileName = "listen"

// maxListenFile bounds what is read of the listen file.
const maxListenFile = 4 << 10

// CheckNetwork validates the network settings (--bootstrap, --listen)
// without touching the disk: Open calls it before it creates a profile, and
// commands call it before asking anything of the user.
func (c *Config) CheckNetwork() error {
	if _, err := p2p.ParseAddrInfos(c.Bootstrap); err != nil {
		return fmt.Errorf("chat: --bootstrap: %w", err)
	}
	if err := p2p.CheckListenAddrs(c.ListenAddrs); err != nil {
		return fmt.Errorf("chat: --listen: %w", err)
	}
	return nil
}

// listenPlan is where the node listens.
type listenPlan struct {
	spec  []string // the listen addresses asked for
	addrs []string // spec with kept ports filled in
	kept  bool     // some port came from the listen file
	store bool     // ProfileDir is set: write the bound ports after start
}

func (e *Engine) planListen() listenPlan {
	spec := e.cfg.ListenAddrs
	if len(spec) == 0 {
		spec = p2p.DefaultListenAddrs()
	}
	plan := listenPlan{spec: spec, addrs: slices.Clone(spec)}
	if e.cfg.ProfileDir == "" {
		return plan
	}
	plan.store = true
	kept, err := readListenFile(filepath.Join(e.cfg.ProfileDir, ListenFileName))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			e.log.Warn("ignoring the listen file; choosing new ports", "err", err)
		}
		return plan
	}
	for i, s := range spec {
		if b, ok := kept[canonicalAddr(s)]; ok {
			plan.addrs[i], plan.kept = b, true
		}
	}
	return plan
}

// canonicalAddr is the string form of a multiaddr ("" if it does not
// parse), so that spellings of the same address match.
func canonicalAddr(s string) string {
	a, err := p2p.ParseMultiaddr(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return a.String()
}

// readListenFile reads the kept ports: bound address by spec.
func readListenFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxListenFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxListenFile {
		return nil, fmt.Errorf("%s: longer than %d bytes", path, maxListenFile)
	}
	return parseListenFile(b)
}

// parseListenFile parses the listen file's lines.
func parseListenFile(b []byte) (map[string]string, error) {
	out := make(map[string]string)
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		spec, bound, ok := strings.Cut(l, " ")
		sa, ba := canonicalAddr(spec), canonicalAddr(bound)
		if !ok || sa == "" || ba == "" || p2p.ZeroPort(p2p.MustParseMultiaddr(ba)) != sa || sa == ba {
			return nil, fmt.Errorf("%s: bad line %q", ListenFileName, l)
		}
		out[sa] = ba
	}
	return out, nil
}

// keepListenPorts writes the ports the node got for the spec's port-0
// addresses to the listen file.
func (e *Engine) keepListenPorts(plan listenPlan) {
	want := make(map[string]bool)
	for _, s := range plan.spec {
		if a := canonicalAddr(s); a != "" && p2p.ZeroPort(p2p.MustParseMultiaddr(a)) == a {
			want[a] = true
		}
	}
	var sb strings.Builder
	for _, a := range e.node.ListenPorts() {
		if spec := p2p.ZeroPort(a); want[spec] {
			sb.WriteString(spec + " " + a.String() + "\n")
			delete(want, spec)
		}
	}
	if sb.Len() == 0 {
		return
	}
	if err := atomicfile.Write(filepath.Join(e.cfg.ProfileDir, ListenFileName), []byte(sb.String()), 0o600); err != nil {
		e.log.Warn("writing the listen file", "err", err)
	}
}

// keptPortsTaken explains a kept port that another program holds.
func (e *Engine) keptPortsTaken(err error) error {
	return fmt.Errorf("chat: this profile keeps its listen ports (so that its card stays valid) and one is taken: %w; "+
		"stop the program that holds it, start with --listen to use other ports this time, or delete %s to choose new ports for good (then hand out your new card)",
		err, filepath.Join(e.cfg.ProfileDir, ListenFileName))
}

// relayCircuitAddrs returns the circuit addresses through the configured
// relays (…/p2p/RELAY/p2p-circuit): they reach this peer as long as it
// keeps a reservation there, wherever it runs, so a card carrying them
// stays valid for as long as the relays keep their addresses.
func (e *Engine) relayCircuitAddrs() []p2p.Multiaddr {
	var out []p2p.Multiaddr
	for _, r := range e.relays {
		out = append(out, p2p.CircuitAddrs(r)...)
	}
	return out
}
