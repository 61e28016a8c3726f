package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/blob"
)

// filePair creates alice and bob with profiles on disk (file transfer
// needs one) in a group, and returns the group.
func filePair(t *testing.T, bobOpts ...engineOpt) (alice, bob *testPeer, g GroupID) {
	t.Helper()
	ad, bd := t.TempDir(), t.TempDir()
	alice = newPeer(t, "alice", func(c *Config) { c.Store, c.ProfileDir = nil, ad })
	bob = newPeer(t, "bob", append([]engineOpt{func(c *Config) { c.Store, c.ProfileDir = nil, bd }}, bobOpts...)...)
	connect(t, alice, bob)
	g = alice.run("", "/create files "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(g)) == 2 && len(bob.e.Members(g)) == 2 })
	return alice, bob, g
}

func writeRandomFile(t *testing.T, name string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func isTransfer(status TransferStatus, name string) func(Event) bool {
	return func(ev Event) bool {
		te, ok := ev.(TransferEvent)
		return ok && te.Transfer.Status == status && te.Transfer.File.Name == name
	}
}

// TestFileTransferAutoFetch: a file under the group's limit is announced
// in MLS, fetched by itself, checked and saved in bob's downloads folder.
func TestFileTransferAutoFetch(t *testing.T) {
	alice, bob, g := filePair(t)
	path, data := writeRandomFile(t, "report one.bin", 3*blob.RangeSize+777)
	r := alice.run(g, "/send '"+path+"'")
	if !strings.Contains(r.Text, "report one.bin") {
		t.Fatalf("/send: %q", r.Text)
	}
	ev := bob.rec.wait(t, "file message", func(ev Event) bool {
		me, ok := ev.(MessageEvent)
		return ok && me.Message.Kind == KindFile
	}).(MessageEvent)
	if f := ev.Message.File; f == nil || f.Name != "report one.bin" || f.Size != int64(len(data)) || ev.Message.Sender != "alice" {
		t.Fatalf("file message: %+v", ev.Message)
	}
	done := bob.rec.wait(t, "transfer done", isTransfer(TransferDone, "report one.bin")).(TransferEvent).Transfer
	if filepath.Dir(done.Path) != filepath.Join(bob.e.cfg.ProfileDir, "downloads") {
		t.Fatalf("saved to %s", done.Path)
	}
	got, err := os.ReadFile(done.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("saved file differs (%v)", err)
	}
	if done.Done != done.Total || done.Total != blob.CiphertextSize(uint64(len(data))) {
		t.Fatalf("progress %d/%d", done.Done, done.Total)
	}
	// The history shows the file too.
	h := bob.e.History(g, "", 10)
	if last := h[len(h)-1]; last.Kind != KindFile || last.File == nil || !strings.Contains(last.Body, "report one.bin") {
		t.Fatalf("history: %+v", last)
	}
	if list := bob.run(g, "/transfers").Text; !strings.Contains(list, "1. done") || !strings.Contains(list, done.Path) {
		t.Fatalf("/transfers: %q", list)
	}
	if list := alice.run(g, "/transfers").Text; !strings.Contains(list, "sharing") {
		t.Fatalf("sender's /transfers: %q", list)
	}
}

// TestFileTransferOnRequest: above the group's limit a file waits for
// /transfers get; /open hands the saved file to the opener.
func TestFileTransferOnRequest(t *testing.T) {
	alice, bob, g := filePair(t)
	bob.run(g, "/transfers limit 100k")
	path, data := writeRandomFile(t, "big.bin", 300_000)
	alice.run(g, "/send "+path)
	bob.rec.wait(t, "offered", isTransfer(TransferOffered, "big.bin"))
	if bob.rec.has(isTransfer(TransferFetching, "big.bin")) {
		t.Fatal("a file over the limit was fetched unasked")
	}
	bob.run(g, "/transfers get 1")
	done := bob.rec.wait(t, "done", isTransfer(TransferDone, "big.bin")).(TransferEvent).Transfer
	if got, _ := os.ReadFile(done.Path); !bytes.Equal(got, data) {
		t.Fatal("saved file differs")
	}

	// The opener gets the saved path.
	out := filepath.Join(t.TempDir(), "opened")
	script := filepath.Join(t.TempDir(), "opener.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s' \"$1\" > "+out+"\n"), 0o700)
	t.Setenv("CANOPY_OPENER", script)
	bob.run(g, "/open 1")
	waitFor(t, "opener ran", func() bool {
		b, _ := os.ReadFile(out)
		return string(b) == done.Path
	})
	if _, err := bob.e.Run(context.Background(), g, "/open 7"); err == nil {
		t.Fatal("/open of a transfer that does not exist succeeded")
	}
}

