package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/mls/interop/mlsclientpb"
)

// codecSeeds are real inputs of the codec: a GroupInfo as an MLSMessage
// and bare, an application message, and an ExternalSender.
func codecSeeds(t testing.TB) [][]byte {
	ctx := context.Background()
	s := NewServer(rand.Reader)
	g, err := s.CreateGroup(ctx, &mlsclientpb.CreateGroupRequest{GroupId: []byte("fuzz"), CipherSuite: 1, Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := s.GroupInfo(ctx, &mlsclientpb.GroupInfoRequest{StateId: g.StateId})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := s.Protect(ctx, &mlsclientpb.ProtectRequest{StateId: g.StateId, Plaintext: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err := mls.CipherSuite(1).GenerateSignatureKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es, err := marshalExternalSender(mls.ExternalSender{SignatureKey: pub, Credential: mls.NewBasicCredential([]byte("ds"))})
	if err != nil {
		t.Fatal(err)
	}
	// An MLSMessage is version (2 bytes) and wire format (2 bytes), then
	// the struct.
	return [][]byte{gi.GroupInfo, gi.GroupInfo[4:], ct.Ciphertext, es, {}, {0, 1, 0, 3}}
}

// FuzzCodec feeds the decoders of the bytes a test runner sends: none may
// panic, a message they accept re-reads as itself, and an ExternalSender
// they accept encodes back to the same bytes.
func FuzzCodec(f *testing.F) {
	for _, s := range codecSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, wf := range []mls.WireFormat{mls.WireFormatWelcome, mls.WireFormatGroupInfo, mls.WireFormatKeyPackage} {
			out, err := asMLSMessage(data, wf)
			if err != nil {
				continue
			}
			again, err := asMLSMessage(out, wf)
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("%v: %x re-read as %x, %v", wf, out, again, err)
			}
		}
		if msg, gi, err := parseGroupInfo(data); err == nil && (gi == nil || len(msg) == 0) {
			t.Fatal("parseGroupInfo accepted without a result")
		}
		_, _ = contentType(data)
		if es, err := unmarshalExternalSender(data); err == nil {
			enc, err := marshalExternalSender(es)
			if err != nil || !bytes.Equal(enc, data) {
				t.Fatalf("ExternalSender %x encodes back to %x, %v", data, enc, err)
			}
		}
	})
}
