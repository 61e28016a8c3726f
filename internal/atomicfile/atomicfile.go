// Package atomicfile replaces a file so that readers, and the file system
// after a crash, see either the old content or the new, never a mix: the
// profile's key file (store), the contact card and listen-address files
// (chat) and the relay's identity file are written with it.
//
//	err := atomicfile.Write(path, data, 0o600)
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Sync flushes the new file to disk before it is renamed over the old
// one. A variable so that callers' tests can make it fail, as a failing
// disk would.
var Sync = (*os.File).Sync

// Write replaces path with data. The data goes to a new temporary file in
// the same directory (so the rename cannot cross file systems), created
// with mode perm before anything is written, flushed to disk, and renamed
// over path; the directory is flushed last so that the rename itself
// survives a crash. On error path is unchanged and the temporary file is
// removed.
func Write(path string, data []byte, perm os.FileMode) (err error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := Sync(tmp); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%s renamed, but its directory was not flushed: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
