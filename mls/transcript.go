package mls

import (
	"golang.org/x/crypto/cryptobyte"
)

// Transcript hashes (RFC 9420 §8.2):
//
//	confirmed_transcript_hash_[epoch] =
//	    Hash(interim_transcript_hash_[epoch - 1] || ConfirmedTranscriptHashInput_[epoch]);
//	interim_transcript_hash_[epoch] =
//	    Hash(confirmed_transcript_hash_[epoch] || InterimTranscriptHashInput_[epoch]);
//
//	struct {
//	    WireFormat wire_format;
//	    FramedContent content; /* with content_type == commit */
//	    opaque signature<V>;
//	} ConfirmedTranscriptHashInput;
//
//	struct {
//	    MAC confirmation_tag;
//	} InterimTranscriptHashInput;
//
// Both hashes start as the empty string (epoch 0 of a new group). The
// functions here take encoded inputs so they do not depend on the framing
// types: ConfirmedTranscriptHashInput is the encoding of a Commit's
// AuthenticatedContent without its trailing confirmation_tag<V>.
//
// Order of use when creating or processing a Commit:
//  1. confirmed = confirmedTranscriptHash(interim_prev, input)
//  2. the new GroupContext carries confirmed; run the key schedule
//  3. confirmation_tag = MAC(confirmation_key, confirmed) (confirmationTag)
//  4. interim = interimTranscriptHash(confirmed, confirmation_tag)
//
// A joiner takes confirmed from the GroupContext and computes interim from
// the GroupInfo's confirmation_tag (§12.4.3.1).

// confirmedTranscriptHash returns Hash(interimPrev || confirmedInput), where
// confirmedInput is an encoded ConfirmedTranscriptHashInput.
func confirmedTranscriptHash(cs CipherSuite, interimPrev, confirmedInput []byte) []byte {
	buf := make([]byte, 0, len(interimPrev)+len(confirmedInput))
	buf = append(buf, interimPrev...)
	buf = append(buf, confirmedInput...)
	return cs.Hash(buf)
}

// interimTranscriptHash returns Hash(confirmed || InterimTranscriptHashInput)
// with InterimTranscriptHashInput = confirmation_tag as an opaque<V>.
func interimTranscriptHash(cs CipherSuite, confirmed, confirmationTag []byte) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(confirmed)+len(confirmationTag)+4))
	b.AddBytes(confirmed)
	addOpaque(b, confirmationTag)
	buf, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return cs.Hash(buf), nil
}

// marshalConfirmedTranscriptHashInput encodes a ConfirmedTranscriptHashInput
// from its already-encoded parts: the wire format, an encoded FramedContent
// (whose content_type must be commit) and the signature.
func marshalConfirmedTranscriptHashInput(wireFormat uint16, framedContent, signature []byte) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, 2+len(framedContent)+len(signature)+4))
	b.AddUint16(wireFormat)
	b.AddBytes(framedContent)
	addOpaque(b, signature)
	return b.Bytes()
}

// nextTranscriptHashes runs steps 1 and 4 above together, for a caller that
// already has the confirmation tag (a member processing a Commit, after it
// verified the tag against the new epoch's confirmation_key).
func nextTranscriptHashes(cs CipherSuite, interimPrev, confirmedInput, confirmationTag []byte) (confirmed, interim []byte, err error) {
	confirmed = confirmedTranscriptHash(cs, interimPrev, confirmedInput)
	interim, err = interimTranscriptHash(cs, confirmed, confirmationTag)
	if err != nil {
		return nil, nil, err
	}
	return confirmed, interim, nil
}
