// Command interop serves canopy's MLS implementation (package mls) over
// the gRPC service MLSClient of the official MLS interop test harness
// (https://github.com/mlswg/mls-implementations, interop/), so that the
// official test runner can drive canopy against other MLS stacks:
//
//	go run -C mls/interop . -port 50051 -name canopy-a
//
// It is a module of its own (go.mod beside this file replaces
// github.com/canopy-chat/canopy with the checkout it lives in), so gRPC
// and protobuf-generated code are dependencies of this server only, not
// of the messenger. Run its tests with go test -C mls/interop ./... from
// the repository root.
//
// README.md beside this file says how to run the official runner against
// canopy and another stack, which runner quirks matter, and which peer
// bugs are known (so that they are not chased in canopy).
//
// # Flags
//
//	-host ADDR     address to listen on (default 127.0.0.1; 0.0.0.0 or :: for a remote runner)
//	-port N        TCP port (default 50051; 0 picks a free one, printed in the first log line)
//	-name NAME     what the Name RPC answers (default "canopy"): the runner labels
//	               every result with it, so two canopy instances can be told apart
//	-padding MODE  padding of the PrivateMessages this server sends (§6.3.1):
//	               padme (default) or none, see below
//	-v             log every RPC, not only the failed ones
//
// # Log
//
// The log (stderr, slog text format) has one line per failed RPC, with
// the method, the state ids of the request, the gRPC status code and the
// full error chain, from the operation down to the decoder or check that
// refused the input:
//
//	level=WARN msg="rpc failed" method=HandleCommit state_id=7 code=InvalidArgument err="handle commit: mls: ..." duration=3ms
//
// With -v every successful RPC gets a line too (level DEBUG), with the ids
// the response hands out (resp.state_id=...). Message bodies, keys and PSK
// secrets are never logged. The runner itself shows errors only in its
// final JSON, so this log is where a failing step is quickest to read.
//
// # Padding
//
// RFC 9420 §6.3.1 lets a sender append any number of zero bytes to a
// PrivateMessageContent, and a receiver must accept them. -padding padme
// is canopy's own policy (what the chat sends): proposals and commits are
// padded with Padmé (at most ~12% overhead), application data to 256-byte
// blocks. -padding none sends everything unpadded.
//
// Peers that need -padding none: mls-go v1.6.0 refuses padded
// PrivateMessage proposals and commits, so with canopy's default every
// handshake message canopy encrypts for it fails; run canopy with
// -padding none against mls-go v1.6.0 (or run the runner with -public).
// ts-mls 1.6.4 accepts padding (its runs against canopy failed only on
// external_pub, see README.md).
//
// # Cipher suites
//
// Every suite of package mls. Suite 5 (P-521) and suite 7 (P-384) are far
// slower than the others because ECDSA verification on those curves is
// slow (about 55 and 11 times an Ed25519 verification in Go's standard
// library), not because of canopy; deep_random, which verifies tens of
// thousands of signatures, shows it most. README.md has the numbers.
package main
