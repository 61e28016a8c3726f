package main

import (
	"testing"

	"github.com/canopy-chat/canopy/mls"
)

func TestParseSuite(t *testing.T) {
	xw := mls.MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519
	for in, want := range map[string]mls.CipherSuite{
		"1": mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, "xwing": xw, "XWing": xw, "0x4d": xw, "0x004D": xw, "77": xw,
		"MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519": xw, " 7 ": mls.MLS_256_DHKEMP384_AES256GCM_SHA384_P384,
	} {
		got, err := parseSuite(in)
		if err != nil || got != want {
			t.Errorf("parseSuite(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "8", "0x1234", "70000", "x-wing", "-1"} {
		if cs, err := parseSuite(in); err == nil {
			t.Errorf("parseSuite(%q) = %v, want an error", in, cs)
		}
	}
}
