-- version: 2
-- Relay KeyPackage cache: per-owner usage counters, and the one-time
-- packages a relay has handed out. Times are Unix nanoseconds (0 = never).

-- One-time KeyPackages handed out by TakeKeyPackage, kept until the package
-- would have expired, so that publishing the same package again cannot make
-- the relay hand it out twice (RFC 9420 §16.8: a KeyPackage that is not
-- last-resort is used once).
CREATE TABLE relay_keypackages_taken (
	owner      TEXT NOT NULL,
	ref        BLOB NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (owner, ref)
) STRICT;
CREATE INDEX relay_keypackages_taken_expires ON relay_keypackages_taken (expires_at);

-- Bytes and items of cached packages per owner (relay_usage scope
-- 'keypackages'), kept by triggers like the frame and mail counters.
INSERT INTO relay_usage (scope, key, bytes, items)
	SELECT 'keypackages', owner, sum(length(data)), count(*) FROM relay_keypackages GROUP BY owner;

CREATE TRIGGER relay_keypackages_usage_insert AFTER INSERT ON relay_keypackages BEGIN
	INSERT INTO relay_usage (scope, key, bytes, items) VALUES ('keypackages', new.owner, length(new.data), 1)
		ON CONFLICT (scope, key) DO UPDATE SET bytes = bytes + excluded.bytes, items = items + 1;
END;
CREATE TRIGGER relay_keypackages_usage_delete AFTER DELETE ON relay_keypackages BEGIN
	UPDATE relay_usage SET bytes = bytes - length(old.data), items = items - 1
		WHERE scope = 'keypackages' AND key = old.owner;
	DELETE FROM relay_usage WHERE items <= 0 AND scope = 'keypackages' AND key = old.owner;
END;
CREATE TRIGGER relay_keypackages_usage_update AFTER UPDATE OF owner, data ON relay_keypackages BEGIN
	UPDATE relay_usage SET bytes = bytes - length(old.data), items = items - 1
		WHERE scope = 'keypackages' AND key = old.owner;
	DELETE FROM relay_usage WHERE items <= 0 AND scope = 'keypackages' AND key = old.owner;
	INSERT INTO relay_usage (scope, key, bytes, items) VALUES ('keypackages', new.owner, length(new.data), 1)
		ON CONFLICT (scope, key) DO UPDATE SET bytes = bytes + excluded.bytes, items = items + 1;
END;
