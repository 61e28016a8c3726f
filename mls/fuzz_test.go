package mls

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Fuzz targets for every decoder that sees attacker-controlled bytes. The
// property is the same everywhere: decoding never panics, a rejected input
// fails with ErrMalformed, and an accepted input re-encodes to exactly the
// same bytes (the encoding is canonical, so nothing is malleable). Accepted
// inputs are also run through the cheap helpers that follow decoding
// (references, extension decoding, validation) to check they do not panic
// on strange but well-formed values.
//
// Seed corpora live in testdata/fuzz/<FuzzName>/ and are generated from the
// messages.json vectors by
//
//	go test -tags devtools ./mls -run '^TestWriteFuzzCorpus$'
//
// Inputs found by the fuzzer that once failed are committed there too
// (as regression-*), and run by every plain `go test`.

// fuzzRoundTrip decodes data as a T and, if that succeeds, checks that it
// re-encodes to data. It returns nil for rejected input.
func fuzzRoundTrip[T any, PT wireCodec[T]](t *testing.T, data []byte) PT {
	v := PT(new(T))
	if err := v.Unmarshal(data); err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%T: rejection does not wrap ErrMalformed: %v", v, err)
		}
		return nil
	}
	out, err := v.Marshal()
	if err != nil {
		t.Fatalf("%T: accepted input does not re-encode: %v\ninput %x", v, err, data)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("%T: re-encoding differs:\n in  %x\n out %x", v, data, out)
	}
	return v
}

var fuzzNow = time.Unix(1_700_000_000, 0)

func fuzzKeyPackage(kp *KeyPackage) {
	kp.Ref()
	kp.IsLastResort()
	kp.Validate(fuzzNow)
}

func fuzzExtensions(t *testing.T, exts []Extension) {
	for _, e := range exts {
		var err error
		switch e.Type {
		case ExtensionApplicationID:
			err = new(ApplicationID).Unmarshal(e.Data)
		case ExtensionRatchetTree:
			err = new(RatchetTree).Unmarshal(e.Data)
		case ExtensionRequiredCapabilities:
			err = new(RequiredCapabilities).Unmarshal(e.Data)
		case ExtensionExternalPub:
			err = new(ExternalPub).Unmarshal(e.Data)
		case ExtensionExternalSenders:
			err = new(ExternalSenders).Unmarshal(e.Data)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("extension 0x%04x: %v", uint16(e.Type), err)
		}
	}
}

func fuzzGroupInfo(t *testing.T, gi *GroupInfo) {
	fuzzExtensions(t, gi.Extensions)
	fuzzExtensions(t, gi.GroupContext.Extensions)
	if tree, ok, err := gi.RatchetTree(); ok && err == nil {
		fuzzTree(t, tree)
	}
	gi.ExternalPub()
}

func fuzzTree(t *testing.T, tree RatchetTree) {
	for i, n := range tree {
		if n == nil {
			continue
		}
		if (i%2 == 0) != (n.Type == NodeTypeLeaf) {
			t.Fatalf("node %d has type %v", i, n.Type)
		}
		if n.Leaf != nil {
			fuzzExtensions(t, n.Leaf.Extensions)
		}
	}
}

func fuzzContent(t *testing.T, fc *FramedContent) {
	var p *Proposal
	switch fc.ContentType {
	case ContentTypeProposal:
		p = fc.Proposal
	case ContentTypeCommit:
		for _, por := range fc.Commit.Proposals {
			if por.Type == ProposalOrRefProposal {
				fuzzProposal(t, por.Proposal)
			}
		}
		if fc.Commit.Path != nil {
			fuzzExtensions(t, fc.Commit.Path.LeafNode.Extensions)
		}
	}
	if p != nil {
		fuzzProposal(t, p)
	}
}

