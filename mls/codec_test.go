package mls

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// Tests of the wire layer: the §2.1.2 varint, optional<T> and boolean
// flags, trailing bytes, truncation, strict enums, encoder consistency
// checks and the allocation bound of the parsers.

func decodeVarint(in []byte) (uint32, bool) {
	s := cryptobyte.String(in)
	var n uint32
	if !readVarint(&s, &n) || !s.Empty() {
		return 0, false
	}
	return n, true
}

func encodeVarint(n uint64) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	addVarint(b, n)
	return b.Bytes()
}

func TestCodecVarintTable(t *testing.T) {
	for _, tc := range []struct {
		in  []byte
		ok  bool
		val uint32
	}{
		{[]byte{0x00}, true, 0},
		{[]byte{0x25}, true, 37},
		{[]byte{0x3f}, true, 63},
		{[]byte{0x40, 0x40}, true, 64},
		{[]byte{0x7b, 0xbd}, true, 15293},
		{[]byte{0x7f, 0xff}, true, 16383},
		{[]byte{0x80, 0x00, 0x40, 0x00}, true, 16384},
		{[]byte{0x9d, 0x7f, 0x3e, 0x7d}, true, 494878333},
		{[]byte{0xbf, 0xff, 0xff, 0xff}, true, 1<<30 - 1},

		// Non-minimal encodings at each boundary.
		{[]byte{0x40, 0x00}, false, 0},
		{[]byte{0x40, 0x25}, false, 0},
		{[]byte{0x40, 0x3f}, false, 0},
		{[]byte{0x80, 0x00, 0x00, 0x00}, false, 0},
		{[]byte{0x80, 0x00, 0x00, 0x3f}, false, 0},
		{[]byte{0x80, 0x00, 0x00, 0x40}, false, 0},
		{[]byte{0x80, 0x00, 0x3f, 0xff}, false, 0},

		// The reserved 0b11 prefix (it would be an 8-byte QUIC varint).
		{[]byte{0xc0, 0, 0, 0, 0, 0, 0, 0}, false, 0},
		{[]byte{0xc0, 0, 0, 0, 0x40, 0, 0, 0}, false, 0},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false, 0},
		{[]byte{0xc0}, false, 0},

		// Truncated.
		{nil, false, 0},
		{[]byte{0x40}, false, 0},
		{[]byte{0x80, 0x00, 0x40}, false, 0},
		{[]byte{0xbf, 0xff}, false, 0},
	} {
		got, ok := decodeVarint(tc.in)
		if ok != tc.ok || got != tc.val {
			t.Errorf("decode %x = (%d, %v), want (%d, %v)", tc.in, got, ok, tc.val, tc.ok)
		}
		if tc.ok {
			enc, err := encodeVarint(uint64(tc.val))
			if err != nil || !bytes.Equal(enc, tc.in) {
				t.Errorf("encode %d = %x, %v; want %x", tc.val, enc, err, tc.in)
			}
		}
	}
}

// TestCodecVarintExhaustive checks every 1- and 2-byte encoding and every
// 4-byte encoding around the boundaries: a decode succeeds iff the encoding
// is the minimal one, which re-encodes identically.
func TestCodecVarintExhaustive(t *testing.T) {
	check := func(in []byte) {
		t.Helper()
		v, ok := decodeVarint(in)
		var minimal bool
		switch in[0] >> 6 {
		case 0:
			minimal = len(in) == 1
		case 1:
			minimal = len(in) == 2 && binary.BigEndian.Uint16(in)&0x3fff >= 64
		case 2:
			minimal = len(in) == 4 && binary.BigEndian.Uint32(in)&0x3fffffff >= 1<<14
		}
		if ok != minimal {
			t.Fatalf("decode %x: ok=%v, want %v", in, ok, minimal)
		}
		if ok {
			enc, err := encodeVarint(uint64(v))
			if err != nil || !bytes.Equal(enc, in) {
				t.Fatalf("re-encode of %x gave %x, %v", in, enc, err)
			}
		}
	}
	for i := 0; i < 1<<8; i++ {
		check([]byte{byte(i)})
	}
	for i := 0; i < 1<<16; i++ {
		check([]byte{byte(i >> 8), byte(i)})
	}
	for _, base := range []uint32{0, 1 << 14, 1 << 22, 1<<30 - 1<<10} {
		for d := uint32(0); d < 1<<10; d++ {
			v := base + d
			for _, prefix := range []uint32{0x80000000, 0xc0000000} {
				var in [4]byte
				binary.BigEndian.PutUint32(in[:], prefix|v&0x3fffffff)
				check(in[:])
			}
		}
	}
}

