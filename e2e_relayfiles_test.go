package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EFileFromRelay: alice and bob bootstrap to two `canopy relay`s,
// one of which keeps no files (-no-blobs); alice sends a file, which her
// client uploads to the relays (ciphertext only), and quits before bob
// fetches it. Bob then gets it from the relay that kept it, after asking
// the one that did not, and its hash matches. The relay's copy is the
// ciphertext, not the file.
func TestE2EFileFromRelay(t *testing.T) {
	t.Parallel()
	bin := canopyBinary(t)
	data := t.TempDir()
	relayDir := filepath.Join(data, "relay")
	relay := startRelay(t, bin, relayDir)
	noFiles := startRelay(t, bin, filepath.Join(data, "relay-nofiles"), "--no-blobs")
	boot := []string{"--bootstrap", noFiles + "," + relay}
	alice := startPeer(t, bin, data, "alice", boot...)
	bob := startPeer(t, bin, data, "bob", boot...)
	g := alice.must("/create relayfiles " + bob.card()).group()
	bob.wait("invitation", func(e *jev) bool { return e.Type == "invitation" })
	bob.must("/accept")
	alice.wait("two members", membersAre(g, 2))
	bob.must("/transfers limit off") // bob fetches only when asked

	src, sum := writeBigFile(t, "report.bin", 3)
	alice.must("/send " + src)
	alice.wait("the file kept on the relay", func(e *jev) bool {
		return e.Type == "notice" && strings.Contains(e.Text, "report.bin is kept on 1 of 2 relays")
	})
	offered := bob.wait("file offered", isTransferE2E("report.bin", func(tr e2eTransfer) bool { return tr.Transfer.Status == "offered" }))
	tr, _ := transferOf(offered)
	alice.quit()

	stored, err := os.ReadFile(filepath.Join(relayDir, "blobs", tr.Transfer.File.ID))
	if err != nil {
		t.Fatalf("relay's copy: %v", err)
	}
	plain, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(stored)) != tr.Transfer.Total || bytes.Contains(stored, plain[:4096]) {
		t.Fatalf("relay holds %d bytes (ciphertext is %d), plaintext visible: %v", len(stored), tr.Transfer.Total, bytes.Contains(stored, plain[:4096]))
	}

	bob.must("/transfers get " + tr.Transfer.File.ID[:12])
	done := bob.wait("fetched from the relay", isTransferE2E("report.bin", func(tr e2eTransfer) bool { return tr.Transfer.Status == "done" }))
	dt, _ := transferOf(done)
	if fileHash(t, dt.Transfer.Path) != sum {
		t.Fatal("received file differs")
	}
	bob.quit()
}
