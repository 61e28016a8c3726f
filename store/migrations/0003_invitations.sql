-- version: 3
-- Pending invitations (a Welcome the user has not yet accepted or
-- declined). The whole invitation is one sealed payload: the group name,
-- the inviter, the ratchet tree and the Welcome are metadata worth hiding
-- at rest, and the store does not need to read any of them. The id is the
-- engine's short id for the invitation (a hash prefix of the Welcome).
CREATE TABLE invitations (
	id         TEXT PRIMARY KEY,
	payload    BLOB NOT NULL,           -- sealed
	created_at INTEGER NOT NULL
) STRICT;