func TestCodecVarintEncodeLimits(t *testing.T) {
	for _, n := range []uint64{0, 63, 64, 16383, 16384, 1<<30 - 1} {
		enc, err := encodeVarint(n)
		if err != nil {
			t.Fatalf("encode %d: %v", n, err)
		}
		if v, ok := decodeVarint(enc); !ok || uint64(v) != n {
			t.Fatalf("round trip of %d: %x -> %d, %v", n, enc, v, ok)
		}
	}
	for _, n := range []uint64{1 << 30, 1<<32 - 1, 1 << 62, ^uint64(0)} {
		if enc, err := encodeVarint(n); err == nil {
			t.Errorf("encode %d succeeded: %x", n, enc)
		}
	}
}

// TestCodecVarintMaxLength: a vector announcing the maximum length over a
// short input fails without allocating the announced size.
func TestCodecVarintMaxLength(t *testing.T) {
	in := append([]byte{0xbf, 0xff, 0xff, 0xff}, make([]byte, 100)...)
	allocs := testing.AllocsPerRun(10, func() {
		s := cryptobyte.String(in)
		var out []byte
		if readOpaque(&s, &out) {
			t.Fatal("accepted a vector longer than its input")
		}
	})
	if allocs != 0 {
		t.Errorf("readOpaque allocated %v times", allocs)
	}
	var m MLSMessage
	msg := append([]byte{0x00, 0x01, 0x00, 0x03, 0x00, 0x01}, in...)
	if err := m.Unmarshal(msg); !errors.Is(err, ErrMalformed) {
		t.Errorf("Welcome with a 2^30-1 secrets vector: %v", err)
	}
}

func TestCodecOptionalAndBool(t *testing.T) {
	for flag := 0; flag < 256; flag++ {
		in := cryptobyte.String([]byte{byte(flag), 0x07})
		var present bool
		var v uint8
		ok := readOptional(&in, &present, func(s *cryptobyte.String) bool { return s.ReadUint8(&v) })
		switch flag {
		case 0:
			if !ok || present || len(in) != 1 {
				t.Errorf("optional flag 0: ok=%v present=%v left=%d", ok, present, len(in))
			}
		case 1:
			if !ok || !present || v != 7 || len(in) != 0 {
				t.Errorf("optional flag 1: ok=%v present=%v v=%d", ok, present, v)
			}
		default:
			if ok {
				t.Errorf("optional flag %d accepted", flag)
			}
		}

		bs := cryptobyte.String([]byte{byte(flag)})
		var bv bool
		if ok := readBool(&bs, &bv); ok != (flag <= 1) || (ok && bv != (flag == 1)) {
			t.Errorf("bool %d: ok=%v v=%v", flag, ok, bv)
		}
	}
	b := cryptobyte.NewBuilder(nil)
	addOptional(b, false, nil)
	addOptional(b, true, func(b *cryptobyte.Builder) { b.AddUint8(9) })
	addBool(b, false)
	addBool(b, true)
	mustEqualBytes(t, "optional/bool encoding", b.BytesOrPanic(), []byte{0, 1, 9, 0, 1})

	// optional<> flags inside structures: Commit.path and
	// GroupSecrets.path_secret.
	commit := mustMarshal(t, &Commit{Proposals: []ProposalOrRef{{Type: ProposalOrRefReference, Reference: []byte{1}}}})
	if commit[len(commit)-1] != 0 {
		t.Fatalf("commit without path does not end in a 0 flag: %x", commit)
	}
	for _, flag := range []byte{1, 2, 0xff} {
		bad := bytes.Clone(commit)
		bad[len(bad)-1] = flag
		if err := new(Commit).Unmarshal(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Commit with path flag %d: %v", flag, err)
		}
	}
	gs := mustMarshal(t, &GroupSecrets{JoinerSecret: []byte{1, 2}})
	for _, flag := range []byte{2, 0x80} {
		bad := bytes.Clone(gs)
		bad[3] = flag
		if err := new(GroupSecrets).Unmarshal(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("GroupSecrets with path_secret flag %d: %v", flag, err)
		}
	}
}

