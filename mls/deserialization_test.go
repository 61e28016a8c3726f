package mls

import (
	"bytes"
	"encoding/hex"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// Vector file "deserialization" (FORMAT.md "Vector Deserialization"): each
// vlbytes_header decodes, as a whole, to length; it is the minimal encoding
// (addVarint reproduces it); and for lengths small enough to materialize, a
// vector with that header and body decodes to exactly the body while one
// byte short fails.

func init() { registerVector("deserialization", checkDeserialization) }

type deserializationCase struct {
	Header hexBytes `json:"vlbytes_header"`
	Length uint64   `json:"length"`
}

func checkDeserialization(t *testing.T, data []byte) {
	cases := decodeVectors[deserializationCase](t, data)
	for _, tc := range cases {
		t.Run(hex.EncodeToString(tc.Header), func(t *testing.T) {
			s := cryptobyte.String(tc.Header)
			var n uint32
			if !readVarint(&s, &n) {
				t.Fatalf("header %x does not decode", []byte(tc.Header))
			}
			if !s.Empty() {
				t.Fatalf("header %x: %d bytes left over", []byte(tc.Header), len(s))
			}
			if uint64(n) != tc.Length {
				t.Fatalf("header %x decodes to %d, want %d", []byte(tc.Header), n, tc.Length)
			}
			b := cryptobyte.NewBuilder(nil)
			addVarint(b, tc.Length)
			mustEqualBytes(t, "re-encoded header", b.BytesOrPanic(), tc.Header)

			if tc.Length > 1<<16 {
				return
			}
			body := bytes.Repeat([]byte{0xa5}, int(tc.Length))
			in := cryptobyte.String(append(bytes.Clone(tc.Header), body...))
			var got []byte
			if !readOpaque(&in, &got) || !in.Empty() || !bytes.Equal(got, body) {
				t.Fatalf("opaque<V> with header %x does not decode to its body", []byte(tc.Header))
			}
			if tc.Length > 0 {
				short := cryptobyte.String(append(bytes.Clone(tc.Header), body[1:]...))
				if readOpaque(&short, &got) {
					t.Fatalf("opaque<V> with header %x accepted a truncated body", []byte(tc.Header))
				}
			}
		})
	}
}
