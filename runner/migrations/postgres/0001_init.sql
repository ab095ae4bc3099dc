-- Orders as order-api writes them and the orchestrator finishes them.
CREATE TABLE orders (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    customer_id   TEXT NOT NULL,
    currency      TEXT NOT NULL,
    total         BIGINT NOT NULL,
    items         TEXT NOT NULL,
    ship_to       TEXT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX orders_status_seq ON orders (status, seq);

-- The transactional outbox in the Debezium outbox-router convention.
CREATE TABLE outbox (
    seq             BIGSERIAL,
    id              UUID PRIMARY KEY,
    aggregatetype   TEXT NOT NULL,
    aggregateid     TEXT NOT NULL,
    type            TEXT NOT NULL,
    payload         JSONB NOT NULL,
    traceparent     TEXT,
    source          TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    published_at_ms BIGINT
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at_ms IS NULL;

-- Messages each consumer has handled, with the reply it gave (idempotency).
CREATE TABLE inbox (
    consumer      TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    reply_type    TEXT,
    reply_payload TEXT,
    handled_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer, message_id)
);

-- Saga instances, updated with optimistic concurrency on `version`.
CREATE TABLE sagas (
    id            TEXT PRIMARY KEY,
    saga          TEXT NOT NULL,
    state         TEXT NOT NULL,
    status        TEXT NOT NULL,
    version       BIGINT NOT NULL,
    wake_at_ms    BIGINT,
    data          TEXT NOT NULL,
    traceparent   TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX sagas_wake ON sagas (wake_at_ms) WHERE wake_at_ms IS NOT NULL;

CREATE TABLE saga_history (
    seq     BIGSERIAL PRIMARY KEY,
    saga_id TEXT NOT NULL,
    step    TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT,
    at_ms   BIGINT NOT NULL
);
CREATE INDEX saga_history_saga ON saga_history (saga_id, seq);

-- payment-svc
CREATE TABLE payments (
    order_id       TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    amount         BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    status         TEXT NOT NULL,
    reason         TEXT,
    charged_at_ms  BIGINT,
    refunded_at_ms BIGINT
);

-- inventory-svc
CREATE TABLE stock (
    sku       TEXT PRIMARY KEY,
    available BIGINT NOT NULL
);
CREATE TABLE reservations (
    order_id       TEXT PRIMARY KEY,
    status         TEXT NOT NULL,
    reason         TEXT,
    reserved_at_ms BIGINT,
    released_at_ms BIGINT
);
CREATE TABLE reservation_lines (
    order_id TEXT NOT NULL,
    sku      TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (order_id, sku)
);

-- shipping-svc
CREATE TABLE shipments (
    order_id        TEXT PRIMARY KEY,
    country         TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT,
    scheduled_at_ms BIGINT,
    cancelled_at_ms BIGINT
);
