-- Saga definition versions: each instance keeps the version (a hash of its definition) it
-- started with and finishes on it, while new instances start on the definition in force.
-- NULL: an instance from before versions were kept, which follows the definition in force.
ALTER TABLE sagas ADD COLUMN definition TEXT;

-- Every definition an orchestrator has run, by its hash, so an instance can be continued on
-- its own after the file (or the process) has moved on.
CREATE TABLE saga_definitions (
    hash          TEXT PRIMARY KEY,
    saga          TEXT NOT NULL,
    definition    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