// messagesCases returns the first messages vector case of each suite.
func messagesCases(t testing.TB) []messagesCase {
	t.Helper()
	var cases []messagesCase
	if err := json.Unmarshal(loadVectorFile(t, "messages"), &cases); err != nil {
		t.Fatal(err)
	}
	var out []messagesCase
	seen := map[uint16]bool{}
	for _, tc := range cases {
		if s := messagesSuite(tc); !seen[s] {
			seen[s] = true
			out = append(out, tc)
		}
	}
	return out
}

// vectorObject is one messages-vector field and a fresh decoder for it.
type vectorObject struct {
	name string
	data []byte
	new  func() interface {
		Marshal() ([]byte, error)
		Unmarshal([]byte) error
	}
}

type codec = interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

func vectorObjects(tc messagesCase) []vectorObject {
	msg := func() codec { return new(MLSMessage) }
	return []vectorObject{
		{"mls_welcome", tc.MLSWelcome, msg},
		{"mls_group_info", tc.MLSGroupInfo, msg},
		{"mls_key_package", tc.MLSKeyPackage, msg},
		{"Welcome", tc.MLSWelcome[4:], func() codec { return new(Welcome) }},
		{"GroupInfo", tc.MLSGroupInfo[4:], func() codec { return new(GroupInfo) }},
		{"KeyPackage", tc.MLSKeyPackage[4:], func() codec { return new(KeyPackage) }},
		{"ratchet_tree", tc.RatchetTree, func() codec { return new(RatchetTree) }},
		{"group_secrets", tc.GroupSecrets, func() codec { return new(GroupSecrets) }},
		{"add_proposal", tc.AddProposal, func() codec { return new(Add) }},
		{"update_proposal", tc.UpdateProposal, func() codec { return new(Update) }},
		{"remove_proposal", tc.RemoveProposal, func() codec { return new(Remove) }},
		{"pre_shared_key_proposal", tc.PreSharedKeyProposal, func() codec { return new(PreSharedKey) }},
		{"re_init_proposal", tc.ReInitProposal, func() codec { return new(ReInit) }},
		{"external_init_proposal", tc.ExternalInitProposal, func() codec { return new(ExternalInit) }},
		{"group_context_extensions_proposal", tc.GroupContextExtensionsProposal, func() codec { return new(GroupContextExtensions) }},
		{"commit", tc.Commit, func() codec { return new(Commit) }},
		{"public_message_application", tc.PublicMessageApplication, msg},
		{"public_message_proposal", tc.PublicMessageProposal, msg},
		{"public_message_commit", tc.PublicMessageCommit, msg},
		{"private_message", tc.PrivateMessage, msg},
		{"PublicMessage", tc.PublicMessageCommit[4:], func() codec { return new(PublicMessage) }},
		{"PrivateMessage", tc.PrivateMessage[4:], func() codec { return new(PrivateMessage) }},
	}
}

// TestCodecTrailingBytes: every decoder rejects any trailing byte with an
// ErrMalformed error naming the type.
func TestCodecTrailingBytes(t *testing.T) {
	for _, tc := range messagesCases(t) {
		for _, o := range vectorObjects(tc) {
			if err := o.new().Unmarshal(o.data); err != nil {
				t.Fatalf("%s: %v", o.name, err)
			}
			for _, extra := range [][]byte{{0}, {1}, {0, 0, 0, 0}} {
				err := o.new().Unmarshal(append(bytes.Clone(o.data), extra...))
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "trailing") {
					t.Errorf("%s + %x: %v", o.name, extra, err)
				}
			}
		}
	}
	err := new(KeyPackage).Unmarshal(nil)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "KeyPackage") {
		t.Errorf("empty KeyPackage: %v", err)
	}
}

// TestCodecTruncation: no proper prefix of a valid encoding decodes (every
// structure here has a self-delimiting encoding), and nothing panics.
func TestCodecTruncation(t *testing.T) {
	for _, tc := range messagesCases(t) {
		for _, o := range vectorObjects(tc) {
			for n := 0; n < len(o.data); n++ {
				if err := o.new().Unmarshal(o.data[:n]); err == nil {
					t.Fatalf("%s: prefix of %d/%d bytes decoded", o.name, n, len(o.data))
				} else if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s: prefix of %d bytes: error %v does not wrap ErrMalformed", o.name, n, err)
				}
			}
		}
	}
}

