package chat

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/store"
)

// Pending invitations are kept in the sealed store (the group name is not
// in the database file in clear), survive a restart, and invitation files
// written by older versions (ProfileDir/invitations/ID.json) are imported
// on start: each file is removed once its row is stored, files that cannot
// be imported stay, and the imported invitation can be accepted.
func TestInvitationStoreAndLegacyImport(t *testing.T) {
	const name = "zebralounge"
	alice := newPeer(t, "alice")
	dir := t.TempDir()
	bobOpts := func(c *Config) { c.Store, c.ProfileDir = nil, dir }
	bob := newPeer(t, "bob", bobOpts)
	connect(t, alice, bob)
	g := alice.run("", "/create "+name+" "+bob.card()).Group
	inv := bob.rec.wait(t, "invitation", isInvitation).(InvitationEvent).Invitation
	rows, err := bob.e.db.ListInvitations(context.Background())
	if err != nil || len(rows) != 1 || rows[0].ID != inv.ID {
		t.Fatalf("stored invitations %+v, %v", rows, err)
	}
	if err := bob.e.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{store.DBFileName, store.DBFileName + "-wal"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if bytes.Contains(b, []byte(name)) {
			t.Fatalf("the group name of a pending invitation is in clear in %s", f)
		}
	}

	// Turn the profile into one an older version wrote: the invitation
	// as a JSON file, not in the store; plus files that cannot be imported.
	ctx := context.Background()
	db, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	row, err := db.Invitation(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteInvitation(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(dir, "invitations")
	if err := os.MkdirAll(legacy, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		inv.ID + ".json": row.Payload,
		"broken.json":    []byte("{not json"),
		"noid.json":      []byte(`{"group_name":"x"}`),
		"notes.txt":      []byte("not an invitation"),
		// The store refuses this one (id too long): the file must stay.
		"refused.json": []byte(`{"id":"` + strings.Repeat("f", 2000) + `"}`),
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(legacy, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	bob2 := newPeer(t, "bob", bobOpts)
	got := bob2.e.Invitations()
	if len(got) != 1 || got[0].ID != inv.ID || got[0].GroupName != name || got[0].From != "alice" || !got[0].At.Equal(inv.At) {
		t.Fatalf("invitations after import: %+v (want %+v)", got, inv)
	}
	if _, err := os.Stat(filepath.Join(legacy, inv.ID+".json")); !os.IsNotExist(err) {
		t.Fatalf("imported file still there: %v", err)
	}
	for _, f := range []string{"broken.json", "noid.json", "notes.txt", "refused.json"} {
		if _, err := os.Stat(filepath.Join(legacy, f)); err != nil {
			t.Fatalf("%s was not left in place: %v", f, err)
		}
	}
	if rows, err := bob2.e.db.ListInvitations(ctx); err != nil || len(rows) != 1 || !bytes.Equal(rows[0].Payload, row.Payload) {
		t.Fatalf("store after import: %+v, %v", rows, err)
	}

	connect(t, alice, bob2)
	if joined := bob2.run("", "/accept").Group; joined != g {
		t.Fatalf("joined %s, want %s", joined, g)
	}
	if left := bob2.e.Invitations(); len(left) != 0 {
		t.Fatalf("invitations after /accept: %+v", left)
	}
	if rows, err := bob2.e.db.ListInvitations(ctx); err != nil || len(rows) != 0 {
		t.Fatalf("store after /accept: %+v, %v", rows, err)
	}
	alice.run(g, "welcome back")
	bob2.rec.wait(t, "message after the imported invitation", isMessage(g, "welcome back"))
}
