//! Event schemas (`schemas/events/`): every event type the shipped pipelines produce or consume has one and each compiles; they accept what the code really sends and reject broken payloads naming the field; `runner check` reports a type without a schema and a step answered with another reply type.

use std::collections::BTreeSet;
use std::path::PathBuf;

use runner::handlers::Outcome;
use runner::order::{Item, OrderPayload, ShipTo};
use runner::saga::machine::{advance, Command, Input, SagaState, Status};
use runner::schemas::SchemaRegistry;
use runner::store::Store;
use runner::store::StoreConfig;
use serde_json::{json, Value};

use crate::support::cases::{assert_cases, system_diagnostics, write_files};
use crate::support::{repository, shipped_system};

fn schema_dir() -> PathBuf {
    repository().join("schemas/events")
}

fn registry() -> SchemaRegistry {
    SchemaRegistry::load(&schema_dir())
        .unwrap_or_else(|problems| panic!("the event schemas do not compile:\n{}", problems.join("\n")))
}

/// Every event type the shipped pipelines produce or consume (dead-letter topics keep their
/// original event's payload and have no schema of their own).
fn shipped_types() -> BTreeSet<String> {
    shipped_system().iter().flat_map(|loaded| loaded.pipeline.event_types()).collect()
}

// ---- (a) every shipped type has a schema; every schema compiles and names itself ----

#[test]
fn every_shipped_event_type_has_a_schema_and_every_schema_compiles() {
    let registry = registry();
    let types = shipped_types();
    assert!(types.len() >= 19, "the shipped pipelines use only {} event types: {types:?}", types.len());
    let missing: Vec<&String> = types.iter().filter(|t| !registry.has(t)).collect();
    assert!(missing.is_empty(), "event types without a schema in {}: {missing:?}", schema_dir().display());
    let unused: Vec<&str> = registry.types().into_iter().filter(|t| !types.contains(*t)).collect();
    assert!(unused.is_empty(), "schemas for event types no shipped pipeline produces or consumes: {unused:?}");
}

