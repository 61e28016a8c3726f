package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testRelayProcess is a relay run in-process by Run, as `canopy relay` runs it.
type testRelayProcess struct {
	info   peer.AddrInfo
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startRelayCommand runs a relay with data directory dir on 127.0.0.1 and
// waits for the peer id and address it prints.
func startRelayCommand(t *testing.T, dir string) *testRelayProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	r := &testRelayProcess{stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	cfg := testConfig(dir)
	cfg.Circuit.Disabled = true
	cfg.Logger = slog.New(slog.NewTextHandler(r.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.Out = &stdout
	go func() { r.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { r.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		var id peer.ID
		var addrs []ma.Multiaddr
		for _, line := range strings.Split(stdout.String(), "\n") {
			if s, ok := strings.CutPrefix(line, "canopy relay "); ok {
				id, _ = peer.Decode(strings.TrimSpace(s))
			} else if s := strings.TrimSpace(line); strings.HasPrefix(s, "/ip4/127.0.0.1/tcp/") {
				if a, err := ma.NewMultiaddr(s); err == nil {
					addrs = append(addrs, a)
				}
			}
		}
		if id != "" && len(addrs) > 0 {
			r.info = peer.AddrInfo{ID: id, Addrs: addrs}
			return r
		}
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("relay exited: %v\nstderr:\n%s", err, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay did not print its address; stdout:\n%s\nstderr:\n%s", stdout.String(), r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the relay as SIGINT would and checks that it shut down cleanly.
func (r *testRelayProcess) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("relay: %v\nstderr:\n%s", err, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("relay did not stop")
	}
}

func newTestMember(t *testing.T, opts ...p2p.Option) *p2p.Node {
	t.Helper()
	base := []p2p.Option{
		p2p.WithListenAddrs("/ip4/127.0.0.1/tcp/0"),
		p2p.WithMDNS(false),
		p2p.WithDHT(p2p.DHTOff),
		p2p.WithAutoNAT(false),
		p2p.WithHolePunching(false),
	}
	n, err := p2p.New(context.Background(), nil, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func syncAll(t *testing.T, n *p2p.Node, relay peer.ID, topic string, since uint64) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := map[string]uint64{}
	err := n.SyncAll(ctx, relay, topic, since, func(e p2p.SyncEntry) error {
		got[string(e.Data)] = e.Epoch
		return nil
	})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return got
}

// testConfig is the default configuration on 127.0.0.1 without metrics.
func testConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MetricsAddr = ""
	return cfg
}

// TestRelayRestartServesStoredFrames runs a relay on data directory DIR with
// real hosts on 127.0.0.1: a member has the relay keep its group's topic
// and publishes; the relay is stopped and started again on the same
// directory; a peer that was never online before catches up from the
// restarted relay (same peer id) with /canopy/sync/1. The restarted relay
// rejoined the topic from the stored lease: a frame that peer publishes,
// although nobody renewed the lease, is kept and served too.
func TestRelayRestartServesStoredFrames(t *testing.T) {
	dir := t.TempDir()
	r1 := startRelayCommand(t, dir)

	group := fmt.Appendf(nil, "relay-restart-%d", time.Now().UnixNano())
	topic := p2p.TopicName(group)
	a := newTestMember(t, p2p.WithRelays(r1.info))
	ta, err := a.JoinGroup(group) // asks the relay to keep the topic
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ta.WaitPeers(ctx, 1); err != nil {
		t.Fatalf("relay never joined the topic: %v\nrelay stderr:\n%s", err, r1.stderr)
	}
	sent := map[string]uint64{}
	for epoch := uint64(1); epoch <= 4; epoch++ {
		f := p2p.BuildPrivateMessage(group, epoch, p2p.ContentApplication, nil, []byte("sender-data"), fmt.Appendf(nil, "message of epoch %d", epoch))
		sent[string(f)] = epoch
		if _, err := ta.Publish(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	for {
		page, err := a.Sync(ctx, r1.info.ID, p2p.SyncRequest{Topic: topic})
		if err == nil && len(page.Entries) == len(sent) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("relay stored %d of %d frames (%v)\nrelay stderr:\n%s", len(page.Entries), len(sent), err, r1.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r1.stop(t)
	_ = a.Close()
	for _, f := range []string{store.DBFileName, IdentityFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data directory: %v", err)
		}
	}

	r2 := startRelayCommand(t, dir)
	if r2.info.ID != r1.info.ID {
		t.Fatalf("relay peer id changed across restart: %s, then %s", r1.info.ID, r2.info.ID)
	}
	// A second relay on the same directory is refused by the store's lock.
	err = Run(context.Background(), testConfig(dir))
	if !errors.Is(err, store.ErrProfileInUse) {
		t.Fatalf("second relay on the same directory: %v", err)
	}

	b := newTestMember(t)
	if err := b.Connect(ctx, r2.info); err != nil {
		t.Fatal(err)
	}
	if got := syncAll(t, b, r2.info.ID, topic, 0); len(got) != len(sent) {
		t.Fatalf("caught up on %d of %d frames after the restart", len(got), len(sent))
	} else {
		for f, epoch := range sent {
			if e, ok := got[f]; !ok || e != epoch {
				t.Fatalf("frame of epoch %d missing after the restart", epoch)
			}
		}
	}
	if got := syncAll(t, b, r2.info.ID, topic, 3); len(got) != 2 {
		t.Fatalf("frames of epochs >= 3 after the restart: %d, want 2", len(got))
	}

	// b has no relays configured: joining the group asks nobody to keep
	// it. The relay is in the topic anyway.
	tb, err := b.JoinGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.WaitPeers(ctx, 1); err != nil {
		t.Fatalf("the restarted relay did not rejoin the kept topic: %v\nrelay stderr:\n%s", err, r2.stderr)
	}
	f := p2p.BuildPrivateMessage(group, 5, p2p.ContentApplication, nil, []byte("sender-data"), []byte("message after the restart"))
	if _, err := tb.Publish(ctx, f); err != nil {
		t.Fatal(err)
	}
	for {
		got := syncAll(t, b, r2.info.ID, topic, 5)
		if e, ok := got[string(f)]; ok && e == 5 && len(got) == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the restarted relay did not keep a frame published after the restart (got %d frames)\nrelay stderr:\n%s", len(got), r2.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConfigValidate: each malformed field is reported as a ConfigError
// naming it, before anything is written: Run leaves the data directory
// absent.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"DataDir", func(c *Config) { c.DataDir = "" }},
		{"Listen", func(c *Config) { c.Listen = []string{"/ip4/127.0.0.1/tcp/zero"} }},
		{"Announce", func(c *Config) { c.Announce = []string{"/ip9/x"} }},
		{"Bootstrap", func(c *Config) { c.Bootstrap = []string{"/ip4/1.2.3.4/tcp/4001"} }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "relay")
			cfg := testConfig(dir)
			tc.edit(&cfg)
			var ce *ConfigError
			if err := cfg.Validate(); !errors.As(err, &ce) || ce.Field != tc.field || ce.Err == nil {
				t.Fatalf("Validate: %v, want a ConfigError for %s", err, tc.field)
			}
			if err := Run(context.Background(), cfg); !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("Run: %v, want a ConfigError for %s", err, tc.field)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a rejected configuration created the data directory: %v", err)
			}
		})
	}
	if err := testConfig(t.TempDir()).Validate(); err != nil {
		t.Fatalf("valid configuration: %v", err)
	}
}

// TestHTTPMetricsAndHealth: a started relay serves /healthz (its peer id
// and addresses, 200 while healthy) and /metrics (Prometheus text) on
// MetricsAddr, and stops serving when closed. A busy metrics port is a
// ConfigError for MetricsAddr.
func TestHTTPMetricsAndHealth(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MetricsAddr = "127.0.0.1:0"
	r, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	base := "http://" + r.MetricsAddr().String()

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h p2p.RelayHealth
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !h.OK || h.PeerID != r.ID().String() || len(h.Addrs) == 0 {
		t.Fatalf("/healthz: %d %+v %v", resp.StatusCode, h, err)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("go_goroutines")) {
		t.Fatalf("/metrics: %d, %d bytes without go_goroutines", resp.StatusCode, len(body))
	}

	busy := testConfig(t.TempDir())
	busy.MetricsAddr = r.MetricsAddr().String()
	var ce *ConfigError
	if r2, err := Start(context.Background(), busy); !errors.As(err, &ce) || ce.Field != "MetricsAddr" {
		if err == nil {
			r2.Close()
		}
		t.Fatalf("second relay on a busy metrics port: %v", err)
	}

	r.Close()
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("/healthz still served after Close")
	}
}
