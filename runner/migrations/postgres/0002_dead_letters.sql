-- dlq-admin: every record of every dead-letter topic, once, with its state and history.
-- Times are Unix milliseconds (BIGINT) or RFC 3339 text as the dead-letter headers carry
-- them; key and payload are text (lossy for bytes that are not UTF-8, which `*_hex` keeps).
CREATE TABLE dead_letters (
    id                    BIGSERIAL PRIMARY KEY,
    dlq_topic             TEXT NOT NULL,
    dlq_partition         BIGINT NOT NULL,
    dlq_offset            BIGINT NOT NULL,
    dead_lettered_at_ms   BIGINT NOT NULL,
    original_topic        TEXT,
    original_partition    BIGINT,
    original_offset       BIGINT,
    original_timestamp_ms BIGINT,
    consumer_group        TEXT,
    error_kind            TEXT NOT NULL,
    error_message         TEXT,
    attempts              BIGINT,
    first_failure_at      TEXT,
    last_failure_at       TEXT,
    ce_id                 TEXT,
    ce_type               TEXT,
    ce_source             TEXT,
    ce_time               TEXT,
    traceparent           TEXT,
    content_type          TEXT,
    message_key           TEXT,
    key_hex               TEXT,
    payload               TEXT,
    payload_hex           TEXT,
    headers               TEXT NOT NULL,
    state                 TEXT NOT NULL,
    replay_count          BIGINT NOT NULL,
    received_at_ms        BIGINT NOT NULL,
    updated_at_ms         BIGINT NOT NULL,
    UNIQUE (dlq_topic, dlq_partition, dlq_offset)
);
CREATE INDEX dead_letters_topic ON dead_letters (dlq_topic, id);
CREATE INDEX dead_letters_state ON dead_letters (state, id);
CREATE INDEX dead_letters_kind ON dead_letters (error_kind, id);
CREATE INDEX dead_letters_time ON dead_letters (dead_lettered_at_ms);

-- What happened to each entry: received, replayed, discarded, refused, with who and when.
CREATE TABLE dead_letter_history (
    seq      BIGSERIAL PRIMARY KEY,
    entry_id BIGINT NOT NULL,
    action   TEXT NOT NULL,
    actor    TEXT NOT NULL,
    detail   TEXT,
    at_ms    BIGINT NOT NULL
);
CREATE INDEX dead_letter_history_entry ON dead_letter_history (entry_id, seq);

-- Every change made through an admin API: who, what, on which target, and how it ended.
CREATE TABLE admin_audit (
    seq        BIGSERIAL PRIMARY KEY,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    details    TEXT,
    outcome    TEXT NOT NULL,
    at_ms      BIGINT NOT NULL,
    at_rfc3339 TEXT NOT NULL
);
