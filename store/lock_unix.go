//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFileName is the profile's lock file.
const LockFileName = "lock"

// profileLock is an exclusive flock(2) on dir/lock, held while a DB is
// open. The kernel drops it when the process dies, so a crash never leaves
// a stale lock. The file records the holder's pid for the error message.
type profileLock struct {
	f *os.File
}

func lockProfile(dir string) (*profileLock, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: opening lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := ""
			buf := make([]byte, 32)
			if n, _ := f.ReadAt(buf, 0); n > 0 {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n]))); err == nil {
					holder = fmt.Sprintf(" (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("%w: %s is open in another canopy process%s; close it or choose another profile", ErrProfileInUse, dir, holder)
		}
		return nil, fmt.Errorf("store: locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &profileLock{f: f}, nil
}

func (l *profileLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Closing the descriptor releases the flock.
	err := l.f.Close()
	l.f = nil
	return err
}