// TestCodecNonMinimalVarintInStruct: re-encoding a vector length with a
// longer prefix makes the structure undecodable.
func TestCodecNonMinimalVarintInStruct(t *testing.T) {
	for _, tc := range messagesCases(t) {
		ei := tc.ExternalInitProposal // opaque kem_output<V>
		n, ok := decodeVarint(ei[:1])
		if !ok || int(n) != len(ei)-1 {
			t.Fatalf("unexpected external_init_proposal layout %x", ei)
		}
		long := append([]byte{0x40, byte(n)}, ei[1:]...)
		if err := new(ExternalInit).Unmarshal(long); !errors.Is(err, ErrMalformed) {
			t.Errorf("2-byte length prefix accepted: %v", err)
		}
		long = append([]byte{0x80, 0, 0, byte(n)}, ei[1:]...)
		if err := new(ExternalInit).Unmarshal(long); !errors.Is(err, ErrMalformed) {
			t.Errorf("4-byte length prefix accepted: %v", err)
		}
	}
}

// mutate returns a copy of data with data[off] = v.
func mutate(data []byte, off int, v byte) []byte {
	out := bytes.Clone(data)
	out[off] = v
	return out
}

func mustReject(t *testing.T, what string, v codec, data []byte) {
	t.Helper()
	if err := v.Unmarshal(data); !errors.Is(err, ErrMalformed) {
		t.Errorf("%s: got %v, want ErrMalformed", what, err)
	}
}

