package p2p

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Every parser of untrusted bytes has a fuzz target. Seed corpora live in
// testdata/fuzz/<FuzzName>/ and run as ordinary tests; `go test -fuzz` goes
// further. The invariants: no panic, bounded output, and decode∘encode is
// the identity wherever an encoder exists.

const fuzzMaxMsg = 4096

func fuzzSeeds() map[string][][]byte {
	group := []byte("fuzz group")
	topic := TopicName(group)
	id, _ := peer.Decode("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
	inbox := EncodeInboxMessage(InboxMessage{Kind: InboxWelcome, Topic: topic, Data: []byte("welcome")})
	return map[string][][]byte{
		"FuzzParseMLSHeader": {
			mlsFrame(group, 7, "ciphertext"),
			BuildPrivateMessage(bytes.Repeat([]byte("g"), 70), 1<<40, ContentCommit, []byte("ad"), bytes.Repeat([]byte("s"), 300), bytes.Repeat([]byte("c"), 20000)),
			append([]byte{0, 1, 0, 1}, append(appendMLSVector(nil, group), 0, 0, 0, 0, 0, 0, 0, 3, 1, 0, 0, 0, 2, 0, 3)...),
			{0, 1, 0, 3, 1},
			{0, 1, 0, 2, 0xc0},
			{0, 1, 0, 2, 0x40, 0x01},
		},
		"FuzzRelayRequest": {
			relayRequest{op: relayOpKeep, topic: topic, leaseSecs: 3600}.encode(),
			relayRequest{op: relayOpDeposit, recipient: id, ttlSecs: 60, message: inbox}.encode(),
			relayRequest{op: relayOpFetch, limit: 64}.encode(),
			relayRequest{op: relayOpPutKPs, kps: []KeyPackage{{Data: []byte("kp"), CipherSuite: 1}, {Data: []byte("lr"), LastResort: true}}}.encode(),
			{9},
		},
		"FuzzInboxMessage": {inbox, EncodeInboxMessage(InboxMessage{Kind: InboxDirect, Data: []byte{1}}), {2, 0, 0}},
		"FuzzSyncMessages": {
			encodeSyncRequest(SyncRequest{Topic: topic, SinceEpoch: 3, After: 99, Limit: 10}),
			encodeSyncEntry(SyncEntry{Seq: 5, Epoch: 3, Data: mlsFrame(group, 3, "x")}),
			encodeSyncEnd(77, true),
		},
		"FuzzKeyPackageMessages": {
			encodeKeyPackageRequest(id, 1), encodeKeyPackageRequest("", 0),
			encodeKeyPackage(KeyPackage{Data: []byte("kp"), CipherSuite: 3, LastResort: true}),
		},
		"FuzzTreeRequest": {encodeTreeRequest(TreeRequest{Topic: topic, Epoch: 4, TreeHash: make([]byte, 32)})},
		"FuzzMailFrames": {
			encodeMailItem(MailItem{ID: IDOf(inbox), From: id, Data: inbox, Deposited: time.Unix(1700000000, 0)}),
			{mailTagEnd},
			encodeMailAck([]MessageID{IDOf(inbox), {1}}),
		},
		"FuzzStatus": {{byte(CodeNotFound), 3, 'a', 'b', 'c'}, {0, 0, 1, 2, 3}},
		"FuzzTreeResponse": {
			treeResponse([]byte("a small tree")),
			treeResponse(bytes.Repeat([]byte("t"), 3000), 1000),
			appendFrame(nil, []byte{byte(CodeNotFound), 4, 'g', 'o', 'n', 'e'}),
			appendFrame(appendFrame(nil, []byte{0, 0, 5}), []byte("toolong")),
			appendFrame(nil, []byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0x7f}),
		},
		"FuzzRelayResponses": {{0x90, 0x1c}, {0}, {0x80, 0x00}, {1, 2}},
	}
}

// treeResponse encodes a /canopy/tree/1 response carrying tree in chunks
// of the given size (default: one chunk).
func treeResponse(tree []byte, chunk ...int) []byte {
	size := len(tree)
	if len(chunk) > 0 {
		size = chunk[0]
	}
	var head enc
	head.u8(uint8(CodeOK))
	head.str("")
	head.uvarint(uint64(len(tree)))
	out := appendFrame(nil, head.body())
	for len(tree) > 0 {
		n := min(size, len(tree))
		out = appendFrame(out, tree[:n])
		tree = tree[n:]
	}
	return out
}

