package store

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sealed values.
//
// Every secret column holds an envelope
//
//	version (1 byte, sealVersion) || nonce (24 bytes) || XChaCha20-Poly1305 ciphertext and tag
//
// sealed with the profile's data key. The associated data names the table,
// the column and the row key (see rowAD), so a sealed value copied into
// another row or column, or a row whose key was edited, fails to open.
// Random 24-byte nonces make collisions negligible for any number of rows.

const (
	sealVersion  = 1
	sealOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	// maxSealed bounds what openSealed accepts, so a damaged row cannot make
	// the store allocate without limit.
	maxSealed = 256 << 20
)

// maxSecret bounds a value to be sealed (well under maxSealed).
const maxSecret = 64 << 20

func checkSecret(what string, b []byte) error {
	if len(b) > maxSecret {
		return fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrInvalid, what, len(b), maxSecret)
	}
	return nil
}

var (
	errSealAuth   = errors.New("store: sealed value failed authentication (wrong key, or the row was altered or moved)")
	errSealFormat = errors.New("store: malformed sealed value")
)

// sealer seals and opens values with one key.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("store: data key: %w", err)
	}
	return &sealer{aead: a}, nil
}

// seal encrypts plaintext for the given associated data.
func (s *sealer) seal(ad, plaintext []byte) []byte {
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, sealOverhead+len(plaintext))
	out[0] = sealVersion
	nonce := out[1:]
	if _, err := rand.Read(nonce); err != nil {
		// crypto/rand.Read does not fail on supported platforms (Go ≥1.24
		// crashes the program instead); keep the check for clarity.
		panic("store: crypto/rand failed: " + err.Error())
	}
	return s.aead.Seal(out, nonce, plaintext, ad)
}

// parseSealed splits an envelope into nonce and ciphertext. It never
// panics and rejects anything that is not a well-formed envelope.
func parseSealed(blob []byte) (nonce, ct []byte, err error) {
	if len(blob) < sealOverhead {
		return nil, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte minimum", errSealFormat, len(blob), sealOverhead)
	}
	if len(blob) > maxSealed {
		return nil, nil, fmt.Errorf("%w: %d bytes, longer than the %d-byte maximum", errSealFormat, len(blob), maxSealed)
	}
	if blob[0] != sealVersion {
		return nil, nil, fmt.Errorf("%w: unsupported format version %d", errSealFormat, blob[0])
	}
	return blob[1 : 1+chacha20poly1305.NonceSizeX], blob[1+chacha20poly1305.NonceSizeX:], nil
}

// open authenticates and decrypts an envelope.
func (s *sealer) open(ad, blob []byte) ([]byte, error) {
	nonce, ct, err := parseSealed(blob)
	if err != nil {
		return nil, err
	}
	pt, err := s.aead.Open(nil, nonce, ct, ad)
	if err != nil {
		return nil, errSealAuth
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}

// sealOpt seals a value that may be absent: nil stays nil (NULL).
func (s *sealer) sealOpt(ad, plaintext []byte) []byte {
	if plaintext == nil {
		return nil
	}
	return s.seal(ad, plaintext)
}

func (s *sealer) openOpt(ad, blob []byte) ([]byte, error) {
	if blob == nil {
		return nil, nil
	}
	return s.open(ad, blob)
}

// rowAD builds associated data: a domain label, then each part with a
// uvarint length prefix, so distinct part lists never encode equally.
func rowAD(table, column string, key ...[]byte) []byte {
	ad := make([]byte, 0, 64)
	ad = append(ad, "canopy/store/v1"...)
	ad = binary.AppendUvarint(ad, uint64(len(table)))
	ad = append(ad, table...)
	ad = binary.AppendUvarint(ad, uint64(len(column)))
	ad = append(ad, column...)
	for _, k := range key {
		ad = binary.AppendUvarint(ad, uint64(len(k)))
		ad = append(ad, k...)
	}
	return ad
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
