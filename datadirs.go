package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/canopy-chat/canopy/chat"
	"github.com/canopy-chat/canopy/relay"
)

// Relay and chat data are kept apart. Both use a store in a directory, and
// the relay's default directory (…/canopy/relay) is also where a chat
// profile named "relay" would live: `canopy id --profile relay` used to
// create a chat identity inside the relay's data. Each side now refuses the
// other's directory, recognised by the files only it writes: a relay's
// identity key (relay.IdentityFile) and a chat engine's log and card files.

// errOtherDataDir is wrapped when a directory belongs to the other kind of
// canopy process.
var errOtherDataDir = errors.New("directory belongs to another kind of canopy data")

// notRelayDir refuses a chat profile directory that is (or will be) a
// relay's data directory.
func notRelayDir(dir string) error {
	if sameDir(dir, relay.DefaultDataDir()) {
		return fmt.Errorf("%w: %s is the default data directory of `canopy relay`; choose another profile name", errOtherDataDir, dir)
	}
	if exists(filepath.Join(dir, relay.IdentityFile)) {
		return fmt.Errorf("%w: %s holds a canopy relay's data (%s); choose another profile name or --data", errOtherDataDir, dir, relay.IdentityFile)
	}
	return nil
}

// notChatProfileDir refuses a relay data directory that holds a chat
// profile.
func notChatProfileDir(dir string) error {
	for _, f := range []string{chat.CardFileName, chat.ListenFileName, "canopy.log"} {
		if exists(filepath.Join(dir, f)) {
			return fmt.Errorf("%w: %s holds a chat profile (%s); give the relay its own -data directory", errOtherDataDir, dir, f)
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func sameDir(a, b string) bool {
	a, errA := filepath.Abs(a)
	b, errB := filepath.Abs(b)
	return errA == nil && errB == nil && filepath.Clean(a) == filepath.Clean(b)
}
