package blob

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Store keeps ciphertext on disk, one file per ID in one directory:
//
//	<id>        complete ciphertext, served to anyone who asks for the ID
//	<id>.part   a download in progress: a verified prefix of whole chunks
//	            (and possibly a torn chunk after it, which resuming drops)
//
// Only ciphertext is stored: a holder that lacks the announcement cannot
// read it, which is what lets relays and members who dropped a message keep
// serving a file.
type Store struct {
	dir string

	mu       sync.Mutex
	active   map[ID]bool  // downloads running
	verified map[ID]int64 // verified prefix of running downloads, servable
}

// ErrNotFound: the store has no ciphertext for the ID.
var ErrNotFound = errors.New("blob: not in store")

// ErrBusy: a download of the same file is already running.
var ErrBusy = errors.New("blob: download already running")

// OpenStore opens (creating) a store in dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob: store: %w", err)
	}
	return &Store{dir: dir, active: map[ID]bool{}, verified: map[ID]int64{}}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(id ID) string     { return filepath.Join(s.dir, id.String()) }
func (s *Store) partPath(id ID) string { return s.path(id) + ".part" }

// Put encrypts size bytes of src under k into the store (the sender's side)
// and returns the plaintext's SHA-256. The ciphertext appears under k.ID()
// only once complete.
func (s *Store) Put(src io.Reader, k Key, size uint64) ([32]byte, error) {
	var sum [32]byte
	tmp, err := os.CreateTemp(s.dir, tempPut+"*")
	if err != nil {
		return sum, fmt.Errorf("blob: store: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if sum, err = Seal(tmp, src, k, size); err != nil {
		return sum, err
	}
	if err := tmp.Sync(); err != nil {
		return sum, err
	}
	if err := tmp.Close(); err != nil {
		return sum, err
	}
	if err := os.Rename(tmp.Name(), s.path(k.ID())); err != nil {
		return sum, fmt.Errorf("blob: store: %w", err)
	}
	return sum, nil
}

// Has reports whether the complete ciphertext of id is stored.
func (s *Store) Has(id ID) bool {
	_, err := os.Stat(s.path(id))
	return err == nil
}

// Reader serves a stored ciphertext: all of it, or the verified prefix of a
// download in progress.
type Reader struct {
	f *os.File
	n int64
}

// Size is the number of bytes that may be read.
func (r *Reader) Size() int64 { return r.n }

// ReadAt reads within the first Size bytes.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.n {
		return 0, io.EOF
	}
	if max := r.n - off; int64(len(p)) > max {
		p = p[:max]
		n, err := r.f.ReadAt(p, off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return r.f.ReadAt(p, off)
}

func (r *Reader) Close() error { return r.f.Close() }

// Open opens id's ciphertext for serving: a complete file, or the verified
// part of a download running in this process.
func (s *Store) Open(id ID) (*Reader, error) {
	if f, err := os.Open(s.path(id)); err == nil {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		return &Reader{f: f, n: st.Size()}, nil
	}
	s.mu.Lock()
	n := s.verified[id]
	s.mu.Unlock()
	if n == 0 {
		return nil, ErrNotFound
	}
	f, err := os.Open(s.partPath(id))
	if err != nil {
		return nil, ErrNotFound
	}
	return &Reader{f: f, n: n}, nil
}

// Remove deletes id's ciphertext, any partial download of it and its note. It is how
// retention reaches files: once the message carrying the key is gone, the
// ciphertext goes too. A running download of id fails.
func (s *Store) Remove(id ID) error {
	errs := []error{os.Remove(s.path(id)), os.Remove(s.partPath(id)), os.Remove(s.notePath(id))}
	for _, err := range errs {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// IDs lists the complete ciphertexts in the store.
func (s *Store) IDs() ([]ID, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var ids []ID
	for _, e := range ents {
		if strings.Contains(e.Name(), ".") {
			continue
		}
		if id, err := ParseID(e.Name()); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Progress reports how many ciphertext bytes of id are verified on disk:
// all of them for a complete file, the verified prefix of a running
// download, or what a partial file from an earlier run holds in whole
// chunks (not yet re-verified; resuming checks it).
func (s *Store) Progress(id ID, size uint64) int64 {
	if s.Has(id) {
		return CiphertextSize(size)
	}
	s.mu.Lock()
	n, ok := s.verified[id]
	s.mu.Unlock()
	if ok {
		return n
	}
	st, err := os.Stat(s.partPath(id))
	if err != nil {
		return 0
	}
	return min(st.Size()/ctChunkSize*ctChunkSize, CiphertextSize(size))
}
