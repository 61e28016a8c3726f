package p2p

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// mDNS itself multicasts on the LAN, which tests must not do: the notifee
// logic (what happens when a peer is announced) is tested directly instead,
// and multi-host tests run with mDNS off.
func TestMDNSNotifee(t *testing.T) {
	self, _ := newTestIdentity(t)
	addr := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")}
	var mu sync.Mutex
	dialed := map[peer.ID]int{}
	release := make(chan struct{})
	var inFlight, maxInFlight atomic.Int32
	connect := func(ctx context.Context, pi peer.AddrInfo) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		dialed[pi.ID]++
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := newMDNSNotifee(ctx, self, connect, slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.Unix(1e9, 0)
	n.now = func() time.Time { return now }
	count := func(p peer.ID) int {
		mu.Lock()
		defer mu.Unlock()
		return dialed[p]
	}

	// Our own announcement and announcements without addresses are ignored.
	n.HandlePeerFound(peer.AddrInfo{ID: self, Addrs: addr})
	other, _ := newTestIdentity(t)
	n.HandlePeerFound(peer.AddrInfo{ID: other})

	// At most mdnsMaxDials dials run at once; announcements beyond that are
	// dropped and forgotten, so the peer's next announcement is dialled.
	var peers []peer.ID
	for i := 0; i < mdnsMaxDials+3; i++ {
		p, _ := newTestIdentity(t)
		peers = append(peers, p)
		n.HandlePeerFound(peer.AddrInfo{ID: p, Addrs: addr})
	}
	waitFor(t, 5*time.Second, "dials to start", func() bool { return inFlight.Load() == mdnsMaxDials })
	close(release)
	n.wg.Wait()
	if maxInFlight.Load() != mdnsMaxDials {
		t.Fatalf("max concurrent dials %d, want %d", maxInFlight.Load(), mdnsMaxDials)
	}
	if count(self) != 0 || count(other) != 0 {
		t.Fatal("dialled self or an address-less peer")
	}
	for i, p := range peers {
		want := 0
		if i < mdnsMaxDials {
			want = 1
		}
		if count(p) != want {
			t.Fatalf("peer %d dialled %d times, want %d", i, count(p), want)
		}
	}
	late := peers[mdnsMaxDials]
	n.HandlePeerFound(peer.AddrInfo{ID: late, Addrs: addr})
	n.wg.Wait()
	if count(late) != 1 {
		t.Fatal("dropped peer not dialled on its next announcement")
	}

	// Re-announcements within mdnsRedialAfter are ignored, later ones dialled.
	first := peers[0]
	n.HandlePeerFound(peer.AddrInfo{ID: first, Addrs: addr})
	n.wg.Wait()
	if count(first) != 1 {
		t.Fatal("re-announcement dialled again at once")
	}
	now = now.Add(mdnsRedialAfter + time.Second)
	n.HandlePeerFound(peer.AddrInfo{ID: first, Addrs: addr})
	n.wg.Wait()
	if count(first) != 2 {
		t.Fatal("re-announcement after the redial period not dialled")
	}

	// After the node stops, announcements are ignored.
	cancel()
	p, _ := newTestIdentity(t)
	n.HandlePeerFound(peer.AddrInfo{ID: p, Addrs: addr})
	n.wg.Wait()
	if count(p) != 0 {
		t.Fatal("dialled after stop")
	}
}

// TestMDNSOffByDefaultInTests documents that multi-host tests never start
// mDNS.
func TestMDNSOffInTests(t *testing.T) {
	n := newTestNode(t)
	if n.mdns != nil {
		t.Fatal("mDNS running in a test node")
	}
}
