//go:build !unix

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// LockFileName is the profile's lock file.
const LockFileName = "lock"

// profileLock on systems without flock(2): an exclusively created file. It
// is removed on Close; after a crash it must be removed by hand, which the
// error message says.
type profileLock struct {
	path string
	f    *os.File
}

func lockProfile(dir string) (*profileLock, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%w: %s is open in another canopy process (if none is running, delete %s)", ErrProfileInUse, dir, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: creating lock file: %w", err)
	}
	return &profileLock{path: path, f: f}, nil
}

func (l *profileLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Close()
	l.f = nil
	return os.Remove(l.path)
}