func fuzzProposal(t *testing.T, p *Proposal) {
	switch p.Type {
	case ProposalTypeAdd:
		fuzzKeyPackage(&p.Add.KeyPackage)
	case ProposalTypeGroupContextExtensions:
		fuzzExtensions(t, p.GroupContextExtensions.Extensions)
	case ProposalTypeReInit:
		fuzzExtensions(t, p.ReInit.Extensions)
	}
}

func FuzzMLSMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m := fuzzRoundTrip[MLSMessage](t, data)
		if m == nil {
			return
		}
		switch m.WireFormat {
		case WireFormatPublicMessage:
			pm := m.PublicMessage
			ac := pm.AuthenticatedContent()
			enc, err := ac.Marshal()
			if err != nil {
				t.Fatalf("AuthenticatedContent: %v", err)
			}
			fuzzRoundTrip[AuthenticatedContent](t, enc)
			if pm.Content.ContentType == ContentTypeProposal {
				if _, err := ac.ProposalRef(MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519); err != nil {
					t.Fatalf("ProposalRef: %v", err)
				}
			}
			fuzzContent(t, &pm.Content)
		case WireFormatPrivateMessage:
			if _, err := m.PrivateMessage.contentAAD(); err != nil {
				t.Fatal(err)
			}
			if _, err := m.PrivateMessage.senderDataAAD(); err != nil {
				t.Fatal(err)
			}
		case WireFormatWelcome:
			m.Welcome.Find(nil)
		case WireFormatGroupInfo:
			fuzzGroupInfo(t, m.GroupInfo)
		case WireFormatKeyPackage:
			fuzzKeyPackage(m.KeyPackage)
		}
	})
}

func FuzzKeyPackage(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if kp := fuzzRoundTrip[KeyPackage](t, data); kp != nil {
			fuzzKeyPackage(kp)
			fuzzExtensions(t, kp.LeafNode.Extensions)
		}
	})
}

func FuzzWelcome(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if w := fuzzRoundTrip[Welcome](t, data); w != nil && len(w.Secrets) > 0 {
			if _, ok := w.Find(w.Secrets[len(w.Secrets)-1].NewMember); !ok {
				t.Fatal("Find misses an entry")
			}
		}
	})
}

func FuzzGroupInfo(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if gi := fuzzRoundTrip[GroupInfo](t, data); gi != nil {
			fuzzGroupInfo(t, gi)
		}
	})
}

func FuzzRatchetTree(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if tree := fuzzRoundTrip[RatchetTree](t, data); tree != nil {
			if len(*tree) == 0 || (*tree)[len(*tree)-1] == nil {
				t.Fatal("accepted a tree with a trailing blank")
			}
			fuzzTree(t, *tree)
		}
	})
}

func FuzzLeafNode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if ln := fuzzRoundTrip[LeafNode](t, data); ln != nil {
			fuzzExtensions(t, ln.Extensions)
			ln.Validate(MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, ln.Source, []byte("group"), 1)
		}
	})
}

func FuzzGroupSecrets(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip[GroupSecrets](t, data)
	})
}

// FuzzPrivateMessageContent: the first byte is PrivateMessage.content_type,
// the rest the decrypted plaintext.
func FuzzPrivateMessageContent(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		c := &PrivateMessageContent{ContentType: ContentType(data[0])}
		if err := c.Unmarshal(data[1:]); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("rejection does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out, err := c.Marshal()
		if err != nil || !bytes.Equal(out, data[1:]) {
			t.Fatalf("re-encoding: %v\n in  %x\n out %x", err, data[1:], out)
		}
		if c.PaddingLen > 0 && !bytes.Equal(data[len(data)-c.PaddingLen:], make([]byte, c.PaddingLen)) {
			t.Fatal("accepted non-zero padding")
		}
		fuzzContent(t, &FramedContent{ContentType: c.ContentType, Proposal: c.Proposal, Commit: c.Commit})
	})
}