func mustAccept(t *testing.T, what string, v codec, data []byte) {
	t.Helper()
	if err := v.Unmarshal(data); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testLeafNode(source LeafNodeSource) LeafNode {
	return LeafNode{
		EncryptionKey: []byte{1, 2, 3},
		SignatureKey:  []byte{4, 5},
		Credential:    NewBasicCredential([]byte("alice")),
		Capabilities: Capabilities{
			Versions:     []ProtocolVersion{ProtocolMLS10},
			CipherSuites: []CipherSuite{1, 0x0a0a},
			Extensions:   []ExtensionType{ExtensionLastResort},
			Proposals:    []ProposalType{},
			Credentials:  []CredentialType{CredentialBasic, CredentialX509},
		},
		Source:     source,
		Lifetime:   Lifetime{NotBefore: 1, NotAfter: 2},
		ParentHash: []byte{9},
		Extensions: []Extension{{Type: ExtensionApplicationID, Data: []byte{1, 'x'}}},
		Signature:  []byte{0xaa},
	}
}

// TestCodecStrictEnums: every closed enumeration rejects values outside its
// set, at a known offset of a known-good encoding.
func TestCodecStrictEnums(t *testing.T) {
	tc := messagesCases(t)[0]

	// MLSMessage.version and wire_format.
	msg := tc.MLSKeyPackage
	mustAccept(t, "key package message", new(MLSMessage), msg)
	for _, v := range []uint16{0, 2, 0x0100, 0xffff} {
		bad := bytes.Clone(msg)
		binary.BigEndian.PutUint16(bad, v)
		mustReject(t, "MLSMessage version", new(MLSMessage), bad)
	}
	for _, wf := range []uint16{0, 6, 0x0a0a, 0xf000, 0xffff} {
		bad := bytes.Clone(msg)
		binary.BigEndian.PutUint16(bad[2:], wf)
		mustReject(t, "MLSMessage wire_format", new(MLSMessage), bad)
	}

	// Sender type and content type in a PublicMessage: group_id "g" (2
	// bytes) and epoch (8) put sender_type at 10, then leaf_index (4),
	// authenticated_data (1) and content_type at 16.
	pm := &PublicMessage{
		Content: FramedContent{
			GroupID: []byte("g"), Epoch: 5,
			Sender:            Sender{Type: SenderMember, LeafIndex: 1},
			AuthenticatedData: []byte{}, ContentType: ContentTypeApplication, ApplicationData: []byte("hi"),
		},
		Auth:          FramedContentAuthData{Signature: []byte{1}},
		MembershipTag: []byte{2},
	}
	enc := mustMarshal(t, pm)
	if enc[10] != byte(SenderMember) || enc[16] != byte(ContentTypeApplication) {
		t.Fatalf("unexpected PublicMessage layout %x", enc)
	}
	mustAccept(t, "PublicMessage", new(PublicMessage), enc)
	for _, st := range []byte{0, 5, 0xff} {
		mustReject(t, "sender_type", new(PublicMessage), mutate(enc, 10, st))
	}
	for _, ct := range []byte{0, 4, 0xff} {
		mustReject(t, "content_type", new(PublicMessage), mutate(enc, 16, ct))
	}
	// A new-member sender has no leaf_index: the same bytes no longer parse.
	mustReject(t, "sender without membership tag", new(PublicMessage), mutate(enc, 10, byte(SenderNewMemberProposal)))

	// PrivateMessage content_type at 10.
	priv := mustMarshal(t, &PrivateMessage{GroupID: []byte("g"), Epoch: 1, ContentType: ContentTypeCommit})
	mustAccept(t, "PrivateMessage", new(PrivateMessage), priv)
	for _, ct := range []byte{0, 4} {
		mustReject(t, "PrivateMessage content_type", new(PrivateMessage), mutate(priv, 10, ct))
	}

	// AuthenticatedContent.wire_format: only public and private messages.
	ac := mustMarshal(t, pm.AuthenticatedContent())
	mustAccept(t, "AuthenticatedContent", new(AuthenticatedContent), ac)
	for _, wf := range []byte{0, 3, 4, 5, 6} {
		mustReject(t, "AuthenticatedContent wire_format", new(AuthenticatedContent), mutate(ac, 1, wf))
	}

	// LeafNode: leaf_node_source and credential_type. The offsets follow
	// from the field sizes: encryption_key (4), signature_key (3), then the
	// credential type.
	ln := testLeafNode(LeafNodeSourceKeyPackage)
	lnEnc := mustMarshal(t, &ln)
	mustAccept(t, "LeafNode", new(LeafNode), lnEnc)
	credOff := 4 + 3
	for _, ct := range []uint16{0, 3, 0x0a0a, 0xffff} {
		bad := bytes.Clone(lnEnc)
		binary.BigEndian.PutUint16(bad[credOff:], ct)
		mustReject(t, "credential_type", new(LeafNode), bad)
	}
	b := cryptobyte.NewBuilder(nil)
	ln.Credential.marshal(b)
	ln.Capabilities.marshal(b)
	srcOff := credOff + len(b.BytesOrPanic())
	if lnEnc[srcOff] != byte(LeafNodeSourceKeyPackage) {
		t.Fatalf("unexpected LeafNode layout")
	}
	for _, src := range []byte{0, 4, 0xff} {
		mustReject(t, "leaf_node_source", new(LeafNode), mutate(lnEnc, srcOff, src))
	}

	// Proposal type.
	rm := mustMarshal(t, &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 3}})
	mustAccept(t, "Proposal", new(Proposal), rm)
	for _, pt := range []uint16{0, 8, 0x0a0a, 0xf000} {
		bad := bytes.Clone(rm)
		binary.BigEndian.PutUint16(bad, pt)
		mustReject(t, "proposal_type", new(Proposal), bad)
	}

	// ProposalOrRef type: Commit = proposals<V> (1-byte length) then the
	// first ProposalOrRef's type.
	cm := mustMarshal(t, &Commit{Proposals: []ProposalOrRef{{Type: ProposalOrRefReference, Reference: []byte{7}}}})
	mustAccept(t, "Commit", new(Commit), cm)
	for _, rt := range []byte{0, 3} {
		mustReject(t, "ProposalOrRef type", new(Commit), mutate(cm, 1, rt))
	}

	// PSK type and resumption usage (decoded by psk.go's PreSharedKeyID).
	psk := tc.PreSharedKeyProposal
	mustAccept(t, "PreSharedKey", new(PreSharedKey), psk)
	for _, pt := range []byte{0, 3, 0xff} {
		mustReject(t, "psktype", new(PreSharedKey), mutate(psk, 0, pt))
	}

	// Node type and optional flag in a ratchet tree: header (2 bytes in the
	// vectors), presence flag, node type of leaf 0.
	rt := tc.RatchetTree
	mustAccept(t, "RatchetTree", new(RatchetTree), rt)
	if rt[0]>>6 != 1 || rt[2] != 1 || rt[3] != byte(NodeTypeLeaf) {
		t.Fatalf("unexpected ratchet_tree layout %x", rt[:4])
	}
	for _, nt := range []byte{0, byte(NodeTypeParent), 3} {
		mustReject(t, "node_type", new(RatchetTree), mutate(rt, 3, nt))
	}
	mustReject(t, "ratchet_tree optional flag", new(RatchetTree), mutate(rt, 2, 2))
}

