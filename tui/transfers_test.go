//go:build !windows

package tui

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/chat"
)

func fileMessage() chat.Message {
	return chat.Message{ID: "f1a2b3c4d5", Group: "g1", Kind: chat.KindFile, Sender: "bob", SenderFP: fpBob,
		Body: "[file] report.pdf (2.4 MB)", SentAt: at("10:20"),
		File: &chat.FileInfo{ID: "aa", Name: "report.pdf", Size: 2_400_000, MediaType: "application/pdf"}}
}

func transferAt(status chat.TransferStatus, done int64) chat.TransferEvent {
	return chat.TransferEvent{Transfer: chat.Transfer{Group: "g1", Message: "f1a2b3c4d5", Status: status, Done: done, Total: 1000,
		File: chat.FileInfo{ID: "aa", Name: "report.pdf", Size: 2_400_000}, Path: "/home/alice/dl/report.pdf"}}
}

// TestPTYTransferProgress: a file message shows a progress bar that moves
// with the transfer events, then where the file was saved.
func TestPTYTransferProgress(t *testing.T) {
	const cols, rows = 100, 30
	f := newFake()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startPTY(t, ctx, f, cols, rows)
	p.waitFor("the first screen", contains("general", "members 4"))

	f.events <- chat.MessageEvent{Message: fileMessage()}
	f.events <- transferAt(chat.TransferFetching, 450)
	p.waitFor("the bar at 45%", contains("📎 report.pdf  2.4 MB", "45% fetching"))
	line := lineWith(p.screen(), "45% fetching")
	full, empty := strings.Count(line, "█"), strings.Count(line, "░")
	if full == 0 || empty == 0 || full > empty*2 {
		t.Fatalf("bar at 45%%: %d full, %d empty cells: %q", full, empty, line)
	}
	f.events <- transferAt(chat.TransferFetching, 900)
	p.waitFor("the bar at 90%", contains("90% fetching"))
	line = lineWith(p.screen(), "90% fetching")
	if full2 := strings.Count(line, "█"); full2 <= full {
		t.Fatalf("bar did not grow: %d → %d full cells", full, full2)
	}
	f.events <- transferAt(chat.TransferDone, 1000)
	p.waitFor("the saved line", contains("saved: /home/alice/dl/report.pdf", "received report.pdf"))
	if strings.Contains(p.screen(), "fetching") {
		t.Fatal("the bar stayed after the transfer was done")
	}
}

func lineWith(screen, s string) string {
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestTransferStates: an offered file says how to fetch it; a failed one
// says why.
func TestTransferStates(t *testing.T) {
	d := newDriver(t, 100, 24)
	d.events(chat.MessageEvent{Message: fileMessage()}, transferAt(chat.TransferOffered, 0))
	if v := d.view(); !strings.Contains(v, "over the group's limit, not fetched") || !strings.Contains(v, "/transfers get #f1a2b3c4") {
		t.Fatalf("offered:\n%s", v)
	}
	ev := transferAt(chat.TransferFailed, 300)
	ev.Transfer.Err = "no peer that has the file is reachable"
	d.events(ev)
	if v := d.view(); !strings.Contains(v, "not received: no peer that has the file") || !strings.Contains(v, "is reachable") {
		t.Fatalf("failed:\n%s", v)
	}
}

// TestSendPathCompletion: Tab after /send offers the files and folders of
// the typed directory, hidden ones only when asked for.
func TestSendPathCompletion(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"notes one.txt", "notes two.txt", ".hidden", "other.bin"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "notes dir"), 0o700)
	head, cands, ok := completeCandidates("/send "+dir+"/notes", completionSource{})
	want := []string{dir + "/notes dir/", dir + "/notes one.txt", dir + "/notes two.txt"}
	if !ok || head != "/send " || !slices.Equal(cands, want) {
		t.Fatalf("completion: %q %q %v, want %q", head, cands, ok, want)
	}
	if _, cands, _ := completeCandidates("/send "+dir+"/.h", completionSource{}); !slices.Equal(cands, []string{dir + "/.hidden"}) {
		t.Fatalf("hidden: %q", cands)
	}
	if _, cands, _ := completeCandidates("/send "+dir+"/", completionSource{}); len(cands) != 4 {
		t.Fatalf("all but the hidden file: %q", cands)
	}
}

// TestDropFileSends: a file dropped on the terminal (its path pasted into
// an empty composer) becomes a /send line; other pastes stay text.
func TestDropFileSends(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shot 1.png")
	os.WriteFile(path, []byte("x"), 0o600)
	d := newDriver(t, 100, 24)
	d.paste("'" + path + "'")
	if v := d.view(); !strings.Contains(v, "/send "+path) {
		t.Fatalf("dropped file:\n%s", v)
	}
	d2 := newDriver(t, 100, 24)
	d2.paste(filepath.Join(dir, "missing.png"))
	if v := d2.view(); strings.Contains(v, "/send") {
		t.Fatalf("a path that is no file became /send:\n%s", v)
	}
}
