package blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/blob"
	"github.com/canopy-chat/canopy/p2p"
)

// newRelay runs a p2p relay keeping files on 127.0.0.1.
func newRelay(t *testing.T) *node {
	t.Helper()
	r, err := p2p.NewRelay(context.Background(), nil,
		p2p.RelayConfig{BlobDir: t.TempDir(), Circuit: p2p.CircuitLimits{Disabled: true}},
		p2p.WithListenAddrs("/ip4/127.0.0.1/tcp/0"), p2p.WithDHT(p2p.DHTOff),
		p2p.WithAutoNAT(false), p2p.WithHolePunching(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &node{Node: r.Node()}
}

func upload(t *testing.T, from, relay *node, id blob.ID, size int64, src interface {
	ReadAt([]byte, int64) (int, error)
}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := from.PutBlob(ctx, relay.ID(), id, size, src); err != nil {
		t.Fatal(err)
	}
}

// TestTransferFromRelay: the sender uploads the ciphertext to a relay and
// goes; a member fetches the file from the relay and it opens. A relay
// holding other bytes under the id (uploaded first by someone who learnt
// the id) is dropped at its first chunk like a lying peer, and the file
// comes from an honest relay.
func TestTransferFromRelay(t *testing.T) {
	a, c := newNode(t, nil), newNode(t, nil)
	good, bad := newRelay(t), newRelay(t)
	mallory := newNode(t, nil)
	for _, r := range []*node{good, bad} {
		connect(t, a, r)
		connect(t, c, r)
		connect(t, mallory, r)
	}
	ann, data := sendFile(t, a, 2*blob.RangeSize+777)
	size := ann.CiphertextSize()
	junk := make([]byte, size)
	rand.Read(junk)
	upload(t, mallory, bad, ann.ID(), size, bytes.NewReader(junk))

	r, err := a.store.Open(ann.ID())
	if err != nil {
		t.Fatal(err)
	}
	upload(t, a, good, ann.ID(), size, r)
	upload(t, a, bad, ann.ID(), size, r) // the relay keeps the first upload
	r.Close()
	a.Close()

	served := map[string]*atomic.Int64{string(bad.ID()): {}, string(good.ID()): {}}
	got := receive(t, c, ann, []string{string(a.ID()), string(bad.ID()), string(good.ID())}, served)
	if !bytes.Equal(got, data) {
		t.Fatal("received different bytes")
	}
	if b := served[string(bad.ID())].Load(); b > blob.RangeSize {
		t.Errorf("the relay with other bytes served %d bytes before being dropped", b)
	}
	if g := served[string(good.ID())].Load(); g != size {
		t.Errorf("the honest relay served %d of %d bytes", g, size)
	}
}
