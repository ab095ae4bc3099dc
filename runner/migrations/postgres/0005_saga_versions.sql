-- Saga definition versions: each instance keeps the version (a hash of its definition) it
-- started with and finishes on it, while new instances start on the definition in force.
-- NULL: an instance from before versions were kept, which follows the definition in force.
ALTER TABLE sagas ADD COLUMN definition TEXT;
-- What a change of definition reads: the instances of each definition still in flight, and
-- (at every orchestrator start) those from before versions, which stays empty after that.
CREATE INDEX sagas_definition_status ON sagas (definition, status);
CREATE INDEX sagas_unversioned ON sagas (saga) WHERE definition IS NULL;

-- Every definition an orchestrator has run, by its hash, so an instance can be continued on
-- its own after the file (or the process) has moved on.
CREATE TABLE saga_definitions (
    hash          TEXT PRIMARY KEY,
    saga          TEXT NOT NULL,
    definition    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
