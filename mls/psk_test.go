package mls

import (
	"bytes"
	"testing"
)

func init() { registerVector("psk_secret", checkPSKSecret) }

type pskSecretVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    hexBytes `json:"psk_id"`
		PSK      hexBytes `json:"psk"`
		PSKNonce hexBytes `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret hexBytes `json:"psk_secret"`
}

func checkPSKSecret(t *testing.T, data []byte) {
	cases := decodeVectors[pskSecretVector](t, data)
	runPerSuite(t, cases, func(tc pskSecretVector) uint16 { return tc.CipherSuite }, func(t *testing.T, cs CipherSuite, tc pskSecretVector) {
		psks := make([]pskEntry, len(tc.PSKs))
		for i, p := range tc.PSKs {
			psks[i] = pskEntry{
				ID:  PreSharedKeyID{Type: PSKTypeExternal, PSKID: p.PSKID, Nonce: p.PSKNonce},
				PSK: p.PSK,
			}
			if err := validatePreSharedKeyID(cs, &psks[i].ID, false, false); err != nil {
				t.Errorf("psk %d: %v", i, err)
			}
		}
		got, err := computePSKSecret(cs, psks)
		if err != nil {
			t.Fatal(err)
		}
		mustEqualBytes(t, "psk_secret", got, tc.PSKSecret)
	})
}

func TestPSKSecretProperties(t *testing.T) {
	cs := testSuite
	nonce := bytes.Repeat([]byte{9}, cs.Nh())
	ext := pskEntry{ID: PreSharedKeyID{Type: PSKTypeExternal, PSKID: []byte("ext"), Nonce: nonce}, PSK: []byte("secret")}
	res := pskEntry{ID: PreSharedKeyID{Type: PSKTypeResumption, Usage: ResumptionApplication, PSKGroupID: []byte("g"), PSKEpoch: 3, Nonce: nonce},
		PSK: bytes.Repeat([]byte{1}, cs.Nh())}

	zero, err := computePSKSecret(cs, nil)
	if err != nil || !bytes.Equal(zero, make([]byte, cs.Nh())) {
		t.Fatalf("no PSKs: %x, %v", zero, err)
	}
	ab, _ := computePSKSecret(cs, []pskEntry{ext, res})
	ba, _ := computePSKSecret(cs, []pskEntry{res, ext})
	if bytes.Equal(ab, ba) {
		t.Error("psk_secret does not depend on the order of the PSKs")
	}
	// The id is bound, not only the value.
	other := ext
	other.ID.PSKID = []byte("other")
	x, _ := computePSKSecret(cs, []pskEntry{ext})
	y, _ := computePSKSecret(cs, []pskEntry{other})
	if bytes.Equal(x, y) {
		t.Error("psk_secret does not depend on the psk_id")
	}
	bad := ext
	bad.ID.Type = 7
	if _, err := computePSKSecret(cs, []pskEntry{bad}); err == nil {
		t.Error("invalid PSK type accepted")
	}
	if _, err := computePSKSecret(CipherSuite(0), nil); err == nil {
		t.Error("unknown suite accepted")
	}

	// §12.1.4 checks.
	for name, c := range map[string]struct {
		id             PreSharedKeyID
		reinit, branch bool
		wantErr        bool
	}{
		"external":          {ext.ID, false, false, false},
		"short nonce":       {PreSharedKeyID{Type: PSKTypeExternal, Nonce: nonce[1:]}, false, false, true},
		"application":       {res.ID, false, false, false},
		"reinit outside":    {PreSharedKeyID{Type: PSKTypeResumption, Usage: ResumptionReInit, Nonce: nonce}, false, true, true},
		"reinit in reinit":  {PreSharedKeyID{Type: PSKTypeResumption, Usage: ResumptionReInit, Nonce: nonce}, true, false, false},
		"branch outside":    {PreSharedKeyID{Type: PSKTypeResumption, Usage: ResumptionBranch, Nonce: nonce}, true, false, true},
		"branch in branch":  {PreSharedKeyID{Type: PSKTypeResumption, Usage: ResumptionBranch, Nonce: nonce}, false, true, false},
		"reserved usage":    {PreSharedKeyID{Type: PSKTypeResumption, Usage: 0, Nonce: nonce}, true, true, true},
		"reserved psk type": {PreSharedKeyID{Type: 0, Nonce: nonce}, true, true, true},
	} {
		err := validatePreSharedKeyID(cs, &c.id, c.reinit, c.branch)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: %v", name, err)
		}
	}

	// PreSharedKeyID round trip.
	enc, err := res.ID.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var back PreSharedKeyID
	if err := back.Unmarshal(enc); err != nil {
		t.Fatal(err)
	}
	enc2, _ := back.Marshal()
	mustEqualBytes(t, "PreSharedKeyID", enc2, enc)
	if err := back.Unmarshal(append(enc, 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}