// TestFileKeysGoWithMessages: once the message carrying a file's key is
// deleted (retention), the stored ciphertext goes too.
func TestFileKeysGoWithMessages(t *testing.T) {
	alice, bob, g := filePair(t)
	path, _ := writeRandomFile(t, "x.bin", 5000)
	alice.run(g, "/send "+path)
	tr := bob.rec.wait(t, "done", isTransfer(TransferDone, "x.bin")).(TransferEvent).Transfer
	id, _ := blob.ParseID(tr.File.ID)
	for _, p := range []*testPeer{alice, bob} {
		if !p.e.xfers.store.Has(id) {
			t.Fatalf("%s: ciphertext not stored", p.e.nick())
		}
		gid, _ := hex.DecodeString(string(g))
		mid, _ := hex.DecodeString(string(tr.Message))
		if err := p.e.db.DeleteMessage(context.Background(), gid, mid); err != nil {
			t.Fatal(err)
		}
		p.e.xfers.collect(context.Background())
		if p.e.xfers.store.Has(id) || len(p.e.xfers.List()) != 0 {
			t.Fatalf("%s: ciphertext or transfer kept after its message was deleted", p.e.nick())
		}
	}
	// The saved copy is the user's and stays.
	if _, err := os.Stat(tr.Path); err != nil {
		t.Fatalf("saved file: %v", err)
	}
}

func TestCleanPath(t *testing.T) {
	home, _ := os.UserHomeDir()
	cases := map[string]string{
		`'/tmp/a b.txt'`:        "/tmp/a b.txt",
		`"/tmp/a b.txt"`:        "/tmp/a b.txt",
		`/tmp/a\ b\(1\).txt`:    "/tmp/a b(1).txt",
		"file:///tmp/a%20b.txt": "/tmp/a b.txt",
		"~/x":                   filepath.Join(home, "x"),
		"  /tmp/plain  ":        "/tmp/plain",
	}
	for in, want := range cases {
		if got := CleanPath(in); got != want {
			t.Errorf("CleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAutoFetchBudget: a group gets at most autoBudgetFactor × its limit
// fetched unasked per window; files above the limit never are.
func TestAutoFetchBudget(t *testing.T) {
	e := &Engine{}
	x, err := newTransfers(e, t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := x.setLimit("g", 10<<20); err != nil {
		t.Fatal(err)
	}
	if x.takeAuto("g", 10<<20+1) {
		t.Fatal("a file over the limit was taken")
	}
	n := 0
	for x.takeAuto("g", 10<<20) {
		n++
		if n > 100 {
			break
		}
	}
	if n != autoBudgetFactor {
		t.Fatalf("%d files of the limit's size taken, want %d", n, autoBudgetFactor)
	}
	if !x.takeAuto("other", 1000) {
		t.Fatal("another group's budget was used up too")
	}
	x.setLimit("g", -1)
	if x.takeAuto("g", 1) {
		t.Fatal("taken with auto-fetch off")
	}
}

// TestFileTransferPauseCancelResume: /transfers pause stops a download and
// keeps it paused, cancel drops what was fetched, resume starts it again
// and it completes once the sender is back.
func TestFileTransferPauseCancelResume(t *testing.T) {
	ad := t.TempDir()
	aliceOpts := func(c *Config) { c.Store, c.ProfileDir = nil, ad }
	alice := newPeer(t, "alice", aliceOpts)
	bob := newPeer(t, "bob", func(c *Config) { c.Store, c.ProfileDir = nil, t.TempDir() })
	connect(t, alice, bob)
	g := alice.run("", "/create pause "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(g)) == 2 && len(bob.e.Members(g)) == 2 })
	bob.run(g, "/transfers limit off")
	path, data := writeRandomFile(t, "later.bin", 2*blob.RangeSize)
	alice.run(g, "/send "+path)
	tr := bob.rec.wait(t, "offered", isTransfer(TransferOffered, "later.bin")).(TransferEvent).Transfer
	if err := alice.e.Close(); err != nil {
		t.Fatal(err)
	}

	x := bob.e.xfers
	id, _ := blob.ParseID(tr.File.ID)
	running := func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		return x.byID[id].cancel != nil
	}
	bob.run(g, "/transfers get 1")
	bob.rec.wait(t, "no holder reachable", func(ev Event) bool {
		te, ok := ev.(TransferEvent)
		return ok && te.Transfer.Status == TransferFailed && strings.Contains(te.Transfer.Err, "trying again")
	})
	bob.run(g, "/transfers pause 1")
	bob.rec.wait(t, "paused", isTransfer(TransferPaused, "later.bin"))
	waitFor(t, "the download stopped", func() bool { return !running() })
	if list := bob.run(g, "/transfers").Text; !strings.Contains(list, "paused") {
		t.Fatalf("/transfers after pause: %q", list)
	}
	bob.run(g, "/transfers cancel 1")
	bob.rec.wait(t, "canceled", isTransfer(TransferCanceled, "later.bin"))
	// The state outlives a restart: a canceled transfer is not resumed.
	notes, _ := x.store.Notes()
	if !strings.Contains(string(notes[id]), `"status":"canceled"`) {
		t.Fatalf("note after cancel: %s", notes[id])
	}

	alice2 := newPeer(t, "alice", aliceOpts)
	connect(t, alice2, bob) // bob backs off dialing alice after the failed attempts
	bob.run(g, "/transfers resume #"+string(tr.Message)[:8])
	done := bob.rec.wait(t, "done", isTransfer(TransferDone, "later.bin")).(TransferEvent).Transfer
	if got, _ := os.ReadFile(done.Path); !bytes.Equal(got, data) {
		t.Fatal("file differs")
	}
}
