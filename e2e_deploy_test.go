package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// End-to-end tests of deployment: the real binary, on 127.0.0.1.

// TestE2ERelayAddressInUse: a second `canopy relay` given the port of a
// running one exits with "address in use" instead of sharing the port
// (SO_REUSEPORT) and splitting the connections with it.
func TestE2ERelayAddressInUse(t *testing.T) {
	bin := canopyBinary(t)
	data := t.TempDir()
	first := startRelay(t, bin, filepath.Join(data, "relay1"))
	addr, _ := ma.SplitFunc(ma.StringCast(first), func(c ma.Component) bool { return c.Protocol().Code == ma.P_P2P })
	cmd := exec.Command(bin, "relay", "--listen", addr.String(), "--data", filepath.Join(data, "relay2"), "--metrics", "")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(e2eWait):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the second relay on %s kept running:\n%s", addr, out)
	}
	if err == nil || !strings.Contains(string(out), "address in use") || !strings.Contains(string(out), addr.String()) {
		t.Fatalf("second relay on %s: err %v, output:\n%s", addr, err, out)
	}
}