func addSeeds(f *testing.F, name string) {
	for _, s := range fuzzSeeds()[name] {
		f.Add(s)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, []byte("hello")), uint32(16))
	f.Add(appendFrame(appendFrame(nil, bytes.Repeat([]byte("a"), directAllocLimit+1)), []byte("x")), uint32(100000))
	f.Add([]byte{0x80, 0x00}, uint32(10))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, uint32(1<<20))
	f.Fuzz(func(t *testing.T, data []byte, max uint32) {
		max %= 1 << 20
		r := bufio.NewReader(bytes.NewReader(data))
		b, err := readFrame(r, int(max))
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				n, _, _ := decodeUvarintPrefix(data)
				if n <= uint64(max) {
					t.Fatalf("frame of %d bytes refused with limit %d", n, max)
				}
			}
			return
		}
		if len(b) > int(max) {
			t.Fatalf("frame of %d bytes exceeds limit %d", len(b), max)
		}
		if enc := appendFrame(nil, b); !bytes.HasPrefix(data, enc) {
			t.Fatalf("re-encoded frame %x is not a prefix of the input", enc)
		}
		// With a budget: a frame the budget refuses is not read, one it
		// grants is read whole.
		budget := int(max / 2)
		r = bufio.NewReader(bytes.NewReader(data))
		var asked int
		b2, err := readFrameReserving(r, int(max), func(n int) error {
			asked = n
			if n > budget {
				return ErrNoResources
			}
			return nil
		})
		switch {
		case len(b) > budget:
			if !errors.Is(err, ErrNoResources) || b2 != nil || asked != len(b) {
				t.Fatalf("frame of %d bytes over a %d budget: %v", len(b), budget, err)
			}
		case err != nil || !bytes.Equal(b, b2):
			t.Fatalf("frame within the budget: %v", err)
		}
	})
}

func decodeUvarintPrefix(b []byte) (uint64, int, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, io.ErrUnexpectedEOF
	}
	return v, n, nil
}

func FuzzParseMLSHeader(f *testing.F) {
	addSeeds(f, "FuzzParseMLSHeader")
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseMLSHeader(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedMLS) {
				t.Fatalf("error %v does not wrap ErrMalformedMLS", err)
			}
			return
		}
		if h.HasEpoch() {
			if h.ContentType < ContentApplication || h.ContentType > ContentCommit {
				t.Fatalf("content type %d accepted", h.ContentType)
			}
			// The group id is the minimally encoded vector after the
			// 4-byte prefix.
			enc := appendMLSVector([]byte{0, 1, byte(h.WireFormat >> 8), byte(h.WireFormat)}, h.GroupID)
			if !bytes.HasPrefix(data, enc) {
				t.Fatalf("group id %x not where it should be", h.GroupID)
			}
		}
		if h.WireFormat == WirePrivateMessage {
			if _, err := ParseMLSHeader(append(bytes.Clone(data), 0)); err == nil {
				t.Fatal("trailing byte after a PrivateMessage accepted")
			}
		}
	})
}

func FuzzRelayRequest(f *testing.F) {
	addSeeds(f, "FuzzRelayRequest")
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := decodeRelayRequest(data, fuzzMaxMsg)
		if err != nil {
			return
		}
		if len(q.message) > fuzzMaxMsg+1024 || len(q.kps) > maxKPsPerPut {
			t.Fatal("limits not enforced")
		}
		if enc := q.encode(); !bytes.Equal(enc, data) {
			t.Fatalf("round trip: %x != %x", enc, data)
		}
	})
}

func FuzzInboxMessage(f *testing.F) {
	addSeeds(f, "FuzzInboxMessage")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeInboxMessage(data, fuzzMaxMsg)
		if err != nil {
			return
		}
		if len(m.Data) > fuzzMaxMsg {
			t.Fatal("data limit not enforced")
		}
		if enc := EncodeInboxMessage(m); !bytes.Equal(enc, data) {
			t.Fatalf("round trip: %x != %x", enc, data)
		}
	})
}

