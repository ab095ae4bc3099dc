//! An event as it travels: outbox row -> Kafka record -> handler, with its CloudEvents
//! attributes (`ce_id`, `ce_type`, `ce_source`, `ce_time`) and W3C `traceparent`.

use serde_json::Value;
use uuid::Uuid;

/// Every event of the system concerns one order: the aggregate type of the outbox rows.
pub const AGGREGATE_TYPE: &str = "order";

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id: the outbox row's id and the CloudEvents `ce_id`.
    pub id: String,
    /// Event type, which is also the topic (`order.created`, `payment.requested`, …).
    pub event_type: String,
    /// The order id: the Kafka key, so every event of one order stays on one partition.
    pub key: String,
    /// The service that produced it (`ce_source`).
    pub source: String,
    /// RFC 3339 time it was produced (`ce_time`).
    pub time: String,
    pub traceparent: Option<String>,
    pub payload: Value,
    /// The topic when it is not the one named by the type (a canary's topic).
    pub topic: Option<String>,
}

impl Event {
    pub fn new(event_type: &str, key: &str, source: &str, payload: Value, traceparent: Option<String>) -> Self {
        Event {
            id: Uuid::new_v4().to_string(),
            event_type: event_type.to_string(),
            key: key.to_string(),
            source: source.to_string(),
            time: now_rfc3339(),
            traceparent,
            payload,
            topic: None,
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn now_micros() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// W3C trace context: a new trace for a new order.
pub fn new_traceparent() -> String {
    format!("00-{}-{}-01", Uuid::new_v4().simple(), &Uuid::new_v4().simple().to_string()[..16])
}

/// The trace id of a W3C `traceparent` (32 hex digits), for logs.
pub fn trace_id(traceparent: Option<&str>) -> Option<&str> {
    traceparent.and_then(|p| p.split('-').nth(1)).filter(|t| t.len() == 32)
}

/// The same trace, a new span: what a consumer puts on the events it produces.
pub fn child_traceparent(parent: Option<&str>) -> String {
    match parent.and_then(|p| p.split('-').nth(1)).filter(|t| t.len() == 32) {
        Some(trace_id) => format!("00-{trace_id}-{}-01", &Uuid::new_v4().simple().to_string()[..16]),
        None => new_traceparent(),
    }
}
