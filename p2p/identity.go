package p2p

import (
	"crypto/rand"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A node's libp2p identity is a crypto.PrivKey that the caller persists (the
// store seals it at rest). These helpers convert it to and from the libp2p
// protobuf key encoding, which records the key type.

// PrivKey is a libp2p private key, a node's identity (an alias, not a
// wrapper, for the reasons given at PeerID).
type PrivKey = crypto.PrivKey

// GenerateIdentity returns a new Ed25519 identity key.
func GenerateIdentity() (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("p2p: generating identity: %w", err)
	}
	return k, nil
}

// MarshalIdentity encodes an identity key for storage. The result is secret.
func MarshalIdentity(k crypto.PrivKey) ([]byte, error) {
	b, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("p2p: encoding identity: %w", err)
	}
	return b, nil
}

// UnmarshalIdentity decodes a key encoded by MarshalIdentity.
func UnmarshalIdentity(b []byte) (crypto.PrivKey, error) {
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		// The error of the decoder never contains key material.
		return nil, fmt.Errorf("p2p: decoding identity: %w", err)
	}
	return k, nil
}

// PeerIDOf returns the peer id of an identity key.
func PeerIDOf(k crypto.PrivKey) (peer.ID, error) {
	return peer.IDFromPrivateKey(k)
}