// TestCodecRatchetTreeRules: §12.4.3.3 framing rules of the ratchet_tree.
func TestCodecRatchetTreeRules(t *testing.T) {
	ln := testLeafNode(LeafNodeSourceCommit)
	leaf := &Node{Type: NodeTypeLeaf, Leaf: &ln}
	parent := &Node{Type: NodeTypeParent, Parent: &ParentNode{EncryptionKey: []byte{1}, ParentHash: []byte{}, UnmergedLeaves: []uint32{2}}}

	full := RatchetTree{leaf, parent, leaf, nil, nil, nil, nil}
	enc := mustMarshal(t, full)
	var got RatchetTree
	mustAccept(t, "tree", &got, enc)
	if len(got) != 3 {
		t.Fatalf("trailing blanks not trimmed: %d nodes", len(got))
	}
	mustEqualBytes(t, "trimmed tree", mustMarshal(t, got), enc)

	// Hand-built vectors: trailing blank, empty, all blank, parent at an
	// even index, leaf at an odd index.
	leafBytes := mustMarshal(t, leaf)
	parentBytes := mustMarshal(t, parent)
	vec := func(elems ...[]byte) []byte {
		b := cryptobyte.NewBuilder(nil)
		addVarVector(b, func(b *cryptobyte.Builder) {
			for _, e := range elems {
				if e == nil {
					b.AddUint8(0)
				} else {
					b.AddUint8(1)
					b.AddBytes(e)
				}
			}
		})
		return b.BytesOrPanic()
	}
	mustAccept(t, "leaf", new(RatchetTree), vec(leafBytes))
	mustAccept(t, "leaf blank leaf", new(RatchetTree), vec(leafBytes, nil, leafBytes))
	mustReject(t, "trailing blank", new(RatchetTree), vec(leafBytes, nil))
	mustReject(t, "trailing blanks", new(RatchetTree), vec(leafBytes, parentBytes, leafBytes, nil, nil))
	mustReject(t, "empty", new(RatchetTree), vec())
	mustReject(t, "all blank", new(RatchetTree), vec(nil))
	mustReject(t, "parent at index 0", new(RatchetTree), vec(parentBytes))
	mustReject(t, "leaf at index 1", new(RatchetTree), vec(leafBytes, leafBytes, leafBytes))

	for _, bad := range []RatchetTree{{}, {nil, nil}, {parent}, {leaf, leaf}} {
		if _, err := bad.Marshal(); err == nil {
			t.Errorf("Marshal accepted invalid tree of %d nodes", len(bad))
		}
	}

	// Odd-length unmerged_leaves and capability lists.
	pn := mustMarshal(t, parent.Parent)
	// encryption_key (2), parent_hash (1), unmerged_leaves length at 3.
	bad := append(mutate(pn, 3, 5), 0)
	mustReject(t, "unmerged_leaves of 5 bytes", new(ParentNode), bad)
	caps := mustMarshal(t, &RequiredCapabilities{ExtensionTypes: []ExtensionType{1}})
	mustReject(t, "uint16 list of 3 bytes", new(RequiredCapabilities), append(mutate(caps, 0, 3), 0))
}

// TestCodecPrivateMessageContent: padding is zeros only, and the content
// type selects the body and the confirmation tag.
func TestCodecPrivateMessageContent(t *testing.T) {
	for _, c := range []*PrivateMessageContent{
		{ContentType: ContentTypeApplication, ApplicationData: []byte("hello"), Auth: FramedContentAuthData{Signature: []byte{1}}, PaddingLen: 7},
		{ContentType: ContentTypeProposal, Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{2}}, Auth: FramedContentAuthData{Signature: []byte{1}}},
		{ContentType: ContentTypeCommit, Commit: &Commit{Proposals: []ProposalOrRef{}}, Auth: FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: []byte{3, 4}}, PaddingLen: 1},
	} {
		enc := mustMarshal(t, c)
		got := &PrivateMessageContent{ContentType: c.ContentType}
		mustAccept(t, "PrivateMessageContent", got, enc)
		if got.PaddingLen != c.PaddingLen {
			t.Errorf("padding %d, want %d", got.PaddingLen, c.PaddingLen)
		}
		mustEqualBytes(t, "PrivateMessageContent", mustMarshal(t, got), enc)
		if c.PaddingLen > 0 {
			mustReject(t, "non-zero padding", &PrivateMessageContent{ContentType: c.ContentType}, mutate(enc, len(enc)-1, 1))
		}
		mustReject(t, "unknown content type", &PrivateMessageContent{}, enc)
	}
}