#[test]
fn every_schema_file_is_draft_2020_12_with_its_own_id() {
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(schema_dir()).expect("schemas/events is readable").map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let Some(event_type) = name.strip_suffix(".schema.json") else {
            problems.push(format!("{name}: not named `<event type>.schema.json`"));
            continue;
        };
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        let expected = [
            ("$schema", json!("https://json-schema.org/draft/2020-12/schema")),
            ("$id", json!(format!("https://chaos-symphony.dev/schemas/events/{event_type}.schema.json"))),
            ("type", json!("object")),
        ];
        for (key, value) in expected {
            if schema[key] != value {
                problems.push(format!("{name}: `{key}` is {}, expected {value}", schema[key]));
            }
        }
        for key in ["title", "description"] {
            if schema[key].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{name}: `{key}` is missing"));
            }
        }
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        if !required.iter().any(|r| r == "orderId") {
            problems.push(format!("{name}: `orderId` is not required"));
        }
        for field in required.iter().filter_map(Value::as_str) {
            if schema["properties"].get(field).is_none() {
                problems.push(format!("{name}: required `{field}` has no entry in `properties`"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- (b) payloads as the code builds them pass; broken ones fail naming the field ----

const ORDER_ID: &str = "0b6f4a8e-2c1d-4e5f-9a7b-3c2d1e0f4a5b";
const OK: &str = "ok";

/// The step requests and the trigger: each carries the order payload.
const ORDER_TYPES: &[&str] = &[
    "order.created",
    "payment.requested",
    "payment.refund.requested",
    "inventory.reserve.requested",
    "inventory.release.requested",
    "shipping.schedule.requested",
    "shipping.cancel.requested",
];

fn order() -> OrderPayload {
    let items = vec![
        Item { sku: "SKU-1".into(), quantity: 2, unit_price: 1999 },
        Item { sku: "SKU-2".into(), quantity: 1, unit_price: 500 },
    ];
    OrderPayload {
        order_id: ORDER_ID.into(),
        customer_id: "c-42".into(),
        currency: "EUR".into(),
        total: 2 * 1999 + 500,
        items,
        ship_to: ShipTo { country: "DE".into(), city: Some("Berlin".into()), postal_code: None, street: None },
    }
}

fn order_with(change: impl FnOnce(&mut OrderPayload)) -> Value {
    let mut order = order();
    change(&mut order);
    serde_json::to_value(order).expect("an order serializes")
}

/// `value` with the field at `pointer` set (`Some`) or removed (`None`).
fn set(mut value: Value, pointer: &str, new: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let object = value.pointer_mut(parent).and_then(Value::as_object_mut).expect("the parent is an object");
    match new {
        Some(new) => object.insert(key.to_string(), new),
        None => object.remove(key),
    };
    value
}

// The reply shapes, as the handlers in `runner/src/handlers/` build them.
fn charged() -> Value {
    let o = order();
    json!({ "orderId": o.order_id, "amount": o.total, "currency": o.currency })
}

fn refused(reason: &str) -> Value {
    json!({ "orderId": ORDER_ID, "reason": reason })
}

fn refunded(amount: i64) -> Value {
    json!({ "orderId": ORDER_ID, "refunded": amount, "currency": "EUR" })
}

fn reserved() -> Value {
    let o = order();
    json!({ "orderId": o.order_id, "items": o.items })
}

fn scheduled() -> Value {
    let o = order();
    json!({ "orderId": o.order_id, "country": o.ship_to.country })
}

fn order_id_only() -> Value {
    json!({ "orderId": ORDER_ID })
}

/// The terminal event, as the orchestrator writes it.
fn terminal(status: Status, reason: Option<&str>) -> Value {
    json!({ "orderId": ORDER_ID, "status": status.as_str(), "reason": reason })
}

struct PayloadCase {
    event_type: &'static str,
    name: &'static str,
    payload: Value,
    /// `OK`, or a fragment of the validation error (it names the field).
    expected: &'static str,
}

fn case(event_type: &'static str, name: &'static str, payload: Value, expected: &'static str) -> PayloadCase {
    PayloadCase { event_type, name, payload, expected }
}

fn payload_cases() -> Vec<PayloadCase> {
    let mut cases: Vec<PayloadCase> =
        ORDER_TYPES.iter().map(|t| case(t, "the order payload", order_with(|_| {}), OK)).collect();
    cases.extend([
        // ---- the order payload (order.created and every step request) ----
        case("order.created", "an order without the optional address lines", order_with(|o| o.ship_to.city = None), OK),
        case(
            "order.created",
            "an unknown top-level field is tolerated",
            set(order_with(|_| {}), "/note", Some(json!("gift"))),
            OK,
        ),
        case(
            "order.created",
            "a customer id padded beyond 128 characters trims to 128",
            order_with(|o| o.customer_id = format!("  {}  ", "c".repeat(128))),
            OK,
        ),
        case("order.created", "a free item", order_with(|o| o.items[1].unit_price = 0), OK),
        case(
            "order.created",
            "the largest quantity and unit price",
            order_with(|o| {
                o.items[0].quantity = 1_000_000;
                o.items[0].unit_price = 10_000_000_000
            }),
            OK,
        ),
        case(
            "order.created",
            "no order id",
            set(order_with(|_| {}), "/orderId", None),
            r#""orderId" is a required property"#,
        ),
        case(
            "order.created",
            "an order id that is not a uuid",
            order_with(|o| o.order_id = "order-1".into()),
            r#"/orderId: "order-1" does not match"#,
        ),
        case(
            "order.created",
            "no customer id",
            set(order_with(|_| {}), "/customerId", None),
            r#""customerId" is a required property"#,
        ),
        case(
            "order.created",
            "a blank customer id",
            order_with(|o| o.customer_id = "   ".into()),
            r#"/customerId: "   " does not match"#,
        ),
        case(
            "order.created",
            "a customer id of 129 characters",
            order_with(|o| o.customer_id = "c".repeat(129)),
            "/customerId: ",
        ),
        case(
            "order.created",
            "a lower-case currency",
            order_with(|o| o.currency = "eur".into()),
            r#"/currency: "eur" does not match "^[A-Z]{3}$""#,
        ),
        case(
            "order.created",
            "a total as a string",
            set(order_with(|_| {}), "/total", Some(json!("4498"))),
            r#"/total: "4498" is not of type "integer""#,
        ),
        case(
            "order.created",
            "a negative total",
            order_with(|o| o.total = -1),
            "/total: -1 is less than the minimum of 0",
        ),
        case(
            "order.created",
            "a total in major units with a fraction",
            set(order_with(|_| {}), "/total", Some(json!(44.98))),
            r#"/total: 44.98 is not of type "integer""#,
        ),
        case("order.created", "no items", order_with(|o| o.items.clear()), "/items: [] has less than 1 item"),
        case("order.created", "101 items", order_with(|o| o.items = vec![o.items[0].clone(); 101]), "/items: "),
        case(
            "order.created",
            "a blank SKU",
            order_with(|o| o.items[0].sku = "  ".into()),
            r#"/items/0/sku: "  " does not match"#,
        ),
        case(
            "order.created",
            "a SKU of 65 characters",
            order_with(|o| o.items[0].sku = "S".repeat(65)),
            "/items/0/sku: ",
        ),
        case(
            "order.created",
            "a quantity of 0",
            order_with(|o| o.items[1].quantity = 0),
            "/items/1/quantity: 0 is less than the minimum of 1",
        ),
        case(
            "order.created",
            "a quantity above 1000000",
            order_with(|o| o.items[0].quantity = 1_000_001),
            "/items/0/quantity: 1000001 is greater than the maximum of 1000000",
        ),
        case(
            "order.created",
            "a negative unit price",
            order_with(|o| o.items[0].unit_price = -5),
            "/items/0/unitPrice: -5 is less than the minimum of 0",
        ),
        case(
            "order.created",
            "a unit price with a fraction",
            set(order_with(|_| {}), "/items/0/unitPrice", Some(json!(19.99))),
            r#"/items/0/unitPrice: 19.99 is not of type "integer""#,
        ),
        case(
            "order.created",
            "an item without its unit price",
            set(order_with(|_| {}), "/items/0/unitPrice", None),
            r#"/items/0: "unitPrice" is a required property"#,
        ),
        case(
            "order.created",
            "an unknown item field",
            set(order_with(|_| {}), "/items/0/colour", Some(json!("red"))),
            "/items/0: Additional properties are not allowed ('colour' was unexpected)",
        ),
        case(
            "order.created",
            "a country name instead of its code",
            order_with(|o| o.ship_to.country = "Germany".into()),
            r#"/shipTo/country: "Germany" does not match "^[A-Z]{2}$""#,
        ),
        case(
            "order.created",
            "a null city",
            set(order_with(|_| {}), "/shipTo/city", Some(Value::Null)),
            r#"/shipTo/city: null is not of type "string""#,
        ),
        case(
            "payment.requested",
            "no destination",
            set(order_with(|_| {}), "/shipTo", None),
            r#""shipTo" is a required property"#,
        ),
        case(
            "shipping.schedule.requested",
            "no country",
            set(order_with(|_| {}), "/shipTo/country", None),
            r#"/shipTo: "country" is a required property"#,
        ),
        case(
            "payment.refund.requested",
            "only the order id",
            order_id_only(),
            r#""customerId" is a required property"#,
        ),
        // ---- payment-svc ----
        case("payment.charged", "the charge", charged(), OK),
        case("payment.charged", "a service may add fields", set(charged(), "/gateway", Some(json!("test"))), OK),
        case(
            "payment.charged",
            "an amount as a decimal string",
            set(charged(), "/amount", Some(json!("44.98"))),
            r#"/amount: "44.98" is not of type "integer""#,
        ),
        case(
            "payment.charged",
            "no currency",
            set(charged(), "/currency", None),
            r#""currency" is a required property"#,
        ),
        case("payment.declined", "a refusal", refused("amount 600000 exceeds the limit of 500000"), OK),
        case("payment.declined", "a refusal with an empty reason", refused(""), OK),
        case("payment.declined", "no reason", order_id_only(), r#""reason" is a required property"#),
        case(
            "payment.declined",
            "a null reason",
            set(refused("x"), "/reason", Some(Value::Null)),
            r#"/reason: null is not of type "string""#,
        ),
        case("payment.refunded", "a refund", refunded(4498), OK),
        case("payment.refunded", "a refund of a payment never charged", refunded(0), OK),
        case(
            "payment.refunded",
            "a negative refund",
            refunded(-4498),
            "/refunded: -4498 is less than the minimum of 0",
        ),
        case(
            "payment.refunded",
            "no amount",
            set(refunded(1), "/refunded", None),
            r#""refunded" is a required property"#,
        ),
        // ---- inventory-svc ----
        case("inventory.reserved", "the reservation", reserved(), OK),
        case(
            "inventory.reserved",
            "no items",
            set(reserved(), "/items", Some(json!([]))),
            "/items: [] has less than 1 item",
        ),
        case(
            "inventory.reserved",
            "a quantity as a string",
            set(reserved(), "/items/0/quantity", Some(json!("2"))),
            r#"/items/0/quantity: "2" is not of type "integer""#,
        ),
        case("inventory.rejected", "a refusal", refused("insufficient stock for SKU-3"), OK),
        case(
            "inventory.rejected",
            "a reason as a number",
            set(refused("x"), "/reason", Some(json!(7))),
            r#"/reason: 7 is not of type "string""#,
        ),
        case("inventory.released", "the release", order_id_only(), OK),
        case("inventory.released", "no order id", json!({}), r#""orderId" is a required property"#),
        case(
            "inventory.released",
            "an order id that is a number",
            json!({ "orderId": 7 }),
            r#"/orderId: 7 is not of type "string""#,
        ),
        // ---- shipping-svc ----
        case("shipping.scheduled", "the shipment", scheduled(), OK),
        case(
            "shipping.scheduled",
            "a lower-case country",
            set(scheduled(), "/country", Some(json!("de"))),
            r#"/country: "de" does not match "^[A-Z]{2}$""#,
        ),
        case("shipping.rejected", "a refusal", refused("no shipping to ZZ"), OK),
        case("shipping.rejected", "no reason", order_id_only(), r#""reason" is a required property"#),
        case("shipping.cancelled", "the cancellation", order_id_only(), OK),
        case("shipping.cancelled", "not an object", json!([ORDER_ID]), r#"is not of type "object""#),
        // ---- the orchestrator's terminal events ----
        case("order.completed", "completed", terminal(Status::Completed, None), OK),
        case(
            "order.completed",
            "a completed order with a reason",
            terminal(Status::Completed, Some("late")),
            r#"/reason: "late" is not of type "null""#,
        ),
        case(
            "order.completed",
            "another status",
            terminal(Status::Cancelled, None),
            r#"/status: "COMPLETED" was expected"#,
        ),
        case(
            "order.cancelled",
            "cancelled",
            terminal(Status::Cancelled, Some("payment declined: customer blocked-1 is blocked")),
            OK,
        ),
        case(
            "order.cancelled",
            "a cancelled order without a reason",
            terminal(Status::Cancelled, None),
            r#"/reason: null is not of type "string""#,
        ),
        case(
            "order.failed",
            "failed",
            terminal(Status::Failed, Some("compensating payment timed out after 10 attempts")),
            OK,
        ),
        case(
            "order.failed",
            "no reason",
            set(terminal(Status::Failed, Some("x")), "/reason", None),
            r#""reason" is a required property"#,
        ),
        case(
            "order.failed",
            "no status",
            set(terminal(Status::Failed, Some("x")), "/status", None),
            r#""status" is a required property"#,
        ),
        // ---- a type with no schema at all ----
        case(
            "payment.done",
            "a type without a schema",
            order_id_only(),
            "no schema for event type `payment.done`; add payment.done.schema.json",
        ),
    ]);
    cases
}

#[test]
fn each_payload_case_passes_or_fails_naming_the_field() {
    let registry = registry();
    let cases = payload_cases();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let outcome = registry.validate(c.event_type, &c.payload);
            let fine = match &outcome {
                Ok(()) => c.expected == OK,
                Err(message) => c.expected != OK && message.contains(c.expected),
            };
            (!fine).then(|| {
                format!(
                    "`{}` {}\n  payload:  {}\n  expected: {}\n  actual:   {:?}",
                    c.event_type, c.name, c.payload, c.expected, outcome
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} payload cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_shipped_event_type_has_a_passing_payload_case() {
    let passing: BTreeSet<&str> = payload_cases().iter().filter(|c| c.expected == OK).map(|c| c.event_type).collect();
    let uncovered: Vec<String> = shipped_types().into_iter().filter(|t| !passing.contains(t.as_str())).collect();
    assert!(uncovered.is_empty(), "shipped event types without a passing payload case: {uncovered:?}");
}

/// Validates payloads and remembers which types were seen and what failed.
struct Checker {
    registry: SchemaRegistry,
    seen: BTreeSet<String>,
    problems: Vec<String>,
}

impl Checker {
    fn check(&mut self, event_type: &str, payload: &Value, by: &str) {
        self.seen.insert(event_type.to_string());
        if let Err(problem) = self.registry.validate(event_type, payload) {
            self.problems.push(format!("{by}: {problem}\n  payload: {payload}"));
        }
    }
}

/// The real handlers of the shipped pipelines, on a SQLite store, and the real saga machine of
/// the shipped orchestrator: every payload they emit (as `services::worker` and
/// `services::orchestrator` wraps them) matches its schema, and every shipped type is emitted.
#[tokio::test]
async fn the_handlers_and_the_saga_emit_payloads_their_schemas_accept() {
    let pipelines = shipped_system();
    let mut checker = Checker { registry: registry(), seen: BTreeSet::new(), problems: Vec::new() };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    let store = Store::connect(&StoreConfig::for_url(&url, 1).unwrap()).await.expect("the SQLite store opens");
    let consumers: Vec<_> = pipelines.iter().flat_map(|p| &p.pipeline.consumers).collect();
    assert_eq!(consumers.len(), 7, "the shipped consumers (the canary's charge included)");
    for consumer in &consumers {
        consumer.handler.prepare(&store).await.expect("the handler prepares");
    }

    let new_order = |change: &dyn Fn(&mut OrderPayload)| {
        let mut order = order();
        order.order_id = uuid::Uuid::new_v4().to_string();
        change(&mut order);
        order.total = order.items.iter().map(|i| i.quantity * i.unit_price).sum();
        order
    };
    let orders = [
        ("accepted", new_order(&|_| {})),
        ("over the payment limit", new_order(&|o| o.items[0].unit_price = 600_000)),
        ("from a blocked customer", new_order(&|o| o.customer_id = "blocked-7".into())),
        ("with an unknown SKU", new_order(&|o| o.items[0].sku = "SKU-404".into())),
        (
            "with too little stock",
            new_order(&|o| {
                o.items = vec![Item { sku: "SKU-3".into(), quantity: 600_000, unit_price: 0 }; 2];
            }),
        ),
        ("to a refused country", new_order(&|o| o.ship_to.country = "ZZ".into())),
    ];
    let now = 1_700_000_000_000;
    // Every request twice in step order (the second answers from the service's row), then a
    // fresh order with its compensations first (voided rows, late requests refused).
    let mut runs: Vec<(String, &OrderPayload, Vec<usize>)> = Vec::new();
    for (name, order) in &orders {
        let forward: Vec<usize> = (0..consumers.len()).chain(0..consumers.len()).collect();
        runs.push((format!("an order {name}"), order, forward));
    }
    let early = new_order(&|_| {});
    runs.push(("an order compensated before its requests".into(), &early, (0..consumers.len()).rev().collect()));
    for (name, order, sequence) in runs {
        let request = serde_json::to_value(order).expect("an order serializes");
        checker.check("order.created", &request, &format!("order-api, {name}"));
        for index in sequence {
            let consumer = consumers[index];
            let by = format!("{} for {name}", consumer.name);
            checker.check(&consumer.event_type, &request, &by);
            let mut tx = store.begin().await.expect("a transaction");
            let outcome = consumer.handler.handle(&mut tx, &request, now).await.expect("the handler answers");
            tx.commit().await.expect("the transaction commits");
            match outcome {
                Outcome::Success(reply) => checker.check(&consumer.on_success, &reply, &by),
                Outcome::Failure(reply) => match &consumer.on_failure {
                    Some(on_failure) => checker.check(on_failure, &reply, &by),
                    None => checker.problems.push(format!("{by}: refused without an `on_failure` type: {reply}")),
                },
            }
        }
    }

    let saga = pipelines.iter().find_map(|p| p.pipeline.saga.as_ref()).expect("the shipped orchestrator");
    let def = &saga.definition;
    let reply = |event_type: &'static str, detail: Option<&'static str>| Input::Reply { event_type, detail };
    let scripts: Vec<(&str, Vec<Input>)> = vec![
        (
            "completed",
            vec![
                Input::Start,
                reply("payment.charged", None),
                reply("inventory.reserved", None),
                reply("shipping.scheduled", None),
            ],
        ),
        ("declined", vec![Input::Start, reply("payment.declined", Some("customer blocked-7 is blocked"))]),
        (
            "cancelled after compensating",
            vec![
                Input::Start,
                reply("payment.charged", None),
                reply("inventory.reserved", None),
                reply("shipping.rejected", Some("no shipping to ZZ")),
                reply("inventory.released", None),
                reply("payment.refunded", None),
            ],
        ),
        (
            "failed by a dead-lettered compensation",
            vec![
                Input::Start,
                reply("payment.charged", None),
                reply("inventory.rejected", Some("unknown SKU SKU-404")),
                Input::DeadLettered { request: "payment.refund.requested", detail: Some("card gateway unavailable") },
            ],
        ),
        ("failed by timeouts", std::iter::once(Input::Start).chain(std::iter::repeat_n(Input::Tick, 200)).collect()),
    ];
    let order = serde_json::to_value(order()).expect("an order serializes");
    for (name, script) in scripts {
        let mut state: Option<SagaState> = None;
        let mut finished = false;
        for (i, input) in script.into_iter().enumerate() {
            if finished {
                break;
            }
            let transition = advance(def, state.as_ref(), input, now + i as i64 * 3_600_000);
            for command in &transition.commands {
                // As `services::orchestrator::apply` turns commands into outbox rows.
                let (event_type, payload) = match command {
                    Command::Send { event_type, .. } => (event_type, order.clone()),
                    Command::Finish { status, event_type, reason } => {
                        finished = true;
                        (event_type, json!({ "orderId": ORDER_ID, "status": status.as_str(), "reason": reason }))
                    }
                };
                checker.check(event_type, &payload, &format!("the saga, {name}"));
            }
            state = transition.state.or(state);
        }
        if !finished {
            checker.problems.push(format!("the saga, {name}: did not finish"));
        }
    }

    assert!(checker.problems.is_empty(), "payloads their schemas refuse:\n{}", checker.problems.join("\n"));
    let unseen: Vec<String> = shipped_types().into_iter().filter(|t| !checker.seen.contains(t)).collect();
    assert!(unseen.is_empty(), "shipped event types the handlers and the saga never emitted here: {unseen:?}");
}

// ---- (c) `runner check`: missing schemas and mismatched step replies ----

/// A system in a temporary directory: pipelines in `pipelines/`, schemas in `schemas/events/`
/// (the default folder, `../schemas/events` beside the files).
struct CheckCase {
    name: &'static str,
    /// (file name, TOML text) written to `pipelines/`.
    files: &'static [(&'static str, &'static str)],
    /// Event types given a schema: the shipped file if there is one, else any object.
    schemas: &'static [&'static str],
    /// Every diagnostic; `<tmp>` stands for the temporary directory.
    expected: &'static [&'static str],
}

const ORDER_API: &str = r#"
[order_api]
"#;

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

[saga.steps.compensation]
request = "payment.refund.requested"
success = "payment.refunded"
timeout = "10s"
"#;

const PAYMENT: &str = r#"
[[consumers]]
name = "charge"
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.charged"
on_failure = "payment.declined"

[[consumers]]
name = "refund"
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"
"#;

const SYSTEM: &[(&str, &str)] =
    &[("api.toml", ORDER_API), ("orchestrator.toml", ORCHESTRATOR), ("payment.toml", PAYMENT)];

const SYSTEM_TYPES: &[&str] = &[
    "order.created",
    "order.completed",
    "order.cancelled",
    "order.failed",
    "payment.requested",
    "payment.charged",
    "payment.declined",
    "payment.refund.requested",
    "payment.refunded",
];

const CHECK_CASES: &[CheckCase] = &[
    CheckCase { name: "a schema for every type", files: SYSTEM, schemas: SYSTEM_TYPES, expected: &[] },
    CheckCase {
        name: "a reply type without a schema is reported in its producer and its consumer",
        files: SYSTEM,
        schemas: &[
            "order.created",
            "order.completed",
            "order.cancelled",
            "order.failed",
            "payment.requested",
            "payment.declined",
            "payment.refund.requested",
            "payment.refunded",
        ],
        expected: &[
            "pipelines/orchestrator.toml:10:11: event type `payment.charged` has no schema; add <tmp>/pipelines/../schemas/events/payment.charged.schema.json",
            "pipelines/payment.toml:5:14: event type `payment.charged` has no schema; add <tmp>/pipelines/../schemas/events/payment.charged.schema.json",
        ],
    },
    CheckCase {
        name: "a terminal type without a schema is reported in the orchestrator",
        files: SYSTEM,
        schemas: &[
            "order.created",
            "order.cancelled",
            "order.failed",
            "payment.requested",
            "payment.charged",
            "payment.declined",
            "payment.refund.requested",
            "payment.refunded",
        ],
        expected: &["pipelines/orchestrator.toml:3:16: event type `order.completed` has no schema; add <tmp>/pipelines/../schemas/events/order.completed.schema.json"],
    },
    CheckCase {
        name: "a step request answered with another success type",
        files: &[
            ("api.toml", ORDER_API),
            ("orchestrator.toml", ORCHESTRATOR),
            (
                "payment.toml",
                r#"
[[consumers]]
name = "charge"
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.done"
on_failure = "payment.declined"

[[consumers]]
name = "refund"
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"
"#,
            ),
        ],
        schemas: &[
            "order.created",
            "order.completed",
            "order.cancelled",
            "order.failed",
            "payment.requested",
            "payment.done",
            "payment.charged",
            "payment.declined",
            "payment.refund.requested",
            "payment.refunded",
        ],
        expected: &[
            r#"pipelines/orchestrator.toml:10:11: reply `payment.charged` is produced by no service; add a consumer with `on_success`/`on_failure = "payment.charged"` or fix the name"#,
            "pipelines/orchestrator.toml:10:11: `payment.requested` is answered with `payment.done` by its consumer `charge`, but the saga waits for `payment.charged`",
        ],
    },
    CheckCase {
        name: "a step request refused with another failure type",
        files: &[
            ("api.toml", ORDER_API),
            ("orchestrator.toml", ORCHESTRATOR),
            (
                "payment.toml",
                r#"
[[consumers]]
name = "charge"
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.charged"
on_failure = "payment.failed"

[[consumers]]
name = "refund"
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refunded"
"#,
            ),
        ],
        schemas: &[
            "order.created",
            "order.completed",
            "order.cancelled",
            "order.failed",
            "payment.requested",
            "payment.charged",
            "payment.declined",
            "payment.failed",
            "payment.refund.requested",
            "payment.refunded",
        ],
        expected: &[
            "pipelines/orchestrator.toml:7:1: `payment.requested` is refused with `payment.failed` by its consumer `charge`, but the saga's failure reply is `payment.declined`",
            r#"pipelines/orchestrator.toml:11:11: reply `payment.declined` is produced by no service; add a consumer with `on_success`/`on_failure = "payment.declined"` or fix the name"#,
        ],
    },
    CheckCase {
        name: "a compensation request answered with another success type",
        files: &[
            ("api.toml", ORDER_API),
            ("orchestrator.toml", ORCHESTRATOR),
            (
                "payment.toml",
                r#"
[[consumers]]
name = "charge"
topic = "payment.requested"
handler = "payment.charge"
on_success = "payment.charged"
on_failure = "payment.declined"

[[consumers]]
name = "refund"
topic = "payment.refund.requested"
handler = "payment.refund"
on_success = "payment.refund.done"
"#,
            ),
        ],
        schemas: &[
            "order.created",
            "order.completed",
            "order.cancelled",
            "order.failed",
            "payment.requested",
            "payment.charged",
            "payment.declined",
            "payment.refund.requested",
            "payment.refund.done",
            "payment.refunded",
        ],
        expected: &[
            r#"pipelines/orchestrator.toml:16:11: reply `payment.refunded` is produced by no service; add a consumer with `on_success`/`on_failure = "payment.refunded"` or fix the name"#,
            "pipelines/orchestrator.toml:16:11: `payment.refund.requested` is answered with `payment.refund.done` by its consumer `refund`, but the saga waits for `payment.refunded`",
        ],
    },
];

/// Writes the case's system and schemas to a fresh directory and checks it as `runner check`
/// does; diagnostics name files relative to that directory, which reads `<tmp>` in messages.
fn check(case: &CheckCase) -> Vec<String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pipelines = dir.path().join("pipelines");
    let schemas = dir.path().join("schemas/events");
    std::fs::create_dir_all(&pipelines).unwrap();
    std::fs::create_dir_all(&schemas).unwrap();
    for event_type in case.schemas {
        let name = runner::schemas::file_name(event_type);
        let text = std::fs::read_to_string(schema_dir().join(&name)).unwrap_or_else(|_| {
            r#"{ "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object" }"#.to_string()
        });
        std::fs::write(schemas.join(name), text).unwrap();
    }
    let paths = write_files(&pipelines, case.files);
    system_diagnostics(dir.path(), &paths, &[])
}

#[test]
fn each_check_case_reports_exactly_its_diagnostics() {
    assert_cases("check cases", CHECK_CASES.iter().map(|case| (case.name, case.expected, check(case))));
}
