-- version: 4
-- The engine's description of the Commit that created each retained state
-- (for the chat engine: its ordering information), so that a restarted
-- member can rebuild its window of canonical states. Sealed like the state;
-- NULL for rows written before this version (the engine then rebuilds from
-- the current state alone).
ALTER TABLE epoch_states ADD COLUMN info BLOB;