// fuzzSeeds returns target -> seed name -> input.
func fuzzSeeds(t *testing.T) map[string]map[string][]byte {
	seeds := map[string]map[string][]byte{}
	add := func(target, name string, data []byte) {
		if seeds[target] == nil {
			seeds[target] = map[string][]byte{}
		}
		seeds[target][name] = data
	}
	for _, tc := range messagesCases(t) {
		suffix := fmt.Sprintf("-suite%d", messagesSuite(tc))
		for _, f := range []struct {
			name string
			data []byte
		}{
			{"mls_welcome", tc.MLSWelcome},
			{"mls_group_info", tc.MLSGroupInfo},
			{"mls_key_package", tc.MLSKeyPackage},
			{"public_message_application", tc.PublicMessageApplication},
			{"public_message_proposal", tc.PublicMessageProposal},
			{"public_message_commit", tc.PublicMessageCommit},
			{"private_message", tc.PrivateMessage},
		} {
			add("FuzzMLSMessage", f.name+suffix, f.data)
		}
		add("FuzzWelcome", "welcome"+suffix, tc.MLSWelcome[4:])
		add("FuzzGroupInfo", "group_info"+suffix, tc.MLSGroupInfo[4:])
		add("FuzzKeyPackage", "key_package"+suffix, tc.MLSKeyPackage[4:])
		add("FuzzKeyPackage", "add_proposal"+suffix, tc.AddProposal) // Add is a bare KeyPackage
		add("FuzzRatchetTree", "ratchet_tree"+suffix, tc.RatchetTree)
		add("FuzzGroupSecrets", "group_secrets"+suffix, tc.GroupSecrets)
		add("FuzzLeafNode", "update_proposal"+suffix, tc.UpdateProposal) // Update is a bare LeafNode

		var kp KeyPackage
		if err := kp.Unmarshal(tc.MLSKeyPackage[4:]); err != nil {
			t.Fatal(err)
		}
		add("FuzzLeafNode", "key_package_leaf"+suffix, mustMarshal(t, &kp.LeafNode))
		var c Commit
		if err := c.Unmarshal(tc.Commit); err != nil {
			t.Fatal(err)
		}
		if c.Path != nil {
			add("FuzzLeafNode", "commit_leaf"+suffix, mustMarshal(t, &c.Path.LeafNode))
		}
		var gi MLSMessage
		if err := gi.Unmarshal(tc.MLSGroupInfo); err != nil {
			t.Fatal(err)
		}
		if tree, ok, err := gi.GroupInfo.RatchetTree(); ok && err == nil {
			add("FuzzRatchetTree", "group_info_tree"+suffix, mustMarshal(t, tree))
		}

		for _, f := range []struct {
			name string
			data []byte
		}{
			{"application", tc.PublicMessageApplication},
			{"proposal", tc.PublicMessageProposal},
			{"commit", tc.PublicMessageCommit},
		} {
			var m MLSMessage
			if err := m.Unmarshal(f.data); err != nil {
				t.Fatal(err)
			}
			fc := &m.PublicMessage.Content
			pmc := &PrivateMessageContent{
				ContentType: fc.ContentType, ApplicationData: fc.ApplicationData,
				Proposal: fc.Proposal, Commit: fc.Commit, Auth: m.PublicMessage.Auth, PaddingLen: 3,
			}
			add("FuzzPrivateMessageContent", f.name+suffix, append([]byte{byte(fc.ContentType)}, mustMarshal(t, pmc)...))
		}
	}
	return seeds
}

// TestFuzzSeedsPresent checks that the committed corpora exist and are in
// sync with the vectors (so `go test` really runs them as seeds).
func TestFuzzSeedsPresent(t *testing.T) {
	for target, files := range fuzzSeeds(t) {
		for name, data := range files {
			p := filepath.Join("testdata", "fuzz", target, "seed-"+name)
			got, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("missing seed (regenerate: go test -tags devtools ./mls -run TestWriteFuzzCorpus): %v", err)
				continue
			}
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if string(got) != want {
				t.Errorf("%s is stale (regenerate: go test -tags devtools ./mls -run TestWriteFuzzCorpus)", p)
			}
		}
	}
}
