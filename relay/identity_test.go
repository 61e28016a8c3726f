package relay

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/canopy-chat/canopy/internal/atomicfile"
	"github.com/canopy-chat/canopy/p2p"
)

// TestRelayIdentityWriteFailure: a relay whose identity key cannot be
// synced to disk fails to start instead of running with a peer id that
// changes at the next start; nothing half-written is left behind, and once
// the disk works the key is created and loaded back unchanged.
func TestRelayIdentityWriteFailure(t *testing.T) {
	dir := t.TempDir()
	errDisk := errors.New("disk failure")
	atomicfile.Sync = func(*os.File) error { return errDisk }
	t.Cleanup(func() { atomicfile.Sync = (*os.File).Sync })

	if _, _, err := LoadOrCreateIdentity(dir); !errors.Is(err, errDisk) {
		t.Fatalf("identity with a failing sync: %v, want %v", err, errDisk)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left behind after a failed write: %v", left)
	}

	atomicfile.Sync = (*os.File).Sync
	k1, created, err := LoadOrCreateIdentity(dir)
	if err != nil || !created {
		t.Fatalf("creating identity: created=%v err=%v", created, err)
	}
	k2, created, err := LoadOrCreateIdentity(dir)
	if err != nil || created {
		t.Fatalf("loading identity: created=%v err=%v", created, err)
	}
	id1, _ := p2p.PeerIDOf(k1)
	id2, _ := p2p.PeerIDOf(k2)
	if id1 != id2 {
		t.Fatalf("peer id changed across restarts: %s -> %s", id1, id2)
	}
	fi, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, mode %v", err, fi.Mode())
	}
}
