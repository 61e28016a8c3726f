-- version: 1
-- Initial canopy schema. Times are Unix nanoseconds (0 = unset). Columns
-- documented "sealed" hold XChaCha20-Poly1305 envelopes (see seal.go) whose
-- associated data binds them to their table, column and row key.

-- Key derivation parameters and the wrapped data key.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;

CREATE TABLE identity (
	id                INTEGER PRIMARY KEY CHECK (id = 1),
	signature_public  BLOB,
	signature_private BLOB,              -- sealed
	credential        BLOB,
	cipher_suite      INTEGER NOT NULL DEFAULT 0,
	p2p_private       BLOB,              -- sealed
	created_at        INTEGER NOT NULL,
	updated_at        INTEGER NOT NULL
) STRICT;

CREATE TABLE key_packages (
	ref          BLOB PRIMARY KEY,
	cipher_suite INTEGER NOT NULL,
	data         BLOB NOT NULL,
	private      BLOB NOT NULL,          -- sealed
	last_resort  INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE contacts (
	id           TEXT PRIMARY KEY,
	petname      TEXT NOT NULL DEFAULT '',
	fingerprint  BLOB NOT NULL,
	verification INTEGER NOT NULL,
	verified_at  INTEGER NOT NULL,
	card         BLOB,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX contacts_petname ON contacts (petname COLLATE NOCASE) WHERE petname <> '';

CREATE TABLE contact_keys (
	contact_id  TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
	fingerprint BLOB NOT NULL,
	first_seen  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL,
	PRIMARY KEY (contact_id, fingerprint)
) STRICT;

-- A group's current state is (id, epoch, commit_hash); the deferred foreign
-- key makes SQLite refuse, at commit, a group whose current state is missing.
CREATE TABLE groups (
	id          BLOB PRIMARY KEY,
	name        TEXT NOT NULL DEFAULT '',
	retention   INTEGER NOT NULL DEFAULT 0,
	left_group  INTEGER NOT NULL DEFAULT 0,
	meta        BLOB,
	epoch       INTEGER NOT NULL,
	commit_hash BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	FOREIGN KEY (id, epoch, commit_hash)
		REFERENCES epoch_states (group_id, epoch, commit_hash)
		DEFERRABLE INITIALLY DEFERRED
) STRICT;

CREATE TABLE epoch_states (
	group_id    BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	epoch       INTEGER NOT NULL,
	commit_hash BLOB NOT NULL,
	state       BLOB NOT NULL,           -- sealed
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	UNIQUE (group_id, epoch, commit_hash)
) STRICT;

-- Canonical (epoch, commit) history, kept forever.
CREATE TABLE epoch_history (
	group_id    BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	epoch       INTEGER NOT NULL,
	commit_hash BLOB NOT NULL,
	at          INTEGER NOT NULL,
	PRIMARY KEY (group_id, epoch)
) STRICT;

CREATE TABLE messages (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	group_id    BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	msg_id      BLOB NOT NULL,
	sender      BLOB NOT NULL,
	epoch       INTEGER NOT NULL,
	kind        INTEGER NOT NULL,
	text        TEXT NOT NULL,
	payload     BLOB,
	reply_to    BLOB,
	sent_at     INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	state       INTEGER NOT NULL,
	UNIQUE (group_id, msg_id)
) STRICT;
CREATE INDEX messages_group_seq ON messages (group_id, seq);
CREATE INDEX messages_group_received ON messages (group_id, received_at);

-- Full-text index over messages.text (external content; kept in step by
-- triggers). secure-delete removes a deleted message's words from the index.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
	text,
	content = 'messages',
	content_rowid = 'seq',
	tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
	INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
	INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
END;

CREATE TABLE outbox (
	group_id        BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	id              BLOB NOT NULL,
	kind            INTEGER NOT NULL,
	epoch           INTEGER NOT NULL,
	payload         BLOB,                -- sealed
	wire            BLOB,
	attempts        INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	last_attempt_at INTEGER NOT NULL,
	UNIQUE (group_id, id)
) STRICT;

CREATE TABLE proposals (
	group_id   BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	ref        BLOB NOT NULL,
	epoch      INTEGER NOT NULL,
	sender     BLOB,
	data       BLOB NOT NULL,
	private    BLOB,                     -- sealed
	own        INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (group_id, ref)
) STRICT;

-- Relay: per-topic ciphertext log. seq never goes back (AUTOINCREMENT), so
-- it is a safe cursor even after pruning.
CREATE TABLE relay_frames (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	topic       TEXT NOT NULL,
	hash        BLOB NOT NULL,
	epoch       INTEGER,
	peer        TEXT NOT NULL,
	data        BLOB NOT NULL,
	received_at INTEGER NOT NULL,
	UNIQUE (topic, hash)
) STRICT;
CREATE INDEX relay_frames_topic_seq ON relay_frames (topic, seq);
CREATE INDEX relay_frames_received ON relay_frames (received_at);

-- Usage counters for quotas, maintained by triggers so that every way of
-- deleting rows (pruning, eviction, fetch) keeps them right.
CREATE TABLE relay_usage (
	scope TEXT NOT NULL,
	key   TEXT NOT NULL,
	bytes INTEGER NOT NULL,
	items INTEGER NOT NULL,
	PRIMARY KEY (scope, key)
) STRICT;

CREATE TRIGGER relay_frames_usage_insert AFTER INSERT ON relay_frames BEGIN
	INSERT INTO relay_usage (scope, key, bytes, items) VALUES ('topic', new.topic, length(new.data), 1)
		ON CONFLICT (scope, key) DO UPDATE SET bytes = bytes + excluded.bytes, items = items + 1;
	INSERT INTO relay_usage (scope, key, bytes, items) VALUES ('peer', new.peer, length(new.data), 1)
		ON CONFLICT (scope, key) DO UPDATE SET bytes = bytes + excluded.bytes, items = items + 1;
END;
CREATE TRIGGER relay_frames_usage_delete AFTER DELETE ON relay_frames BEGIN
	UPDATE relay_usage SET bytes = bytes - length(old.data), items = items - 1
		WHERE (scope = 'topic' AND key = old.topic) OR (scope = 'peer' AND key = old.peer);
	DELETE FROM relay_usage WHERE items <= 0 AND scope IN ('topic', 'peer') AND key IN (old.topic, old.peer);
END;

CREATE TABLE relay_topics (
	topic      TEXT NOT NULL,
	peer       TEXT NOT NULL,
	until      INTEGER NOT NULL,
	PRIMARY KEY (topic, peer)
) STRICT;

CREATE TABLE relay_mail (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	recipient    TEXT NOT NULL,
	sender       TEXT NOT NULL,
	hash         BLOB NOT NULL,
	data         BLOB NOT NULL,
	deposited_at INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	UNIQUE (recipient, hash)
) STRICT;
CREATE INDEX relay_mail_expires ON relay_mail (expires_at);

CREATE TRIGGER relay_mail_usage_insert AFTER INSERT ON relay_mail BEGIN
	INSERT INTO relay_usage (scope, key, bytes, items) VALUES ('mailbox', new.recipient, length(new.data), 1)
		ON CONFLICT (scope, key) DO UPDATE SET bytes = bytes + excluded.bytes, items = items + 1;
	INSERT INTO relay_usage (scope, key, bytes, items) VALUES ('sender', new.sender, length(new.data), 1)
		ON CONFLICT (scope, key) DO UPDATE SET bytes = bytes + excluded.bytes, items = items + 1;
END;
CREATE TRIGGER relay_mail_usage_delete AFTER DELETE ON relay_mail BEGIN
	UPDATE relay_usage SET bytes = bytes - length(old.data), items = items - 1
		WHERE (scope = 'mailbox' AND key = old.recipient) OR (scope = 'sender' AND key = old.sender);
	DELETE FROM relay_usage WHERE items <= 0 AND scope IN ('mailbox', 'sender') AND key IN (old.recipient, old.sender);
END;

CREATE TABLE relay_keypackages (
	owner        TEXT NOT NULL,
	ref          BLOB NOT NULL,
	cipher_suite INTEGER NOT NULL,
	data         BLOB NOT NULL,
	last_resort  INTEGER NOT NULL,
	published_at INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	PRIMARY KEY (owner, ref)
) STRICT;
