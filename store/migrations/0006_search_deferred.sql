-- version: 6
-- The search index is written in batches instead of by a trigger per
-- inserted message (a trigram index costs more per message than the rest
-- of the insert): search_indexed.seq is the highest messages.seq in the
-- index; newer messages are indexed every searchIndexBatch messages, in
-- the transaction that crosses the mark, and before every search. Deletes
-- and edits touch the index only for messages already in it.
CREATE TABLE search_indexed (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);
INSERT INTO search_indexed (id, seq) VALUES (1, coalesce((SELECT max(seq) FROM messages), 0));

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.seq <= (SELECT seq FROM search_indexed) BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
WHEN old.seq <= (SELECT seq FROM search_indexed) BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
	INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
END;
