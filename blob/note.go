package blob

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Notes are small files an application keeps beside a stored file
// (<id>.note): which message announced it, whether the user paused it,
// where it was saved. They hold no key; Remove deletes them with the
// ciphertext. MaxNoteLen bounds what is read back.
const MaxNoteLen = 4 << 10

func (s *Store) notePath(id ID) string { return s.path(id) + ".note" }

// SetNote replaces id's note (atomically: a crash leaves the old or the new).
func (s *Store) SetNote(id ID, note []byte) error {
	if len(note) > MaxNoteLen {
		return fmt.Errorf("blob: note of %d bytes", len(note))
	}
	tmp, err := os.CreateTemp(s.dir, tempNote+"*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(note); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.notePath(id))
}

// Notes returns every note in the store.
func (s *Store) Notes() (map[ID][]byte, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	out := map[ID][]byte{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".note")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		id, err := ParseID(name)
		if err != nil {
			continue
		}
		if info, err := e.Info(); err != nil || info.Size() > MaxNoteLen {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			continue
		}
		out[id] = b
	}
	return out, nil
}

// RemovePartial drops a partial download of id (a cancelled transfer); a
// complete ciphertext and the note stay.
func (s *Store) RemovePartial(id ID) error {
	if err := os.Remove(s.partPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Temporary files: Put, SetNote and Export write to these and rename or
// link them into place, so after a crash they are garbage.
const (
	tempPut    = ".put-"
	tempNote   = ".note-"
	tempExport = ".canopy-partial-"
)

// RemoveTemporary deletes what an interrupted Put or SetNote left behind.
// Call it only while no other Put or SetNote runs on the directory (at
// start-up: a profile is used by one process at a time).
func (s *Store) RemoveTemporary() { removePrefixed(s.dir, tempPut, tempNote) }

// RemoveTemporary deletes what an interrupted Export left in a downloads
// folder; the same caveat applies.
func RemoveTemporary(downloads string) { removePrefixed(downloads, tempExport) }

func removePrefixed(dir string, prefixes ...string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		for _, p := range prefixes {
			if strings.HasPrefix(e.Name(), p) && e.Type().IsRegular() {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}