func FuzzSyncMessages(f *testing.F) {
	addSeeds(f, "FuzzSyncMessages")
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := decodeSyncRequest(data); err == nil {
			if r.Limit < 1 || r.Limit > MaxSyncLimit || !isTopicName(r.Topic) {
				t.Fatalf("bad request accepted: %+v", r)
			}
		}
		e, end, next, more, err := decodeSyncFrame(data, fuzzMaxMsg)
		if err != nil {
			return
		}
		var enc []byte
		if end {
			enc = encodeSyncEnd(next, more)
		} else {
			enc = encodeSyncEntry(e)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("round trip: %x != %x", enc, data)
		}
	})
}

func FuzzKeyPackageMessages(f *testing.F) {
	addSeeds(f, "FuzzKeyPackageMessages")
	f.Fuzz(func(t *testing.T, data []byte) {
		if owner, suite, err := decodeKeyPackageRequest(data); err == nil {
			if enc := encodeKeyPackageRequest(owner, suite); !bytes.Equal(enc, data) {
				t.Fatalf("request round trip: %x != %x", enc, data)
			}
		}
		if kp, err := decodeKeyPackage(data); err == nil {
			if enc := encodeKeyPackage(kp); !bytes.Equal(enc, data) {
				t.Fatalf("response round trip: %x != %x", enc, data)
			}
		}
	})
}

func FuzzTreeRequest(f *testing.F) {
	addSeeds(f, "FuzzTreeRequest")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeTreeRequest(data)
		if err != nil {
			return
		}
		if enc := encodeTreeRequest(r); !bytes.Equal(enc, data) {
			t.Fatalf("round trip: %x != %x", enc, data)
		}
	})
}

func FuzzMailFrames(f *testing.F) {
	addSeeds(f, "FuzzMailFrames")
	f.Fuzz(func(t *testing.T, data []byte) {
		if ids, err := decodeMailAck(data); err == nil {
			if enc := encodeMailAck(ids); !bytes.Equal(enc, data) {
				t.Fatalf("ack round trip: %x != %x", enc, data)
			}
		}
		m, end, err := decodeMailFrame(data, fuzzMaxMsg)
		if err != nil || end {
			return
		}
		enc := encodeMailItem(MailItem{ID: m.ID, From: m.From, Data: EncodeInboxMessage(m.Message), Deposited: m.Deposited})
		if !bytes.Equal(enc, data) {
			t.Fatalf("item round trip: %x != %x", enc, data)
		}
	})
}

func FuzzStatus(f *testing.F) {
	addSeeds(f, "FuzzStatus")
	f.Fuzz(func(t *testing.T, data []byte) {
		code, msg, body, err := decodeStatus(data)
		if err != nil {
			return
		}
		var e enc
		e.u8(uint8(code))
		e.str(msg)
		e.fixed(body)
		if !bytes.Equal(e.body(), data) {
			t.Fatalf("round trip: %x != %x", e.body(), data)
		}
	})
}

func FuzzTreeResponse(f *testing.F) {
	addSeeds(f, "FuzzTreeResponse")
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		read := func(max int) ([]byte, error) { return readFrame(r, max) }
		tree, err := readTreeResponse(read)
		if err != nil {
			return
		}
		// A tree is never empty and never larger than the bytes that
		// carried it, whatever size the response announced.
		if len(tree) == 0 || len(tree) > len(data) {
			t.Fatalf("tree of %d bytes from %d bytes of input", len(tree), len(data))
		}
	})
}

func FuzzRelayResponses(f *testing.F) {
	addSeeds(f, "FuzzRelayResponses")
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeCount(data)
		if err != nil {
			return
		}
		var e enc
		e.uvarint(v)
		if !bytes.Equal(e.body(), data) {
			t.Fatalf("round trip: %x != %x", e.body(), data)
		}
	})
}

// TestFuzzCorpusPresent makes sure the committed seed corpora exist, so that
// `go test` runs every parser on them from a clean clone.
func TestFuzzCorpusPresent(t *testing.T) {
	for _, name := range []string{"FuzzReadFrame", "FuzzParseMLSHeader", "FuzzRelayRequest", "FuzzInboxMessage",
		"FuzzSyncMessages", "FuzzKeyPackageMessages", "FuzzTreeRequest", "FuzzMailFrames", "FuzzStatus",
		"FuzzTreeResponse", "FuzzRelayResponses"} {
		entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
		if err != nil || len(entries) == 0 {
			t.Errorf("no seed corpus for %s: %v", name, err)
		}
	}
}
