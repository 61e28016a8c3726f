package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/relay"
)

// dirEntries lists what exists under dir (recursively), for messages.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if p != dir {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}

// TestBadFlagsLeaveNoProfile: a typo in --bootstrap or --listen (chat,
// headless, relay) or a taken --listen port fails with an error naming the
// flag and leaves nothing on disk: no profile, no key, no relay store.
func TestBadFlagsLeaveNoProfile(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("CANOPY_PASSPHRASE", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"headless bootstrap typo", []string{"headless", "--bootstrap", "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooW0OIl"}, "--bootstrap"},
		{"headless bootstrap without peer id", []string{"headless", "--bootstrap", "/ip4/1.2.3.4/tcp/4001"}, "--bootstrap"},
		{"headless listen typo", []string{"headless", "--listen", "/ip4/127.0.0.1/tcpp/0"}, "--listen"},
		{"chat bootstrap typo", []string{"chat", "--bootstrap", "ip4/1.2.3.4/tcp/4001"}, "--bootstrap"},
		{"relay bootstrap typo", []string{"relay", "--metrics", "", "--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", "/ip4/1.2.3.4/tcp/x"}, "-bootstrap"},
		{"relay listen typo", []string{"relay", "--metrics", "", "--listen", "/ip4/127.0.0.1/tcp/zero"}, "-listen"},
		{"relay announce typo", []string{"relay", "--metrics", "", "--listen", "/ip4/127.0.0.1/tcp/0", "--announce", "/ip9/x"}, "-announce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			args := append(slicesClone(tc.args), "--data", data)
			if tc.args[0] != "relay" {
				args = append(args, "--profile", "typo", "--no-mdns")
			}
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code == 0 {
				t.Fatalf("exit 0; stderr %s", stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr %q does not name %s", stderr.String(), tc.want)
			}
			if got := dirEntries(t, data); len(got) > 0 {
				t.Fatalf("a failed start left %v in the data directory", got)
			}
		})
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// TestChatAndRelayDataKeptApart: `canopy id --profile relay` would live in
// the relay's default data directory and is refused (also when no relay
// ran yet); a profile directory holding a relay's key is refused; a relay
// refuses a directory that holds a chat profile. Nothing is created.
func TestChatAndRelayDataKeptApart(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_DATA_HOME", xdg)
	t.Setenv("CANOPY_PASSPHRASE", "")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"id", "--profile", "relay"}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "default data directory of `canopy relay`") {
		t.Fatalf("canopy id --profile relay: exit %d, stderr %q", code, stderr.String())
	}
	if got := dirEntries(t, xdg); len(got) > 0 {
		t.Fatalf("canopy id --profile relay created %v", got)
	}

	// A relay's data under another --data: refused by the chat side.
	other := t.TempDir()
	relayDir := filepath.Join(other, "canopy", "r")
	if _, _, err := relay.LoadOrCreateIdentity(relayDir); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run([]string{"id", "--data", other, "--profile", "r"}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "holds a canopy relay's data") {
		t.Fatalf("canopy id in a relay directory: exit %d, stderr %q", code, stderr.String())
	}
	if got := dirEntries(t, relayDir); len(got) != 1 {
		t.Fatalf("relay directory now holds %v", got)
	}

	// A chat profile (made by a run of the engine): refused by the relay.
	profile := filepath.Join(other, "canopy", "alice")
	if err := os.MkdirAll(profile, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(profile, "canopy.log"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run([]string{"relay", "--data", profile, "--metrics", "", "--listen", "/ip4/127.0.0.1/tcp/0"}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "holds a chat profile") {
		t.Fatalf("relay in a chat profile: exit %d, stderr %q", code, stderr.String())
	}
	if got := dirEntries(t, profile); len(got) != 1 {
		t.Fatalf("profile directory now holds %v", got)
	}
}
