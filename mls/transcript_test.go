package mls

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

func init() { registerVector("transcript-hashes", checkTranscriptHashes) }

type transcriptHashesVector struct {
	CipherSuite                  uint16   `json:"cipher_suite"`
	ConfirmationKey              hexBytes `json:"confirmation_key"`
	AuthenticatedContent         hexBytes `json:"authenticated_content"`
	InterimTranscriptHashBefore  hexBytes `json:"interim_transcript_hash_before"`
	ConfirmedTranscriptHashAfter hexBytes `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashAfter   hexBytes `json:"interim_transcript_hash_after"`
}

func checkTranscriptHashes(t *testing.T, data []byte) {
	cases := decodeVectors[transcriptHashesVector](t, data)
	runPerSuite(t, cases, func(tc transcriptHashesVector) uint16 { return tc.CipherSuite }, func(t *testing.T, cs CipherSuite, tc transcriptHashesVector) {
		// Decode the AuthenticatedContent with the framing layer; it must
		// carry a Commit.
		var ac AuthenticatedContent
		if err := ac.Unmarshal(tc.AuthenticatedContent); err != nil {
			t.Fatal(err)
		}
		if ac.Content.ContentType != ContentTypeCommit {
			t.Fatalf("content type %v, want commit", ac.Content.ContentType)
		}
		fc, err := ac.Content.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		input, err := marshalConfirmedTranscriptHashInput(uint16(ac.WireFormat), fc, ac.Auth.Signature)
		if err != nil {
			t.Fatal(err)
		}
		// ConfirmedTranscriptHashInput is the AuthenticatedContent minus
		// its trailing confirmation_tag<V>.
		tail := cryptobyte.NewBuilder(nil)
		addOpaque(tail, ac.Auth.ConfirmationTag)
		if !bytes.Equal(append(bytes.Clone(input), tail.BytesOrPanic()...), tc.AuthenticatedContent) {
			t.Fatal("ConfirmedTranscriptHashInput || confirmation_tag<V> is not the AuthenticatedContent")
		}

		confirmed, interim, err := nextTranscriptHashes(cs, tc.InterimTranscriptHashBefore, input, ac.Auth.ConfirmationTag)
		if err != nil {
			t.Fatal(err)
		}
		mustEqualBytes(t, "confirmed_transcript_hash_after", confirmed, tc.ConfirmedTranscriptHashAfter)
		mustEqualBytes(t, "interim_transcript_hash_after", interim, tc.InterimTranscriptHashAfter)

		// The confirmation tag is the MAC of the new confirmed hash.
		mustEqualBytes(t, "confirmation_tag", confirmationTag(cs, tc.ConfirmationKey, confirmed), ac.Auth.ConfirmationTag)
		e := &epochSecrets{Suite: cs, ConfirmationKey: tc.ConfirmationKey}
		if !e.verifyConfirmationTag(tc.ConfirmedTranscriptHashAfter, ac.Auth.ConfirmationTag) {
			t.Fatal("confirmation tag does not verify")
		}
		if e.verifyConfirmationTag(tc.InterimTranscriptHashBefore, ac.Auth.ConfirmationTag) {
			t.Fatal("confirmation tag verifies over the wrong hash")
		}
	})
}

func TestTranscriptHashFormulas(t *testing.T) {
	cs := testSuite
	interimPrev, input, tag := []byte{1, 2}, []byte{3, 4, 5}, bytes.Repeat([]byte{6}, 32)
	mustEqualBytes(t, "confirmed", confirmedTranscriptHash(cs, interimPrev, input), cs.Hash([]byte{1, 2, 3, 4, 5}))
	confirmed := cs.Hash([]byte("c"))
	interim, err := interimTranscriptHash(cs, confirmed, tag)
	if err != nil {
		t.Fatal(err)
	}
	want := cs.Hash(append(append(bytes.Clone(confirmed), 32), tag...))
	mustEqualBytes(t, "interim", interim, want)
	// Epoch 0 of a new group: both hashes empty (§11).
	if got := confirmedTranscriptHash(cs, nil, input); !bytes.Equal(got, cs.Hash(input)) {
		t.Fatal("empty interim hash")
	}
	enc, err := marshalConfirmedTranscriptHashInput(1, []byte{0xaa}, []byte{0xbb, 0xcc})
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "ConfirmedTranscriptHashInput", enc, []byte{0, 1, 0xaa, 2, 0xbb, 0xcc})
}
