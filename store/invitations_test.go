package store

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// Invitations at rest: nothing of the payload (here the group name and the
// inviter's nick) is in clear in the database or its WAL, before or after
// the invitation is deleted; a payload moved to another row does not open;
// a wrong passphrase opens nothing and changes nothing.
func TestInvitationsSealedOnDisk(t *testing.T) {
	dir := t.TempDir()
	pass := []byte("invitation pass")
	db := openTest(t, dir, WithPassphrase(pass), WithKDFParams(testKDF))
	const groupName, nick = "Secret-Garden-Club-7461", "mallory-the-inviter"
	payload := func(i int) []byte {
		return fmt.Appendf(nil, `{"id":"i%d","group_name":%q,"from_nick":%q,"tree":"AAEC"}`, i, groupName, nick)
	}
	for i := range 3 {
		ok(t, db.PutInvitation(ctx, Invitation{ID: fmt.Sprint("i", i), Payload: payload(i), CreatedAt: t0}))
	}
	scan := func(when string) {
		t.Helper()
		for _, name := range []string{DBFileName, DBFileName + "-wal"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			for _, s := range []string{groupName, nick, "group_name"} {
				if bytes.Contains(b, []byte(s)) {
					t.Fatalf("%s: %q is in clear in %s", when, s, name)
				}
			}
		}
	}
	scan("stored")
	ok(t, db.DeleteInvitation(ctx, "i2"))
	scan("deleted")

	// Swap two rows' sealed payloads: neither opens (the id is the AD).
	_, err := db.w.Exec(`UPDATE invitations SET payload = (SELECT payload FROM invitations WHERE id = 'i1') WHERE id = 'i0'`)
	ok(t, err)
	if _, err := db.Invitation(ctx, "i0"); err == nil || !strings.Contains(err.Error(), "failed authentication") {
		t.Fatalf("moved payload opened: %v", err)
	}
	if _, err := db.ListInvitations(ctx); err == nil || !strings.HasPrefix(err.Error(), "store: ") {
		t.Fatalf("list with a moved payload: %v", err)
	}
	ok(t, db.DeleteInvitation(ctx, "i0"))
	ok(t, db.Close())
	scan("closed")

	before := hashFiles(t, dir)
	_, err = Open(ctx, dir, WithPassphrase([]byte("not it")))
	wantErr(t, err, ErrWrongPassphrase)
	_, err = Open(ctx, dir)
	wantErr(t, err, ErrPassphraseRequired)
	if hashFiles(t, dir) != before {
		t.Fatal("a failed open changed the files")
	}
	db = openTest(t, dir, WithPassphrase(pass))
	l := must[[]Invitation](t)(db.ListInvitations(ctx))
	if len(l) != 1 || l[0].ID != "i1" || !bytes.Equal(l[0].Payload, payload(1)) || !l[0].CreatedAt.Equal(t0) {
		t.Fatalf("after reopen: %+v", l)
	}
}

// TestMigrationEveryVersion: a profile created at every earlier schema
// version opens with this binary, keeps its data and ends at the newest
// version with every table usable.
func TestMigrationEveryVersion(t *testing.T) {
	orig := migrationSource
	t.Cleanup(func() { migrationSource = orig })
	all, err := loadMigrations(orig)
	ok(t, err)
	if len(all) < 4 {
		t.Fatalf("%d migrations", len(all))
	}
	for v := 1; v < len(all); v++ {
		t.Run(fmt.Sprint("from-", v), func(t *testing.T) {
			old := fstest.MapFS{}
			for _, m := range all[:v] {
				b, err := fs.ReadFile(orig, m.name)
				ok(t, err)
				old[m.name] = &fstest.MapFile{Data: b}
			}
			dir := t.TempDir()
			migrationSource = old
			db := openTest(t, dir)
			ok(t, db.PutIdentity(ctx, Identity{SignaturePrivate: []byte("k")}))
			// A group as the binary of that version wrote it (the
			// current CommitEpoch writes columns added since).
			tx, err := db.w.Begin()
			ok(t, err)
			_, err = tx.Exec(`INSERT INTO groups (id, name, epoch, commit_hash, created_at, updated_at) VALUES (?, 'old', 0, x'', 0, 0)`, gid)
			ok(t, err)
			_, err = tx.Exec(`INSERT INTO epoch_states (group_id, epoch, commit_hash, state, created_at, updated_at) VALUES (?, 0, x'', ?, 0, 0)`,
				gid, db.seal.seal(stateAD(gid, 0, []byte{}), []byte("s0")))
			ok(t, err)
			_, err = tx.Exec(`INSERT INTO epoch_history (group_id, epoch, commit_hash, at) VALUES (?, 0, x'', 0)`, gid)
			ok(t, err)
			// A message as that binary stored it (its triggers index it).
			_, err = tx.Exec(`INSERT INTO messages (group_id, msg_id, sender, epoch, kind, text, sent_at, received_at, state)
				VALUES (?, x'6f6c64', x'626f62', 0, 0, 'alice met 東京の友達', 0, 0, 0)`, gid)
			ok(t, err)
			ok(t, tx.Commit())
			ok(t, db.Enqueue(ctx, OutboxEntry{GroupID: gid, ID: []byte("o"), Payload: []byte("p")}))
			ok(t, db.Close())

			migrationSource = orig
			db = openTest(t, dir)
			var got int
			ok(t, db.w.QueryRow(`SELECT max(version) FROM schema_version`).Scan(&got))
			if got != len(all) || SchemaVersion() != len(all) {
				t.Fatalf("version %d after upgrade, want %d", got, len(all))
			}
			if id := must[Identity](t)(db.Identity(ctx)); string(id.SignaturePrivate) != "k" {
				t.Fatal("identity lost")
			}
			if o := must[[]OutboxEntry](t)(db.Outbox(ctx, gid)); len(o) != 1 || string(o[0].Payload) != "p" {
				t.Fatalf("outbox lost: %+v", o)
			}
			ok(t, db.PutInvitation(ctx, Invitation{ID: "i", Payload: []byte("w")}))
			if l := must[[]Invitation](t)(db.ListInvitations(ctx)); len(l) != 1 {
				t.Fatalf("invitations: %+v", l)
			}
			// States written before the info column have none; new ones do.
			if c := must[[]EpochState](t)(db.CanonicalChain(ctx, gid)); len(c) != 1 || c[0].Info != nil {
				t.Fatalf("chain of an old group: %+v", c)
			}
			must[TransitionResult](t)(db.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, CommitHash: []byte("c1"),
				State: []byte("s1"), CommitInfo: []byte("i1")}))
			if c := must[[]EpochState](t)(db.CanonicalChain(ctx, gid)); len(c) != 2 || c[0].Info != nil || string(c[1].Info) != "i1" {
				t.Fatalf("chain after the upgrade: %+v", c)
			}
			// the search index is rebuilt for the substring search
			for _, q := range []string{"ali", "東京", "友達", "met"} {
				if r := must[[]SearchResult](t)(db.Search(ctx, SearchQuery{Text: q})); len(r) != 1 || string(r[0].ID) != "old" {
					t.Errorf("search %q after the upgrade: %+v", q, r)
				}
			}
			ok(t, db.CheckIntegrity(ctx))
		})
	}
}
