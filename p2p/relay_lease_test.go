package p2p

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRelayRestoresLeases: a relay persists the leases it grants (and
// forgets released ones); a new relay on the same stores rejoins the kept
// topics at start and stores frames published after the restart although
// no member renewed its lease.
func TestRelayRestoresLeases(t *testing.T) {
	leases, log := NewMemoryLeaseStore(), NewMemoryTopicLog()
	r1 := newTestRelay(t, RelayConfig{TopicLog: log, Leases: leases, MaxLease: time.Hour})
	group := newGroupID()
	topic, other := TopicName(group), TopicName(newGroupID())

	a := newTestNode(t)
	connect(t, a, r1.Node())
	ctx := testCtx(t, 20*time.Second)
	before := time.Now()
	for _, tp := range []string{topic, other} {
		if _, err := a.KeepTopic(ctx, r1.Node().ID(), tp, 2*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.KeepTopic(ctx, r1.Node().ID(), other, 0); err != nil {
		t.Fatal(err)
	}
	stored, err := leases.Leases(ctx, time.Now())
	if err != nil || len(stored) != 1 || stored[0].Topic != topic || stored[0].Peer != a.ID() ||
		stored[0].Until.Before(before.Add(time.Hour)) || stored[0].Until.After(time.Now().Add(time.Hour)) {
		t.Fatalf("stored leases: %+v %v", stored, err)
	}
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()

	r2 := newTestRelay(t, RelayConfig{TopicLog: log, Leases: leases, MaxLease: time.Hour})
	if got := r2.KeptTopics(); !slices.Equal(got, []string{topic}) {
		t.Fatalf("kept topics after the restart: %v", got)
	}
	if h := r2.Health(ctx); h.KeptTopics != 1 {
		t.Fatalf("health after the restart: %+v", h)
	}
	// b never asks the relay to keep anything.
	b := newTestNode(t)
	connect(t, b, r2.Node())
	tb, err := b.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f := mlsFrame(group, 7, "after the restart")
	if _, err := tb.Publish(ctx, f); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the restarted relay storing the frame", func() bool { return logLen(t, r2, topic) == 1 })
	page, err := b.Sync(ctx, r2.Node().ID(), SyncRequest{Topic: topic})
	if err != nil || len(page.Entries) != 1 || string(page.Entries[0].Data) != string(f) || page.Entries[0].Epoch != 7 {
		t.Fatalf("sync after the restart: %+v %v", page, err)
	}
}

// TestRelayRestoreQuotas: restored leases are capped at MaxLease and held
// to the quotas in force; the ones refused are deleted from the store.
func TestRelayRestoreQuotas(t *testing.T) {
	ctx := context.Background()
	leases := NewMemoryLeaseStore()
	p := newTestNode(t).ID()
	var topics []string
	for _, g := range []string{"a", "b", "c"} {
		topics = append(topics, TopicName([]byte(g)))
	}
	sort.Strings(topics)
	far := time.Now().Add(48 * time.Hour)
	for _, tp := range topics {
		if err := leases.PutLease(ctx, Lease{Topic: tp, Peer: p, Until: far}); err != nil {
			t.Fatal(err)
		}
	}
	// An expired lease and a malformed one are not restored.
	q := newTestNode(t).ID()
	_ = leases.PutLease(ctx, Lease{Topic: TopicName([]byte("old")), Peer: q, Until: time.Now().Add(-time.Minute)})
	_ = leases.PutLease(ctx, Lease{Topic: "not a topic", Peer: q, Until: far})

	r := newTestRelay(t, RelayConfig{Leases: leases, MaxLease: time.Hour, Quotas: Quotas{TopicsPerPeer: 2}})
	if got := r.KeptTopics(); !slices.Equal(got, topics[:2]) {
		t.Fatalf("kept topics: %v, want %v", got, topics[:2])
	}
	stored, err := leases.Leases(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range stored {
		if l.Peer == p {
			got = append(got, l.Topic)
			if l.Until.After(time.Now().Add(time.Hour)) {
				t.Fatalf("lease not capped at MaxLease: %v", l.Until)
			}
		}
	}
	if !slices.Equal(got, topics[:2]) {
		t.Fatalf("stored leases of p: %v, want %v", got, topics[:2])
	}
}

// unreadableLeases is a LeaseStore that cannot be read.
type unreadableLeases struct{}

func (unreadableLeases) PutLease(context.Context, Lease) error              { return nil }
func (unreadableLeases) DeleteLease(context.Context, string, peer.ID) error { return nil }
func (unreadableLeases) Prune(context.Context, time.Time) error             { return nil }
func (unreadableLeases) Leases(context.Context, time.Time) ([]Lease, error) {
	return nil, errors.New("disk on fire")
}

// TestRelayLeaseStoreUnreadable: a relay whose leases cannot be read does
// not start (it would silently drop every kept topic).
func TestRelayLeaseStoreUnreadable(t *testing.T) {
	r, err := NewRelay(context.Background(), nil, RelayConfig{Leases: unreadableLeases{}}, baseOpts(t)...)
	if err == nil {
		_ = r.Close()
		t.Fatal("relay started without its leases")
	}
	if !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("NewRelay: %v", err)
	}
}
