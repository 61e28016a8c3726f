package chat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A profile keeps its listen ports: the first start listens on ports the
// system picks and writes them to ProfileDir/listen (ListenFileName); every
// later start listens on the same ports again, so the direct addresses on
// a card stay right across restarts. Explicit ListenAddrs (--listen) are
// used as given and not stored. If a kept port is taken by another program
// the engine does not start (a card with a stale port helps nobody); the
// error says how to get out of it.

// ListenFileName is the file in the profile directory holding the listen
// addresses the profile keeps (one multiaddr a line).
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

// listenPlan is where the node listens and whether those are the kept ports.
type listenPlan struct {
	addrs []string // nil: p2p's defaults (random ports)
	kept  bool     // addrs came from the listen file
	store bool     // write the ports chosen at start to the listen file
}

func (e *Engine) planListen() listenPlan {
	if len(e.cfg.ListenAddrs) > 0 {
		return listenPlan{addrs: e.cfg.ListenAddrs}
	}
	if e.cfg.ProfileDir == "" {
		return listenPlan{}
	}
	addrs, err := readListenFile(filepath.Join(e.cfg.ProfileDir, ListenFileName))
	switch {
	case err == nil:
		return listenPlan{addrs: addrs, kept: true}
	case !errors.Is(err, os.ErrNotExist):
		e.log.Warn("ignoring the listen file; choosing new ports", "err", err)
	}
	return listenPlan{store: true}
}

// readListenFile reads the kept listen addresses.
func readListenFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, maxListenFile+1)
	n, _ := f.Read(b)
	if n > maxListenFile {
		return nil, fmt.Errorf("%s: longer than %d bytes", path, maxListenFile)
	}
	var out []string
	for _, l := range strings.Split(string(b[:n]), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if _, err := ma.NewMultiaddr(l); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, l, err)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no address", path)
	}
	return out, nil
}

// keepListenPorts writes the ports the node chose to the listen file.
func (e *Engine) keepListenPorts() {
	var sb strings.Builder
	for _, a := range e.node.ListenPorts() {
		sb.WriteString(a.String() + "\n")
	}
	if sb.Len() == 0 {
		return
	}
	if err := writeFileAtomic(filepath.Join(e.cfg.ProfileDir, ListenFileName), []byte(sb.String())); err != nil {
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
func (e *Engine) relayCircuitAddrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, r := range e.relays {
		for _, a := range r.Addrs {
			if isCircuit(a) {
				continue
			}
			full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: r.ID, Addrs: []ma.Multiaddr{a}})
			if err != nil || len(full) != 1 {
				continue
			}
			out = append(out, full[0].Encapsulate(ma.StringCast("/p2p-circuit")))
		}
	}
	return out
}
