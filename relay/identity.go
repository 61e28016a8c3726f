package relay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/canopy-chat/canopy/internal/atomicfile"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// IdentityFile is the file in the data directory that holds the relay's
// libp2p identity (p2p.MarshalIdentity), so that its peer id, which others
// put in their --bootstrap addresses, stays the same across restarts. It
// is kept in its own file rather than in the store's identity row: it is
// the only secret a relay has, operators back it up or provision it on its
// own, and relays created before the store existed keep their peer id.
const IdentityFile = "identity.key"

// LoadOrCreateIdentity reads the relay identity of data directory dir,
// creating it (and dir) if there is none; created says which happened.
func LoadOrCreateIdentity(dir string) (key crypto.PrivKey, created bool, err error) {
	path := filepath.Join(dir, IdentityFile)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := p2p.UnmarshalIdentity(b)
		if err != nil {
			return nil, false, fmt.Errorf("relay: %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("relay: reading identity: %w", err)
	}
	k, err := p2p.GenerateIdentity()
	if err != nil {
		return nil, false, err
	}
	b, err = p2p.MarshalIdentity(k)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("relay: data directory: %w", err)
	}
	if err := writeIdentityFile(path, b); err != nil {
		return nil, false, fmt.Errorf("relay: writing identity: %w", err)
	}
	return k, true, nil
}

// writeIdentityFile writes b to path atomically (internal/atomicfile).
// Every step's failure is returned, so that a relay never reports an
// identity it did not keep (its peer id would change at the next start
// while others' --bootstrap addresses name the old one).
func writeIdentityFile(path string, b []byte) error {
	return atomicfile.Write(path, b, 0o600)
}
