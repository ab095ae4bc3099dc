-- Canary routing: an outbox row may name its topic (a canary topic carries the same event
-- type as the stable one); NULL means the topic named by `type`.
ALTER TABLE outbox ADD COLUMN topic TEXT;

-- The variant each saga step was sent to (stable unless the step has a canary), fixed at the
-- first request so retries of one order always meet the same version; `sent_at_ms` is the
-- latest request, for step answer times.
CREATE TABLE saga_routes (
    saga_id     TEXT NOT NULL,
    step        TEXT NOT NULL,
    variant     TEXT NOT NULL,
    sent_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (saga_id, step)
);
