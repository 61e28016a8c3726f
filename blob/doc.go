// Package blob carries files through canopy groups: the announcement a
// sender puts in an MLS application message, the chunked encryption of the
// file itself, a disk store of ciphertext that any holder can serve, and the
// download loop that fetches a file from whichever peers have it.
//
// # How a file travels
//
// The sender picks a fresh 32-byte key from crypto/rand, encrypts the file
// in 64 KiB chunks (Seal) into its store and sends an Announcement (name,
// size, media type, SHA-256 of the plaintext, key) to the group. Only the
// announcement is secret: it travels in MLS like any message. The
// ciphertext is addressed by an ID derived one-way from the key (KeyID), so
// peers and relays that serve it learn neither the key nor the content.
//
// A receiver fetches byte ranges of the ciphertext from any peer that has
// it (the sender, members who already fetched it, relays) and checks every
// chunk as it arrives. Chunks are sealed with ChaCha20-Poly1305 under a key
// derived from the file key, with the chunk's index and a final-chunk flag in
// the nonce (the STREAM construction), so a missing tail, swapped chunks or
// bytes appended after the final chunk all fail to open. A peer that serves
// a chunk that does not open is dropped and the next peer asked. Verified
// ciphertext is kept in a partial file, so a download resumes after a
// restart with at most one chunk fetched again. Once complete, the file is
// decrypted into the downloads folder and its SHA-256 compared with the
// announced hash before it counts as received: the AEAD keeps out everyone
// without the key, the hash also catches a member (who has the key) serving
// different content.
//
// # Limits
//
// Files are at most MaxSize bytes (so at most MaxChunks chunks), names at
// most MaxNameLen bytes of UTF-8, media types MaxMediaTypeLen bytes. Memory
// does not grow with the file: a download holds one chunk buffer, a sender
// seals chunk by chunk.
package blob