// TestCodecMarshalConsistency: the encoders refuse structures whose select
// fields are inconsistent instead of writing something undecodable.
func TestCodecMarshalConsistency(t *testing.T) {
	for name, v := range map[string]interface{ Marshal() ([]byte, error) }{
		"proposal without body":       &Proposal{Type: ProposalTypeAdd, Remove: &Remove{}},
		"unknown proposal type":       &Proposal{Type: 0x0a0a},
		"ProposalOrRef without body":  &Commit{Proposals: []ProposalOrRef{{Type: ProposalOrRefProposal}}},
		"ProposalOrRef unknown type":  &Commit{Proposals: []ProposalOrRef{{Type: 3}}},
		"unknown credential":          &Credential{Type: 0x0a0a},
		"unknown leaf source":         &LeafNode{Credential: NewBasicCredential(nil)},
		"MLSMessage without body":     &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatWelcome, GroupInfo: &GroupInfo{}},
		"MLSMessage unknown version":  &MLSMessage{Version: 2, WireFormat: WireFormatWelcome, Welcome: &Welcome{}},
		"MLSMessage unknown format":   &MLSMessage{Version: ProtocolMLS10, WireFormat: 9},
		"commit content no commit":    &FramedContent{Sender: Sender{Type: SenderMember}, ContentType: ContentTypeCommit},
		"unknown content type":        &FramedContent{Sender: Sender{Type: SenderMember}},
		"unknown sender type":         &FramedContent{ContentType: ContentTypeApplication},
		"AuthenticatedContent format": &AuthenticatedContent{WireFormat: WireFormatWelcome},
		"PrivateMessage content type": &PrivateMessage{},
		"node without body":           &Node{Type: NodeTypeLeaf},
		"negative padding":            &PrivateMessageContent{ContentType: ContentTypeApplication, PaddingLen: -1},
	} {
		if enc, err := v.Marshal(); err == nil {
			t.Errorf("%s: encoded as %x", name, enc)
		}
	}
}

// TestCodecRoundTripConstructed covers the types and arms the vectors do not
// exercise (x509 credentials, external senders, every sender type, ...).
func TestCodecRoundTripConstructed(t *testing.T) {
	ln := testLeafNode(LeafNodeSourceUpdate)
	x509 := Credential{Type: CredentialX509, Certificates: [][]byte{{1, 2}, {}, {3}}}
	app := ApplicationID("device-1")
	for name, v := range map[string]codec{
		"x509 credential":       &x509,
		"basic credential":      &Credential{Type: CredentialBasic, Identity: []byte{}},
		"update leaf":           &ln,
		"external senders":      &ExternalSenders{{SignatureKey: []byte{1}, Credential: x509}, {SignatureKey: []byte{}, Credential: NewBasicCredential([]byte("ds"))}},
		"required capabilities": &RequiredCapabilities{ExtensionTypes: []ExtensionType{5, 0xf000}, ProposalTypes: []ProposalType{}, CredentialTypes: []CredentialType{2}},
		"application id":        &app,
		"external pub":          &ExternalPub{ExternalPub: []byte{1, 2, 3}},
		"sender data":           &SenderData{LeafIndex: 7, Generation: 1 << 31, ReuseGuard: [4]byte{1, 2, 3, 4}},
		"update path": &UpdatePath{LeafNode: testLeafNode(LeafNodeSourceCommit), Nodes: []UpdatePathNode{
			{EncryptionKey: []byte{1}, EncryptedPathSecret: []HPKECiphertext{{KEMOutput: []byte{2}, Ciphertext: []byte{3}}, {}}},
		}},
		"external sender proposal": &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: FramedContent{
			GroupID: []byte{1}, Sender: Sender{Type: SenderExternal, SenderIndex: 9}, ContentType: ContentTypeProposal,
			Proposal: &Proposal{Type: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensions{}},
		}, Auth: FramedContentAuthData{Signature: []byte{5}}},
		"new member commit": &PublicMessage{Content: FramedContent{
			Sender: Sender{Type: SenderNewMemberCommit}, ContentType: ContentTypeCommit,
			Commit: &Commit{Proposals: []ProposalOrRef{{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypeExternalInit, ExternalInit: &ExternalInit{KEMOutput: []byte{1}}}}}},
		}, Auth: FramedContentAuthData{Signature: []byte{5}, ConfirmationTag: []byte{6}}},
		"group secrets with path": &GroupSecrets{JoinerSecret: []byte{1}, PathSecret: &PathSecret{PathSecret: []byte{2}}, PSKs: []PreSharedKeyID{
			{Type: PSKTypeExternal, PSKID: []byte{3}, Nonce: []byte{4}},
			{Type: PSKTypeResumption, Usage: ResumptionBranch, PSKGroupID: []byte{5}, PSKEpoch: 6, Nonce: []byte{7}},
		}},
	} {
		enc, err := v.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fresh := reflect.New(reflect.TypeOf(v).Elem()).Interface().(codec)
		mustAccept(t, name, fresh, enc)
		mustEqualBytes(t, name, mustMarshal(t, fresh), enc)
	}
	if got := mustMarshal(t, &app); !bytes.Equal(got, append([]byte{8}, "device-1"...)) {
		t.Errorf("application_id encoding %x", got)
	}
}

