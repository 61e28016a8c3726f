package store

import (
	"fmt"
	"testing"
)

// TestSearchIndexDeferred: inserts leave the index alone until
// searchIndexBatch messages wait, the transaction that crosses the mark
// indexes them, search always sees every message, and edits and deletes
// of indexed and unindexed messages keep the index consistent.
func TestSearchIndexDeferred(t *testing.T) {
	db := openTest(t, t.TempDir())
	createGroup(t, db, gid)
	add := func(id, text string) {
		t.Helper()
		m := msg(id, text)
		m.GroupID = gid
		if n := must[int](t)(db.AddMessages(ctx, m)); n != 1 {
			t.Fatalf("%s: %d inserted", id, n)
		}
	}
	pending := func() int { t.Helper(); return must[int](t)(db.searchPending(ctx)) }
	found := func(q string) []string {
		t.Helper()
		var ids []string
		for _, r := range must[[]SearchResult](t)(db.Search(ctx, SearchQuery{Text: q, Limit: 1000})) {
			ids = append(ids, string(r.ID))
		}
		return ids
	}

	add("a", "the quick brown fox")
	add("b", "lazy dogs sleep")
	if p := pending(); p != 2 {
		t.Fatalf("%d pending after two inserts, want 2 (no index write per insert)", p)
	}
	// An unindexed message edited and another deleted: no index entry to
	// fix, and search (which indexes what waits) sees the new text only.
	ok(t, db.EditMessage(ctx, gid, []byte("a"), "the slow brown fox", nil))
	ok(t, db.DeleteMessage(ctx, gid, []byte("b")))
	if got := found("quick"); len(got) != 0 {
		t.Fatalf("old text found: %v", got)
	}
	if got := found("slow"); len(got) != 1 || got[0] != "a" {
		t.Fatalf("edited text: %v", got)
	}
	if got := found("dogs"); len(got) != 0 {
		t.Fatalf("deleted message found: %v", got)
	}
	if p := pending(); p != 0 {
		t.Fatalf("%d pending after a search", p)
	}
	ok(t, db.CheckIntegrity(ctx))

	// Now indexed: edit and delete go through the index.
	ok(t, db.EditMessage(ctx, gid, []byte("a"), "a red fox", nil))
	if got := found("slow"); len(got) != 0 {
		t.Fatalf("old text of an indexed message found: %v", got)
	}
	if got := found("red fox"); len(got) != 1 {
		t.Fatalf("edited indexed message: %v", got)
	}

	// A batch: below the mark nothing is indexed, crossing it indexes all.
	for i := range searchIndexBatch - 1 {
		add(fmt.Sprint("m", i), fmt.Sprint("message number ", i, " zebra"))
	}
	if p := pending(); p != searchIndexBatch-1 {
		t.Fatalf("%d pending, want %d", p, searchIndexBatch-1)
	}
	add("last", "the last zebra")
	if p := pending(); p != 0 {
		t.Fatalf("%d pending after crossing the mark", p)
	}
	// Messages left unindexed survive a reopen and are found.
	add("late", "a late giraffe")
	dir := db.Dir()
	ok(t, db.Close())
	db = openTest(t, dir)
	if p := must[int](t)(db.searchPending(ctx)); p != 1 {
		t.Fatalf("%d pending after reopen", p)
	}
	if got := found("giraffe"); len(got) != 1 || got[0] != "late" {
		t.Fatalf("after reopen: %v", got)
	}
	if got := found("zebra"); len(got) != searchIndexBatch {
		t.Fatalf("zebra: %d results", len(got))
	}
	ok(t, db.DeleteMessage(ctx, gid, []byte("m3")))
	ok(t, db.CheckIntegrity(ctx))
}
