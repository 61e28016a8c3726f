package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// RangeSize is how many ciphertext bytes one request asks for: 64 chunks.
// Small enough that a slow peer answers within a request's deadline, large
// enough that per-request overhead is lost in the transfer.
const RangeSize = 64 * ctChunkSize

// RangeFunc fetches up to n ciphertext bytes of id starting at off from one
// peer. It calls read once with a reader of the avail bytes the peer sent
// (0 < avail <= n) and returns read's error, or its own if the peer could
// not be asked or had nothing.
type RangeFunc func(ctx context.Context, peer string, id ID, off, n int64, read func(r io.Reader, avail int64) error) error

// ErrLyingPeer marks a peer that served bytes that do not authenticate.
var ErrLyingPeer = errors.New("blob: peer served bad data")

// ErrNoSource: no peer could serve the rest of a file.
var ErrNoSource = errors.New("blob: no peer has the file")

// FetchError says why a download could not complete: what each peer did.
type FetchError struct {
	ID      ID
	Done    int64 // verified ciphertext bytes kept for a later attempt
	Reasons map[string]error
}

func (e *FetchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "blob: %s: no peer could serve the rest (%d bytes kept)", e.ID.String()[:12], e.Done)
	for p, err := range e.Reasons {
		fmt.Fprintf(&b, "; %s: %v", p, err)
	}
	return b.String()
}

func (e *FetchError) Unwrap() error { return ErrNoSource }

// Fetch is one download: where to ask and whom to tell.
type Fetch struct {
	Ann   *Announcement
	Peers []string  // asked in order; a peer that lies is dropped
	Range RangeFunc // how to ask one peer
	// Progress, if set, is called with the verified ciphertext bytes after
	// each chunk and once at the start (what a resumed download kept).
	Progress func(done, total int64)
	// Refetched, if set, is told how many bytes of a partial file from an
	// earlier run failed verification and are fetched again.
	Refetched func(n int64)
}

// Download fetches f.Ann's ciphertext into the store, resuming a partial
// download from an earlier run: the whole chunks it holds are verified
// again and kept; a torn chunk at its end (a crash mid-write) is dropped,
// so at most one chunk is fetched twice. Every chunk is authenticated
// before it is written. Returns nil once the complete ciphertext is stored.
func (s *Store) Download(ctx context.Context, f Fetch) error {
	a := f.Ann
	id := a.ID()
	if s.Has(id) {
		return nil
	}
	release, err := s.claim(id)
	if err != nil {
		return err
	}
	defer release()

	l, err := newLayout(a.Key, a.Size)
	if err != nil {
		return err
	}
	file, err := os.OpenFile(s.partPath(id), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer file.Close()
	next, err := s.resume(file, l, f.Refetched)
	if err != nil {
		return err
	}
	total := CiphertextSize(a.Size)
	s.setVerified(id, l.offset(next))
	if f.Progress != nil {
		f.Progress(min(l.offset(next), total), total)
	}

	reasons := map[string]error{}
	buf := make([]byte, ctChunkSize)
	pt := make([]byte, 0, ChunkSize)
	// Rounds over the peers: a peer that made progress and then failed
	// (a dropped connection) is asked again next round; one that lied or
	// had nothing to give is not.
	for next < l.chunks {
		progressed := false
		for _, p := range f.Peers {
			if _, bad := reasons[p]; bad || next >= l.chunks {
				continue
			}
			gained := false
			for next < l.chunks {
				if err := ctx.Err(); err != nil {
					return err
				}
				off := l.offset(next)
				want := min(int64(RangeSize), total-off)
				before := next
				err := f.Range(ctx, p, id, off, want, func(r io.Reader, avail int64) error {
					if avail <= 0 || avail > want {
						return fmt.Errorf("%w: %d bytes for a %d-byte request", ErrLyingPeer, avail, want)
					}
					for avail > 0 && next < l.chunks {
						n := int64(l.ctLen(next))
						if avail < n {
							return nil // a holder with only part of the file; the rest from others
						}
						c := buf[:n]
						if _, err := io.ReadFull(r, c); err != nil {
							return err
						}
						if _, err := l.open(pt[:0], next, c); err != nil {
							return fmt.Errorf("%w: %w", ErrLyingPeer, err)
						}
						if _, err := file.WriteAt(c, l.offset(next)); err != nil {
							return fmt.Errorf("blob: writing chunk: %w", errLocal{err})
						}
						next++
						avail -= n
						s.setVerified(id, l.offset(next))
						if f.Progress != nil {
							f.Progress(min(l.offset(next), total), total)
						}
					}
					return nil
				})
				if next > before {
					progressed, gained = true, true
				}
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					var le errLocal
					if errors.As(err, &le) {
						return le.err
					}
					reasons[p] = err
					break
				}
				if next == before {
					reasons[p] = fmt.Errorf("%w: has only part of the file", ErrNotFound)
					break
				}
			}
			if errors.Is(reasons[p], ErrLyingPeer) || errors.Is(reasons[p], ErrNotFound) {
				continue
			}
			if gained && next < l.chunks {
				delete(reasons, p) // dropped mid-transfer: worth another try
			}
		}
		if next < l.chunks && !progressed {
			return &FetchError{ID: id, Done: l.offset(next), Reasons: reasons}
		}
	}
	if err := file.Truncate(total); err != nil {
		return err
	}
	if err := file.Sync(); err != nil {
		return err
	}
	if err := os.Rename(s.partPath(id), s.path(id)); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}

// claim marks id as being downloaded (one download per file at a time);
// release ends that, forgetting its verified length.
func (s *Store) claim(id ID) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[id] {
		return nil, ErrBusy
	}
	s.active[id] = true
	return func() {
		s.mu.Lock()
		delete(s.active, id)
		delete(s.verified, id)
		s.mu.Unlock()
	}, nil
}

// errLocal marks a failure of this side (disk), which no other peer fixes.
type errLocal struct{ err error }

func (e errLocal) Error() string { return e.err.Error() }
func (e errLocal) Unwrap() error { return e.err }

func (s *Store) setVerified(id ID, n int64) {
	s.mu.Lock()
	s.verified[id] = n
	s.mu.Unlock()
}

// resume verifies the whole chunks a partial file holds, drops what follows
// the first one that fails, and returns the index of the first chunk to
// fetch.
func (s *Store) resume(file *os.File, l *layout, refetched func(int64)) (int64, error) {
	st, err := file.Stat()
	if err != nil {
		return 0, err
	}
	have := st.Size()
	buf := make([]byte, ctChunkSize)
	pt := make([]byte, 0, ChunkSize)
	var i int64
	for ; i < l.chunks; i++ {
		n := int64(l.ctLen(i))
		if l.offset(i)+n > have {
			break
		}
		c := buf[:n]
		if _, err := file.ReadAt(c, l.offset(i)); err != nil {
			return 0, err
		}
		if _, err := l.open(pt[:0], i, c); err != nil {
			break
		}
	}
	if keep := l.offset(i); keep < have {
		if refetched != nil {
			refetched(have - keep)
		}
		if err := file.Truncate(keep); err != nil {
			return 0, err
		}
	}
	return i, nil
}
