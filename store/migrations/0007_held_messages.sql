-- version: 7
-- Received messages the engine holds back for their sender's order (a
-- later message waits briefly for an earlier, missing one). They are
-- written with the state whose ratchet opened them, in the same
-- transaction: that state no longer has their keys and the frame log marks
-- their frames as handled, so a crash during the hold must not lose them.
-- A restarted engine shows what it finds here. payload is sealed.
CREATE TABLE held_messages (
	group_id BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	msg_id   BLOB NOT NULL,
	sender   TEXT NOT NULL,
	epoch    INTEGER NOT NULL,
	gen      INTEGER NOT NULL,
	payload  BLOB NOT NULL,
	held_at  INTEGER NOT NULL,
	PRIMARY KEY (group_id, msg_id)
) STRICT;
