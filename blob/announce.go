package blob

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
)

// The announcement's wire format (TLS presentation language):
//
//	struct {
//	    uint8  version = 1;
//	    opaque key[32];            // the file key, fresh from crypto/rand
//	    opaque sha256[32];         // SHA-256 of the plaintext
//	    uint64 size;               // plaintext bytes, <= MaxSize
//	    uint32 width;              // image pixels, 0 when not an image
//	    uint32 height;
//	    opaque name<1..255>;       // uint8 length, UTF-8
//	    opaque media_type<0..127>; // uint8 length, printable ASCII
//	} Announcement;
//
// Parsing is strict (no trailing bytes, every bound checked), so an
// accepted announcement has exactly one encoding. A later version number
// is refused with ErrVersion, never guessed at.

// Limits of the format.
const (
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize = 64 << 10
	// TagSize is the AEAD overhead of each chunk.
	TagSize = 16
	// MaxSize bounds an announced file: 16 GiB, 262,144 chunks.
	MaxSize = 16 << 30
	// MaxChunks is the chunk count of a MaxSize file.
	MaxChunks = MaxSize / ChunkSize
	// MaxNameLen bounds a file name in bytes.
	MaxNameLen = 255
	// MaxMediaTypeLen bounds a media type.
	MaxMediaTypeLen = 127
	// MaxAnnouncementLen bounds an encoded announcement.
	MaxAnnouncementLen = 1 + 32 + 32 + 8 + 4 + 4 + 1 + MaxNameLen + 1 + MaxMediaTypeLen

	version = 1
)

// Errors of the announcement codec.
var (
	ErrMalformed = errors.New("blob: malformed announcement")
	ErrVersion   = errors.New("blob: unsupported announcement version")
)

// Key is a file key.
type Key [32]byte

// ID names a file's ciphertext in stores and requests.
type ID [32]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID decodes the hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("blob: %q is not a file id", s)
	}
	copy(id[:], b)
	return id, nil
}

// NewKey returns a fresh random file key.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("blob: random key: %w", err)
	}
	return k, nil
}

// ID derives the ciphertext's address from the key. The derivation is
// one-way, so serving peers, who see only IDs, cannot decrypt.
func (k Key) ID() ID {
	var id ID
	b, err := hkdf.Key(sha256.New, k[:], nil, "canopy blob id v1", len(id))
	if err != nil {
		panic(err) // unreachable: fixed lengths
	}
	copy(id[:], b)
	return id
}

// Announcement is what a group learns about a file.
type Announcement struct {
	Key       Key
	SHA256    [32]byte
	Size      uint64
	Width     uint32 // image dimensions in pixels; 0 when unknown
	Height    uint32
	Name      string
	MediaType string
}

// ID is the ciphertext's address.
func (a *Announcement) ID() ID { return a.Key.ID() }

// Chunks is the number of chunks of the file (an empty file has one).
func (a *Announcement) Chunks() int64 { return chunkCount(a.Size) }

// CiphertextSize is the size of the encrypted file.
func (a *Announcement) CiphertextSize() int64 { return CiphertextSize(a.Size) }

// Marshal encodes a. It fails on values Parse would reject.
func (a *Announcement) Marshal() ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddUint8(version)
	b.AddBytes(a.Key[:])
	b.AddBytes(a.SHA256[:])
	b.AddUint64(a.Size)
	b.AddUint32(a.Width)
	b.AddUint32(a.Height)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.Name)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(a.MediaType)) })
	return b.Bytes()
}

// ParseAnnouncement decodes an announcement strictly.
func ParseAnnouncement(data []byte) (*Announcement, error) {
	s := cryptobyte.String(data)
	var v uint8
	if !s.ReadUint8(&v) {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if v != version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, v)
	}
	var (
		a          Announcement
		key, sum   []byte
		name, mtyp cryptobyte.String
	)
	if !s.ReadBytes(&key, len(a.Key)) ||
		!s.ReadBytes(&sum, len(a.SHA256)) ||
		!s.ReadUint64(&a.Size) ||
		!s.ReadUint32(&a.Width) ||
		!s.ReadUint32(&a.Height) ||
		!s.ReadUint8LengthPrefixed(&name) ||
		!s.ReadUint8LengthPrefixed(&mtyp) {
		return nil, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: trailing bytes", ErrMalformed)
	}
	copy(a.Key[:], key)
	copy(a.SHA256[:], sum)
	a.Name, a.MediaType = string(name), string(mtyp)
	if err := a.check(); err != nil {
		return nil, err
	}
	return &a, nil
}

func (a *Announcement) check() error {
	switch {
	case a.Size > MaxSize:
		return fmt.Errorf("%w: size %d exceeds %d", ErrMalformed, a.Size, uint64(MaxSize))
	case a.Name == "" || len(a.Name) > MaxNameLen:
		return fmt.Errorf("%w: name of %d bytes", ErrMalformed, len(a.Name))
	case !utf8.ValidString(a.Name):
		return fmt.Errorf("%w: name is not UTF-8", ErrMalformed)
	case len(a.MediaType) > MaxMediaTypeLen:
		return fmt.Errorf("%w: media type of %d bytes", ErrMalformed, len(a.MediaType))
	}
	for i := 0; i < len(a.MediaType); i++ {
		if c := a.MediaType[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: media type is not printable ASCII", ErrMalformed)
		}
	}
	return nil
}

// chunkCount is the number of chunks of a size-byte plaintext.
func chunkCount(size uint64) int64 {
	if size == 0 {
		return 1
	}
	return int64((size + ChunkSize - 1) / ChunkSize)
}

// CiphertextSize is the encrypted size of a size-byte plaintext.
func CiphertextSize(size uint64) int64 {
	return int64(size) + chunkCount(size)*TagSize
}
