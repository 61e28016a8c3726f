package p2p

import (
	"encoding/hex"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestFrameBodyWireBytes pins the bytes of one frame body of each kind, so
// that a change of the body codec (it moved from a hand-written buffer to
// cryptobyte) cannot change what goes on the wire unnoticed. The values
// were written by the codec before the move.
func TestFrameBodyWireBytes(t *testing.T) {
	id, err := peer.Decode("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
	if err != nil {
		t.Fatal(err)
	}
	topic := TopicName([]byte("wire group"))
	var status enc
	status.u8(uint8(CodeNotFound))
	status.str("no such tree")
	status.uvarint(math.MaxUint64)
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"inbox", EncodeInboxMessage(InboxMessage{Kind: InboxWelcome, Topic: topic, Data: []byte("welcome")}), "01502f63616e6f70792f67726f75702f312f373836373836636133663461366131623635636264343235316265383362623736323139323565623462366136306165653338376430373031396265633266630777656c636f6d65"},
		{"keypackage request", encodeKeyPackageRequest(id, 0x004D), "260024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b4d"},
		{"keypackage", encodeKeyPackage(KeyPackage{LastResort: true, CipherSuite: 7, Data: []byte{1, 2, 3}}), "010703010203"},
		{"relay keep", relayRequest{op: relayOpKeep, topic: topic, leaseSecs: 300}.encode(), "01502f63616e6f70792f67726f75702f312f37383637383663613366346136613162363563626434323531626538336262373632313932356562346236613630616565333837643037303139626563326663ac02"},
		{"relay deposit", relayRequest{op: relayOpDeposit, recipient: id, ttlSecs: 1 << 20, message: []byte("m")}.encode(), "02260024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b808040016d"},
		{"relay put", relayRequest{op: relayOpPutKPs, kps: []KeyPackage{{CipherSuite: 1, Data: []byte{9}}, {LastResort: true, CipherSuite: 2}}}.encode(), "040200010109010200"},
		{"mail item", encodeMailItem(MailItem{ID: MessageID{1, 2, 3}, From: id, Data: []byte("d"), Deposited: time.Unix(1700000000, 0)}), "010102030000000000000000000000000000000000000000000000000000000000260024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b80e2cfaa060164"},
		{"mail ack", encodeMailAck([]MessageID{{7}, {8}}), "0207000000000000000000000000000000000000000000000000000000000000000800000000000000000000000000000000000000000000000000000000000000"},
		{"sync request", encodeSyncRequest(SyncRequest{Topic: topic, SinceEpoch: 3, After: 200, Limit: 50}), "502f63616e6f70792f67726f75702f312f3738363738366361336634613661316236356362643432353162653833626237363231393235656234623661363061656533383764303730313962656332666303c80132"},
		{"sync entry", encodeSyncEntry(SyncEntry{Seq: 128, Epoch: 4, Data: []byte("frame")}), "01800104056672616d65"},
		{"sync end", encodeSyncEnd(129, true), "02810101"},
		{"tree request", encodeTreeRequest(TreeRequest{Topic: topic, Epoch: 9, TreeHash: []byte{0xaa, 0xbb}}), "502f63616e6f70792f67726f75702f312f373836373836636133663461366131623635636264343235316265383362623736323139323565623462366136306165653338376430373031396265633266630902aabb"},
		{"status", status.body(), "010c6e6f20737563682074726565ffffffffffffffffff01"},
	} {
		if got := hex.EncodeToString(c.got); got != c.want {
			t.Errorf("%s: body %s, want %s", c.name, got, c.want)
		}
	}
}
