//! Data-driven tests of the pipeline config compiler: each case is a small TOML text and the exact diagnostics (`file:line:column: message`) it must produce.
//!
//! A case's TOML starts on the line after `r#"` (the leading newline is dropped), so line 1 is
//! the first line written and columns count from the left margin.

use std::path::Path;

use runner::config::{load_system, load_text, pipeline_files, Diagnostics, LoadOptions};

use crate::support::cases::{assert_cases, system_diagnostics, write_files};
use crate::support::pipelines_dir;

/// One file checked alone; `expected` is every diagnostic, in order (empty: the file is valid).
struct Case {
    name: &'static str,
    toml: &'static str,
    expected: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "settings that would busy-loop, give up at once, overflow or loop on themselves",
        toml: r#"
[service]
shutdown_grace = "500years"

[relay]
poll_interval = "0s"
status_interval = "1ns"

[saga]
trigger = "order.created"
on_completed = "order.created"
on_cancelled = "order.cancelled"
on_failed = "order.failed"
tick = "0s"
[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "0s"
irreversible = true

[[consumers]]
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.requested"

[[chaos.rules]]
id = "slow"
target = { kind = "handler", handler = "payment.charge" }
fault = { kind = "latency", fixed = "1000000000years" }
"#,
        expected: &[
            "test.toml:2:18: `500years` is too long; use at most 10years",
            "test.toml:5:17: `0s` is too short: an interval this short would busy-loop (use at least 1ms)",
            "test.toml:6:19: `1ns` is too short: an interval this short would busy-loop (use at least 1ms)",
            "test.toml:10:16: `order.created` is also the trigger: each end would start the saga again; use another event type",
            "test.toml:13:8: `0s` is too short: an interval this short would busy-loop (use at least 1ms)",
            "test.toml:18:11: `0s` is too short: nothing can answer in no time (use at least 1ms)",
            "test.toml:24:14: `payment.requested` is the consumer's own topic: it would handle its own replies forever; reply with another event type",
            "test.toml:29:37: `1000000000years` is longer than the longest injected delay, 1h; use a shorter one",
        ],
    },
    Case {
        name: "mistakes in several sections and consumers at once",
        toml: r#"
[service]
name = "payment-svc"
listen = "everywhere"

[store]
url = "mysql://db/orders"

[relay]
mode = "logical"
batch_size = 0

[[consumers]]
topic = "payment.requested"
handler = "payment.chrage"
on_success = "payment.charged"

[[consumers]]
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"
retries = 3

[[consumers]]
topic = "payment requests"
handler = "payment.charge"
on_success = "payment.charged"
params = { decline_above = "a lot" }
retry = { attempts = 0, jitter = 2.0 }

[[slo.objectives]]
name = "order-success"
kind = "success_ratio"
objective = 1.5
bad_statuses = ["LOST"]
"#,
        expected: &[
            r#"test.toml:3:10: `everywhere` is not a socket address; write it like "0.0.0.0:8080""#,
            "test.toml:6:7: unsupported database URL `mysql://db/orders`; use postgres://… or sqlite://path/to/file.db",
            "test.toml:9:8: `relay.mode`: unknown variant `logical`, expected one of `polling`, `wal`, `auto`",
            "test.toml:10:14: batch_size must be at least 1",
            "test.toml:14:11: unknown handler `payment.chrage`; known handlers: payment.charge, payment.refund, inventory.reserve, inventory.release, shipping.schedule, shipping.cancel",
            "test.toml:21:1: `consumers[1].retries`: unknown field `retries`, expected one of `name`, `topic`, `event_type`, `group`, `handler`, `on_success`, `on_failure`, `params`, `retry`, `dead_letter_topic`, `max_in_flight`, `max_group`, `groups_in_flight`",
            "test.toml:24:9: `payment requests` is not a valid event type; use letters, digits, `.`, `_` and `-` (it is also the topic name)",
            r#"test.toml:27:28: invalid handler parameter: invalid type: string "a lot", expected i64"#,
            "test.toml:28:22: attempts must be at least 1 (the first attempt counts)",
            "test.toml:28:34: jitter is a share of the delay: write a number from 0 to 1",
            "test.toml:33:13: 1.5 is not a target share; use e.g. 0.99 (above 0, below 1)",
            "test.toml:34:17: `slo.objectives[0].bad_statuses[0]`: unknown variant `LOST`, expected one of `COMPLETED`, `CANCELLED`, `FAILED`",
        ],
    },
    // ---- syntax and shape: checked section by section before anything is compiled ----
    Case {
        name: "invalid TOML syntax",
        toml: r#"
[service]
name "payment-svc"
"#,
        expected: &["test.toml:2:6: invalid TOML: expected `.`, `=`"],
    },
    Case {
        name: "unknown top-level key",
        toml: r#"
[relay]

[servce]
name = "svc"
"#,
        expected: &["test.toml:3:2: `servce`: unknown field `servce`, expected one of `service`, `broker`, `store`, `order_api`, `relay`, `consumers`, `saga`, `dlq_admin`, `schemas`, `admin`, `chaos`, `chaos_api`, `gameday`, `analytics`, `slo`, `telemetry`"],
    },
    Case {
        name: "unknown key inside [service]",
        toml: r#"
[service]
name = "svc"
listen_addr = "0.0.0.0:8080"
"#,
        expected: &[
            "test.toml:1:1: this pipeline runs nothing; add an [order_api], [relay], [[consumers]], [saga], [dlq_admin], [chaos_api], [gameday] or [analytics] section",
            "test.toml:3:1: `service.listen_addr`: unknown field `listen_addr`, expected one of `name`, `listen`, `shutdown_grace`, `variant`"],
    },
    Case {
        name: "string where a number is expected",
        toml: r#"
[broker]
partitions = "four"
"#,
        expected: &[
            "test.toml:1:1: this pipeline runs nothing; add an [order_api], [relay], [[consumers]], [saga], [dlq_admin], [chaos_api], [gameday] or [analytics] section",
            r#"test.toml:2:14: `broker.partitions`: invalid type: string "four", expected i32"#],
    },
    Case {
        name: "consumer without handler",
        toml: r#"
[[consumers]]
topic = "payment.requested"
on_success = "payment.charged"
"#,
        expected: &["test.toml:1:1: `consumers[0]`: missing field `handler`"],
    },
    Case {
        name: "two bad consumers are both reported",
        toml: r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.charge"

[[consumers]]
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"
on_sucess = "payment.refunded"
"#,
        expected: &[
            "test.toml:1:1: `consumers[0]`: missing field `on_success`",
            "test.toml:9:1: `consumers[1].on_sucess`: unknown field `on_sucess`, expected one of `name`, `topic`, `event_type`, `group`, `handler`, `on_success`, `on_failure`, `params`, `retry`, `dead_letter_topic`, `max_in_flight`, `max_group`, `groups_in_flight`",
        ],
    },
    Case {
        name: "max_in_flight out of range, too small, too large or negative",
        toml: r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.succeeded"
max_in_flight = 0

[[consumers]]
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"
max_in_flight = 5000

[[consumers]]
topic = "inventory.requested"
handler = "inventory.reserve"
on_success = "inventory.reserved"
max_in_flight = -1
"#,
        expected: &[
            "test.toml:5:17: max_in_flight = 0 is out of range: 1 (one message after the other) to 1024",
            "test.toml:11:17: max_in_flight = 5000 is out of range: 1 (one message after the other) to 1024",
            "test.toml:17:17: `consumers[2].max_in_flight`: invalid value: integer `-1`, expected u32",
        ],
    },
    Case {
        name: "max_group out of range: zero, above its consumer's max_in_flight",
        toml: r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.succeeded"
max_group = 0

[[consumers]]
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"
max_in_flight = 4
max_group = 8
"#,
        expected: &[
            "test.toml:5:13: max_group = 0 is out of range: 1 (a transaction per message) to max_in_flight (128)",
            "test.toml:12:13: max_group = 8 is out of range: 1 (a transaction per message) to max_in_flight (4)",
        ],
    },
    Case {
        name: "groups_in_flight: zero, above 8, and beside max_group = 1",
        toml: r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.succeeded"
groups_in_flight = 0

[[consumers]]
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"
groups_in_flight = 4096

[[consumers]]
topic = "shipping.schedule.requested"
handler = "shipping.schedule"
on_success = "shipping.scheduled"
max_group = 1
groups_in_flight = 2
"#,
        expected: &[
            "test.toml:5:20: groups_in_flight = 0 is out of range: 1 (one group after the other) to 8",
            "test.toml:11:20: groups_in_flight = 4096 is out of range: 1 (one group after the other) to 8",
            "test.toml:18:20: groups_in_flight = 2 needs max_group above 1: with max_group = 1 every message commits alone, beside the others in flight; remove groups_in_flight or raise max_group",
        ],
    },
    Case {
        name: "step mappings: from a step the saga still has, twice, to a step it lacks",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"
irreversible = true

[[saga.step_mapping]]
from = "payment"
to = "payment"

[[saga.step_mapping]]
from = "inventory"
to = "stock"

[[saga.step_mapping]]
from = "inventory"
to = "payment"
"#,
        expected: &[
            "test.toml:15:8: `payment` is a step of this saga: a mapping moves instances off a step the definition no longer has",
            "test.toml:20:6: `stock` is not a step of this saga; its steps are payment",
            "test.toml:23:8: step `inventory` is mapped twice; map each step once",
        ],
    },
    Case {
        name: "shape problems of several sections in file order",
        toml: r#"
[service]
nmae = "svc"

[broker]
partitions = "four"
"#,
        expected: &[
            "test.toml:1:1: this pipeline runs nothing; add an [order_api], [relay], [[consumers]], [saga], [dlq_admin], [chaos_api], [gameday] or [analytics] section",
            "test.toml:2:1: `service.nmae`: unknown field `nmae`, expected one of `name`, `listen`, `shutdown_grace`, `variant`",
            r#"test.toml:5:14: `broker.partitions`: invalid type: string "four", expected i32"#,
        ],
    },
    Case {
        name: "saga without a required field",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
"#,
        expected: &["test.toml:1:2: `saga`: missing field `on_failed`"],
    },
    Case {
        name: "saga steps that are not an array of tables",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"
steps = "payment"
"#,
        expected: &["test.toml:6:9: `saga.steps` must be an array of tables: write each step as [[saga.steps]]"],
    },
    Case {
        name: "unknown key in a saga step",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"
retries = 3
"#,
        expected: &["test.toml:12:1: `saga.steps[0].retries`: unknown field `retries`, expected one of `name`, `request`, `success`, `failure`, `timeout`, `retry`, `side_effect`, `irreversible`, `compensation`"],
    },
    // ---- handlers and their typed parameters ----
    Case {
        name: "unknown handler lists the known ones",
        toml: r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.charg"
on_success = "payment.charged"
"#,
        expected: &["test.toml:3:11: unknown handler `payment.charg`; known handlers: payment.charge, payment.refund, inventory.reserve, inventory.release, shipping.schedule, shipping.cancel"],
    },
    Case {
        name: "handler parameter of the wrong type",
        toml: r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.charged"
params = { decline_above = "lots" }
"#,
        expected: &[r#"test.toml:5:28: invalid handler parameter: invalid type: string "lots", expected i64"#],
    },
    Case {
        name: "handler parameter of the wrong type inside a list",
        toml: r#"
[[consumers]]
topic = "shipping.schedule.requested"
handler = "shipping.schedule"
on_success = "shipping.scheduled"
params = { refuse_countries = ["ZZ", 7] }
"#,
        expected: &["test.toml:5:38: invalid handler parameter: invalid type: integer `7`, expected a string"],
    },
    Case {
        name: "handler parameter of the wrong type inside a sub-table",
        toml: r#"
[[consumers]]
topic = "inventory.reserve.requested"
handler = "inventory.reserve"
on_success = "inventory.reserved"

[consumers.params.seed]
SKU-1 = 10
SKU-2 = "many"
"#,
        expected: &[r#"test.toml:8:9: invalid handler parameter: invalid type: string "many", expected i64"#],
    },
    Case {
        name: "handler parameter key containing a dot",
        toml: r#"
[[consumers]]
topic = "inventory.reserve.requested"
handler = "inventory.reserve"
on_success = "inventory.reserved"

[consumers.params.seed]
SKU-1 = 10
"SKU.2" = "many"
"#,
        expected: &[r#"test.toml:8:11: invalid handler parameter: invalid type: string "many", expected i64"#],
    },
    Case {
        name: "unknown handler parameter",
        toml: r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.charged"
params = { decline_over = 100 }
"#,
        expected: &["test.toml:5:12: invalid handler parameter: unknown field `decline_over`, expected one of `decline_above`, `blocked_customer_prefix`, `outage`"],
    },
    Case {
        name: "params given to a handler that takes none",
        toml: r#"
[[consumers]]
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"
params = { amount = 5, reason = "test" }
"#,
        expected: &[
            "test.toml:5:12: this handler takes no parameters; remove `amount`",
            "test.toml:5:24: this handler takes no parameters; remove `reason`",
        ],
    },
    // ---- consumers ----
    Case {
        name: "invalid event type",
        toml: r#"
[[consumers]]
topic = "payment requested"
handler = "payment.refund"
on_success = "payment.refunded"
"#,
        expected: &["test.toml:2:9: `payment requested` is not a valid event type; use letters, digits, `.`, `_` and `-` (it is also the topic name)"],
    },
    Case {
        name: "two consumers with the same name",
        toml: r#"
[[consumers]]
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"

[[consumers]]
topic = "payment.refund.retried"
handler = "payment.refund"
on_success = "payment.refunded"
"#,
        expected: &["test.toml:6:1: a consumer named `payment.refund` already exists in this file; give each a distinct `name`"],
    },
    // ---- service, broker, store ----
    Case {
        name: "invalid duration",
        toml: r#"
[service]
shutdown_grace = "10 parsecs"

[relay]
"#,
        expected: &[r#"test.toml:2:18: invalid duration `10 parsecs` (unknown time unit "parsecs", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write it like "500ms", "10s" or "2m""#],
    },
    Case {
        name: "empty service name",
        toml: r#"
[service]
name = ""

[relay]
"#,
        expected: &["test.toml:2:8: service name is empty"],
    },
    Case {
        name: "listen address that is not a socket address",
        toml: r#"
[service]
listen = "localhost"

[relay]
"#,
        expected: &[r#"test.toml:2:10: `localhost` is not a socket address; write it like "0.0.0.0:8080""#],
    },
    Case {
        name: "invalid broker list",
        toml: r#"
[broker]
brokers = "kafka-0:9092,kafka-1"

[relay]
"#,
        expected: &[r#"test.toml:2:11: `kafka-1` is not `host:port`; write "embedded" or a list like "kafka-0:9092,kafka-1:9092""#],
    },
    Case {
        name: "partitions and replication below 1",
        toml: r#"
[broker]
partitions = 0
replication = -1

[relay]
"#,
        expected: &["test.toml:2:14: partitions must be at least 1", "test.toml:3:15: replication must be at least 1"],
    },
    Case {
        name: "unsupported database URL",
        toml: r#"
[store]
url = "mysql://localhost/orders"

[relay]
"#,
        expected: &["test.toml:2:7: unsupported database URL `mysql://localhost/orders`; use postgres://… or sqlite://path/to/file.db"],
    },
    // ---- order API and relay ----
    Case {
        name: "order API limits too low",
        toml: r#"
[order_api]
max_body_bytes = 100
max_page_size = 0
"#,
        expected: &[
            "test.toml:2:18: max_body_bytes below 256 would refuse every order; raise it",
            "test.toml:3:17: max_page_size must be at least 1",
        ],
    },
    Case {
        name: "unknown relay mode",
        toml: r#"
[relay]
mode = "logical"
"#,
        expected: &[r#"test.toml:2:8: `relay.mode`: unknown variant `logical`, expected one of `polling`, `wal`, `auto`"#],
    },
    Case {
        name: "relay WAL settings",
        toml: r#"
[relay]
mode = "polling"
after_publish = "keep"
slot = "Relay-Slot"
publication = "chaos outbox"
tables = ["public.outbox.x"]
max_retained_wal = "lots"
on_retained_wal_limit = "panic"
on_slot_lost = "ignore"
heartbeat_interval = "soon"
"#,
        expected: &[
            r#"test.toml:3:17: `keep` needs relay mode "wal": polling finds unpublished rows by their mark"#,
            r#"test.toml:4:8: `Relay-Slot` is not a valid slot name; use up to 63 lower-case letters, digits and `_`"#,
            r#"test.toml:5:15: `chaos outbox` is not a valid publication name; use up to 63 lower-case letters, digits and `_`"#,
            r#"test.toml:6:11: `public.outbox.x` is not a table name; write `outbox` or `schema.outbox`"#,
            r#"test.toml:7:20: `lots` is not a size; write it like "512MiB" or "2GiB""#,
            "test.toml:8:25: `relay.on_retained_wal_limit`: unknown variant `panic`, expected `warn` or `drop_slot`",
            "test.toml:9:16: `relay.on_slot_lost`: unknown variant `ignore`, expected `fail` or `recreate`",
            r#"test.toml:10:22: invalid duration `soon` (expected number at 0); write it like "500ms", "10s" or "2m""#,
        ],
    },
    Case {
        name: "relay after_publish and batch_size",
        toml: r#"
[relay]
after_publish = "archive"
batch_size = 0
"#,
        expected: &[
            "test.toml:2:17: `relay.after_publish`: unknown variant `archive`, expected one of `mark`, `delete`, `keep`",
            "test.toml:3:14: batch_size must be at least 1",
        ],
    },
    Case {
        name: "a pipeline that runs nothing",
        toml: r#"
[service]
name = "idle"
"#,
        expected: &["test.toml:1:1: this pipeline runs nothing; add an [order_api], [relay], [[consumers]], [saga], [dlq_admin], [chaos_api], [gameday] or [analytics] section"],
    },
    // ---- chaos ----
    Case {
        name: "chaos rules are checked field by field",
        toml: r#"
[service]
name = "payment-svc"
[[consumers]]
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.charged"
[chaos]
enabled = true
[[chaos.rules]]
id = "lose"
target = { kind = "topic", topic = "payment.requested" }
fault = { kind = "drop" }
probability = 2.0
[[chaos.rules]]
id = "slow-db"
target = { kind = "store", service = "payment-svc" }
fault = { kind = "latency", fixed = "soon" }
ttl = "0s"
"#,
        expected: &[
            // `allow_drop` is missing: the rule's own table is pointed at.
            "test.toml:9:1: a drop fault loses messages on purpose; set `allow_drop = true` to confirm",
            "test.toml:13:15: 2 is not a probability; use 0 to 1",
            "test.toml:17:37: invalid duration (expected number at 0); write it like \"200ms\" or \"2s\"",
            "test.toml:18:7: a ttl of zero never runs; omit it or raise it",
        ],
    },
    Case {
        name: "canary settings are checked",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"
[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"
irreversible = true
[saga.canary]
step = "paymnt"
percent = 120
[saga.canary.analysis]
steps = [50, 25]
"#,
        expected: &[
            "test.toml:13:8: no step named `paymnt`; steps: payment",
            "test.toml:14:11: 120 is not a percentage; use 0 to 100",
            "test.toml:16:9: steps must be ascending percentages between 0 and 100, e.g. [10, 25, 50, 100]",
        ],
    },
    Case {
        name: "slo objectives are checked",
        toml: r#"
[service]
name = "orchestrator"
[slo]
[[slo.objectives]]
name = "ok"
kind = "latency"
objective = 1.5
threshold = "3s"
[[slo.objectives]]
name = "bad name"
kind = "success_ratio"
objective = 0.99
bad_statuses = ["LOST"]
[[slo.objectives]]
name = "x"
kind = "availability"
objective = 0.9
"#,
        expected: &[
            "test.toml:1:1: this pipeline runs nothing; add an [order_api], [relay], [[consumers]], [saga], [dlq_admin], [chaos_api], [gameday] or [analytics] section",
            "test.toml:7:13: 1.5 is not a target share; use e.g. 0.99 (above 0, below 1)",
            "test.toml:8:13: a latency threshold must be a histogram bucket: one of 0.1s, 0.25s, 0.5s, 1s, 2s, 5s, 10s, 30s, 60s, 300s",
            "test.toml:10:8: use letters, digits, `_` and `-` (it is a label value)",
            "test.toml:13:17: `slo.objectives[1].bad_statuses[0]`: unknown variant `LOST`, expected one of `COMPLETED`, `CANCELLED`, `FAILED`",
            "test.toml:16:8: `slo.objectives[2].kind`: unknown variant `availability`, expected `success_ratio` or `latency`",
        ],
    },
    Case {
        name: "telemetry endpoint and sample ratio are checked",
        toml: r#"
[service]
name = "payment-svc"
[relay]
[telemetry]
otlp_endpoint = "collector:4318"
sample_ratio = 2
"#,
        expected: &[
            "test.toml:5:17: `collector:4318` is not an http(s):// URL; write the collector's OTLP/HTTP address like \"http://127.0.0.1:4318\"",
            "test.toml:6:16: 2 is not a share; write a number from 0 to 1",
        ],
    },
    // ---- saga ----
    Case {
        name: "saga without steps",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"
"#,
        expected: &["test.toml:1:2: a saga needs at least one [[saga.steps]]"],
    },
    Case {
        name: "saga step without timeout",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
side_effect = false
"#,
        expected: &[r#"test.toml:7:1: step `payment` has no timeout; add e.g. `timeout = "10s"`"#],
    },
    Case {
        name: "saga step with a side effect but no compensation",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"
"#,
        expected: &["test.toml:7:1: step `payment` has a side effect but no compensation; add [saga.steps.compensation] or set `irreversible = true`"],
    },
    Case {
        name: "irreversible step needs no compensation",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"
irreversible = true
"#,
        expected: &[],
    },
    Case {
        name: "compensation without timeout",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"

[saga.steps.compensation]
request = "payment.refund.requested"
success = "payment.refunded"
"#,
        expected: &[r#"test.toml:13:13: compensation of step `payment` has no timeout; add e.g. `timeout = "10s"`"#],
    },
    Case {
        name: "duplicate step name",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"
side_effect = false

[[saga.steps]]
name = "payment"
request = "payment.retry.requested"
success = "payment.retry.charged"
timeout = "10s"
side_effect = false
"#,
        expected: &["test.toml:15:8: step name `payment` is used twice; step names must be unique"],
    },
    Case {
        name: "duplicate reply type",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"
side_effect = false

[[saga.steps]]
name = "inventory"
request = "inventory.reserve.requested"
success = "inventory.reserved"
failure = "payment.charged"
timeout = "10s"
side_effect = false
"#,
        expected: &["test.toml:18:11: reply `payment.charged` is already the success of step `payment`; each reply type must mean one thing"],
    },
    Case {
        name: "retry attempts of 0",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"
side_effect = false
retry = { attempts = 0 }
"#,
        expected: &["test.toml:13:22: attempts must be at least 1 (the first attempt counts)"],
    },
    Case {
        name: "max_backoff shorter than backoff",
        toml: r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"
side_effect = false
retry = { backoff = "5s", max_backoff = "1s" }
"#,
        expected: &["test.toml:13:41: max_backoff is shorter than backoff; raise it or lower backoff"],
    },
    Case {
        name: "every problem of a file at once, in file order",
        toml: r#"
[relay]
mode = "logical"

[service]
listen = "nowhere"

[store]
url = "mysql://localhost/orders"
"#,
        expected: &[
            r#"test.toml:2:8: `relay.mode`: unknown variant `logical`, expected one of `polling`, `wal`, `auto`"#,
            r#"test.toml:5:10: `nowhere` is not a socket address; write it like "0.0.0.0:8080""#,
            "test.toml:8:7: unsupported database URL `mysql://localhost/orders`; use postgres://… or sqlite://path/to/file.db",
        ],
    },
];

/// The diagnostics of one text checked alone, as printed (`test.toml:line:column: message`).
fn check_one(toml: &str) -> Vec<String> {
    let text = toml.strip_prefix('\n').unwrap_or(toml);
    match load_text(Path::new("test.toml"), text, &LoadOptions::default()) {
        Ok(_) => Vec::new(),
        Err(Diagnostics(diagnostics)) => diagnostics.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn each_case_reports_exactly_its_diagnostics() {
    assert_cases("cases", CASES.iter().map(|case| (case.name, case.expected, check_one(case.toml))));
}

#[test]
fn absurd_step_mappings_are_bounded_and_their_names_shown_short() {
    let saga =
        "[saga]\ntrigger = \"order.created\"\non_completed = \"order.completed\"\non_cancelled = \"order.cancelled\"\n\
                on_failed = \"order.failed\"\n\n[[saga.steps]]\nname = \"payment\"\nrequest = \"payment.requested\"\n\
                success = \"payment.charged\"\ntimeout = \"10s\"\nirreversible = true\n";
    // 101 mappings: one problem for the table, none per mapping.
    let many: String =
        (0..101).map(|i| format!("\n[[saga.step_mapping]]\nfrom = \"old-{i}\"\nto = \"payment\"\n")).collect();
    let problems = check_one(&format!("{saga}{many}"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].ends_with("101 step mappings; at most 100"), "{problems:?}");
    // A 100,000-character name with a NUL: the message shows 60 characters and no control character.
    let long = format!("{}\\u0000{}", "x".repeat(50), "y".repeat(100_000));
    let problems = check_one(&format!("{saga}\n[[saga.step_mapping]]\nfrom = \"gone\"\nto = \"{long}\"\n"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains(&format!("`{}?{}…` is not a step of this saga", "x".repeat(50), "y".repeat(9))),
        "{problems:?}"
    );
    assert!(problems[0].len() < 300, "{}", problems[0].len());
}

#[test]
fn case_names_are_unique() {
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "two cases share a name");
}

// ---- cross-file checks: several files loaded together with `load_system` ----

/// Files of one system; diagnostics name the file relative to the system's directory.
struct SystemCase {
    name: &'static str,
    /// Checked files: (file name, TOML text).
    files: &'static [(&'static str, &'static str)],
    /// Files that are part of the system but not checked themselves.
    context: &'static [(&'static str, &'static str)],
    expected: &'static [&'static str],
}

const ORCHESTRATOR: &str = r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
failure = "payment.declined"
timeout = "10s"
irreversible = true
"#;

const ORDER_API: &str = r#"
[order_api]
"#;

const PAYMENT: &str = r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.charged"
on_failure = "payment.declined"
"#;

const SYSTEM_CASES: &[SystemCase] = &[
    SystemCase {
        name: "mistakes in several files, sections and consumers are all reported",
        files: &[
            ("api.toml", ORDER_API),
            (
                "orchestrator.toml",
                r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"
[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
failure = "payment.declined"
timeout = "5s"
irreversible = true

[sagas]
name = "order"
"#,
            ),
            (
                "payment.toml",
                r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.chrage"
on_success = "payment.charged"
on_failure = "payment.declined"

[[consumers]]
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"
retries = 3
"#,
            ),
        ],
        context: &[],
        expected: &[
            "orchestrator.toml:14:2: `sagas`: unknown field `sagas`, expected one of `service`, `broker`, `store`, `order_api`, `relay`, `consumers`, `saga`, `dlq_admin`, `schemas`, `admin`, `chaos`, `chaos_api`, `gameday`, `analytics`, `slo`, `telemetry`",
            "payment.toml:3:11: unknown handler `payment.chrage`; known handlers: payment.charge, payment.refund, inventory.reserve, inventory.release, shipping.schedule, shipping.cancel",
            "payment.toml:11:1: `consumers[1].retries`: unknown field `retries`, expected one of `name`, `topic`, `event_type`, `group`, `handler`, `on_success`, `on_failure`, `params`, `retry`, `dead_letter_topic`, `max_in_flight`, `max_group`, `groups_in_flight`",
        ],
    },
    SystemCase {
        name: "a complete system",
        files: &[("api.toml", ORDER_API), ("orchestrator.toml", ORCHESTRATOR), ("payment.toml", PAYMENT)],
        context: &[],
        expected: &[],
    },
    SystemCase {
        name: "saga reply topic produced by no service",
        files: &[
            ("api.toml", ORDER_API),
            ("orchestrator.toml", ORCHESTRATOR),
            (
                "payment.toml",
                r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.done"
on_failure = "payment.declined"
"#,
            ),
        ],
        context: &[],
        expected: &[
            r#"orchestrator.toml:10:11: reply `payment.charged` is produced by no service; add a consumer with `on_success`/`on_failure = "payment.charged"` or fix the name"#,
            r#"orchestrator.toml:10:11: `payment.requested` is answered with `payment.done` by its consumer `payment.charge`, but the saga waits for `payment.charged`"#,
        ],
    },
    SystemCase {
        name: "saga trigger produced by no service",
        files: &[("orchestrator.toml", ORCHESTRATOR), ("payment.toml", PAYMENT)],
        context: &[],
        expected: &[r#"orchestrator.toml:2:11: trigger `order.created` is produced by no service; add a consumer with `on_success`/`on_failure = "order.created"` or fix the name"#],
    },
    SystemCase {
        name: "step request consumed by no service",
        files: &[
            ("api.toml", ORDER_API),
            ("orchestrator.toml", ORCHESTRATOR),
            (
                "payment.toml",
                r#"
[[consumers]]
topic = "payment.request"
handler = "payment.charge"
on_success = "payment.charged"
on_failure = "payment.declined"
"#,
            ),
        ],
        context: &[],
        expected: &["orchestrator.toml:9:11: request `payment.requested` is consumed by no service, so the step would always time out"],
    },
    SystemCase {
        name: "compensation request and reply without a service",
        files: &[
            ("api.toml", ORDER_API),
            (
                "orchestrator.toml",
                r#"
[saga]
trigger = "order.created"
on_completed = "order.completed"
on_cancelled = "order.cancelled"
on_failed = "order.failed"

[[saga.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
timeout = "10s"

[saga.steps.compensation]
request = "payment.refund.requested"
success = "payment.refunded"
timeout = "10s"
"#,
            ),
            ("payment.toml", PAYMENT),
        ],
        context: &[],
        expected: &[
            r#"orchestrator.toml:7:1: `payment.requested` is refused with `payment.declined` by its consumer `payment.charge`, but the saga's failure reply is not declared"#,
            "orchestrator.toml:14:11: request `payment.refund.requested` is consumed by no service, so the step would always time out",
            r#"orchestrator.toml:15:11: reply `payment.refunded` is produced by no service; add a consumer with `on_success`/`on_failure = "payment.refunded"` or fix the name"#,
        ],
    },
    SystemCase {
        name: "context files count as producers and consumers but are not reported",
        files: &[("orchestrator.toml", ORCHESTRATOR)],
        context: &[("api.toml", ORDER_API), ("payment.toml", PAYMENT), ("idle.toml", "[service]\nname = \"idle\"\n")],
        expected: &[],
    },
    SystemCase {
        name: "a broken file is reported beside the system checks of the others",
        files: &[
            ("api.toml", ORDER_API),
            ("orchestrator.toml", ORCHESTRATOR),
            ("payment.toml", PAYMENT),
            ("relay.toml", "[relay]\nmode = \"logical\"\n"),
        ],
        context: &[],
        expected: &[r#"relay.toml:2:8: `relay.mode`: unknown variant `logical`, expected one of `polling`, `wal`, `auto`"#],
    },
    SystemCase {
        name: "analytics steps follow the saga's steps",
        files: &[(
            "analytics.toml",
            r#"
[analytics]
[[analytics.steps]]
name = "payment"
request = "payment.request"
canary_topic = "payment.requested.canary"
success = "payment.charged"
failure = "payment.refused"
[[analytics.steps]]
name = "billing"
request = "billing.requested"
success = "billing.done"
"#,
        )],
        context: &[("api.toml", ORDER_API), ("orchestrator.toml", ORCHESTRATOR), ("payment.toml", PAYMENT)],
        expected: &[
            r#"analytics.toml:4:11: the saga's step `payment` sends `payment.requested`; write request = "payment.requested""#,
            "analytics.toml:5:16: the saga sends no canary requests for step `payment`; remove canary_topic",
            r#"analytics.toml:7:11: the saga's step `payment` is refused with `payment.declined`; write failure = "payment.declined""#,
            "analytics.toml:9:8: no saga step named `billing`; steps: payment",
        ],
    },
    SystemCase {
        name: "a request only streams-analytics reads is consumed by no service",
        files: &[("orchestrator.toml", ORCHESTRATOR)],
        context: &[
            ("api.toml", ORDER_API),
            (
                "analytics.toml",
                r#"
[analytics]
[[analytics.steps]]
name = "payment"
request = "payment.requested"
success = "payment.charged"
failure = "payment.declined"
"#,
            ),
        ],
        expected: &[
            "orchestrator.toml:9:11: request `payment.requested` is consumed by no service, so the step would always time out",
            r#"orchestrator.toml:10:11: reply `payment.charged` is produced by no service; add a consumer with `on_success`/`on_failure = "payment.charged"` or fix the name"#,
            r#"orchestrator.toml:11:11: reply `payment.declined` is produced by no service; add a consumer with `on_success`/`on_failure = "payment.declined"` or fix the name"#,
        ],
    },    SystemCase {
        name: "chaos rules in files name services, handlers and topics that run",
        files: &[(
            "payment.toml",
            r#"
[[consumers]]
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.charged"
on_failure = "payment.declined"

[chaos]
[[chaos.rules]]
id = "typo-handler"
target = { kind = "handler", handler = "paymnet.charge" }
fault = { kind = "error" }
[[chaos.rules]]
id = "typo-topic"
target = { kind = "topic", topic = "payment.requestd" }
fault = { kind = "error" }
[[chaos.rules]]
id = "typo-service"
target = { kind = "store", service = "payments" }
fault = { kind = "error" }
[[chaos.rules]]
id = "fine"
target = { kind = "handler", handler = "payment.charge", service = "payment" }
fault = { kind = "error" }
"#,
        )],
        context: &[("api.toml", ORDER_API)],
        expected: &[
            "payment.toml:10:40: no handler or consumer `paymnet.charge` runs; handlers: payment.charge",
            "payment.toml:14:36: no service uses topic `payment.requestd`; topics: payment.requested, payment.requested.dlq, payment.declined, payment.charged, order.created",
            "payment.toml:18:38: no service `payments` runs; services: payment, api",
        ],
    },
];

/// Writes the files to a fresh directory, loads them as one system and returns the
/// diagnostics with file names relative to that directory.
fn check_system(files: &[(&str, &str)], context: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (files, context) = (write_files(dir.path(), files), write_files(dir.path(), context));
    system_diagnostics(dir.path(), &files, &context)
}

#[test]
fn each_system_case_reports_exactly_its_diagnostics() {
    let results = SYSTEM_CASES.iter().map(|case| (case.name, case.expected, check_system(case.files, case.context)));
    assert_cases("system cases", results);
}

#[test]
fn an_unreadable_file_is_reported_at_its_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let missing = dir.path().join("missing.toml");
    let Err(Diagnostics(diagnostics)) = load_system(std::slice::from_ref(&missing), &[], &LoadOptions::default())
    else {
        panic!("a missing file must not load");
    };
    let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [format!("{}:1:1: cannot read the pipeline file: No such file or directory (os error 2)", missing.display())]
    );
}

#[test]
fn the_shipped_pipelines_pass() {
    let dir = pipelines_dir();
    let files = pipeline_files(&dir).expect("the pipelines directory is readable");
    assert!(!files.is_empty(), "no pipeline files in {}", dir.display());
    if let Err(diagnostics) = load_system(&files, &[], &LoadOptions::default()) {
        panic!("the shipped pipelines have problems:\n{diagnostics}");
    }
}

/// A file of thousands of mistakes is checked in linear time: the shape pass stops after
/// `MAX_SHAPE_PROBLEMS` and says so, rather than deserializing the document once per mistake.
#[test]
fn thousands_of_unknown_tables_stop_after_fifty_problems() {
    let text: String = (0..20_000).map(|i| format!("[unknown{i}]\nx = 1\n")).collect();
    let diagnostics = check_one(&text);
    assert_eq!(diagnostics.len(), 51, "{:?}", &diagnostics[..3]);
    assert!(diagnostics[50].contains("checking stopped after 50 keys of the wrong shape"), "{}", diagnostics[50]);
}

/// Files that cannot be pipelines are refused with the reason, never ignored.
#[test]
fn oversized_and_non_utf8_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, format!("# {}\n[relay]\n", "x".repeat(1_100_000))).unwrap();
    let latin1 = dir.path().join("latin1.toml");
    std::fs::write(&latin1, b"[service]\nname = \"caf\xe9\"\n[relay]\n").unwrap();
    for (file, expected) in [
        (&big, "pipeline files are limited to 1048576 bytes (1 MiB)"),
        (&latin1, "the file is not UTF-8 text (invalid byte at offset 21); save it as UTF-8"),
    ] {
        let Err(Diagnostics(diagnostics)) = runner::config::load(file, &LoadOptions::default()) else {
            panic!("{} was accepted", file.display())
        };
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0].to_string().contains(expected), "{}", diagnostics[0]);
        assert_eq!((diagnostics[0].line, diagnostics[0].column), (1, 1));
    }
}