// TestCodecAllocationBound measures the bytes allocated while decoding
// adversarial inputs made of the smallest possible vector elements. Byte
// strings alias the input and no allocation is sized by a length prefix;
// what is allocated is the Go representation of the elements (slice
// headers, pointers: 24-64 bytes for an element that takes 1-3 input
// bytes), plus append's growth garbage where the element type allocates and
// readVectorExact cannot be used. The cost is therefore linear in the input
// with a bounded constant; this test pins the constant (measured worst case:
// about 106 bytes per input byte, a Commit of empty proposal references) so
// that a regression to super-linear or length-driven allocation fails.
func TestCodecAllocationBound(t *testing.T) {
	const n = 1 << 16
	vec := func(elem []byte, count int) []byte {
		b := cryptobyte.NewBuilder(nil)
		addVarVector(b, func(b *cryptobyte.Builder) {
			for i := 0; i < count; i++ {
				b.AddBytes(elem)
			}
		})
		return b.BytesOrPanic()
	}
	leaf := mustMarshal(t, &Node{Type: NodeTypeLeaf, Leaf: &LeafNode{Credential: NewBasicCredential(nil), Source: LeafNodeSourceUpdate}})
	treeBody := append(bytes.Repeat([]byte{0}, n), 1)
	treeBody = append(treeBody, leaf...)
	b := cryptobyte.NewBuilder(nil)
	addOpaque(b, treeBody)
	blankTree := b.BytesOrPanic()

	inputs := []struct {
		name string
		data []byte
		v    func() interface{ unmarshal(*cryptobyte.String) bool }
	}{
		{"blank tree nodes", blankTree, func() interface{ unmarshal(*cryptobyte.String) bool } { return new(RatchetTree) }},
		{"empty extensions", vec([]byte{0, 9, 0}, n), func() interface{ unmarshal(*cryptobyte.String) bool } { return new(GroupContextExtensions) }},
		{"empty certificates", append([]byte{0, 2}, vec([]byte{0}, n)...), func() interface{ unmarshal(*cryptobyte.String) bool } { return new(Credential) }},
		{"empty references", append(vec([]byte{2, 0}, n), 0), func() interface{ unmarshal(*cryptobyte.String) bool } { return new(Commit) }},
		{"remove proposals", append(vec([]byte{1, 0, 3, 0, 0, 0, 0}, n), 0), func() interface{ unmarshal(*cryptobyte.String) bool } { return new(Commit) }},
		{"empty ciphertexts", append([]byte{0}, vec([]byte{0, 0}, n)...), func() interface{ unmarshal(*cryptobyte.String) bool } { return new(UpdatePathNode) }},
	}
	for _, in := range inputs {
		v := in.v()
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		s := cryptobyte.String(in.data)
		ok := v.unmarshal(&s) && s.Empty()
		runtime.ReadMemStats(&ms1)
		if !ok {
			t.Fatalf("%s: does not decode", in.name)
		}
		ratio := float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(len(in.data))
		t.Logf("%-20s %8d input bytes, %5.1f bytes allocated per input byte", in.name, len(in.data), ratio)
		if ratio > 128 {
			t.Errorf("%s: %.1f bytes allocated per input byte", in.name, ratio)
		}
	}
}
