package mls

import "errors"

// Sentinel errors callers branch on. Every error returned by this package
// starts with "mls: " and wraps one of these where one applies.
var (
	// ErrInvalidSignature: a signature did not verify.
	ErrInvalidSignature = errors.New("mls: invalid signature")
	// ErrDecryption: an AEAD or HPKE ciphertext did not open.
	ErrDecryption = errors.New("mls: decryption failed")
	// ErrInvalidKey: a public or private key is not a valid encoding for the suite.
	ErrInvalidKey = errors.New("mls: invalid key")
)

var errInvalidPSKType = errors.New("mls: invalid PSK type")
